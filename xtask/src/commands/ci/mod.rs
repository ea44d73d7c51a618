//! `cargo xtask ci …`: each job of `.github/workflows/images.yml` as one
//! command, its arguments read from the environment the workflow declares
//! (`env:`) and the variables GitHub sets, so the workflow's `run:` lines
//! are single calls with nothing for bash to decide. `ci rehearse` runs the
//! whole workflow here, line by line, for a pull request, a push to the
//! default branch and a version tag.
//!
//! The variables (the workflow's top-level `env:` sets the `RALPH_` ones):
//!
//! | variable | read by | meaning |
//! |---|---|---|
//! | `RALPH_CI_IMAGES` | plan | `products`, or image names (comma-separated) |
//! | `IMAGE`, `PLATFORM` | check, push, publish | the matrix entry |
//! | `RALPH_CI_CACHE` | check, push | the build cache (`gha`, `local`, `registry`, `none`) |
//! | `RALPH_TRIVY_DB` | check | Trivy DB repositories, comma-separated (required), or `offline` |
//! | `RALPH_REGISTRY` | push, publish, tag | where images go (lower-cased) |
//! | `RALPH_SIGNING` | publish | `keyless`, or `key:PATH` (password in `COSIGN_PASSWORD`, no transparency log) |
//! | `PRODUCTS` | tag | the plan's `products` output |
//! | `RALPH_PIN_DOCKERFILES` | pin | Dockerfiles to re-pin, comma-separated (empty: the catalog's) |

pub mod check;
pub mod pin;
pub mod plan;
pub mod publish;
pub mod push;
pub mod rehearse;
pub mod tag;

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::model::github::{self, Event};
use crate::pipeline::build::{BuilderArg, CacheMode, Rebuild};

/// Where the jobs write their reports (uploaded as artifacts) and where the
/// publish job finds the check and push jobs' reports.
pub const REPORTS: &str = "reports";
/// Where the release job finds the publish jobs' reports.
pub const PUBLISHED: &str = "published";

/// A variable the workflow must set; the error names it.
pub fn require(name: &str) -> Result<String> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => Ok(v.trim().to_string()),
        _ => bail!("{name} is not set: the workflow's `env:` passes it to this step (see `cargo xtask ci --help`)"),
    }
}

/// The run: GitHub's variables and the event payload.
pub fn event() -> Result<Event> {
    let path = require("GITHUB_EVENT_PATH")?;
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading the event payload {path}"))?;
    let payload: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("the event payload {path} is not JSON"))?;
    Event::from_env(&|name| std::env::var(name).ok(), &payload)
}

/// Sets a step output (appended to `GITHUB_OUTPUT`).
pub fn set_output(name: &str, value: &str) -> Result<()> {
    append("GITHUB_OUTPUT", &github::output_lines(name, value))
}

/// Adds Markdown to the job's summary (`GITHUB_STEP_SUMMARY`).
pub fn summary(markdown: &str) -> Result<()> {
    append("GITHUB_STEP_SUMMARY", markdown)
}

fn append(variable: &str, text: &str) -> Result<()> {
    let path = require(variable)?;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("opening {variable} ({path})"))?;
    file.write_all(text.as_bytes()).with_context(|| format!("writing {variable} ({path})"))
}

/// The registry images go to, lower-cased (GitHub owners may have capitals;
/// image references may not).
pub fn registry() -> Result<String> {
    Ok(require("RALPH_REGISTRY")?.to_ascii_lowercase().trim_end_matches('/').to_string())
}

pub fn cache() -> Result<CacheMode> {
    let value = require("RALPH_CI_CACHE")?;
    <CacheMode as clap::ValueEnum>::from_str(&value, true)
        .map_err(|_| anyhow::anyhow!("RALPH_CI_CACHE is `{value}`: use gha, local, registry or none"))
}

/// What every job that builds or names the build takes from the run: the event's branch and release,
/// and the builder (`BUILDX_BUILDER`); the cache is the job's to set.
pub fn rebuild(event: &Event) -> Rebuild {
    Rebuild { branch: event.branch(), release: event.release(), builder: BuilderArg::from_env(), ..Rebuild::default() }
}

/// Refuses a step that publishes in a run that must not (a pull request,
/// another branch): the workflow's `if:` should have skipped it.
pub fn must_publish(event: &Event, step: &str) -> Result<()> {
    if !event.publishes() {
        bail!(
            "`ci {step}` publishes, and this run ({} of {}) does not: only a push to {} or of a v* tag does; the job's `if: needs.plan.outputs.publish == 'true'` should have skipped it",
            event.name,
            event.git_ref,
            event.default_branch
        );
    }
    Ok(())
}

/// Every file named `name` under `dir` (artifacts downloaded one folder
/// each), sorted.
pub fn files_named(dir: &Path, name: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(std::result::Result::ok)
        .filter(|e| e.file_type().is_file() && e.file_name() == name)
        .map(walkdir::DirEntry::into_path)
        .collect();
    found.sort();
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_are_found_in_every_artifact_folder() {
        let dir = tempfile::tempdir().unwrap();
        for sub in ["reports-w-amd64", "reports-w-arm64", "reports-w-arm64/sbom"] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        std::fs::write(dir.path().join("reports-w-arm64/check.json"), "{}").unwrap();
        std::fs::write(dir.path().join("reports-w-amd64/check.json"), "{}").unwrap();
        std::fs::write(dir.path().join("reports-w-arm64/sbom/other.json"), "{}").unwrap();
        let found = files_named(dir.path(), "check.json");
        assert_eq!(
            found,
            [dir.path().join("reports-w-amd64/check.json"), dir.path().join("reports-w-arm64/check.json")]
        );
        assert!(files_named(&dir.path().join("nowhere"), "check.json").is_empty());
    }
}
