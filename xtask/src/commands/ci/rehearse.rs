//! `cargo xtask ci rehearse`: the workflow run here, for a pull request, a
//! push to the default branch and a push of tag `v1.2.3` (see
//! `pipeline::rehearsal`), on the stand-ins, against the local registry,
//! signed with a key generated for the run. After each event it checks
//! what the event must have left in the registry: nothing for a pull
//! request; `<branch>-<sha>` and `latest` for the push; `1.2.3`, `1.2` and
//! `1` on one index for the tag. Exit 1 when a job failed or the registry
//! is not as the event must leave it.

use std::path::PathBuf;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::commands::Command;
use crate::engine::{cosign, imagetools, skopeo};
use crate::model::catalog::Catalog;
use crate::output::table::Table;
use crate::output::{JsonOut, Report, Sinks};
use crate::pipeline::rehearsal::{self, EventKind, Options, RehearsalReport, VERSION};

/// The password of the key the rehearsal generates (a stand-in for the
/// keyless signer, which needs GitHub's OIDC token).
const PASSWORD: &str = "rehearsal";

#[derive(Debug, Clone, clap::Args)]
pub struct Rehearse {
    /// Events to rehearse, in order (default: pull-request, push, tag,
    /// schedule; the schedule re-pins a base the push published).
    #[arg(long = "event", value_enum)]
    pub events: Vec<EventKind>,
    /// The images the plan checks instead of the products (which need a
    /// networked machine), comma-separated.
    #[arg(long, default_value = "worker-standin")]
    pub images: String,
    /// The registry namespace to publish to (default: a new one on localhost:5000).
    #[arg(long)]
    pub registry: Option<String>,
    /// The workflow file (default: .github/workflows/images.yml).
    #[arg(long)]
    pub workflow: Option<PathBuf>,
    #[command(flatten)]
    pub out: JsonOut,
}

/// An event, an image, and its repository's tags with their digests.
pub type RegistryAfter = (EventKind, String, Vec<(String, String)>);

#[derive(Debug, Clone, Serialize)]
pub struct RehearseReport {
    pub registry: String,
    pub events: Vec<RehearsalReport>,
    /// What the registry held after each event, per image: (tag, digest).
    pub registry_after: Vec<RegistryAfter>,
    pub problems: Vec<String>,
}

impl Command for Rehearse {
    type Report = RehearseReport;

    fn run(&self, catalog: &Catalog) -> Result<RehearseReport> {
        let repo = catalog.path.parent().context("the catalog has no directory")?.to_path_buf();
        let work_root = repo.join("target/rehearsal");
        std::fs::create_dir_all(&work_root)?;
        let registry = self.registry.clone().unwrap_or_else(|| {
            let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
            format!("localhost:5000/rehearsal-{}-{nanos}", std::process::id())
        });
        let images = super::plan::select(catalog, &self.images)?;
        let keys = work_root.join("keys");
        if keys.exists() {
            std::fs::remove_dir_all(&keys)?;
        }
        std::fs::create_dir_all(&keys)?;
        let (key, _) = cosign::generate_key_pair(&keys, PASSWORD)?;
        let commit = rehearsal::snapshot(&repo)?;
        let checkout = work_root.join("checkout");
        if checkout.exists() {
            std::fs::remove_dir_all(&checkout)?;
        }
        let overrides = vec![
            ("RALPH_CI_IMAGES".to_string(), self.images.clone()),
            ("RALPH_REGISTRY".to_string(), registry.clone()),
            ("RALPH_TRIVY_DB".to_string(), "offline".to_string()),
            ("RALPH_CI_CACHE".to_string(), "none".to_string()),
            ("RALPH_SIGNING".to_string(), format!("key:{}", key.display())),
        ];
        let events = if self.events.is_empty() {
            vec![EventKind::PullRequest, EventKind::Push, EventKind::Tag, EventKind::Schedule]
        } else {
            self.events.clone()
        };
        let mut report = RehearseReport {
            registry: registry.clone(),
            events: Vec::new(),
            registry_after: Vec::new(),
            problems: Vec::new(),
        };
        for event in events {
            let fixture = if event == EventKind::Schedule {
                Some(pin_fixture(&format!("{registry}/{}", images.first().context("no image")?.repository))?)
            } else {
                None
            };
            let mut overrides = overrides.clone();
            if let Some((path, _)) = &fixture {
                overrides.push(("RALPH_PIN_DOCKERFILES".into(), path.clone()));
            }
            let opts = Options {
                repo: repo.clone(),
                workflow: self.workflow.clone().unwrap_or_else(|| repo.join(".github/workflows/images.yml")),
                event,
                overrides: overrides.clone(),
                secrets: vec![("COSIGN_PASSWORD".into(), PASSWORD.into())],
                work: work_root.join(format!("{event:?}").to_ascii_lowercase()),
                checkout: checkout.clone(),
                commit: commit.clone(),
                fixture,
                cargo_target: work_root.join("cargo"),
            };
            let run = rehearsal::rehearse(opts)?;
            for job in run.jobs.iter().filter(|j| j.result == "failure") {
                report.problems.push(format!("{event:?}: job {} failed", job.job));
            }
            for image in &images {
                let repository = format!("{registry}/{}", image.repository);
                let tags = skopeo::list_tags(&repository)?;
                let mut named = Vec::new();
                for t in tags.iter().filter(|t| !t.starts_with("sha256-")) {
                    let (_, digest) = imagetools::manifest(&format!("{repository}:{t}"))?;
                    named.push((t.clone(), digest));
                }
                named.sort();
                report.problems.extend(expect(event, &image.name, &named));
                report.registry_after.push((event, image.name.clone(), named));
            }
            report.events.push(run);
        }
        Ok(report)
    }

