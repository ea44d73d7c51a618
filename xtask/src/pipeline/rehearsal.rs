//! The rehearsal: `.github/workflows/images.yml` run on this machine, job
//! by job in the order its `needs:` give, for one event (a pull request, a
//! push to the default branch, a push of tag `v1.2.3`).
//!
//! A clone of the checkout stands in for `actions/checkout` (on the event's
//! ref); each job's `if:`, matrix (from the plan job's real outputs), `env:`
//! and outputs are evaluated as GitHub evaluates them; each `run:` line runs
//! exactly as written (`bash --noprofile --norc -eo pipefail`, in the
//! clone), with a fresh `GITHUB_OUTPUT`, `GITHUB_ENV`, `GITHUB_PATH` and
//! `GITHUB_STEP_SUMMARY` per step; artifacts pass through a directory.
//! A `run:` that is not one `cargo xtask …` call or the tool script fails
//! the rehearsal. Each action (`uses:`) is mapped to its local equivalent
//! (a check that what it would set up is here, or a copy for artifacts) or
//! reported skipped, by name; an action with no mapping fails it.
//!
//! What differs from GitHub is said up front: overrides of the workflow's
//! top-level `env:` (the registry, the images, the cache, the signer and the
//! Trivy DB this machine has) and the password of the generated key.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Serialize;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::engine::process::Cmd;
use crate::model::github::parse_outputs;
use crate::model::workflow::expr::{self, Host};
use crate::model::workflow::{thin_run, Job, Step, StepAction, Workflow};

/// The repository the rehearsal pretends to be.
pub const REPOSITORY: &str = "rehearsal/ralph";
/// The version the tag event releases.
pub const VERSION: &str = "1.2.3";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    /// A pull request into the default branch.
    PullRequest,
    /// A push to the default branch.
    Push,
    /// A push of tag v1.2.3.
    Tag,
    /// The weekly schedule (on the default branch).
    Schedule,
}

impl EventKind {
    pub fn name(self) -> &'static str {
        match self {
            EventKind::PullRequest => "pull_request",
            EventKind::Push | EventKind::Tag => "push",
            EventKind::Schedule => "schedule",
        }
    }

    pub fn git_ref(self) -> String {
        match self {
            EventKind::PullRequest => "refs/pull/1/merge".into(),
            EventKind::Push | EventKind::Schedule => "refs/heads/main".into(),
            EventKind::Tag => format!("refs/tags/v{VERSION}"),
        }
    }
}

