//! `cargo xtask image check`: everything that tells the truth about an
//! image, in one run: build (both architectures), smoke, read-only, size
//! against the budget, and the runtime figures; then one summary table
//! (check × platform, with the figure) and a non-zero exit on any failure.
//! This is the command CI matrix jobs run. (Lint and scan join it when
//! their commands land.)

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Result};
use serde::Serialize;

use crate::build::{self, BuildArgs, CacheMode};
use crate::built::{Selection, Target};
use crate::catalog::{Catalog, Image, Platform};
use crate::container::Session;
use crate::runtime;
use crate::size;
use crate::smoke::{self, CheckKind, SmokeArgs};

#[derive(Debug, Clone, clap::Args)]
pub struct CheckArgs {
    /// Images from the catalog (default: every image this machine can build).
    pub images: Vec<String>,
    /// Platforms, comma-separated or repeated (default: the catalog's).
    #[arg(long, value_delimiter = ',')]
    pub platform: Vec<String>,
    /// Check the images already built for this checkout instead of building them.
    #[arg(long)]
    pub no_build: bool,
    /// Where the build cache lives (see `image build --cache`).
    #[arg(long, value_enum, default_value_t = CacheMode::Local)]
    pub cache: CacheMode,
    /// Seconds one smoke check may take.
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
    /// Runs for the startup figure (median).
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Don't stream buildx progress.
    #[arg(long, short)]
    pub quiet: bool,
    /// Write everything as JSON to FILE.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Write the smoke checks as JUnit XML to FILE.
    #[arg(long)]
    pub junit: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    pub ok: bool,
    pub platforms: Vec<Platform>,
    pub rows: Vec<Row>,
    pub images: Vec<ImageChecks>,
}

/// One line of the summary: a check of an image, per platform.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub image: String,
    pub check: String,
    /// "pass", "fail" or "-" (not run), per platform.
    pub results: BTreeMap<Platform, Outcome>,
    pub figure: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Pass,
    Fail,
    Skipped,
}

impl Outcome {
    fn of(passed: bool) -> Outcome {
        if passed {
            Outcome::Pass
        } else {
            Outcome::Fail
        }
    }

    fn cell(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "FAIL",
            Outcome::Skipped => "-",
        }
    }
}

/// Everything measured for one image, for the JSON report.
#[derive(Debug, Clone, Serialize)]
pub struct ImageChecks {
    pub image: String,
    pub build: Option<build::ImageReport>,
    pub smoke: Option<smoke::ImageResult>,
    pub size: Option<size::ImageSize>,
    pub runtime: Vec<runtime::RuntimeFigures>,
    /// Why a check could not run (a failed build, say).
    pub errors: Vec<String>,
}

pub fn run(catalog: &Catalog, args: &CheckArgs) -> Result<CheckReport> {
    let selection =
        Selection { images: args.images.clone(), platform: args.platform.clone(), tag: None, registry: None };
    let targets = selection.resolve(catalog)?;
    let mut platforms: Vec<Platform> = targets.iter().flat_map(|t| t.platforms.clone()).collect();
    platforms.sort();
    platforms.dedup();
    let mut rows = Vec::new();
    let mut images = Vec::new();
    let mut junit_images = Vec::new();
    for target in &targets {
        let mut checks = ImageChecks {
            image: target.image.name.clone(),
            build: None,
            smoke: None,
            size: None,
            runtime: Vec::new(),
            errors: Vec::new(),
        };
        check_image(catalog, args, target, &mut checks, &mut rows);
        if let Some(s) = &checks.smoke {
            junit_images.push(s.clone());
        }
        images.push(checks);
    }
    let ok = rows.iter().all(|r| r.results.values().all(|o| *o != Outcome::Fail));
    let report = CheckReport { ok, platforms, rows, images };
    if let Some(path) = &args.report {
        build::write_report(path, &report)?;
    }
    if let Some(path) = &args.junit {
        let passed = junit_images.iter().flat_map(|i| &i.platforms).map(|p| p.passed).sum();
        let failed = junit_images.iter().flat_map(|i| &i.platforms).map(|p| p.failed).sum();
        let seconds = junit_images.iter().flat_map(|i| &i.platforms).map(|p| p.seconds).sum();
        let smoke_report = smoke::SmokeReport { passed, failed, seconds, images: junit_images };
        std::fs::write(path, smoke::report::junit(&smoke_report))?;
    }
    Ok(report)
}

