//! `cargo xtask image scan` with the real Trivy on images built by the real
//! engine: a credential planted in the arm64 image only fails that platform
//! and nothing else, `.trivyignore.yaml` lets it pass until its entry
//! expires, the SBOMs are CycloneDX per platform, the SARIF is valid, and
//! without a vulnerability DB the vulnerability scan is `skipped` (never a
//! pass) in `image scan`'s and `image check`'s table, JSON and JUnit, and
//! fails when asked to (`--require-vuln-db`).

mod support;

use serde_json::Value;
use support::Fixture;

const NO_DB: &str = "vulnerability DB unavailable (offline): vulnerabilities not scanned";

/// The busybox fixture, and a variant that writes an AWS-style credential
/// into /etc/creds on arm64 only (the key is put together at build time, so
/// this file holds none).
fn fixture() -> Fixture {
    let fx = Fixture::with_catalog("scan", "busybox", |repository| {
        let entry = |name: &str, dockerfile: &str| {
            format!(
                "[[image]]\nname = \"{name}\"\nrepository = \"{repository}-{name}\"\nkind = \"fixture\"\ndockerfile = \"ctx/{dockerfile}\"\n\
                 context = \"ctx\"\ncontexts = {{ busybox = \"/usr/local/share/ralph-host/busybox\" }}\nstartup_args = [\"true\"]\n\n"
            )
        };
        entry("clean", "Dockerfile") + &entry("planted", "Dockerfile.planted")
    });
    std::fs::write(
        fx.dir.join("ctx/Dockerfile.planted"),
        "FROM scratch\nARG TARGETARCH\nCOPY --from=busybox ${TARGETARCH}/busybox /bin/busybox\n\
         RUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n\
         RUN mkdir -p /etc && if [ \"$TARGETARCH\" = arm64 ]; then \
         printf '[default]\\naws_access_key_id = %s%s\\naws_secret_access_key = %s%s\\n' \
         AKIA Z7Q3RTW5YPLM2KXB q8Rf2Lz0Vb7Xk3Nw9Tc1 Hy6Gp4Ms5Dj2Ue8Ao0Ki > /etc/creds; fi\n\
         USER 1000:1000\n",
    )
    .unwrap();
    let out = fx.xtask(&["image", "build", "clean", "planted", "--quiet"]);
    assert!(out.status.success(), "{}", out.stderr);
    fx
}

fn platform<'a>(report: &'a Value, image: &str, platform: &str) -> &'a Value {
    report["images"].as_array().unwrap().iter().find(|i| i["image"] == image).unwrap()["platforms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["platform"] == platform)
        .unwrap_or_else(|| panic!("no {image} {platform} in {report}"))
}

