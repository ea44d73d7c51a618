//! `cargo xtask image check`: everything that tells the truth about an
//! image, in one run: the image pipeline with every check, built here first
//! (both architectures): build, smoke, read-only, size against the budget,
//! and the runtime figures; then one summary table (check × platform, with
//! the figure) and a non-zero exit on any failure. This is the command CI
//! matrix jobs run. The scan is two rows: `scan` (secrets: pass or fail)
//! and `vulns` (pass, fail, or `skipped` when no vulnerability DB was at
//! hand: a scan that did not look is never counted as a pass), in the
//! table, the JSON report and the JUnit cases alike.

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::Result;
use serde::Serialize;

use super::repro::short_digest;
use super::Command;
use crate::checks::lint::Lint;
use crate::checks::runtime::{self, RuntimeFigures, RuntimeOptions};
use crate::checks::scan::{self as scan_check, ImageScan, ScanOptions, Status};
use crate::checks::size::{self, ImageSize};
use crate::checks::smoke::{self, ImageResult, SmokeOptions};
use crate::checks::{self as checks, CheckKind, Finding, Severity, Source};
use crate::model::catalog::{Catalog, Platform};
use crate::model::repro::ImageRepro;
use crate::output::table::Table;
use crate::output::{junit, sarif, AllOut, Report, Sinks};
use crate::pipeline::build::{self, BuildOptions, CacheMode, ImageReport, Rebuild};
use crate::pipeline::{self, Checks, ImageRun, Images, Pipeline, Selection};

#[derive(Debug, Clone, clap::Args)]
pub struct Check {
    #[command(flatten)]
    pub images: Images,
    /// Check the images already built for this checkout instead of building them.
    #[arg(long)]
    pub no_build: bool,
    #[command(flatten)]
    pub build: Rebuild,
    #[command(flatten)]
    pub smoke: SmokeOptions,
    #[command(flatten)]
    pub runtime: RuntimeOptions,
    #[command(flatten)]
    pub scan: ScanOptions,
    /// Also build each image twice without cache and compare the digests
    /// per platform (`image repro`): the `repro` row. Off by default (two cold
    /// builds); `ci check` turns it on for the products.
    #[arg(long)]
    pub repro: bool,
    #[command(flatten)]
    pub out: AllOut,
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    pub ok: bool,
    pub seconds: f64,
    pub platforms: Vec<Platform>,
    pub rows: Vec<Row>,
    pub images: Vec<ImageChecks>,
}

/// One line of the summary: a check of an image, per platform.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub image: String,
    pub check: String,
    /// "pass", "fail" or "skipped" (it did not look: no pass, no
    /// failure), per platform; a platform the check did not run on is absent.
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

    fn of_status(status: Status) -> Outcome {
        match status {
            Status::Passed => Outcome::Pass,
            Status::Failed => Outcome::Fail,
            Status::Skipped => Outcome::Skipped,
        }
    }

    fn cell(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "FAIL",
            Outcome::Skipped => "skipped",
        }
    }
}

/// Everything measured for one image, for the JSON report.
#[derive(Debug, Clone, Serialize)]
pub struct ImageChecks {
    pub image: String,
    pub lint: Option<Lint>,
    pub build: Option<ImageReport>,
    pub smoke: Option<ImageResult>,
    pub size: Option<ImageSize>,
    pub runtime: Vec<RuntimeFigures>,
    pub scan: Option<ImageScan>,
    pub repro: Option<ImageRepro>,
    /// Why a check could not run (a failed build, say).
    pub errors: Vec<String>,
}

impl Command for Check {
    type Report = CheckReport;

    fn run(&self, catalog: &Catalog) -> Result<CheckReport> {
        let started = Instant::now();
        let selection = Selection::new(self.images.clone());
        let targets = selection.targets(catalog)?;
        let requested = Platform::parse_list(&self.images.platform)?;
        let source =
            if self.no_build { pipeline::Source::Existing } else { pipeline::Source::Build(self.build.options()) };
        let checks = Checks::all(self.smoke.clone(), self.runtime.clone(), self.scan.clone());
        let pipeline = Pipeline { catalog, checks, keep_going: true, purpose: "check" };
        let mut runs = pipeline.run(targets, &requested, &source)?;
        if self.repro {
            self.repro(catalog, &mut runs, &requested)?;
        }
        Ok(CheckReport::new(runs, started))
    }

    fn sinks(&self) -> Sinks<'_> {
        self.out.sinks()
    }
}

