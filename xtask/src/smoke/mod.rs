//! `cargo xtask image smoke`: runs each image's declared checks (a
//! container-structure-test file, `smoke` in images.toml) on every requested
//! platform, arm64 under emulation, and the read-only check for images that
//! declare one. Reports pass/fail per check with expected vs actual, as a
//! table, JSON and JUnit XML.

mod checks;
pub mod report;
pub mod spec;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::built::{self, Selection, Target};
use crate::catalog::{Catalog, Platform};
use crate::container::{self, Session};
use crate::docker;
use crate::readonly;
use spec::Spec;

#[derive(Debug, Clone, clap::Args)]
pub struct SmokeArgs {
    #[command(flatten)]
    pub selection: Selection,
    /// Seconds one check may take; a check that hangs fails and its container is removed.
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
    /// Checks run at once (per platform).
    #[arg(long, default_value_t = 4)]
    pub jobs: usize,
    /// Leave out the read-only check.
    #[arg(long)]
    pub no_readonly: bool,
    /// Write the results as JSON to FILE.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Write the results as JUnit XML to FILE.
    #[arg(long)]
    pub junit: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SmokeReport {
    pub passed: usize,
    pub failed: usize,
    pub seconds: f64,
    pub images: Vec<ImageResult>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ImageResult {
    pub image: String,
    pub reference: String,
    pub platforms: Vec<PlatformResult>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlatformResult {
    pub platform: Platform,
    pub passed: usize,
    pub failed: usize,
    pub seconds: f64,
    pub checks: Vec<CheckResult>,
}

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
}

impl SmokeReport {
    pub fn ok(&self) -> bool {
        self.failed == 0
    }
}

pub fn run(catalog: &Catalog, args: &SmokeArgs) -> Result<SmokeReport> {
    let targets = smoke_targets(catalog, &args.selection)?;
    let specs: BTreeMap<&str, Option<Spec>> = targets
        .iter()
        .map(|t| Ok((t.image.name.as_str(), t.image.smoke.as_deref().map(Spec::load).transpose()?)))
        .collect::<Result<_>>()?;
    docker::daemon_version()?;
    let registry = args.selection.registry.as_deref();
    let mut pulled = Vec::new();
    for target in &targets {
        built::ensure_built(target, registry)?;
        if registry.is_some() {
            pulled.push(built::pull(&target.reference, &target.platforms)?);
        }
    }

    let started = Instant::now();
    let session = Session::new("smoke");
    let timeout = Duration::from_secs(args.timeout.max(1));
    let mut images = Vec::new();
    for target in &targets {
        let spec = specs[target.image.name.as_str()].as_ref();
        let mut platforms = Vec::new();
        for platform in &target.platforms {
            let platform_started = Instant::now();
            eprintln!("==> smoke {} ({}) on {platform}", target.image.name, target.reference);
            let mut results = match spec {
                Some(spec) => run_spec(&session, spec, &target.reference, platform, timeout, args.jobs)?,
                None => Vec::new(),
            };
            if let (Some(check), false) = (&target.image.readonly, args.no_readonly) {
                let result = readonly::check(&session, catalog, target, platform, check, registry)?;
                print_result(&result);
                results.push(result);
            }
            let failed = results.iter().filter(|r| !r.passed).count();
            platforms.push(PlatformResult {
                platform: platform.clone(),
                passed: results.len() - failed,
                failed,
                seconds: platform_started.elapsed().as_secs_f64(),
                checks: results,
            });
        }
        images.push(ImageResult { image: target.image.name.clone(), reference: target.reference.clone(), platforms });
    }
    drop(session);
    drop(pulled);
    let failed = images.iter().flat_map(|i| &i.platforms).map(|p| p.failed).sum();
    let passed = images.iter().flat_map(|i| &i.platforms).map(|p| p.passed).sum();
    let report = SmokeReport { passed, failed, seconds: started.elapsed().as_secs_f64(), images };
    if let Some(path) = &args.report {
        crate::build::write_report(path, &report)?;
    }
    if let Some(path) = &args.junit {
        std::fs::write(path, report::junit(&report))
            .with_context(|| format!("writing JUnit XML to {}", path.display()))?;
    }
    Ok(report)
}

/// The images to smoke: named ones must declare checks; unnamed, those
/// that declare some.
fn smoke_targets<'a>(catalog: &'a Catalog, selection: &Selection) -> Result<Vec<Target<'a>>> {
    let targets = selection.resolve(catalog)?;
    let declares = |t: &Target| t.image.smoke.is_some() || t.image.readonly.is_some();
    if let Some(t) = targets.iter().find(|t| !declares(t) && !selection.images.is_empty()) {
        bail!(
            "image `{}` declares no smoke checks: add `smoke = \"FILE.yaml\"` (container-structure-test schema) to its entry in {}",
            t.image.name,
            catalog.path.display()
        );
    }
    let targets: Vec<Target> = targets.into_iter().filter(declares).collect();
    if targets.is_empty() {
        bail!("no image in {} declares smoke checks: add `smoke = \"FILE.yaml\"` to an image", catalog.path.display());
    }
    Ok(targets)
}

