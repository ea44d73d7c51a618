//! `cargo xtask ci rehearse`: the workflow run here, for a pull request, a
//! push to the default branch and a push of tag `v1.2.3` (see
//! `pipeline::rehearsal`), on the stand-ins, against the local registry,
//! signed with a key generated for the run. After each event it checks
//! what the event must have left in the registry: nothing for a pull
//! request; `<branch>-<sha>` and `latest` for the push; `1.2.3`, `1.2` and
//! `1` on one index for the tag. Exit 1 when a job failed or the registry
//! is not as the event must leave it.
//!
//! On GitHub each job has an engine of its own; here the jobs share this
//! one, and tag what they build `main-<sha>`, `latest`, `1.2.3`… like the
//! checkout's own builds. Afterwards, failed or not, every such tag is put
//! back: pointed at the image it named before, or removed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::commands::Command;
use crate::engine::{cosign, docker, imagetools, skopeo};
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
    /// The local tags the jobs wrote, put back as they were (see the module's doc).
    pub tags_put_back: Vec<Restore>,
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
        let cargo_target = work_root.join("cargo");
        // Cargo's output is where CARGO_TARGET_DIR says; the layouts are always under the catalog's `target`.
        let own_target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| catalog.target_dir(), PathBuf::from);
        let seeded = rehearsal::seed_cargo_target(&own_target, &cargo_target)?;
        if seeded > 0 {
            eprintln!(
                "==> the jobs' cargo target {} seeded from {} ({:.0} MB: the dependencies, as a restored cache)",
                cargo_target.display(),
                own_target.display(),
                seeded as f64 / 1e6
            );
        }
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
            tags_put_back: Vec::new(),
            problems: Vec::new(),
        };
        let repositories: Vec<String> = catalog.images.iter().map(|i| i.repository.clone()).collect();
        let before = docker::local_tags(&repositories)?;
        // Each image a tag names now keeps a name of its own meanwhile: a
        // job's build that takes its only tag must not leave it to be
        // removed as untagged before it is tagged back.
        let keep = keep_tags(&before);
        for (reference, id) in &keep {
            docker::tag(id, reference)?;
        }
        let mut written = BTreeSet::new();
        // Every event in turn, and the tags its jobs built with; failed or
        // not, those tags are then put back.
        let events_run = (|| -> Result<()> {
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
                    overrides,
                    secrets: vec![("COSIGN_PASSWORD".into(), PASSWORD.into())],
                    work: work_root.join(format!("{event:?}").to_ascii_lowercase()),
                    checkout: checkout.clone(),
                    commit: commit.clone(),
                    fixture,
                    cargo_target: cargo_target.clone(),
                    seed_layouts: Some(catalog.target_dir().join("oci")),
                };
                let artifacts = opts.work.join("artifacts");
                let run = rehearsal::rehearse(opts);
                written.extend(tags_built(&artifacts));
                let run = run?;
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
            Ok(())
        })();
        let put_back = put_back(&before, &repositories, &written);
        for reference in keep.keys() {
            let _ = docker::untag(reference);
        }
        // A job's failure is the first thing to know; then one putting back.
        events_run?;
        report.tags_put_back = put_back?;
        Ok(report)
    }

    fn sinks(&self) -> Sinks<'_> {
        self.out.sinks()
    }
}

/// The tags the check jobs built with (their `check.json` under
/// `artifacts`); the images they built on were tagged alike.
fn tags_built(artifacts: &Path) -> Vec<String> {
    let mut tags = Vec::new();
    for file in super::files_named(artifacts, "check.json") {
        let Ok(text) = std::fs::read_to_string(&file) else { continue };
        let Ok(report) = serde_json::from_str::<serde_json::Value>(&text) else { continue };
        for image in report["images"].as_array().into_iter().flatten() {
            let built = image["build"]["tags"].as_array().into_iter().flatten();
            tags.extend(built.filter_map(|t| t.as_str()).map(str::to_string));
        }
    }
    tags
}