#[test]
fn a_planted_credential_fails_its_platform_until_an_ignore_entry_lets_it_pass() {
    let _engine = support::engine();
    let fx = fixture();
    let out = fx.xtask(&[
        "image",
        "scan",
        "clean",
        "planted",
        "--report",
        "scan.json",
        "--sarif",
        "scan.sarif",
        "--sbom",
        "sboms",
    ]);
    assert!(!out.status.success(), "{}", out.stdout);
    let last = out.last_line();
    assert!(last.starts_with("error: image scan failed: planted linux/arm64: secret `aws-access-key-id`"), "{last}");
    let report = fx.report("scan.json");
    for (image, arch, passed) in
        [("clean", "amd64", true), ("clean", "arm64", true), ("planted", "amd64", true), ("planted", "arm64", false)]
    {
        let p = platform(&report, image, &format!("linux/{arch}"));
        assert_eq!(p["passed"], passed, "{image} {arch}: {p}");
        assert_eq!(p["notes"][0], NO_DB);
        assert!(p["vulnerabilities"].is_null());
        // Each part its own result: the secrets pass or fail, the vulnerabilities were not looked for.
        assert_eq!(p["secret_scan"]["status"], if passed { "passed" } else { "failed" }, "{image} {arch}: {p}");
        assert_eq!(p["vuln_scan"]["status"], "skipped", "{image} {arch}: {p}");
        assert_eq!(p["vuln_scan"]["reason"], NO_DB);
        // A CycloneDX SBOM per image and platform.
        let sbom: Value = serde_json::from_str(&std::fs::read_to_string(p["sbom"].as_str().unwrap()).unwrap()).unwrap();
        assert_eq!(sbom["bomFormat"], "CycloneDX", "{image} {arch}");
    }
    let secrets: Vec<&str> = platform(&report, "planted", "linux/arm64")["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["rule"].as_str().unwrap())
        .collect();
    assert_eq!(secrets, ["aws-access-key-id", "aws-secret-access-key"]);
    assert!(out.stdout.contains("planted  linux/arm64  2"), "{}", out.stdout);
    // The last two columns: the secret scan's result and the vulnerability scan's.
    let verdicts = |image: &str, platform: &str| -> Vec<String> {
        let mut rows = out.stdout.lines().map(|l| l.split_whitespace().collect::<Vec<_>>());
        let row = rows.find(|cells| cells.len() > 2 && cells[..2] == [image, platform]);
        let row = row.unwrap_or_else(|| panic!("no {image} {platform} in\n{}", out.stdout));
        row[row.len() - 2..].iter().map(|c| c.to_string()).collect()
    };
    assert!(out.stdout.starts_with("IMAGE") && out.stdout.lines().next().unwrap().ends_with("SECRET SCAN  VULN SCAN"));
    assert_eq!(verdicts("clean", "linux/amd64"), ["pass", "skipped"], "{}", out.stdout);
    assert_eq!(verdicts("planted", "linux/arm64"), ["FAIL", "skipped"], "{}", out.stdout);
    let sarif: Value = serde_json::from_str(&std::fs::read_to_string(fx.dir.join("scan.sarif")).unwrap()).unwrap();
    support::validate_sarif(&sarif);
    assert_eq!(sarif["runs"][0]["results"].as_array().unwrap().len(), 2);

    // Ignored, with a statement, until a date to come: it passes, and says what it let through.
    let ignore = |expired_at: &str| {
        format!(
            "secrets:\n  - id: aws-access-key-id\n    paths: [\"/etc/creds\"]\n    statement: the test's planted key\n    expired_at: {expired_at}\n\
             \x20 - id: aws-secret-access-key\n    paths: [\"/etc/creds\"]\n    statement: the test's planted key\n    expired_at: {expired_at}\n"
        )
    };
    std::fs::write(fx.dir.join(".trivyignore.yaml"), ignore("2099-01-01")).unwrap();
    let out = fx.xtask(&["image", "scan", "planted", "--platform", "linux/arm64", "--report", "ignored.json"]);
    assert!(out.status.success(), "{}\n{}", out.stdout, out.stderr);
    let p = platform(&fx.report("ignored.json"), "planted", "linux/arm64").clone();
    assert_eq!(p["secrets"][0]["ignored"], "the test's planted key");
    assert!(out.stdout.contains("planted  linux/arm64  0        -         -     -       -    2"), "{}", out.stdout);

    // Expired: it ignores nothing, and the report says so.
    std::fs::write(fx.dir.join(".trivyignore.yaml"), ignore("2020-01-01")).unwrap();
    let out = fx.xtask(&["image", "scan", "planted", "--platform", "linux/arm64"]);
    assert!(!out.status.success());
    assert!(
        out.stdout.contains(
            "expired: .trivyignore.yaml entry aws-access-key-id (the test's planted key) expired on 2020-01-01"
        ),
        "{}",
        out.stdout
    );

    // A malformed ignore file: the file, the line, the fix.
    std::fs::write(fx.dir.join(".trivyignore.yaml"), "secrets:\n  - id: x\n    expired_at: 2099-01-01\n").unwrap();
    let out = fx.xtask(&["image", "scan", "clean", "--platform", "linux/amd64"]);
    assert!(!out.status.success());
    assert!(
        out.last_line().contains(".trivyignore.yaml: line 2:") && out.last_line().contains("missing field `statement`"),
        "{}",
        out.stderr
    );
    std::fs::remove_file(fx.dir.join(".trivyignore.yaml")).unwrap();

    // Asked for vulnerabilities with no DB at hand: one line, and a failure of the vulnerability scan.
    let out =
        fx.xtask(&["image", "scan", "clean", "--platform", "linux/amd64", "--require-vuln-db", "--report", "req.json"]);
    assert!(!out.status.success());
    assert!(out.last_line().contains(&format!("{NO_DB}, and --require-vuln-db asks for them")), "{}", out.stderr);
    let p = platform(&fx.report("req.json"), "clean", "linux/amd64").clone();
    assert_eq!((&p["secret_scan"]["status"], &p["vuln_scan"]["status"]), (&"passed".into(), &"failed".into()), "{p}");
}

#[test]
fn image_check_reports_vulnerabilities_not_scanned_as_skipped_in_its_table_json_and_junit() {
    let _engine = support::engine();
    let fx = fixture();
    let out = fx.xtask(&[
        "image",
        "check",
        "clean",
        "planted",
        "--no-build",
        "--runs",
        "1",
        "--report",
        "check.json",
        "--junit",
        "check.xml",
    ]);
    assert!(!out.status.success(), "planted's arm64 secret fails it:\n{}", out.stdout);
    // The JSON: a `scan` row (secrets) and a `vulns` row (skipped: no DB), per platform.
    let report = fx.report("check.json");
    let results = |image: &str, check: &str| -> [Value; 2] {
        let rows = report["rows"].as_array().unwrap();
        let row = rows.iter().find(|r| r["image"] == image && r["check"] == check);
        let row = row.unwrap_or_else(|| panic!("no {image} {check} row in {report}"));
        [row["results"]["linux/amd64"].clone(), row["results"]["linux/arm64"].clone()]
    };
    assert_eq!(results("clean", "scan"), ["pass", "pass"]);
    assert_eq!(results("planted", "scan"), ["pass", "fail"]);
    assert_eq!(results("clean", "vulns"), ["skipped", "skipped"], "never a pass");
    assert_eq!(results("planted", "vulns"), ["skipped", "skipped"]);
    let last = out.last_line();
    assert!(last.starts_with("error: image check failed:") && last.contains("planted scan"), "{last}");
    assert!(!last.contains("vulns"), "skipped is no failure: {last}");
    // The table says skipped, and why.
    let line = out.stdout.lines().find(|l| l.starts_with("clean") && l.contains(" vulns ")).unwrap_or_default();
    assert!(line.contains("skipped  skipped") && line.ends_with(NO_DB), "{}", out.stdout);
    // JUnit: per platform a secrets case and a vulnerabilities case, the latter <skipped/>.
    let xml = std::fs::read_to_string(fx.dir.join("check.xml")).unwrap();
    assert_eq!(xml.matches(&format!("<skipped message=\"{NO_DB}\"/>")).count(), 4, "{xml}");
    assert!(xml.contains("<testsuite name=\"clean scan\" tests=\"4\" failures=\"0\" skipped=\"2\""), "{xml}");
    assert!(xml.contains("<testsuite name=\"planted scan\" tests=\"4\" failures=\"1\" skipped=\"2\""), "{xml}");
    assert!(xml.contains("name=\"Scan vulnerabilities: linux/arm64\""), "{xml}");
}

#[test]
fn an_image_never_built_names_the_build() {
    let fx = Fixture::new("scan-never");
    let out = fx.xtask(&["image", "scan", "fx"]);
    assert!(!out.status.success());
    assert!(
        out.last_line().contains("image `fx` is not built")
            && out.last_line().contains("run `cargo xtask image build fx`"),
        "{}",
        out.stderr
    );
}