/// Build, smoke (with read-only), size and runtime for one image, each
/// step adding its rows; a step that can't run says why and fails its row.
fn check_image(catalog: &Catalog, args: &CheckArgs, target: &Target, out: &mut ImageChecks, rows: &mut Vec<Row>) {
    let image = target.image;
    let row = |check: &str, results: BTreeMap<Platform, Outcome>, figure: String| Row {
        image: image.name.clone(),
        check: check.into(),
        results,
        figure,
    };
    let all = |o: Outcome| target.platforms.iter().map(|p| (p.clone(), o)).collect::<BTreeMap<_, _>>();

    if !args.no_build {
        eprintln!("==> check {}: build", image.name);
        match build::run(catalog, &build_args(catalog, image, args)) {
            Ok(report) => {
                let built = report.images.into_iter().find(|i| i.image == image.name);
                if let Some(b) = &built {
                    let cached: usize = b.platforms.iter().map(|p| p.steps_cached).sum();
                    let total: usize = b.platforms.iter().map(|p| p.steps_total).sum();
                    rows.push(row(
                        "build",
                        all(Outcome::Pass),
                        format!("{:.1}s, {cached}/{total} steps cached", b.wall_seconds),
                    ));
                }
                out.build = built;
            }
            Err(e) => {
                rows.push(row("build", all(Outcome::Fail), one_line(&e)));
                out.errors.push(format!("build: {e:#}"));
                return;
            }
        }
    }

    if image.smoke.is_some() || image.readonly.is_some() {
        eprintln!("==> check {}: smoke", image.name);
        let smoke_args = SmokeArgs {
            selection: Selection {
                images: vec![image.name.clone()],
                platform: platform_args(target),
                tag: None,
                registry: None,
            },
            timeout: args.timeout,
            jobs: 4,
            no_readonly: false,
            report: None,
            junit: None,
        };
        match smoke::run(catalog, &smoke_args) {
            Ok(report) => {
                let result = report.images.into_iter().next();
                if let Some(r) = &result {
                    rows.extend(smoke_rows(image, r));
                }
                out.smoke = result;
            }
            Err(e) => {
                rows.push(row("smoke", all(Outcome::Fail), one_line(&e)));
                out.errors.push(format!("smoke: {e:#}"));
            }
        }
    }

    eprintln!("==> check {}: size", image.name);
    match size::measure(target, None, 10) {
        Ok(s) => {
            let results = s.platforms.iter().map(|p| (p.platform.clone(), Outcome::of(!p.budget.failed()))).collect();
            let figure = s
                .platforms
                .iter()
                .map(|p| format!("{} {}", p.platform.arch, p.budget.summary))
                .collect::<Vec<_>>()
                .join("; ");
            rows.push(row("size", results, figure));
            out.size = Some(s);
        }
        Err(e) => {
            rows.push(row("size", all(Outcome::Fail), one_line(&e)));
            out.errors.push(format!("size: {e:#}"));
        }
    }

    eprintln!("==> check {}: runtime figures", image.name);
    let session = Session::new("check");
    let mut results = BTreeMap::new();
    let mut figures = Vec::new();
    for platform in &target.platforms {
        match runtime::measure(&session, target, platform, args.runs.max(1)) {
            Ok(f) => {
                results.insert(platform.clone(), Outcome::Pass);
                figures.push(format!(
                    "{} {:.0} ms, {}",
                    platform.arch,
                    f.startup_ms_median,
                    f.peak_memory_bytes.map_or("n/a".into(), runtime::format_bytes)
                ));
                out.runtime.push(f);
            }
            Err(e) => {
                results.insert(platform.clone(), Outcome::Fail);
                figures.push(format!("{} {}", platform.arch, one_line(&e)));
                out.errors.push(format!("runtime {platform}: {e:#}"));
            }
        }
    }
    rows.push(row("startup, peak memory", results, figures.join("; ")));
}

fn build_args(catalog: &Catalog, image: &Image, args: &CheckArgs) -> BuildArgs {
    // The read-only check's database, when it is a catalog image, is built too.
    let mut images = vec![image.name.clone()];
    if let Some(db) = image.readonly.as_ref().and_then(|r| r.database.clone()) {
        if catalog.images.iter().any(|i| i.name == db) {
            images.push(db);
        }
    }
    BuildArgs { cache: args.cache, quiet: args.quiet, ..BuildArgs::local(images, args.platform.clone()) }
}

fn platform_args(target: &Target) -> Vec<String> {
    target.platforms.iter().map(|p| p.to_string()).collect()
}

