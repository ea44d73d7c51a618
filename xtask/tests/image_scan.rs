//! `cargo xtask image scan` with the real Trivy on images built by the real
//! engine: a credential planted in the arm64 image only fails that platform
//! and nothing else, `.trivyignore.yaml` lets it pass until its entry
//! expires, the SBOMs are CycloneDX per platform, the SARIF is valid, and
//! without a vulnerability DB the scan says so (and fails when asked to).

mod support;

use serde_json::Value;
use support::Fixture;

/// The busybox fixture, and a variant that writes an AWS-style credential
/// into /etc/creds on arm64 only (the key is put together at build time, so
/// this file holds none).
fn fixture() -> Fixture {
    let fx = Fixture::with_catalog("scan", "busybox", |repository| {
        let entry = |name: &str, dockerfile: &str| {
            format!(
                "[[image]]\nname = \"{name}\"\nrepository = \"{repository}-{name}\"\nkind = \"fixture\"\ndockerfile = \"ctx/{dockerfile}\"\n\
                 context = \"ctx\"\ncontexts = {{ busybox = \"/usr/local/share/ralph-host/busybox\" }}\n\n"
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
        assert_eq!(p["notes"][0], "vulnerability DB unavailable (offline): vulnerabilities not scanned");
        assert!(p["vulnerabilities"].is_null());
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

    // Asked for vulnerabilities with no DB at hand: one line, and a failure.
    let out = fx.xtask(&["image", "scan", "clean", "--platform", "linux/amd64", "--require-vuln-db"]);
    assert!(!out.status.success());
    assert!(
        out.last_line().contains(
            "vulnerability DB unavailable (offline): vulnerabilities not scanned, and --require-vuln-db asks for them"
        ),
        "{}",
        out.stderr
    );
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