impl Check {
    /// The `repro` row: each image that built, built twice more without
    /// cache (once, when its build cached nothing) and compared.
    fn repro(&self, catalog: &Catalog, runs: &mut [ImageRun], requested: &[Platform]) -> Result<()> {
        let built: Vec<&crate::model::catalog::Image> = runs
            .iter()
            .filter(|r| !matches!(r.build, Some(Err(_))) && r.resolved.is_ok())
            .filter_map(|r| catalog.get(&r.image).ok())
            .collect();
        if built.is_empty() {
            return Ok(());
        }
        let options = BuildOptions {
            cache: CacheMode::None,
            no_cache: true,
            quiet: self.build.quiet,
            builder: self.build.builder.clone(),
            branch: self.build.branch.clone(),
            release: self.build.release.clone(),
            ..BuildOptions::default()
        };
        let mut plan = build::plan(catalog, &built, requested, &options)?;
        plan.check_machine()?;
        for run in runs.iter_mut() {
            let Some(p) = plan.images.iter().find(|p| p.image.name == run.image) else { continue };
            eprintln!("==> repro {}", run.image);
            run.repro =
                Some(pipeline::repro::image(p, plan.epoch, None, self.build.quiet).map_err(|e| format!("{e:#}")));
        }
        Ok(())
    }
}

impl CheckReport {
    fn new(runs: Vec<ImageRun>, started: Instant) -> CheckReport {
        let mut platforms: Vec<Platform> = runs.iter().flat_map(|r| r.platforms.clone()).collect();
        platforms.sort();
        platforms.dedup();
        let mut rows = Vec::new();
        let images: Vec<ImageChecks> = runs.into_iter().map(|run| image_rows(run, &mut rows)).collect();
        let ok = rows.iter().all(|r| r.results.values().all(|o| *o != Outcome::Fail));
        CheckReport { ok, platforms, rows, images, seconds: started.elapsed().as_secs_f64() }
    }
}

