//! JUnit XML, the test-report format CI systems read: suites of cases, each
//! case passed, failed with a message, or skipped with the reason (counted
//! in the `skipped` attributes), its output attached.

use std::fmt::Write as _;

/// All the suites of one run.
#[derive(Debug, Clone, Default)]
pub struct Suites {
    pub name: String,
    pub seconds: f64,
    pub suites: Vec<Suite>,
}

#[derive(Debug, Clone, Default)]
pub struct Suite {
    pub name: String,
    pub seconds: f64,
    pub properties: Vec<(String, String)>,
    pub cases: Vec<Entry>,
}

/// A case of a suite: one that ran (it passed, or failed with its
/// `failure`), or one that was skipped, with the reason
/// (`<skipped message="…"/>`): it did not run, which is neither a pass nor
/// a failure.
#[derive(Debug, Clone)]
pub enum Entry {
    Ran(Case),
    Skipped { case: Case, reason: String },
}

impl From<Case> for Entry {
    fn from(case: Case) -> Entry {
        Entry::Ran(case)
    }
}

/// Cases that all ran collect into a suite's entries as they are
/// (`cases: checks.map(|c| Case { … }).collect()`).
impl FromIterator<Case> for Vec<Entry> {
    fn from_iter<I: IntoIterator<Item = Case>>(cases: I) -> Self {
        cases.into_iter().map(Entry::Ran).collect()
    }
}

impl Entry {
    pub fn case(&self) -> &Case {
        match self {
            Entry::Ran(case) | Entry::Skipped { case, .. } => case,
        }
    }

    fn failed(&self) -> bool {
        matches!(self, Entry::Ran(Case { failure: Some(_), .. }))
    }

