//! `cargo xtask doctor` on a host prepared by scripts/setup-host.sh, and on
//! one whose daemon can't be reached.

use std::process::Command;

fn doctor(env: &[(&str, &str)]) -> (bool, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    cmd.args(["doctor", "--json"]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn check<'a>(checks: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    checks.as_array().unwrap().iter().find(|c| c["name"] == name).unwrap_or_else(|| panic!("no {name} row"))
}

#[test]
fn a_prepared_host_has_every_required_tool() {
    let (ok, stdout, stderr) = doctor(&[]);
    assert!(ok, "{stdout}\n{stderr}");
    let checks: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    for name in [
        "docker daemon",
        "buildx",
        "containerd image store",
        "arm64 emulation",
        "registry 127.0.0.1:5000",
        "hadolint",
        "trivy",
    ] {
        let c = check(&checks, name);
        assert_eq!(c["ok"], true, "{c}");
    }
    assert!(check(&checks, "docker daemon")["detail"].as_str().unwrap().starts_with("2"));
}

#[test]
fn a_dead_daemon_fails_with_the_fix() {
    let (ok, stdout, stderr) = doctor(&[("DOCKER_HOST", "unix:///nonexistent/docker.sock")]);
    assert!(!ok);
    let checks: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let daemon = check(&checks, "docker daemon");
    assert_eq!(daemon["ok"], false);
    assert!(daemon["fix"].as_str().unwrap().contains("setup-host.sh"), "{daemon}");
    let last = stderr.lines().last().unwrap_or("");
    assert!(last.starts_with("error: required tools are missing: docker daemon"), "{last}");
}