/// The rows of one image (build, smoke, read-only, size, runtime), each
/// failed step saying why, and what was measured for the JSON report.
fn image_rows(run: ImageRun, rows: &mut Vec<Row>) -> ImageChecks {
    let row = |check: &str, results: BTreeMap<Platform, Outcome>, figure: String| Row {
        image: run.image.clone(),
        check: check.into(),
        results,
        figure,
    };
    let all = |o: Outcome| run.platforms.iter().map(|p| (p.clone(), o)).collect::<BTreeMap<_, _>>();
    let mut out = ImageChecks {
        image: run.image.clone(),
        lint: None,
        build: None,
        smoke: None,
        size: None,
        runtime: Vec::new(),
        scan: None,
        repro: None,
        errors: Vec::new(),
    };
    match run.lint {
        Some(Ok(lint)) => {
            let outcome = Outcome::of(lint.failure().is_none());
            let warnings = lint.findings().filter(|f| f.severity == Severity::Warning).count();
            let figure = match lint.failure() {
                Some(why) => short(&why),
                None => {
                    let contexts: Vec<String> = lint
                        .files
                        .iter()
                        .flat_map(|f| &f.contexts)
                        .map(|c| format!("context {} files, {}", c.files, size::human(c.bytes)))
                        .collect();
                    format!("0 errors, {warnings} warnings; {}", contexts.join("; "))
                }
            };
            rows.push(row("lint", all(outcome), figure));
            out.lint = Some(lint);
        }
        Some(Err(e)) => {
            rows.push(row("lint", all(Outcome::Fail), short(&e)));
            out.errors.push(format!("lint: {e}"));
        }
        None => {}
    }
    match &run.build {
        Some(Ok(b)) => {
            let cached: usize = b.platforms.iter().map(|p| p.steps_cached).sum();
            let total: usize = b.platforms.iter().map(|p| p.steps_total).sum();
            rows.push(row(
                "build",
                all(Outcome::Pass),
                format!("{:.1}s, {cached}/{total} steps cached", b.wall_seconds),
            ));
            out.build = Some(b.clone());
        }
        Some(Err(e)) => {
            rows.push(row("build", all(Outcome::Fail), short(e)));
            out.errors.push(format!("build: {e}"));
            return out;
        }
        None => {}
    }
    if let Err(e) = &run.resolved {
        rows.push(row("image", all(Outcome::Fail), short(e)));
        out.errors.push(e.clone());
        return out;
    }
    match run.smoke {
        Some(Ok(result)) => {
            rows.extend(smoke_rows(&run.image, &result));
            out.smoke = Some(result);
        }
        Some(Err(e)) => {
            rows.push(row("smoke", all(Outcome::Fail), short(&e)));
            out.errors.push(format!("smoke: {e}"));
        }
        None => {}
    }
    match run.size {
        Some(Ok(size)) => {
            let results =
                size.platforms.iter().map(|p| (p.platform.clone(), Outcome::of(!p.budget.failed()))).collect();
            let figure = size
                .platforms
                .iter()
                .map(|p| format!("{} {}", p.platform.arch, p.budget.summary))
                .collect::<Vec<_>>()
                .join("; ");
            rows.push(row("size", results, figure));
            out.size = Some(size);
        }
        Some(Err(e)) => {
            rows.push(row("size", all(Outcome::Fail), short(&e)));
            out.errors.push(format!("size: {e}"));
        }
        None => {}
    }
    if !run.runtime.is_empty() {
        let mut results = BTreeMap::new();
        let mut figures = Vec::new();
        for (platform, measured) in run.runtime {
            results.insert(platform.clone(), Outcome::of(measured.is_ok()));
            match measured {
                Ok(f) => {
                    figures.push(format!(
                        "{} {:.0} ms, {}",
                        platform.arch,
                        f.startup_ms_median,
                        f.peak_memory_bytes.map_or("n/a".into(), runtime::format_bytes)
                    ));
                    out.runtime.push(f);
                }
                Err(e) => {
                    figures.push(format!("{} {}", platform.arch, short(&e)));
                    out.errors.push(format!("runtime {platform}: {e}"));
                }
            }
        }
        rows.push(row("startup, peak memory", results, figures.join("; ")));
    }
    match run.scan {
        Some(Ok(scan)) => {
            rows.extend(scan_rows(&run.image, &scan));
            out.scan = Some(scan);
        }
        Some(Err(e)) => {
            rows.push(row("scan", all(Outcome::Fail), short(&e)));
            out.errors.push(format!("scan: {e}"));
        }
        None => {}
    }
    match run.repro {
        Some(Ok(repro)) => {
            let results = repro
                .platforms
                .iter()
                .filter_map(|v| Some((Platform::parse(&v.platform).ok()?, Outcome::of(v.same))))
                .collect();
            let figure = repro
                .platforms
                .iter()
                .map(|v| {
                    let arch = v.platform.rsplit('/').next().unwrap_or(&v.platform);
                    match v.differing_layers().next() {
                        None => format!("{arch} {} twice", short_digest(&v.digest_1)),
                        Some(l) => format!(
                            "{arch} layer {} differs ({})",
                            l.index,
                            l.files.first().map_or("the tar stream", |f| f.path.as_str())
                        ),
                    }
                })
                .collect::<Vec<_>>()
                .join("; ");
            rows.push(row("repro", results, figure));
            out.repro = Some(repro);
        }
        Some(Err(e)) => {
            rows.push(row("repro", all(Outcome::Fail), short(&e)));
            out.errors.push(format!("repro: {e}"));
        }
        None => {}
    }
    out
}