/// Puts back the tags of `written` on `repositories` as they were `before`
/// (`restore_plan`), and returns what it did.
fn put_back(
    before: &BTreeMap<String, String>,
    repositories: &[String],
    written: &BTreeSet<String>,
) -> Result<Vec<Restore>> {
    let plan = restore_plan(before, &docker::local_tags(repositories)?, repositories, written);
    for step in &plan {
        match step {
            Restore::Retag { reference, id } => docker::tag(id, reference),
            Restore::Remove { reference } => docker::untag(reference),
        }
        .context("putting back the local tags the rehearsal's jobs wrote")?;
    }
    Ok(plan)
}

/// A tag `REPOSITORY:rehearsal-keep-PID-N` for each image that `tags` (the
/// local tags before the rehearsal) name: reference → image ID.
fn keep_tags(tags: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut keep = BTreeMap::new();
    let mut seen = BTreeSet::new();
    for (reference, id) in tags {
        let Some((repository, _)) = reference.rsplit_once(':') else { continue };
        if seen.insert(id) {
            keep.insert(format!("{repository}:rehearsal-keep-{}-{}", std::process::id(), seen.len()), id.clone());
        }
    }
    keep
}

/// One step that puts a local tag back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Restore {
    /// It named another image before: it does again.
    Retag { reference: String, id: String },
    /// It did not exist before.
    Remove { reference: String },
}

/// The steps that give each `REPOSITORY:TAG` of `written` (on every
/// repository) the image it had `before`, given what it has `after`.
pub fn restore_plan(
    before: &BTreeMap<String, String>,
    after: &BTreeMap<String, String>,
    repositories: &[String],
    written: &BTreeSet<String>,
) -> Vec<Restore> {
    let mut plan = Vec::new();
    for repository in repositories {
        for tag in written {
            let reference = format!("{repository}:{tag}");
            match (before.get(&reference), after.get(&reference)) {
                (Some(old), now) if now != Some(old) => {
                    plan.push(Restore::Retag { reference, id: old.clone() });
                }
                (None, Some(_)) => plan.push(Restore::Remove { reference }),
                _ => {}
            }
        }
    }
    plan
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
        let retagged = self.tags_put_back.iter().filter(|r| matches!(r, Restore::Retag { .. })).count();
        out.push_str(&format!(
            "local tags the jobs wrote, put back: {retagged} pointed at what they named before, {} removed\n",
            self.tags_put_back.len() - retagged
        ));
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
    fn the_tags_the_jobs_wrote_go_back_as_they_were() {
        let map = |l: &[(&str, &str)]| -> BTreeMap<String, String> {
            l.iter().map(|(r, i)| (r.to_string(), i.to_string())).collect()
        };
        let before = map(&[("w:latest", "old"), ("w:keep", "k"), ("b:latest", "b0")]);
        let after = map(&[("w:latest", "new"), ("w:keep", "k"), ("w:main-1234567", "new"), ("b:latest", "b0")]);
        let written: BTreeSet<String> = ["latest", "main-1234567", "1.2.3"].iter().map(|t| t.to_string()).collect();
        let plan = restore_plan(&before, &after, &["w".into(), "b".into()], &written);
        assert_eq!(
            plan,
            [
                Restore::Retag { reference: "w:latest".into(), id: "old".into() },
                Restore::Remove { reference: "w:main-1234567".into() },
            ]
        );
        // A tag the jobs removed comes back; nothing the jobs did not write is touched.
        let plan = restore_plan(&before, &map(&[]), &["w".into()], &written);
        assert_eq!(plan, [Restore::Retag { reference: "w:latest".into(), id: "old".into() }]);
    }

    #[test]
    fn one_keep_tag_per_image() {
        let tags: BTreeMap<String, String> =
            [("w:latest", "a"), ("w:main-1234567", "a"), ("b:latest", "c")].map(|(r, i)| (r.into(), i.into())).into();
        let keep = keep_tags(&tags);
        assert_eq!(keep.len(), 2, "{keep:?}");
        assert_eq!(
            keep.values().collect::<BTreeSet<_>>(),
            ["a", "c"].iter().map(|s| s.to_string()).collect::<Vec<_>>().iter().collect()
        );
        assert!(keep.keys().all(|k| k.contains(":rehearsal-keep-")), "{keep:?}");
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