    fn skipped(&self) -> Option<&str> {
        match self {
            Entry::Skipped { reason, .. } => Some(reason),
            Entry::Ran(_) => None,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Case {
    pub classname: String,
    pub name: String,
    pub seconds: f64,
    pub failure: Option<Failure>,
    pub stdout: String,
    pub stderr: String,
}

#[derive(Debug, Clone, Default)]
pub struct Failure {
    /// One line.
    pub message: String,
    /// The details.
    pub text: String,
}

impl Suite {
    fn failures(&self) -> usize {
        self.cases.iter().filter(|c| c.failed()).count()
    }

    fn skipped(&self) -> usize {
        self.cases.iter().filter(|c| c.skipped().is_some()).count()
    }
}

impl Suites {
    pub fn to_xml(&self) -> String {
        let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let tests: usize = self.suites.iter().map(|s| s.cases.len()).sum();
        let failures: usize = self.suites.iter().map(Suite::failures).sum();
        let skipped: usize = self.suites.iter().map(Suite::skipped).sum();
        let _ = writeln!(
            xml,
            "<testsuites name=\"{}\" tests=\"{tests}\" failures=\"{failures}\" skipped=\"{skipped}\" time=\"{:.3}\">",
            attr(&self.name),
            self.seconds
        );
        for suite in &self.suites {
            let _ = writeln!(
                xml,
                "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" skipped=\"{}\" time=\"{:.3}\">",
                attr(&suite.name),
                suite.cases.len(),
                suite.failures(),
                suite.skipped(),
                suite.seconds
            );
            if !suite.properties.is_empty() {
                xml.push_str("    <properties>");
                for (name, value) in &suite.properties {
                    let _ = write!(xml, "<property name=\"{}\" value=\"{}\"/>", attr(name), attr(value));
                }
                xml.push_str("</properties>\n");
            }
            for entry in &suite.cases {
                let (c, skipped) = (entry.case(), entry.skipped());
                let _ = write!(
                    xml,
                    "    <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\"",
                    attr(&c.classname),
                    attr(&c.name),
                    c.seconds
                );
                if !entry.failed() && skipped.is_none() && c.stdout.is_empty() && c.stderr.is_empty() {
                    xml.push_str("/>\n");
                    continue;
                }
                xml.push_str(">\n");
                if let Some(why) = skipped {
                    let _ = writeln!(xml, "      <skipped message=\"{}\"/>", attr(why));
                } else if let Some(f) = &c.failure {
                    let _ =
                        writeln!(xml, "      <failure message=\"{}\">{}</failure>", attr(&f.message), escape(&f.text));
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
        xml.push_str("</testsuites>\n");
        xml
    }
}

/// XML text escaping; characters XML 1.0 forbids are dropped.
fn escape(s: &str) -> String {
    escape_as(s, false)
}

/// XML attribute value escaping: as [`escape`], and `\n`, `\r`, `\t` as character references,
/// which a parser would otherwise normalize to spaces.
fn attr(s: &str) -> String {
    escape_as(s, true)
}

fn escape_as(s: &str, attribute: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' if attribute => out.push_str("&#10;"),
            '\r' if attribute => out.push_str("&#13;"),
            '\t' if attribute => out.push_str("&#9;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_keeps_xml_well_formed() {
        assert_eq!(escape("a<b>&\"c'\u{1b}[31m\n"), "a&lt;b&gt;&amp;&quot;c&apos;[31m\n");
        assert_eq!(attr("a<b>&\"c'\u{1b}[31m\n\r\t"), "a&lt;b&gt;&amp;&quot;c&apos;[31m&#10;&#13;&#9;");
    }

    #[test]
    fn attribute_values_keep_newlines_tabs_and_returns() {
        // An XML parser normalizes a raw newline, tab or CR in an attribute value to a space:
        // they must be character references there. In text content they stay as they are.
        let case = Case {
            classname: "c".into(),
            name: "multi\nline".into(),
            failure: Some(Failure { message: "a\nb\tc\r\nd".into(), text: "x\ny\tz".into() }),
            ..Case::default()
        };
        let suites = Suites {
            name: "s".into(),
            suites: vec![Suite {
                name: "a\tb".into(),
                properties: vec![("k".into(), "v\n".into())],
                cases: vec![case.into()],
                ..Suite::default()
            }],
            ..Suites::default()
        };
        let xml = suites.to_xml();
        assert!(xml.contains("<failure message=\"a&#10;b&#9;c&#13;&#10;d\">x\ny\tz</failure>"), "{xml}");
        assert!(xml.contains("name=\"multi&#10;line\""), "{xml}");
        assert!(xml.contains("<testsuite name=\"a&#9;b\""), "{xml}");
        assert!(xml.contains("value=\"v&#10;\""), "{xml}");
    }

    #[test]
    fn counts_come_from_the_cases() {
        let case = |failed: bool| Case {
            classname: "c".into(),
            name: "n".into(),
            failure: failed.then(Failure::default),
            ..Case::default()
        };
        let skipped = Entry::Skipped { case: case(false), reason: "no <DB>".into() };
        let suites = Suites {
            name: "s".into(),
            seconds: 1.0,
            suites: vec![
                Suite { name: "a".into(), cases: [case(true), case(false)].into_iter().collect(), ..Suite::default() },
                Suite { name: "b".into(), cases: vec![skipped], ..Suite::default() },
            ],
        };
        let xml = suites.to_xml();
        assert!(
            xml.contains("<testsuites name=\"s\" tests=\"3\" failures=\"1\" skipped=\"1\" time=\"1.000\">"),
            "{xml}"
        );
        assert!(xml.contains("<testsuite name=\"a\" tests=\"2\" failures=\"1\" skipped=\"0\""), "{xml}");
        assert!(xml.contains("<testsuite name=\"b\" tests=\"1\" failures=\"0\" skipped=\"1\""), "{xml}");
        assert!(xml.contains("<testcase classname=\"c\" name=\"n\" time=\"0.000\">\n      <skipped message=\"no &lt;DB&gt;\"/>\n    </testcase>"), "{xml}");
        assert_eq!(xml.matches("<testcase").count(), 3);
    }
}