/// What a rehearsal is told.
#[derive(Debug, Clone)]
pub struct Options {
    pub repo: PathBuf,
    pub workflow: PathBuf,
    pub event: EventKind,
    /// Values for variables of the workflow's top-level `env:`.
    pub overrides: Vec<(String, String)>,
    /// Variables every step gets besides the workflow's (secrets' stand-ins).
    pub secrets: Vec<(String, String)>,
    /// Scratch: artifacts, temp files.
    pub work: PathBuf,
    /// Where the clone goes (the same for every event, so cargo rebuilds
    /// only what changed).
    pub checkout: PathBuf,
    /// What the clone checks out: [`snapshot`] of the repository.
    pub commit: String,
    /// Shared by every rehearsal's cargo, so dependencies build once.
    pub cargo_target: PathBuf,
    /// The repository's `target/oci`, which seeds the clone's
    /// (`seed_layouts`) when it has none.
    pub seed_layouts: Option<PathBuf>,
    /// For the schedule: a Dockerfile (relative to the clone) and its text,
    /// committed in the clone for the pin job to re-pin.
    pub fixture: Option<(String, String)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RehearsalReport {
    pub event: EventKind,
    pub git_ref: String,
    pub overrides: Vec<(String, String)>,
    pub seconds: f64,
    pub jobs: Vec<JobRun>,
    /// What the steps wrote to `GITHUB_STEP_SUMMARY`, in order.
    pub summary: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct JobRun {
    pub job: String,
    /// The matrix entry, for a matrix job.
    pub matrix: Option<Value>,
    /// `success`, `failure` or `skipped`, as `needs.<job>.result` says.
    pub result: String,
    pub seconds: f64,
    pub steps: Vec<StepRun>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StepRun {
    pub step: String,
    /// `run`, `action` (its local equivalent ran), `skipped` (by its `if:`
    /// or for want of an equivalent here).
    pub kind: String,
    pub outcome: String,
    pub seconds: f64,
    pub note: String,
}

/// The GitHub context, the event payload and the variables GitHub sets.
struct Run {
    opts: Options,
    checkout: PathBuf,
    artifacts: PathBuf,
    temp: PathBuf,
    github: Value,
    env: Vec<(String, String)>,
    summary: String,
}

pub fn rehearse(opts: Options) -> Result<RehearsalReport> {
    let started = Instant::now();
    let workflow_text = std::fs::read_to_string(&opts.workflow)
        .with_context(|| format!("reading the workflow {}", opts.workflow.display()))?;
    let workflow = Workflow::parse(&workflow_text).with_context(|| opts.workflow.display().to_string())?;
    for (name, _) in &opts.overrides {
        if !workflow.env.iter().any(|(k, _)| k == name) {
            bail!(
                "the override {name} is not a variable of the workflow's top-level env: override only what it declares"
            );
        }
    }
    let mut run = Run::prepare(opts)?;
    eprintln!(
        "==> rehearsal of {} ({}) in {}",
        run.opts.event.name(),
        run.opts.event.git_ref(),
        run.checkout.display()
    );
    for (k, v) in &run.opts.overrides {
        eprintln!("    override {k}={v}");
    }
    let ctx = run.context(&Map::new(), &Map::new(), &[]);
    let mut workflow_env = Vec::new();
    for (k, v) in &workflow.env {
        let value = match run.opts.overrides.iter().find(|(n, _)| n == k) {
            Some((_, v)) => v.clone(),
            None => expr::to_text(&expr::interpolate(v, &ctx, &expr::NoHost)?),
        };
        workflow_env.push((k.clone(), value));
    }
    let mut jobs: Vec<JobRun> = Vec::new();
    let mut needs_ctx = Map::new();
    for job in &workflow.jobs {
        let needed: Map<String, Value> =
            job.needs.iter().filter_map(|n| needs_ctx.get(n).map(|v| (n.clone(), v.clone()))).collect();
        let runs = run.job(job, &workflow_env, &needed)?;
        let result = if runs.iter().any(|r| r.0.result == "failure") {
            "failure"
        } else if runs.iter().all(|r| r.0.result == "skipped") {
            "skipped"
        } else {
            "success"
        };
        let mut outputs = Map::new();
        for r in &runs {
            if let Some(Value::Object(o)) = r.1.as_ref() {
                outputs.extend(o.clone());
            }
        }
        needs_ctx.insert(job.id.clone(), json!({"result": result, "outputs": outputs}));
        jobs.extend(runs.into_iter().map(|(r, _)| r));
    }
    // A runner's temporary directory goes with it (the tools' venv: 340 MB an event).
    std::fs::remove_dir_all(&run.temp).with_context(|| format!("removing {}", run.temp.display()))?;
    Ok(RehearsalReport {
        event: run.opts.event,
        git_ref: run.opts.event.git_ref(),
        overrides: run.opts.overrides.clone(),
        seconds: started.elapsed().as_secs_f64(),
        jobs,
        summary: run.summary,
    })
}

/// The repository's work tree as it is, committed or not (tracked files):
/// a commit to rehearse.
///
/// A commit the rehearsal makes (this one, the schedule's fixture) keeps
/// HEAD's committer time: the images' `SOURCE_DATE_EPOCH`, and so their
/// clamped layers, are then the ones the repository's own builds of HEAD
/// make, and the engine's build cache serves them. A commit of its own
/// time gave a new epoch: new layers for the stand-ins' base, and every
/// stand-in built again under emulation.
pub fn snapshot(repo: &Path) -> Result<String> {
    let stash = git_at_head_time(repo, &["stash", "create"])?;
    if stash.is_empty() {
        return git(repo, &["rev-parse", "HEAD"]);
    }
    Ok(stash)
}

/// What the jobs share besides the engine and its build cache: the image
/// layouts under `target/oci`, with the clamp's records of what each layer
/// became (`engine::clamp`). They are the build's cache in the same way:
/// each job still builds and clamps, and a layer that an earlier job (or
/// the repository's own builds: `seed_layouts`) rewrote is linked, not
/// rewritten.
const SHARED_BY_JOBS: &str = "/target/oci";

/// Seeds `to`, the rehearsal's cargo target, from `from`, the
/// repository's own (`target`), as a restored Actions cache would: the
/// compiled dependencies (`debug/deps/lib*`), the build scripts' outputs
/// and the fingerprints, their times kept (cargo's freshness compares
/// them). The jobs' cargo then builds only the xtask (20 s here, against
/// 100 s from nothing). Nothing is done when `to` has a dev build already
/// or `from` has none. Returns the bytes copied.
///
/// The fingerprints are copied first: any of them then names an output
/// that was complete before the copy of the outputs began (a cargo writing
/// `from` meanwhile makes at worst a unit that builds again). The copy goes
/// to `debug.seeding`, renamed when whole.
pub fn seed_cargo_target(from: &Path, to: &Path) -> Result<u64> {
    let (source, dest) = (from.join("debug"), to.join("debug"));
    if dest.exists() || !source.join(".fingerprint").is_dir() {
        return Ok(0);
    }
    let partial = to.join("debug.seeding");
    if partial.exists() {
        std::fs::remove_dir_all(&partial).with_context(|| format!("removing {}", partial.display()))?;
    }
    let mut bytes = 0;
    for dir in [".fingerprint", "build", "deps"] {
        let top = source.join(dir);
        if !top.is_dir() {
            continue;
        }
        // Of deps, the libraries: not the test binaries, the xtask's own
        // nor rustc's scratch directories.
        let wanted = |e: &walkdir::DirEntry| {
            dir != "deps" || e.depth() != 1 || e.file_name().to_string_lossy().starts_with("lib")
        };
        for entry in walkdir::WalkDir::new(&top).sort_by_file_name().into_iter().filter_entry(wanted) {
            let entry = match entry {
                Ok(entry) => entry,
                // Gone meanwhile (a cargo at work there): not needed.
                Err(e) if e.io_error().is_some_and(|e| e.kind() == std::io::ErrorKind::NotFound) => continue,
                Err(e) => return Err(e).with_context(|| format!("reading {}", top.display())),
            };
            let relative = entry.path().strip_prefix(&source).context("a path outside the walk")?;
            let target = partial.join(relative);
            if entry.file_type().is_dir() {
                std::fs::create_dir_all(&target).with_context(|| format!("creating {}", target.display()))?;
            } else if entry.file_type().is_file() {
                bytes += copy_with_time(entry.path(), &target)?.unwrap_or(0);
            }
        }
    }
    std::fs::rename(&partial, &dest)
        .with_context(|| format!("renaming {} to {}", partial.display(), dest.display()))?;
    Ok(bytes)
}

/// Seeds `to`, the clone's `target/oci`, from `from`, the repository's, as
/// the check jobs' Actions cache (of `target`) restores it on a runner: the
/// clamp's records of what each layer became (copied: small files) and the
/// layouts' blobs (linked: content-addressed, never written in place;
/// copied across file systems), not their `index.json` nor memos, so every
/// job still builds, exports and clamps, and finds a layer the repository's
/// builds already rewrote instead of rewriting it (about 30 s a platform
/// for the worker stand-in). Nothing is done when `to` exists. Returns the
/// blobs seeded.
pub fn seed_layouts(from: &Path, to: &Path) -> Result<usize> {
    if to.exists() || !from.is_dir() {
        return Ok(0);
    }
    let partial = to.with_file_name("oci.seeding");
    if partial.exists() {
        std::fs::remove_dir_all(&partial).with_context(|| format!("removing {}", partial.display()))?;
    }
    std::fs::create_dir_all(&partial).with_context(|| format!("creating {}", partial.display()))?;
    let mut blobs = 0;
    // A name starting with a dot under a layout or the records is a file being written.
    let finished = |e: &std::fs::DirEntry| !e.file_name().to_string_lossy().starts_with('.');
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        let name = entry.file_name();
        let dir = entry.path();
        if name == ".clamp" {
            let records = partial.join(".clamp");
            std::fs::create_dir_all(&records).with_context(|| format!("creating {}", records.display()))?;
            for record in std::fs::read_dir(&dir)?.filter_map(|e| e.ok()).filter(finished) {
                copy_with_time(&record.path(), &records.join(record.file_name()))?;
            }
            continue;
        }
        let source = dir.join("blobs/sha256");
        if name.to_string_lossy().starts_with('.') || !source.is_dir() {
            continue;
        }
        let dest = partial.join(&name).join("blobs/sha256");
        std::fs::create_dir_all(&dest).with_context(|| format!("creating {}", dest.display()))?;
        for blob in std::fs::read_dir(&source)?.filter_map(|e| e.ok()).filter(finished) {
            let target = dest.join(blob.file_name());
            // Linked, else copied; one collected meanwhile is left out.
            let seeded = match std::fs::hard_link(blob.path(), &target) {
                Ok(()) => true,
                Err(_) => copy_with_time(&blob.path(), &target)?.is_some(),
            };
            blobs += usize::from(seeded);
        }
    }
    std::fs::rename(&partial, to).with_context(|| format!("renaming {} to {}", partial.display(), to.display()))?;
    Ok(blobs)
}

/// Copies a file, its permissions and its modification time; `None` when
/// it is gone (removed meanwhile by whoever writes there).
fn copy_with_time(from: &Path, to: &Path) -> Result<Option<u64>> {
    let bytes = match std::fs::copy(from, to) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !from.exists() => return Ok(None),
        copied => copied.with_context(|| format!("copying {} to {}", from.display(), to.display()))?,
    };
    let modified = std::fs::metadata(from)?.modified()?;
    std::fs::File::open(to)?.set_modified(modified)?;
    Ok(Some(bytes))
}

/// The clone as a fresh runner's, but for what the jobs share.
fn clean(checkout: &Path) -> Result<()> {
    git(checkout, &["clean", "--quiet", "-ffdx", "-e", SHARED_BY_JOBS]).map(drop)
}

fn git(dir: &Path, args: &[&str]) -> Result<String> {
    Cmd::new("git").args(args).current_dir(dir).read()
}

/// `git ARGS` in DIR with the committer (and author) time of DIR's HEAD.
fn git_at_head_time(dir: &Path, args: &[&str]) -> Result<String> {
    let time = git(dir, &["log", "-1", "--format=%ct"])?;
    let date = format!("@{time} +0000");
    Cmd::new("git").args(args).current_dir(dir).env("GIT_COMMITTER_DATE", &date).env("GIT_AUTHOR_DATE", &date).read()
}

impl Run {
    /// The scratch directories and a clone of the repository on the event's
    /// ref, as actions/checkout leaves it.
    fn prepare(opts: Options) -> Result<Run> {
        let work = &opts.work;
        if work.exists() {
            std::fs::remove_dir_all(work).with_context(|| format!("removing {}", work.display()))?;
        }
        let (checkout, artifacts, temp) = (opts.checkout.clone(), work.join("artifacts"), work.join("temp"));
        for d in [&artifacts, &temp] {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
        }
        let dest = checkout.display().to_string();
        if !checkout.join(".git").is_dir() {
            let repo = opts.repo.display().to_string();
            git(work, &["clone", "--quiet", "--shared", "--no-tags", "--no-checkout", &repo, &dest])?;
        }
        // The same commit for every event of a rehearsal: the files cargo
        // built from stay as they are, only the ref changes.
        git(&checkout, &["checkout", "--quiet", "--force", "--detach", &opts.commit])?;
        clean(&checkout)?;
        if let Some(from) = &opts.seed_layouts {
            let seeded = seed_layouts(from, &checkout.join("target/oci"))?;
            if seeded > 0 {
                eprintln!("==> the clone's target/oci seeded from {} ({seeded} blobs linked)", from.display());
            }
        }
        let _ = git(&checkout, &["branch", "--quiet", "-D", "main"]);
        let _ = git(&checkout, &["tag", "-d", &format!("v{VERSION}")]);
        if let Some((path, text)) = &opts.fixture {
            let file = checkout.join(path);
            std::fs::create_dir_all(file.parent().context("a fixture path without a folder")?)?;
            std::fs::write(&file, text)?;
            git(&checkout, &["add", path])?;
            let who = ["-c", "user.name=rehearsal", "-c", "user.email=rehearsal@localhost"];
            git_at_head_time(&checkout, &[&who[..], &["commit", "--quiet", "-m", "rehearsal fixture"]].concat())?;
        }
        match opts.event {
            EventKind::PullRequest => {}
            EventKind::Push | EventKind::Schedule => {
                git(&checkout, &["checkout", "--quiet", "-B", "main"])?;
            }
            EventKind::Tag => {
                git(&checkout, &["tag", &format!("v{VERSION}")])?;
            }
        }
        let sha = git(&checkout, &["rev-parse", "HEAD"])?;
        let event = opts.event;
        let git_ref = event.git_ref();
        let payload = json!({
            "repository": {"default_branch": "main", "full_name": REPOSITORY},
            "pull_request": if event == EventKind::PullRequest {
                json!({"head": {"ref": "rehearsal-pr", "repo": {"full_name": REPOSITORY}}, "base": {"ref": "main"}})
            } else { Value::Null },
        });
        let payload_file = temp.join("event.json");
        std::fs::write(&payload_file, serde_json::to_string_pretty(&payload)?)?;
        let ref_name = git_ref.rsplit('/').next().unwrap_or("").to_string();
        let head_ref = if event == EventKind::PullRequest { "rehearsal-pr" } else { "" };
        let workflow_ref = format!("{REPOSITORY}/.github/workflows/images.yml@{git_ref}");
        let env: Vec<(String, String)> = [
            ("CI", "true"),
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_EVENT_NAME", event.name()),
            ("GITHUB_REF", &git_ref),
            ("GITHUB_REF_NAME", &ref_name),
            ("GITHUB_HEAD_REF", head_ref),
            ("GITHUB_BASE_REF", if head_ref.is_empty() { "" } else { "main" }),
            ("GITHUB_REPOSITORY", REPOSITORY),
            ("GITHUB_REPOSITORY_OWNER", "rehearsal"),
            ("GITHUB_SERVER_URL", "https://github.com"),
            ("GITHUB_WORKFLOW_REF", &workflow_ref),
            ("GITHUB_SHA", &sha),
            ("GITHUB_WORKSPACE", &dest),
            ("GITHUB_EVENT_PATH", &payload_file.display().to_string()),
            ("RUNNER_TEMP", &temp.display().to_string()),
            ("RUNNER_ARCH", "X64"),
            ("RUNNER_OS", "Linux"),
            ("CARGO_TARGET_DIR", &opts.cargo_target.display().to_string()),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let github = json!({
            "event_name": event.name(), "ref": git_ref, "ref_name": ref_name, "head_ref": head_ref,
            "repository": REPOSITORY, "repository_owner": "rehearsal", "workflow": "images", "sha": sha,
            "actor": "rehearsal", "workspace": dest, "server_url": "https://github.com", "event": payload,
        });
        Ok(Run { opts, checkout, artifacts, temp, github, env, summary: String::new() })
    }

    fn context(&self, matrix: &Map<String, Value>, needs: &Map<String, Value>, env: &[(String, String)]) -> Value {
        json!({
            "github": self.github,
            "inputs": {},
            "vars": {},
            "secrets": {"GITHUB_TOKEN": ""},
            "runner": {"arch": "X64", "os": "Linux", "temp": self.temp.display().to_string()},
            "matrix": matrix,
            "needs": needs,
            "env": env.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect::<Map<_, _>>(),
            "steps": {},
            "job": {"status": "success"},
            "strategy": {},
        })
    }

    /// Every run of `job` (one per matrix entry) and the outputs each left.
    fn job(
        &mut self,
        job: &Job,
        workflow_env: &[(String, String)],
        needs: &Map<String, Value>,
    ) -> Result<Vec<(JobRun, Option<Value>)>> {
        let needs_ok = job.needs.iter().all(|n| needs.get(n).is_some_and(|v| v["result"] == "success"));
        let base = self.context(&Map::new(), needs, workflow_env);
        let host = Status { failed: !needs_ok, files: self.checkout.clone() };
        let skipped = |why: String| JobRun {
            job: job.id.clone(),
            matrix: None,
            result: "skipped".into(),
            seconds: 0.0,
            steps: vec![StepRun {
                step: "(job)".into(),
                kind: "skipped".into(),
                outcome: "skipped".into(),
                seconds: 0.0,
                note: why,
            }],
        };
        let runs_at_all = match &job.condition {
            Some(c) => expr::condition(c, &base, &host).with_context(|| format!("job `{}`'s if", job.id))?,
            None => needs_ok,
        };
        if !runs_at_all {
            let why = job.condition.clone().map_or("a job it needs did not succeed".into(), |c| format!("if: {c}"));
            eprintln!("==> job {}: skipped ({why})", job.id);
            return Ok(vec![(skipped(why), None)]);
        }
        let entries = match &job.matrix {
            None => vec![Map::new()],
            Some(m) => matrix_entries(m, &base)?,
        };
        if entries.is_empty() {
            bail!("job `{}`: its matrix is empty", job.id);
        }
        let mut out = Vec::new();
        for matrix in entries {
            out.push(self.job_run(job, workflow_env, needs, matrix)?);
        }
        Ok(out)
    }

    fn job_run(
        &mut self,
        job: &Job,
        workflow_env: &[(String, String)],
        needs: &Map<String, Value>,
        matrix: Map<String, Value>,
    ) -> Result<(JobRun, Option<Value>)> {
        let started = Instant::now();
        // A fresh workspace per job, as a fresh runner has: what an earlier
        // job left in the clone (its reports) is gone.
        git(&self.checkout, &["reset", "--quiet", "--hard"])?;
        clean(&self.checkout)?;
        let label = if matrix.is_empty() {
            job.id.clone()
        } else {
            let keys = ["image", "arch"];
            let shown: Vec<String> = keys.iter().filter_map(|k| matrix.get(*k)).map(expr::to_text).collect();
            format!("{} ({})", job.id, shown.join(" "))
        };
        eprintln!("==> job {label}");
        let mut env = workflow_env.to_vec();
        let ctx = self.context(&matrix, needs, &env);
        for (k, v) in &job.env {
            env.push((k.clone(), expr::to_text(&expr::interpolate(v, &ctx, &expr::NoHost)?)));
        }
        let mut steps_ctx = Map::new();
        let mut failed = false;
        let mut extra_env: Vec<(String, String)> = Vec::new();
        let mut path_prefix: Vec<String> = Vec::new();
        let mut steps = Vec::new();
        for (n, step) in job.steps.iter().enumerate() {
            let mut ctx = self.context(&matrix, needs, &[env.clone(), extra_env.clone()].concat());
            ctx["steps"] = Value::Object(steps_ctx.clone());
            let host = Status { failed, files: self.checkout.clone() };
            let runs = match &step.condition {
                Some(c) => {
                    expr::condition(c, &ctx, &host).with_context(|| format!("{label}, step `{}`'s if", step.label()))?
                }
                None => !failed,
            };
            if !runs {
                steps.push(StepRun {
                    step: step.label(),
                    kind: "skipped".into(),
                    outcome: "skipped".into(),
                    seconds: 0.0,
                    note: step.condition.clone().map_or("an earlier step failed".into(), |c| format!("if: {c}")),
                });
                continue;
            }
            let mut step_env = [env.clone(), extra_env.clone()].concat();
            for (k, v) in &step.env {
                step_env.push((k.clone(), expr::to_text(&expr::interpolate(v, &ctx, &expr::NoHost)?)));
            }
            let t = Instant::now();
            let files = StepFiles::new(&self.temp, &format!("{}-{n}", job.id))?;
            let result = match &step.action {
                StepAction::Run(script) => self.run_script(
                    script,
                    &step_env,
                    &path_prefix,
                    &files,
                    Duration::from_secs(job.timeout_minutes * 60),
                ),
                StepAction::Uses { action, with } => {
                    let with: Vec<(String, String)> = with
                        .iter()
                        .map(|(k, v)| Ok((k.clone(), expr::to_text(&expr::interpolate(v, &ctx, &host)?))))
                        .collect::<Result<_>>()?;
                    self.action(action, &with)
                }
            };
            let (kind, outcome, note) = match result {
                Ok(Done::Ran(note)) => (step_kind(step), "success", note),
                Ok(Done::Skipped(note)) => ("skipped", "skipped", note),
                Err(e) => {
                    failed = true;
                    eprintln!("==> {label}, step `{}` failed: {e:#}", step.label());
                    (step_kind(step), "failure", format!("{e:#}"))
                }
            };
            let outputs = files.outputs()?;
            extra_env.extend(files.env()?);
            path_prefix.extend(files.path()?);
            self.summary.push_str(&files.summary());
            if let Some(id) = &step.id {
                steps_ctx.insert(id.clone(), json!({"outputs": outputs, "outcome": outcome, "conclusion": outcome}));
            }
            steps.push(StepRun {
                step: step.label(),
                kind: kind.into(),
                outcome: outcome.into(),
                seconds: t.elapsed().as_secs_f64(),
                note,
            });
        }
        let mut ctx = self.context(&matrix, needs, &env);
        ctx["steps"] = Value::Object(steps_ctx);
        let mut outputs = Map::new();
        for (k, v) in &job.outputs {
            outputs.insert(k.clone(), Value::String(expr::to_text(&expr::interpolate(v, &ctx, &expr::NoHost)?)));
        }
        let run = JobRun {
            job: job.id.clone(),
            matrix: (!matrix.is_empty()).then_some(Value::Object(matrix)),
            result: if failed { "failure" } else { "success" }.into(),
            seconds: started.elapsed().as_secs_f64(),
            steps,
        };
        Ok((run, Some(Value::Object(outputs))))
    }

    /// A `run:` exactly as written: only a thin line is executed.
    fn run_script(
        &self,
        script: &str,
        env: &[(String, String)],
        path_prefix: &[String],
        files: &StepFiles,
        timeout: Duration,
    ) -> Result<Done> {
        if let Err(why) = thin_run(script) {
            bail!(
                "the rehearsal runs only one `cargo xtask …` call or the tool script per `run:` ({why}): `{}`",
                script.trim()
            );
        }
        let file = files.dir.join("script.sh");
        std::fs::write(&file, script)?;
        let mut cmd =
            Cmd::new("bash").args(["--noprofile", "--norc", "-eo", "pipefail"]).arg(&file).current_dir(&self.checkout);
        for (k, v) in self.env.iter().chain(&self.opts.secrets).chain(env).chain(&files.vars()) {
            cmd = cmd.env(k, v);
        }
        if !path_prefix.is_empty() {
            let path = std::env::var("PATH").unwrap_or_default();
            let mut parts: Vec<String> = path_prefix.iter().rev().cloned().collect();
            parts.push(path);
            cmd = cmd.env("PATH", parts.join(":"));
        }
        eprintln!("    {}", script.trim());
        match cmd.run_to_stderr(timeout)? {
            Some(status) if status.success() => Ok(Done::Ran(String::new())),
            Some(status) => {
                bail!("`{}` exited {}", script.trim(), status.code().map_or("on a signal".into(), |c| c.to_string()))
            }
            None => {
                bail!("`{}` passed the job's timeout-minutes ({}s) and was stopped", script.trim(), timeout.as_secs())
            }
        }
    }

    /// An action's local equivalent, or a skip that says why.
    fn action(&self, action: &str, with: &[(String, String)]) -> Result<Done> {
        let get = |k: &str| with.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        match action {
            "actions/checkout" => {
                if get("persist-credentials") != Some("false") {
                    bail!("actions/checkout without `persist-credentials: false` leaves the token in .git/config");
                }
                Ok(Done::Ran(format!("the clone at {}", self.opts.event.git_ref())))
            }
            "actions/upload-artifact" => {
                let name = get("name").context("upload-artifact without `name`")?;
                let path = get("path").context("upload-artifact without `path`")?;
                self.upload(name, path, get("if-no-files-found").unwrap_or("warn"))
            }
            "actions/download-artifact" => self.download(get("name"), get("pattern"), get("path").unwrap_or("."), get("merge-multiple") == Some("true")),
            "docker/setup-qemu-action" => {
                if !Path::new("/proc/sys/fs/binfmt_misc/qemu-aarch64").exists() {
                    bail!("arm64 emulation is not registered (binfmt qemu-aarch64): run `bash scripts/setup-host.sh`");
                }
                Ok(Done::Ran("binfmt qemu-aarch64 is registered".into()))
            }
            "docker/setup-buildx-action" => {
                let v = Cmd::new("docker").args(["buildx", "version"]).probe().read()?;
                Ok(Done::Ran(v))
            }
            "sigstore/cosign-installer" => {
                let want = get("cosign-release").unwrap_or("").trim_start_matches('v').to_string();
                // Debian's build says `GitVersion: devel`: its package version is the release.
                let out = Cmd::new("cosign").arg("version").probe().output()?;
                let mut said = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
                if let Ok(v) = Cmd::new("dpkg-query").args(["-W", "-f", "${Version}", "cosign"]).probe().read() {
                    said.push_str(&v);
                }
                if want.is_empty() || !said.contains(&want) {
                    bail!("cosign here is not {want}, the release the workflow installs: run `bash scripts/setup-host.sh`");
                }
                Ok(Done::Ran(format!("cosign {want} is installed")))
            }
            "docker/login-action" => Ok(Done::Skipped("the local registry needs no login".into())),
            "crazy-max/ghaction-github-runtime" => Ok(Done::Skipped("no Actions cache service here (RALPH_CI_CACHE is overridden)".into())),
            "actions/cache" => Ok(Done::Skipped("no Actions cache service here: cargo builds in CARGO_TARGET_DIR".into())),
            "github/codeql-action/upload-sarif" => {
                let file = self.checkout.join(get("sarif_file").context("upload-sarif without `sarif_file`")?);
                let json: Value = serde_json::from_str(&std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?)
                    .with_context(|| format!("{} is not JSON", file.display()))?;
                if json["version"] != "2.1.0" {
                    bail!("{} is not SARIF 2.1.0", file.display());
                }
                Ok(Done::Skipped(format!("{} is SARIF 2.1.0 ({} runs); code scanning is GitHub's", file.display(), json["runs"].as_array().map_or(0, Vec::len))))
            }
            "peter-evans/create-pull-request" => {
                let changed = git(&self.checkout, &["status", "--porcelain"])?;
                if changed.is_empty() {
                    bail!("create-pull-request would find nothing to propose: the step before it changed no file");
                }
                // `XY PATH` (the output comes trimmed: the first line may lack X).
                let files: Vec<&str> =
                    changed.lines().filter_map(|l| l.trim_start().split_once(' ')).map(|(_, f)| f.trim()).collect();
                Ok(Done::Skipped(format!(
                    "would propose `{}` on {} with {} (pull requests are GitHub's)",
                    get("title").unwrap_or(""),
                    get("branch").unwrap_or(""),
                    files.join(", ")
                )))
            }
            "actions/attest-build-provenance" => {
                let (name, digest) = (get("subject-name").unwrap_or(""), get("subject-digest").unwrap_or(""));
                if name.is_empty() || !digest.starts_with("sha256:") || digest.len() != 71 {
                    bail!("the provenance subject is `{name}@{digest}`: the publish step's outputs `name` and `digest` are not set");
                }
                Ok(Done::Skipped(format!("{name}@{digest}: provenance needs GitHub's attestation service")))
            }
            other => bail!("the rehearsal has no local equivalent for the action {other}: map it in pipeline/rehearsal.rs or drop it"),
        }
    }

    fn upload(&self, name: &str, path: &str, if_none: &str) -> Result<Done> {
        let dest = self.artifacts.join(name);
        if dest.exists() {
            bail!("an artifact named {name} was already uploaded in this run (artifact names are unique)");
        }
        let source = self.checkout.join(path.trim());
        if !source.exists() {
            return match if_none {
                "error" => bail!("upload-artifact: nothing at {path}"),
                _ => Ok(Done::Ran(format!("nothing at {path} ({if_none})"))),
            };
        }
        std::fs::create_dir_all(&dest)?;
        if source.is_dir() {
            copy_tree(&source, &dest)?;
        } else {
            std::fs::copy(&source, dest.join(source.file_name().unwrap_or_default()))?;
        }
        Ok(Done::Ran(format!("{path} as artifact {name}")))
    }

    fn download(&self, name: Option<&str>, pattern: Option<&str>, path: &str, merge: bool) -> Result<Done> {
        let dest = self.checkout.join(path);
        let mut names: Vec<String> = std::fs::read_dir(&self.artifacts)?
            .filter_map(std::result::Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let chosen: Vec<String> = match (name, pattern) {
            (Some(n), _) => {
                if !names.iter().any(|a| a == n) {
                    bail!("download-artifact: no artifact named {n} (uploaded: {})", names.join(", "));
                }
                vec![n.to_string()]
            }
            (None, Some(p)) => names.into_iter().filter(|a| glob_match(p, a)).collect(),
            (None, None) => names,
        };
        for a in &chosen {
            let to = if name.is_some() || merge { dest.clone() } else { dest.join(a) };
            std::fs::create_dir_all(&to)?;
            copy_tree(&self.artifacts.join(a), &to)?;
        }
        Ok(Done::Ran(format!(
            "{} into {path}",
            if chosen.is_empty() { "no artifact".into() } else { chosen.join(", ") }
        )))
    }
}

fn step_kind(step: &Step) -> &'static str {
    match step.action {
        StepAction::Run(_) => "run",
        StepAction::Uses { .. } => "action",
    }
}

enum Done {
    Ran(String),
    Skipped(String),
}

/// The files GitHub gives each step.
struct StepFiles {
    dir: PathBuf,
}

impl StepFiles {
    fn new(temp: &Path, name: &str) -> Result<StepFiles> {
        let dir = temp.join("steps").join(name);
        std::fs::create_dir_all(&dir)?;
        for f in ["output", "env", "path", "summary"] {
            std::fs::write(dir.join(f), "")?;
        }
        Ok(StepFiles { dir })
    }