/// The smoke rows: the declared checks together, and the read-only check.
fn smoke_rows(image: &Image, result: &smoke::ImageResult) -> Vec<Row> {
    let mut checks =
        Row { image: image.name.clone(), check: "smoke".into(), results: BTreeMap::new(), figure: String::new() };
    let mut readonly =
        Row { image: image.name.clone(), check: "read-only".into(), results: BTreeMap::new(), figure: String::new() };
    let mut check_figures = Vec::new();
    let mut readonly_figures = Vec::new();
    for p in &result.platforms {
        let (ro, declared): (Vec<_>, Vec<_>) = p.checks.iter().partition(|c| c.kind == CheckKind::ReadOnly);
        if !declared.is_empty() {
            let passed = declared.iter().filter(|c| c.passed).count();
            checks.results.insert(p.platform.clone(), Outcome::of(passed == declared.len()));
            check_figures.push(format!("{} {passed}/{}", p.platform.arch, declared.len()));
        }
        for c in ro {
            readonly.results.insert(p.platform.clone(), Outcome::of(c.passed));
            readonly_figures.push(format!(
                "{} {}",
                p.platform.arch,
                if c.passed { c.actual.clone() } else { c.errors.join("; ") }
            ));
        }
    }
    checks.figure = format!("checks passed: {}", check_figures.join(", "));
    readonly.figure = readonly_figures.join("; ");
    [checks, readonly].into_iter().filter(|r| !r.results.is_empty()).collect()
}

fn one_line(e: &anyhow::Error) -> String {
    format!("{e:#}").lines().next().unwrap_or("").chars().take(160).collect()
}

pub fn print_table(report: &CheckReport) {
    let mut header = vec!["IMAGE".to_string(), "CHECK".to_string()];
    header.extend(report.platforms.iter().map(|p| p.arch.to_string()));
    header.push("FIGURE".into());
    let mut rows = vec![header];
    for r in &report.rows {
        let mut line = vec![r.image.clone(), r.check.clone()];
        line.extend(
            report.platforms.iter().map(|p| r.results.get(p).copied().unwrap_or(Outcome::Skipped).cell().to_string()),
        );
        line.push(r.figure.clone());
        rows.push(line);
    }
    build::print_rows(&rows);
}

pub fn ensure_passed(report: &CheckReport) -> Result<()> {
    let failed: Vec<String> = report
        .rows
        .iter()
        .filter(|r| r.results.values().any(|o| *o == Outcome::Fail))
        .map(|r| format!("{} {}", r.image, r.check))
        .collect();
    if !failed.is_empty() {
        bail!("image check failed: {} (details above)", failed.join(", "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smoke::{CheckResult, ImageResult, PlatformResult};

    fn result(kind: CheckKind, passed: bool) -> CheckResult {
        CheckResult {
            kind,
            name: "x".into(),
            passed,
            expected: String::new(),
            actual: "healthy after 1.0s".into(),
            errors: if passed { vec![] } else { vec!["it exited".into()] },
            seconds: 0.1,
            stdout: String::new(),
            stderr: String::new(),
        }
    }

    #[test]
    fn smoke_rows_split_declared_checks_from_the_read_only_check() {
        let catalog = Catalog::parse(
            "[[image]]\nname='w'\ndockerfile='D'\n",
            std::path::Path::new("c.toml"),
            std::path::Path::new("."),
        )
        .unwrap();
        let amd = Platform::parse("linux/amd64").unwrap();
        let arm = Platform::parse("linux/arm64").unwrap();
        let platform = |p: &Platform, ok: bool| PlatformResult {
            platform: p.clone(),
            passed: 0,
            failed: 0,
            seconds: 1.0,
            checks: vec![
                result(CheckKind::Command, true),
                result(CheckKind::Command, ok),
                result(CheckKind::ReadOnly, ok),
            ],
        };
        let r = ImageResult {
            image: "w".into(),
            reference: "w:1".into(),
            platforms: vec![platform(&amd, true), platform(&arm, false)],
        };
        let rows = smoke_rows(&catalog.images[0], &r);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].results[&amd], Outcome::Pass);
        assert_eq!(rows[0].results[&arm], Outcome::Fail);
        assert_eq!(rows[0].figure, "checks passed: amd64 2/2, arm64 1/2");
        assert_eq!(rows[1].check, "read-only");
        assert_eq!(rows[1].figure, "amd64 healthy after 1.0s; arm64 it exited");
        let report = CheckReport { ok: false, platforms: vec![amd, arm], rows, images: vec![] };
        let err = ensure_passed(&report).unwrap_err().to_string();
        assert_eq!(err, "image check failed: w smoke, w read-only (details above)");
    }
}