/// The smoke rows: the declared checks together, and the read-only check.
fn smoke_rows(image: &str, result: &ImageResult) -> Vec<Row> {
    let mut checks =
        Row { image: image.into(), check: "smoke".into(), results: BTreeMap::new(), figure: String::new() };
    let mut readonly =
        Row { image: image.into(), check: "read-only".into(), results: BTreeMap::new(), figure: String::new() };
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

/// The scan rows: `scan`, the secret scan (pass or fail), and `vulns`, the
/// vulnerability scan (pass or fail against the gate, or skipped without a
/// DB, with the reason as its figure).
fn scan_rows(image: &str, scan: &ImageScan) -> Vec<Row> {
    let row = |check: &str, part: fn(&scan_check::PlatformScan) -> &scan_check::Part, figure: String| Row {
        image: image.into(),
        check: check.into(),
        results: scan.platforms.iter().map(|p| (p.platform.clone(), Outcome::of_status(part(p).status))).collect(),
        figure,
    };
    let secrets = scan
        .platforms
        .iter()
        .map(|p| format!("{} {} secrets", p.platform.arch, p.secrets.iter().filter(|s| s.ignored.is_none()).count()))
        .collect::<Vec<_>>()
        .join("; ");
    let vulns: Vec<String> = scan
        .platforms
        .iter()
        .map(|p| match (&p.vulnerabilities, p.vuln_scan.status) {
            (Some(_), _) => format!("{} critical, {} high", p.counts.critical, p.counts.high),
            (None, Status::Skipped) => {
                format!("skipped: {}", p.vuln_scan.reason.as_deref().unwrap_or("not scanned"))
            }
            (None, _) => "no vulnerability DB, and --require-vuln-db asks for one".into(),
        })
        .collect();
    // One figure when every platform says the same (no DB, say).
    let vulns = if !vulns.is_empty() && vulns.windows(2).all(|w| w[0] == w[1]) {
        vulns[0].clone()
    } else {
        scan.platforms
            .iter()
            .zip(&vulns)
            .map(|(p, v)| format!("{} {v}", p.platform.arch))
            .collect::<Vec<_>>()
            .join("; ")
    };
    vec![row("scan", |p| &p.secret_scan, secrets), row("vulns", |p| &p.vuln_scan, short(&vulns))]
}

/// The JUnit cases of a platform's scan: its secret scan and its
/// vulnerability scan, each passed, failed or (vulnerabilities) skipped.
fn scan_cases(image: &str, p: &scan_check::PlatformScan) -> [junit::Entry; 2] {
    let case = |what: &str, part: &scan_check::Part, failures: Vec<String>, stdout: String| {
        let case = junit::Case {
            classname: format!("{image}.{}", p.platform),
            name: format!("Scan {what}: {}", p.platform),
            seconds: part.seconds,
            failure: (part.status == Status::Failed).then(|| junit::Failure {
                message: failures.first().cloned().or_else(|| part.reason.clone()).unwrap_or_default(),
                text: failures.join("\n"),
            }),
            stdout,
            ..junit::Case::default()
        };
        match part.status {
            Status::Skipped => junit::Entry::Skipped { case, reason: part.reason.clone().unwrap_or_default() },
            Status::Passed | Status::Failed => junit::Entry::Ran(case),
        }
    };
    let secret_failures = scan_check::secret_failures(&p.secrets);
    let vuln_failures: Vec<String> = p.failures.iter().filter(|f| !secret_failures.contains(f)).cloned().collect();
    let ignored = p.secrets.iter().filter(|s| s.ignored.is_some()).count();
    let counts = match &p.vulnerabilities {
        Some(_) => format!(
            "{} critical, {} high, {} medium, {} low, {} ignored",
            p.counts.critical, p.counts.high, p.counts.medium, p.counts.low, p.counts.ignored
        ),
        None => String::new(),
    };
    [
        case(
            "secrets",
            &p.secret_scan,
            secret_failures,
            if ignored > 0 { format!("{ignored} ignored") } else { String::new() },
        ),
        case("vulnerabilities", &p.vuln_scan, vuln_failures, counts),
    ]
}

/// A reason short enough for a table cell.
fn short(reason: &str) -> String {
    reason.chars().take(160).collect()
}

impl Report for CheckReport {
    fn render(&self) -> String {
        let mut header = vec!["IMAGE".to_string(), "CHECK".to_string()];
        header.extend(self.platforms.iter().map(|p| p.arch.to_string()));
        header.push("FIGURE".into());
        let mut table = Table::new(header);
        for r in &self.rows {
            let mut line = vec![r.image.clone(), r.check.clone()];
            line.extend(self.platforms.iter().map(|p| r.results.get(p).map_or("-", |o| o.cell()).to_string()));
            line.push(r.figure.clone());
            table.row(line);
        }
        table.render()
    }

    /// The smoke and read-only checks as `image smoke --junit` writes them,
    /// then a suite for each image's lint and scan (per platform a case for
    /// the secrets and one for the vulnerabilities, `<skipped/>` without a DB).
    fn junit(&self) -> Option<junit::Suites> {
        let smoked: Vec<ImageResult> = self.images.iter().filter_map(|i| i.smoke.clone()).collect();
        let mut suites = smoke::junit_suites(&smoked, self.seconds);
        for image in &self.images {
            if let Some(lint) = &image.lint {
                let errors: Vec<String> = lint
                    .findings()
                    .filter(|f| f.severity == Severity::Error)
                    .map(|f| format!("{}:{} {} {}", f.file, f.line, f.rule, f.message))
                    .collect();
                let case = junit::Case {
                    classname: format!("{}.lint", image.image),
                    name: format!(
                        "Lint: {}",
                        lint.files.iter().map(|f| f.file.as_str()).collect::<Vec<_>>().join(", ")
                    ),
                    failure: lint.failure().map(|message| junit::Failure { message, text: errors.join("\n") }),
                    ..junit::Case::default()
                };
                suites.suites.push(junit::Suite {
                    name: format!("{} lint", image.image),
                    cases: vec![case.into()],
                    ..junit::Suite::default()
                });
            }
            if let Some(scan) = &image.scan {
                let cases = scan.platforms.iter().flat_map(|p| scan_cases(&image.image, p)).collect();
                suites.suites.push(junit::Suite {
                    name: format!("{} scan", image.image),
                    seconds: scan.platforms.iter().map(|p| p.seconds).sum(),
                    cases,
                    ..junit::Suite::default()
                });
            }
        }
        suites.name = "xtask image check".into();
        Some(suites)
    }

    /// Lint's and scan's findings, one run per tool.
    fn sarif(&self) -> Option<sarif::Log> {
        let mut findings: Vec<Finding> = Vec::new();
        let mut versions: Vec<(Source, Option<String>)> = vec![(Source::Ralph, Some(env!("CARGO_PKG_VERSION").into()))];
        for image in &self.images {
            if let Some(lint) = &image.lint {
                for f in lint.findings() {
                    if !findings.contains(f) {
                        findings.push(f.clone());
                    }
                }
                for t in &lint.tools {
                    let source = if t.tool == "hadolint" { Source::Hadolint } else { Source::Trivy };
                    if !versions.iter().any(|(s, _)| *s == source) {
                        versions.push((source, t.version.clone()));
                    }
                }
            }
            if let Some(scan) = &image.scan {
                findings.extend(super::scan::scan_findings(scan, &scan.dockerfile));
            }
        }
        if !versions.iter().any(|(s, _)| *s == Source::Trivy) && findings.iter().any(|f| f.source == Source::Trivy) {
            versions.push((Source::Trivy, None));
        }
        Some(checks::sarif(&findings, &versions))
    }

    fn failure(&self) -> Option<String> {
        let failed: Vec<String> = self
            .rows
            .iter()
            .filter(|r| r.results.values().any(|o| *o == Outcome::Fail))
            .map(|r| format!("{} {}", r.image, r.check))
            .collect();
        (!failed.is_empty()).then(|| format!("image check failed: {} (details above)", failed.join(", ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::smoke::PlatformResult;
    use crate::checks::CheckResult;

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
        let mut rows = smoke_rows("w", &r);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].results[&amd], Outcome::Pass);
        assert_eq!(rows[0].results[&arm], Outcome::Fail);
        assert_eq!(rows[0].figure, "checks passed: amd64 2/2, arm64 1/2");
        assert_eq!(rows[1].check, "read-only");
        assert_eq!(rows[1].figure, "amd64 healthy after 1.0s; arm64 it exited");
        rows.insert(
            0,
            Row {
                image: "w".into(),
                check: "build".into(),
                results: [(amd.clone(), Outcome::Pass), (arm.clone(), Outcome::Pass)].into(),
                figure: "9.9s, 11/12 steps cached".into(),
            },
        );
        rows.push(Row {
            image: "w".into(),
            check: "size".into(),
            results: [(amd.clone(), Outcome::Pass)].into(),
            figure: "amd64 614.6 MB (budget 620.0 MB)".into(),
        });
        let report = CheckReport { ok: false, seconds: 1.0, platforms: vec![amd, arm], rows, images: vec![] };
        crate::output::golden::check("check-table.txt", &report.render());
        assert_eq!(report.failure().unwrap(), "image check failed: w smoke, w read-only (details above)");
    }

    fn scan_report(scans: Vec<ImageScan>) -> CheckReport {
        let runs = scans
            .into_iter()
            .map(|scan| ImageRun {
                image: scan.image.clone(),
                reference: scan.reference.clone(),
                platforms: scan.platforms.iter().map(|p| p.platform.clone()).collect(),
                lint: None,
                build: None,
                resolved: Ok(()),
                smoke: None,
                size: None,
                runtime: Vec::new(),
                scan: Some(Ok(scan)),
                repro: None,
            })
            .collect();
        CheckReport { seconds: 4.0, ..CheckReport::new(runs, Instant::now()) }
    }

    #[test]
    fn the_repro_row_passes_a_platform_built_twice_alike_and_names_what_differs() {
        use crate::model::repro::{Change, FileDiff, LayerVerdict, PlatformVerdict};
        let verdict = |platform: &str, same: bool| PlatformVerdict {
            platform: platform.into(),
            digest_1: format!("sha256:{}", "a".repeat(64)),
            digest_2: format!("sha256:{}", if same { "a" } else { "b" }.repeat(64)),
            same,
            layers: if same {
                vec![]
            } else {
                vec![LayerVerdict {
                    index: 2,
                    same: false,
                    digest_1: None,
                    digest_2: None,
                    diff_id_1: None,
                    diff_id_2: None,
                    created_by: "RUN apt-get install".into(),
                    files: vec![FileDiff { path: "var/log/dpkg.log".into(), change: Change::Content, details: vec![] }],
                }]
            },
            config: vec![],
            annotations: vec![],
        };
        let repro = ImageRepro {
            image: "w".into(),
            reused_build: None,
            layouts: None,
            platforms: vec![verdict("linux/amd64", true), verdict("linux/arm64", false)],
            seconds: 1.0,
        };
        let run = ImageRun {
            image: "w".into(),
            reference: "w:1".into(),
            platforms: vec![Platform::parse("linux/amd64").unwrap(), Platform::parse("linux/arm64").unwrap()],
            lint: None,
            build: None,
            resolved: Ok(()),
            smoke: None,
            size: None,
            runtime: Vec::new(),
            scan: None,
            repro: Some(Ok(repro)),
        };
        let report = CheckReport::new(vec![run], Instant::now());
        let row = report.rows.iter().find(|r| r.check == "repro").unwrap();
        let outcomes: Vec<Outcome> = row.results.values().copied().collect();
        assert_eq!(outcomes, [Outcome::Pass, Outcome::Fail]);
        assert_eq!(row.figure, "amd64 sha256:aaaaaaaaaaaa twice; arm64 layer 2 differs (var/log/dpkg.log)");
        assert!(!report.ok);
    }

    #[test]
    fn vulnerabilities_not_scanned_are_skipped_in_the_table_the_json_and_junit() {
        // `w` scanned with a DB (amd64 passes, arm64 has a CRITICAL); `p`
        // without one (skipped), a secret planted on arm64.
        let report = scan_report(scan_check::examples());
        crate::output::golden::check("check-scan-table.txt", &report.render());
        let xml = report.junit().unwrap().to_xml();
        crate::output::golden::check("check-scan-junit.xml", &xml);
        assert!(
            xml.contains("<testsuites name=\"xtask image check\" tests=\"8\" failures=\"2\" skipped=\"2\""),
            "{xml}"
        );
        assert!(xml.contains("<testsuite name=\"p scan\" tests=\"4\" failures=\"1\" skipped=\"2\""), "{xml}");
        assert!(xml.contains("<testsuite name=\"w scan\" tests=\"4\" failures=\"1\" skipped=\"0\""), "{xml}");
        assert_eq!(xml.matches(&format!("<skipped message=\"{}\"/>", scan_check::NO_DB)).count(), 2, "{xml}");

        let json = serde_json::to_value(&report).unwrap();
        let results = |image: &str, check: &str| {
            let row = json["rows"].as_array().unwrap().iter().find(|r| r["image"] == image && r["check"] == check);
            let row = row.unwrap_or_else(|| panic!("no {image} {check} row in {json}"));
            [row["results"]["linux/amd64"].clone(), row["results"]["linux/arm64"].clone()]
        };
        assert_eq!(results("w", "scan"), ["pass", "pass"]);
        assert_eq!(results("w", "vulns"), ["pass", "fail"], "a scan with results passes or fails");
        assert_eq!(results("p", "scan"), ["pass", "fail"]);
        assert_eq!(results("p", "vulns"), ["skipped", "skipped"], "no DB: skipped, never a pass");
        assert_eq!(json["images"][1]["scan"]["platforms"][0]["vuln_scan"]["status"], "skipped");
        assert_eq!(json["ok"], false);
        assert_eq!(report.failure().unwrap(), "image check failed: w vulns, p scan (details above)");

        // Skipped is no failure: the check is ok, and its report says skipped.
        let mut clean = scan_check::examples().remove(1);
        clean.platforms.truncate(1);
        let report = scan_report(vec![clean]);
        assert!(report.ok && report.failure().is_none(), "{}", report.render());
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["rows"][1]["check"], "vulns");
        assert_eq!(json["rows"][1]["results"]["linux/amd64"], "skipped");
        assert!(
            report.render().contains("p      vulns  skipped  skipped: vulnerability DB unavailable"),
            "{}",
            report.render()
        );
    }
}