    fn vars(&self) -> Vec<(String, String)> {
        [
            ("GITHUB_OUTPUT", "output"),
            ("GITHUB_ENV", "env"),
            ("GITHUB_PATH", "path"),
            ("GITHUB_STEP_SUMMARY", "summary"),
        ]
        .iter()
        .map(|(k, f)| (k.to_string(), self.dir.join(f).display().to_string()))
        .collect()
    }

    fn read(&self, f: &str) -> Result<String> {
        Ok(std::fs::read_to_string(self.dir.join(f))?)
    }

    fn outputs(&self) -> Result<Map<String, Value>> {
        Ok(parse_outputs(&self.read("output")?)?.into_iter().map(|(k, v)| (k, Value::String(v))).collect())
    }

    fn env(&self) -> Result<Vec<(String, String)>> {
        parse_outputs(&self.read("env")?)
    }

    fn path(&self) -> Result<Vec<String>> {
        Ok(self.read("path")?.lines().filter(|l| !l.is_empty()).map(str::to_string).collect())
    }

    fn summary(&self) -> String {
        self.read("summary").unwrap_or_default()
    }
}

/// The entries of a job's `strategy.matrix` (a template that gives
/// `{include: […]}`, or a mapping of lists, values possibly templates).
fn matrix_entries(m: &serde_norway::Value, ctx: &Value) -> Result<Vec<Map<String, Value>>> {
    let value: Value = match m {
        serde_norway::Value::String(s) => expr::interpolate(s, ctx, &expr::NoHost)?,
        other => {
            let mut map = Map::new();
            for (k, v) in other.as_mapping().context("a matrix that is neither a template nor a mapping")? {
                let key = k.as_str().context("a matrix key that is not text")?.to_string();
                let v = match v {
                    serde_norway::Value::String(s) => expr::interpolate(s, ctx, &expr::NoHost)?,
                    other => serde_json::to_value(other)?,
                };
                map.insert(key, v);
            }
            Value::Object(map)
        }
    };
    let Value::Object(map) = value else { bail!("the matrix is not an object: {value}") };
    let mut entries: Vec<Map<String, Value>> = vec![Map::new()];
    for (k, v) in &map {
        if k == "include" || k == "exclude" {
            continue;
        }
        let Value::Array(values) = v else { bail!("matrix.{k} is not a list") };
        entries = entries
            .into_iter()
            .flat_map(|e| {
                values.iter().map(move |v| {
                    let mut e = e.clone();
                    e.insert(k.clone(), v.clone());
                    e
                })
            })
            .collect();
    }
    if let Some(Value::Array(include)) = map.get("include") {
        if entries.len() == 1 && entries[0].is_empty() {
            entries.clear();
        }
        for i in include {
            entries.push(i.as_object().context("a matrix include entry is not an object")?.clone());
        }
    }
    Ok(entries)
}

/// minimatch as download-artifact uses it, for names: `*`, `?` and `{a,b}`.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    if let (Some(open), Some(close)) = (pattern.find('{'), pattern.find('}')) {
        if open < close {
            return pattern[open + 1..close]
                .split(',')
                .any(|alt| glob_match(&format!("{}{alt}{}", &pattern[..open], &pattern[close + 1..]), name));
        }
    }
    fn go(p: &[char], n: &[char]) -> bool {
        match (p.first(), n.first()) {
            (None, None) => true,
            (Some('*'), _) => go(&p[1..], n) || (!n.is_empty() && go(p, &n[1..])),
            (Some('?'), Some(_)) => go(&p[1..], &n[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &n[1..]),
            _ => false,
        }
    }
    go(&pattern.chars().collect::<Vec<_>>(), &name.chars().collect::<Vec<_>>())
}

fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    for entry in walkdir::WalkDir::new(from) {
        let entry = entry?;
        let target = to.join(entry.path().strip_prefix(from)?);
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&target)?;
        } else {
            std::fs::copy(entry.path(), &target).with_context(|| format!("copying {}", entry.path().display()))?;
        }
    }
    Ok(())
}

