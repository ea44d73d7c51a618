//! JUnit XML for CI systems: one `<testsuite>` per image and platform, one
//! `<testcase>` per check (named as container-structure-test names them),
//! a `<failure>` per failed check with expected vs actual.

use std::fmt::Write as _;

use super::SmokeReport;

pub fn junit(report: &SmokeReport) -> String {
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let total = report.passed + report.failed;
    let _ = writeln!(
        xml,
        "<testsuites name=\"xtask image smoke\" tests=\"{total}\" failures=\"{}\" time=\"{:.3}\">",
        report.failed, report.seconds
    );
    for image in &report.images {
        for p in &image.platforms {
            let _ = writeln!(
                xml,
                "  <testsuite name=\"{} {}\" tests=\"{}\" failures=\"{}\" time=\"{:.3}\">",
                escape(&image.image),
                p.platform,
                p.checks.len(),
                p.failed,
                p.seconds
            );
            let _ = writeln!(
                xml,
                "    <properties><property name=\"reference\" value=\"{}\"/></properties>",
                escape(&image.reference)
            );
            for c in &p.checks {
                let _ = write!(
                    xml,
                    "    <testcase classname=\"{}.{}\" name=\"{}\" time=\"{:.3}\"",
                    escape(&image.image),
                    escape(&p.platform.to_string()),
                    escape(&c.title()),
                    c.seconds
                );
                if c.passed && c.stdout.is_empty() && c.stderr.is_empty() {
                    xml.push_str("/>\n");
                    continue;
                }
                xml.push_str(">\n");
                if !c.passed {
                    let _ = writeln!(
                        xml,
                        "      <failure message=\"{}\">expected: {}\nactual: {}\n{}</failure>",
                        escape(c.errors.first().map_or("failed", String::as_str)),
                        escape(&c.expected),
                        escape(&c.actual),
                        escape(&c.errors.join("\n"))
                    );
                }
                if !c.stdout.is_empty() {
                    let _ = writeln!(xml, "      <system-out>{}</system-out>", escape(&c.stdout));
                }
                if !c.stderr.is_empty() {
                    let _ = writeln!(xml, "      <system-err>{}</system-err>", escape(&c.stderr));
                }
                xml.push_str("    </testcase>\n");
            }
            xml.push_str("  </testsuite>\n");
        }
    }
    xml.push_str("</testsuites>\n");
    xml
}

/// XML text and attribute escaping; characters XML 1.0 forbids are dropped.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::{CheckKind, CheckResult, ImageResult, PlatformResult};
    use super::*;
    use crate::catalog::Platform;

    #[test]
    fn junit_has_a_suite_per_platform_and_escapes_everything() {
        let check = |passed: bool| CheckResult {
            kind: CheckKind::Command,
            name: "claude <version> & \"musl\"".into(),
            passed,
            expected: "exit 0".into(),
            actual: "exit 1, stdout '\u{1b}[31mred'".into(),
            errors: vec!["Test 'x' exited with incorrect error code. Expected: 0, Actual: 1".into()],
            seconds: 0.25,
            stdout: String::new(),
            stderr: "boom\n".into(),
        };
        let report = SmokeReport {
            passed: 1,
            failed: 1,
            seconds: 1.0,
            images: vec![ImageResult {
                image: "worker".into(),
                reference: "ralph-worker:main-abc".into(),
                platforms: vec![PlatformResult {
                    platform: Platform::parse("linux/arm64").unwrap(),
                    passed: 1,
                    failed: 1,
                    seconds: 1.0,
                    checks: vec![check(true), check(false)],
                }],
            }],
        };
        let xml = junit(&report);
        assert!(xml.contains("<testsuite name=\"worker linux/arm64\" tests=\"2\" failures=\"1\""), "{xml}");
        assert!(xml.contains("name=\"Command Test: claude &lt;version&gt; &amp; &quot;musl&quot;\""), "{xml}");
        assert!(xml.contains("<failure message=\"Test &apos;x&apos; exited"), "{xml}");
        assert!(!xml.contains('\u{1b}'));
        assert_eq!(xml.matches("<testcase").count(), 2);
        assert_eq!(xml.matches("</testcase>").count(), 2, "both have stderr, so both are open elements");
    }
}
