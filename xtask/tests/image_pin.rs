//! `cargo xtask image pin` against the local registry: a pin that points at
//! an old digest is found stale, rewritten to what the tag resolves to now,
//! and an unreachable registry changes no file.

mod support;

use support::{Fixture, REGISTRY};

const OLD: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000000";

#[test]
fn pins_follow_the_tag_and_nothing_is_written_on_failure() {
    let _engine = support::engine();
    let fx = Fixture::new("pin");
    let out = fx.xtask(&[
        "image",
        "build",
        "fx",
        "--platform",
        "linux/amd64,linux/arm64",
        "--push",
        "--registry",
        REGISTRY,
        "--tag",
        "1.0",
        "--report",
        "built.json",
        "--quiet",
    ]);
    assert!(out.status.success(), "{}", out.stderr);
    let current = fx.report("built.json")["images"][0]["digest"].as_str().unwrap().to_string();

    let tagged = format!("{REGISTRY}/{}:1.0", fx.repository);
    let dockerfile = fx.dir.join("Dockerfile.pinned");
    let original = format!("# base, pinned\nARG BASE={tagged}@{OLD}\nFROM ${{BASE}}\nRUN true\n");
    std::fs::write(&dockerfile, &original).unwrap();
    let path = dockerfile.to_str().unwrap();

    // --check: stale, exit 1, file untouched.
    let out = fx.xtask(&["image", "pin", "--check", "--dockerfile", path]);
    assert!(!out.status.success());
    assert_eq!(
        out.last_line(),
        "error: stale base image pins at Dockerfile.pinned:2: run `cargo xtask image pin` to update them",
        "{}",
        out.stderr
    );
    assert_eq!(std::fs::read_to_string(&dockerfile).unwrap(), original);

    // pin: rewritten to the digest the registry serves for the tag.
    let out = fx.xtask(&["image", "pin", "--dockerfile", path, "--report", "pin.json"]);
    assert!(out.status.success(), "{}", out.stderr);
    assert_eq!(std::fs::read_to_string(&dockerfile).unwrap(), original.replace(OLD, &current));
    let report = fx.report("pin.json");
    assert_eq!(report[0]["status"], "updated");
    assert_eq!(report[0]["current"], current.as_str());

    // Again: current, and --check passes.
    let out = fx.xtask(&["image", "pin", "--check", "--dockerfile", path]);
    assert!(out.status.success(), "{}", out.stderr);
    assert!(out.stdout.contains("current"), "{}", out.stdout);

    // One unreachable registry among the pins: no file changes at all.
    let mixed = format!("ARG BASE={tagged}@{OLD}\nFROM 127.0.0.1:9/nowhere:1@{OLD}\n");
    std::fs::write(&dockerfile, &mixed).unwrap();
    let out = fx.xtask(&["image", "pin", "--dockerfile", path]);
    assert!(!out.status.success());
    let last = out.last_line();
    assert!(
        last.starts_with("error: cannot resolve 127.0.0.1:9/nowhere:1 in its registry: ")
            && last.ends_with(
                ": check the network or the registry and run `cargo xtask image pin` again (no Dockerfile was changed)"
            ),
        "{last}"
    );
    assert_eq!(std::fs::read_to_string(&dockerfile).unwrap(), mixed);
}