/// The status functions and `hashFiles` for an expression.
struct Status {
    failed: bool,
    files: PathBuf,
}

impl Host for Status {
    fn failed(&self) -> bool {
        self.failed
    }

    fn hash_files(&self, patterns: &[String]) -> String {
        let mut hasher = Sha256::new();
        let mut any = false;
        for p in patterns {
            if let Ok(bytes) = std::fs::read(self.files.join(p)) {
                hasher.update(&bytes);
                any = true;
            }
        }
        if !any {
            return String::new();
        }
        hasher.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seeded_clone_has_the_records_and_linked_blobs_but_no_layout_index() {
        let dir = tempfile::tempdir().unwrap();
        let (from, to) = (dir.path().join("target/oci"), dir.path().join("clone/target/oci"));
        for (file, text) in [
            (".clamp/aa@7", "sha256:bb 3 sha256:cc"),
            (".clamp/aa.latest", "9"),
            (".clamp/.tmpXYZ", "being written"),
            ("img/index.json", "{}"),
            ("img/oci-layout", "{}"),
            ("img/blobs/sha256/bb", "new"),
            ("img/blobs/sha256/.tmp1", "being written"),
            ("img.memo", "{}"),
        ] {
            let path = from.join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, text).unwrap();
        }
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        assert_eq!(seed_layouts(&from, &to).unwrap(), 1);
        let mut seeded: Vec<String> = walkdir::WalkDir::new(&to)
            .into_iter()
            .map(|e| e.unwrap())
            .filter(|e| e.file_type().is_file())
            .map(|e| e.path().strip_prefix(&to).unwrap().display().to_string())
            .collect();
        seeded.sort();
        assert_eq!(seeded, [".clamp/aa.latest", ".clamp/aa@7", "img/blobs/sha256/bb"]);
        use std::os::unix::fs::MetadataExt;
        let ino = |p: &Path| std::fs::metadata(p).unwrap().ino();
        assert_eq!(ino(&to.join("img/blobs/sha256/bb")), ino(&from.join("img/blobs/sha256/bb")), "linked");
        assert_ne!(ino(&to.join(".clamp/aa@7")), ino(&from.join(".clamp/aa@7")), "records are copied");
        // A clone with layouts of its own is left alone.
        std::fs::write(from.join("img/blobs/sha256/dd"), "later").unwrap();
        assert_eq!(seed_layouts(&from, &to).unwrap(), 0);
        assert!(!to.join("img/blobs/sha256/dd").exists());
    }

