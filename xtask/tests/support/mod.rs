//! Shared by the integration tests: a copy of the busybox fixture in a
//! temporary directory with its own catalog, and the xtask binary to run.

#![allow(dead_code)] // each test binary uses a different part

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};

pub const REGISTRY: &str = "localhost:5000";

static ENGINE: Mutex<()> = Mutex::new(());

/// Serializes tests that build or run images: two cores don't gain from
/// parallel builds, and timings stay readable.
pub fn engine() -> MutexGuard<'static, ()> {
    ENGINE.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

pub struct Fixture {
    pub dir: PathBuf,
    pub repository: String,
}

pub struct Output {
    pub status: std::process::ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// The last line on stderr: where the xtask puts its one-line error.
    pub fn last_line(&self) -> &str {
        self.stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("")
    }
}

impl Fixture {
    pub fn new(name: &str) -> Fixture {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let repository = format!("xtask-test-{name}-{}-{nanos}", std::process::id());
        let dir = std::env::temp_dir().join(&repository);
        copy_dir(&repo_root().join("test/images/busybox"), &dir.join("ctx"));
        let catalog = format!(
            r#"
[[image]]
name = "fx"
repository = "{repository}"
kind = "fixture"
dockerfile = "ctx/Dockerfile"
context = "ctx"
contexts = {{ busybox = "/usr/local/share/ralph-host/busybox" }}

[[image]]
name = "missing-dockerfile"
kind = "fixture"
dockerfile = "nowhere/Dockerfile"
platforms = ["linux/amd64"]
"#
        );
        std::fs::write(dir.join("images.toml"), catalog).unwrap();
        Fixture { dir, repository }
    }

    pub fn xtask(&self, args: &[&str]) -> Output {
        self.xtask_env(args, &[])
    }

    /// Runs the xtask in the fixture's directory (not a git checkout, so
    /// its images are tagged `sha-0000000`).
    pub fn xtask_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
        cmd.arg("--catalog").arg(self.dir.join("images.toml")).args(args).current_dir(&self.dir);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("running the xtask binary");
        Output {
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    pub fn report(&self, name: &str) -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(self.dir.join(name)).unwrap()).unwrap()
    }

    pub fn remove_images(&self, refs: &[&str]) {
        let _ = Command::new("docker").args(["image", "rm", "--force"]).args(refs).output();
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs a command that must succeed; its stdout.
pub fn run_ok(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(out.status.success(), "{program} {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}
