//! `cargo xtask image smoke`: the image pipeline with the smoke check: each
//! image's declared checks (container-structure-test schema) and its
//! read-only check, on every platform, pass/fail per check with expected vs
//! actual, as a table, JSON and JUnit XML.

use std::time::Instant;

use anyhow::{bail, Result};
use serde::Serialize;

use super::Command;
use crate::checks::smoke::{self, ImageResult, SmokeOptions};
use crate::model::catalog::{Catalog, Platform};
use crate::model::target::Target;
use crate::output::table::Table;
use crate::output::{junit, Report, Sinks, TestOut};
use crate::pipeline::{Checks, Pipeline, Selection, Source};

#[derive(Debug, Clone, clap::Args)]
pub struct Smoke {
    #[command(flatten)]
    pub selection: Selection,
    #[command(flatten)]
    pub options: SmokeOptions,
    /// Leave out the read-only check.
    #[arg(long)]
    pub no_readonly: bool,
    #[command(flatten)]
    pub out: TestOut,
}

#[derive(Debug, Clone, Serialize)]
pub struct SmokeReport {
    pub passed: usize,
    pub failed: usize,
    pub seconds: f64,
    pub images: Vec<ImageResult>,
}

impl Command for Smoke {
    type Report = SmokeReport;

    fn run(&self, catalog: &Catalog) -> Result<SmokeReport> {
        let started = Instant::now();
        let checks = Checks { smoke: Some(self.options.clone()), readonly: !self.no_readonly, ..Checks::default() };
        let targets = smoke_targets(catalog, &self.selection, &checks)?;
        let requested = Platform::parse_list(&self.selection.images.platform)?;
        let pipeline = Pipeline { catalog, checks, keep_going: false, purpose: "smoke" };
        let runs = pipeline.run(targets, &requested, &Source::Existing)?;
        let images: Vec<ImageResult> = runs.into_iter().filter_map(|r| r.smoke).filter_map(Result::ok).collect();
        Ok(SmokeReport::new(images, started))
    }

    fn sinks(&self) -> Sinks<'_> {
        self.out.sinks()
    }
}

/// The images to smoke: named ones must declare checks; unnamed, those that declare some.
fn smoke_targets<'c>(catalog: &'c Catalog, selection: &Selection, checks: &Checks) -> Result<Vec<Target<'c>>> {
    let targets = selection.targets(catalog)?;
    let named = !selection.images.images.is_empty();
    if let Some(t) = targets.iter().find(|t| named && !checks.smokes(t.image)) {
        bail!(
            "image `{}` declares no smoke checks: add `smoke = \"FILE.yaml\"` (container-structure-test schema) to its entry in {}",
            t.image.name,
            catalog.path.display()
        );
    }
    let targets: Vec<Target<'c>> = targets.into_iter().filter(|t| checks.smokes(t.image)).collect();
    if targets.is_empty() {
        bail!("no image in {} declares smoke checks: add `smoke = \"FILE.yaml\"` to an image", catalog.path.display());
    }
    Ok(targets)
}

impl SmokeReport {
    pub fn new(images: Vec<ImageResult>, started: Instant) -> SmokeReport {
        let failed = images.iter().flat_map(|i| &i.platforms).map(|p| p.failed).sum();
        let passed = images.iter().flat_map(|i| &i.platforms).map(|p| p.passed).sum();
        SmokeReport { passed, failed, seconds: started.elapsed().as_secs_f64(), images }
    }
}

impl Report for SmokeReport {
    fn render(&self) -> String {
        let mut table = Table::new(["IMAGE", "PLATFORM", "PASSED", "FAILED", "TIME"]);
        for image in &self.images {
            for p in &image.platforms {
                table.row([
                    image.image.clone(),
                    p.platform.to_string(),
                    p.passed.to_string(),
                    p.failed.to_string(),
                    format!("{:.1}s", p.seconds),
                ]);
            }
        }
        table.render()
    }

    fn junit(&self) -> Option<junit::Suites> {
        Some(smoke::junit_suites(&self.images, self.seconds))
    }

    fn failure(&self) -> Option<String> {
        if self.failed == 0 {
            return None;
        }
        let failing: Vec<String> = self
            .images
            .iter()
            .flat_map(|i| {
                i.platforms.iter().flat_map(move |p| {
                    p.checks
                        .iter()
                        .filter(|c| !c.passed)
                        .map(move |c| format!("{} {} `{}`", i.image, p.platform, c.name))
                })
            })
            .take(3)
            .collect();
        Some(format!(
            "{} of {} smoke checks failed ({}{}): see the output above",
            self.failed,
            self.passed + self.failed,
            failing.join("; "),
            if self.failed > 3 { "; …" } else { "" }
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::smoke::PlatformResult;
    use crate::checks::{CheckKind, CheckResult};

    fn result(name: &str, passed: bool) -> CheckResult {
        CheckResult {
            kind: CheckKind::Command,
            name: name.into(),
            passed,
            expected: "exit 0".into(),
            actual: "exit 0".into(),
            errors: vec![],
            seconds: 0.2,
            stdout: String::new(),
            stderr: String::new(),
        }
    }

    #[test]
    fn the_table_and_the_failure_line() {
        let platform = |p: &str, checks: Vec<CheckResult>| {
            let failed = checks.iter().filter(|c| !c.passed).count();
            PlatformResult {
                platform: Platform::parse(p).unwrap(),
                passed: checks.len() - failed,
                failed,
                seconds: 2.25,
                checks,
            }
        };
        let report = SmokeReport {
            passed: 3,
            failed: 1,
            seconds: 4.5,
            images: vec![ImageResult {
                image: "worker-standin".into(),
                reference: "ralph-worker-standin:main-1ceab2b".into(),
                platforms: vec![
                    platform("linux/amd64", vec![result("claude runs", true), result("no node", true)]),
                    platform("linux/arm64", vec![result("claude runs", true), result("no node", false)]),
                ],
            }],
        };
        crate::output::golden::check("smoke-table.txt", &report.render());
        assert_eq!(
            report.failure().unwrap(),
            "1 of 4 smoke checks failed (worker-standin linux/arm64 `no node`): see the output above"
        );
    }
}