    #[test]
    fn a_seeded_cargo_target_holds_the_dependencies_with_their_times() {
        let dir = tempfile::tempdir().unwrap();
        let (from, to) = (dir.path().join("target"), dir.path().join("rehearsal/cargo"));
        let old = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        for (file, text) in [
            (".fingerprint/serde-1/lib-serde", "fp"),
            ("build/serde-2/out/private.rs", "out"),
            ("deps/libserde-1.rlib", "rlib"),
            ("deps/serde-1.d", "dep-info"),
            ("deps/standins-3", "a test binary"),
            ("deps/rmetaXYZ/lib.rmeta", "rustc's scratch"),
            ("xtask", "the xtask"),
        ] {
            let path = from.join("debug").join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, text).unwrap();
            std::fs::File::open(&path).unwrap().set_modified(old).unwrap();
        }
        assert_eq!(seed_cargo_target(&from, &to).unwrap(), 2 + 3 + 4);
        let mut copied: Vec<String> = walkdir::WalkDir::new(to.join("debug"))
            .into_iter()
            .map(|e| e.unwrap())
            .filter(|e| e.file_type().is_file())
            .map(|e| e.path().strip_prefix(to.join("debug")).unwrap().display().to_string())
            .collect();
        copied.sort();
        assert_eq!(copied, [".fingerprint/serde-1/lib-serde", "build/serde-2/out/private.rs", "deps/libserde-1.rlib"]);
        let time = std::fs::metadata(to.join("debug/deps/libserde-1.rlib")).unwrap().modified().unwrap();
        assert_eq!(time, old, "cargo compares the times: they are kept");
        assert!(!to.join("debug.seeding").exists());
        // Seeded once: a target with a build of its own is left alone.
        std::fs::write(from.join("debug/deps/libnew-4.rlib"), "new").unwrap();
        assert_eq!(seed_cargo_target(&from, &to).unwrap(), 0);
        assert!(!to.join("debug/deps/libnew-4.rlib").exists());
        // Nothing to seed from: nothing done.
        assert_eq!(seed_cargo_target(&dir.path().join("none"), &dir.path().join("other")).unwrap(), 0);
        assert!(!dir.path().join("other").exists());
    }

    #[test]
    fn a_jobs_clone_is_clean_but_for_the_image_layouts() {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path();
        git(repo, &["init", "--quiet", "-b", "main"]).unwrap();
        std::fs::write(repo.join(".gitignore"), "target/\n").unwrap();
        git(repo, &["add", ".gitignore"]).unwrap();
        git(repo, &["-c", "user.name=t", "-c", "user.email=t@localhost", "commit", "--quiet", "-m", "one"]).unwrap();
        for f in
            ["target/oci/.clamp/abc@1", "target/oci/img@linux-amd64/index.json", "target/debug/x", "reports/check.json"]
        {
            let path = repo.join(f);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, "x").unwrap();
        }
        clean(repo).unwrap();
        let mut left: Vec<String> = walkdir::WalkDir::new(repo)
            .into_iter()
            .map(|e| e.unwrap())
            .filter(|e| e.file_type().is_file() && !e.path().starts_with(repo.join(".git")))
            .map(|e| e.path().strip_prefix(repo).unwrap().display().to_string())
            .collect();
        left.sort();
        assert_eq!(left, [".gitignore", "target/oci/.clamp/abc@1", "target/oci/img@linux-amd64/index.json"]);
    }

    #[test]
    fn a_snapshot_of_a_changed_tree_keeps_heads_commit_time() {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path();
        let who = ["-c", "user.name=t", "-c", "user.email=t@localhost"];
        git(repo, &["init", "--quiet", "-b", "main"]).unwrap();
        std::fs::write(repo.join("f"), "one\n").unwrap();
        git(repo, &["add", "f"]).unwrap();
        let old = "@1700000000 +0000";
        Cmd::new("git")
            .args([&who[..], &["commit", "--quiet", "-m", "one"]].concat())
            .current_dir(repo)
            .env("GIT_COMMITTER_DATE", old)
            .env("GIT_AUTHOR_DATE", old)
            .read()
            .unwrap();
        // Clean: HEAD itself.
        let head = git(repo, &["rev-parse", "HEAD"]).unwrap();
        assert_eq!(snapshot(repo).unwrap(), head);
        // Changed: a new commit, at HEAD's time (not now).
        std::fs::write(repo.join("f"), "two\n").unwrap();
        let snap = snapshot(repo).unwrap();
        assert_ne!(snap, head);
        assert_eq!(git(repo, &["log", "-1", "--format=%ct", &snap]).unwrap(), "1700000000");
        assert_eq!(git(repo, &["show", &format!("{snap}:f")]).unwrap(), "two");
    }

    #[test]
    fn artifact_patterns_as_download_artifact_reads_them() {
        assert!(glob_match("reports-worker-{amd64,arm64}", "reports-worker-arm64"));
        assert!(
            !glob_match("reports-worker-{amd64,arm64}", "reports-worker-amazonlinux-arm64"),
            "a prefix of another image"
        );
        assert!(glob_match("publish-*", "publish-worker"));
        assert!(!glob_match("publish-*", "reports-worker-amd64"));
        assert!(glob_match("push-w-?md64", "push-w-amd64"));
    }

    #[test]
    fn matrices_from_the_plan_and_from_lists() {
        let ctx = json!({"needs": {"plan": {"outputs": {
            "matrix": "{\"include\":[{\"image\":\"w\",\"arch\":\"amd64\"},{\"image\":\"w\",\"arch\":\"arm64\"}]}",
            "products": "[\"w\",\"al\"]"}}}});
        let m: serde_norway::Value = serde_norway::from_str("${{ fromJSON(needs.plan.outputs.matrix) }}").unwrap();
        let e = matrix_entries(&m, &ctx).unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(e[1]["arch"], "arm64");
        let m: serde_norway::Value =
            serde_norway::from_str("image: ${{ fromJSON(needs.plan.outputs.products) }}").unwrap();
        let e = matrix_entries(&m, &ctx).unwrap();
        assert_eq!(e.iter().map(|e| e["image"].as_str().unwrap()).collect::<Vec<_>>(), ["w", "al"]);
        let m: serde_norway::Value = serde_norway::from_str("a: [1, 2]\nb: [x, y]").unwrap();
        assert_eq!(matrix_entries(&m, &ctx).unwrap().len(), 4, "a product of lists");
    }
}
