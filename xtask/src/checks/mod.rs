//! The checks: each looks at a [`BuiltImage`](crate::engine::image::BuiltImage)
//! and says what it found. `smoke` (the image's declared checks, in
//! container-structure-test's schema), `readonly` (it starts and stays up on
//! a read-only root filesystem), `size` (what it weighs against its budget)
//! and `runtime` (startup time and peak memory). They know nothing of the
//! command line: the pipeline runs them, the commands print them.

pub mod readonly;
pub mod runtime;
pub mod size;
pub mod smoke;

use serde::Serialize;

/// The kinds of pass/fail check lines (smoke's four kinds and the read-only check).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CheckKind {
    Command,
    FileExistence,
    FileContent,
    Metadata,
    ReadOnly,
}

impl CheckKind {
    /// container-structure-test's name prefix for the kind.
    pub fn title(self) -> &'static str {
        match self {
            CheckKind::Command => "Command Test",
            CheckKind::FileExistence => "File Existence Test",
            CheckKind::FileContent => "File Content Test",
            CheckKind::Metadata => "Metadata Test",
            CheckKind::ReadOnly => "Read-only Test",
        }
    }
}

/// One check of one image on one platform: pass or fail, with what it
/// wanted and what it found.
#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    pub kind: CheckKind,
    pub name: String,
    pub passed: bool,
    /// What the check wanted, in short.
    pub expected: String,
    /// What it found, in short.
    pub actual: String,
    /// One line per way it failed.
    pub errors: Vec<String>,
    pub seconds: f64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub stdout: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub stderr: String,
}

impl CheckResult {
    pub fn title(&self) -> String {
        match self.kind {
            CheckKind::Metadata => self.kind.title().to_string(),
            _ => format!("{}: {}", self.kind.title(), self.name),
        }
    }

    /// Prints the result as it comes (`PASS  Command Test: x (0.2s)`), with
    /// expected and actual when it failed: the progress of a check run.
    pub fn print_progress(&self) {
        static PRINT: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _guard = PRINT.lock().unwrap_or_else(|p| p.into_inner());
        eprintln!("{}  {} ({:.1}s)", if self.passed { "PASS" } else { "FAIL" }, self.title(), self.seconds);
        if !self.passed {
            eprintln!("      expected: {}", self.expected);
            eprintln!("      actual:   {}", self.actual);
            for e in &self.errors {
                eprintln!("      - {e}");
            }
        }
    }
}

/// A path inside an image as Go's `path.Clean` makes it (as dive and
/// container-structure-test see it), without the leading slash:
/// `./usr/bin/` → `usr/bin`, `/a/b/../c` → `a/c`; `None` for the root itself.
pub fn normalize_path(raw: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for part in raw.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            _ => parts.push(part),
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}