/// Every check of `spec` on one platform, `jobs` at a time, in the
/// spec's order in the results.
fn run_spec(
    session: &Session,
    spec: &Spec,
    reference: &str,
    platform: &Platform,
    timeout: Duration,
    jobs: usize,
) -> Result<Vec<CheckResult>> {
    let probe = session.create(
        &container::Spec { image: reference.to_string(), platform: Some(platform.clone()), ..Default::default() },
        "probe",
    )?;
    let config = checks::ImageConfig::inspect(&probe)?;
    let ctx = checks::Context { session, spec, reference, platform, probe: &probe, config: &config, timeout };
    let jobs_list = checks::jobs(spec);
    let results: Mutex<Vec<Option<CheckResult>>> = Mutex::new(vec![None; jobs_list.len()]);
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..jobs.clamp(1, 16) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(job) = jobs_list.get(i) else { break };
                let result = ctx.run(job);
                print_result(&result);
                results.lock().unwrap()[i] = Some(result);
            });
        }
    });
    session.remove(&probe);
    Ok(results.into_inner().unwrap().into_iter().flatten().collect())
}

static PRINT: Mutex<()> = Mutex::new(());

fn print_result(r: &CheckResult) {
    let _guard = PRINT.lock().unwrap();
    eprintln!("{}  {} ({:.1}s)", if r.passed { "PASS" } else { "FAIL" }, r.title(), r.seconds);
    if !r.passed {
        eprintln!("      expected: {}", r.expected);
        eprintln!("      actual:   {}", r.actual);
        for e in &r.errors {
            eprintln!("      - {e}");
        }
    }
}

pub fn print_table(report: &SmokeReport) {
    let mut rows = vec![["IMAGE", "PLATFORM", "PASSED", "FAILED", "TIME"].map(String::from).to_vec()];
    for image in &report.images {
        for p in &image.platforms {
            rows.push(vec![
                image.image.clone(),
                p.platform.to_string(),
                p.passed.to_string(),
                p.failed.to_string(),
                format!("{:.1}s", p.seconds),
            ]);
        }
    }
    crate::build::print_rows(&rows);
}

/// The failure line for a report with failed checks.
pub fn ensure_passed(report: &SmokeReport) -> Result<()> {
    if report.ok() {
        return Ok(());
    }
    let failing: Vec<String> = report
        .images
        .iter()
        .flat_map(|i| {
            i.platforms.iter().flat_map(move |p| {
                p.checks.iter().filter(|c| !c.passed).map(move |c| format!("{} {} `{}`", i.image, p.platform, c.name))
            })
        })
        .take(3)
        .collect();
    bail!(
        "{} of {} smoke checks failed ({}{}): see the output above",
        report.failed,
        report.passed + report.failed,
        failing.join("; "),
        if report.failed > 3 { "; …" } else { "" }
    )
}