    fn sinks(&self) -> Sinks<'_> {
        self.out.sinks()
    }
}

/// The schedule's fixture: a Dockerfile pinned to a stale digest of an
/// image the push published (`REPOSITORY:latest`), for the pin job to move.
fn pin_fixture(repository: &str) -> Result<(String, String)> {
    let base = format!("{repository}:latest");
    imagetools::manifest(&base)
        .with_context(|| format!("the schedule re-pins {base}: rehearse the push event first"))?;
    let stale = format!("sha256:{}", "0".repeat(64));
    Ok(("rehearsal/pin/Dockerfile".into(), format!("FROM {base}@{stale}\n")))
}

/// What an event must have left in an image's repository.
pub fn expect(event: EventKind, image: &str, tags: &[(String, String)]) -> Vec<String> {
    let has = |t: &str| tags.iter().find(|(n, _)| n == t).map(|(_, d)| d.as_str());
    let mut problems = Vec::new();
    match event {
        EventKind::PullRequest => {
            if !tags.is_empty() {
                problems.push(format!("pull request: {image} has tags {tags:?}, and a pull request publishes nothing"));
            }
        }
        EventKind::Push => {
            if has("latest").is_none() || !tags.iter().any(|(t, _)| t.starts_with("main-")) {
                problems.push(format!("push: {image} lacks `latest` or `main-<sha>`: {tags:?}"));
            }
        }
        EventKind::Schedule => {}
        EventKind::Tag => {
            let release: Vec<Option<&str>> = [VERSION, "1.2", "1"].iter().map(|t| has(t)).collect();
            if release.iter().any(Option::is_none) || release.windows(2).any(|w| w[0] != w[1]) {
                problems.push(format!("tag: {image}'s {VERSION}, 1.2 and 1 are not one index: {tags:?}"));
            }
        }
    }
    problems
}

impl Report for RehearseReport {
    fn render(&self) -> String {
        let mut out = String::new();
        for run in &self.events {
            let mut table = Table::new(["JOB", "MATRIX", "RESULT", "SECONDS", "STEPS (run/action/skipped)"]);
            for j in &run.jobs {
                let count = |k: &str| j.steps.iter().filter(|s| s.kind == k).count();
                table.row([
                    j.job.clone(),
                    j.matrix.as_ref().map_or("-".into(), |m| {
                        ["image", "arch"]
                            .iter()
                            .map(|k| crate::model::workflow::expr::to_text(&m[*k]))
                            .collect::<Vec<_>>()
                            .join(" ")
                    }),
                    j.result.clone(),
                    format!("{:.1}", j.seconds),
                    format!("{}/{}/{}", count("run"), count("action"), count("skipped")),
                ]);
            }
            out.push_str(&format!("{:?} ({}): {:.1}s\n{}", run.event, run.git_ref, run.seconds, table.render()));
            for (event, image, tags) in self.registry_after.iter().filter(|(e, _, _)| *e == run.event) {
                let names: Vec<&str> = tags.iter().map(|(t, _)| t.as_str()).collect();
                out.push_str(&format!(
                    "  {image} after {event:?}: {}\n",
                    if names.is_empty() { "no tag".into() } else { names.join(", ") }
                ));
            }
        }
        for p in &self.problems {
            out.push_str(&format!("problem: {p}\n"));
        }
        out
    }

    fn failure(&self) -> Option<String> {
        self.problems.first().map(|p| {
            format!(
                "the rehearsal found {} problem(s), first: {p} (the steps' output above says why)",
                self.problems.len()
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(t, d)| (t.to_string(), d.to_string())).collect()
    }

    #[test]
    fn what_each_event_must_leave() {
        assert!(expect(EventKind::PullRequest, "w", &[]).is_empty());
        assert!(!expect(EventKind::PullRequest, "w", &tags(&[("main-abc", "d")])).is_empty());
        assert!(expect(EventKind::Push, "w", &tags(&[("latest", "d"), ("main-abc", "d")])).is_empty());
        assert!(!expect(EventKind::Push, "w", &tags(&[("main-abc", "d")])).is_empty());
        let release = tags(&[("1", "d"), ("1.2", "d"), ("1.2.3", "d"), ("sha-abc", "d")]);
        assert!(expect(EventKind::Tag, "w", &release).is_empty());
        assert!(!expect(EventKind::Tag, "w", &tags(&[("1", "e"), ("1.2", "d"), ("1.2.3", "d")])).is_empty());
        assert!(!expect(EventKind::Tag, "w", &tags(&[("1.2", "d"), ("1.2.3", "d")])).is_empty());
    }
}
