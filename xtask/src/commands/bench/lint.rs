//! `cargo xtask bench lint`: the lint of the whole catalog (every
//! Dockerfile, hadolint and Trivy in parallel with our policy), and the walk
//! of a generated 2,000-file build context: wall times against the goals
//! (under 3 s and under 0.5 s on a 2-core machine).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::Serialize;

use super::super::Command;
use super::spread;
use crate::checks::lint::{self, context, Target};
use crate::commands::lint::DEFAULT_TIMEOUT;
use crate::model::catalog::Catalog;
use crate::output::table::Table;
use crate::output::{JsonOut, Report, Sinks};

#[derive(Debug, Clone, clap::Args)]
pub struct BenchLint {
    /// Timed runs of each scenario; the median is reported.
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// Files in the generated build context.
    #[arg(long, default_value_t = 2000)]
    pub files: usize,
    #[command(flatten)]
    pub out: JsonOut,
}

#[derive(Debug, Serialize)]
pub struct BenchLintReport {
    pub dockerfiles: usize,
    pub lint_seconds: Vec<f64>,
    pub hadolint_seconds: Vec<f64>,
    pub trivy_seconds: Vec<f64>,
    pub context_files: usize,
    pub walk_seconds: Vec<f64>,
}

impl Command for BenchLint {
    type Report = BenchLintReport;

    fn run(&self, catalog: &Catalog) -> Result<BenchLintReport> {
        let root = catalog.path.parent().map(PathBuf::from).unwrap_or_default();
        let targets: Vec<Target> = catalog.images.iter().map(Target::of).collect();
        let mut report = BenchLintReport {
            dockerfiles: 0,
            lint_seconds: vec![],
            hadolint_seconds: vec![],
            trivy_seconds: vec![],
            context_files: self.files,
            walk_seconds: vec![],
        };
        for run in 0..self.runs.max(1) {
            eprintln!("bench: lint of the catalog, run {} ...", run + 1);
            let started = Instant::now();
            let linted = lint::lint(&targets, &root, Duration::from_secs(DEFAULT_TIMEOUT));
            report.lint_seconds.push(started.elapsed().as_secs_f64());
            if let Some(why) = linted.tools.iter().find_map(|t| t.error.clone()) {
                anyhow::bail!("the lint could not run, so there is nothing to time: {why}");
            }
            report.dockerfiles = linted.files.len();
            for t in &linted.tools {
                match t.tool.as_str() {
                    "hadolint" => report.hadolint_seconds.push(t.seconds),
                    _ => report.trivy_seconds.push(t.seconds),
                }
            }
        }
        let dir = tempfile::Builder::new()
            .prefix("xtask-bench-context-")
            .tempdir()
            .context("creating a scratch directory")?;
        generate(dir.path(), self.files)?;
        let ignore = context::Ignore::read(dir.path(), None)?.map(|(_, ignore)| ignore);
        for _ in 0..self.runs.max(1) {
            let started = Instant::now();
            let walked = context::walk(dir.path(), ignore.as_ref())?;
            report.walk_seconds.push(started.elapsed().as_secs_f64());
            anyhow::ensure!(walked.files.len() <= self.files, "the walk found more files than were made");
        }
        Ok(report)
    }

    fn sinks(&self) -> Sinks<'_> {
        self.out.sinks()
    }
}

/// `files` small files in nested directories, some left out by a .dockerignore.
fn generate(dir: &std::path::Path, files: usize) -> Result<()> {
    std::fs::write(dir.join(".dockerignore"), ".git\n.env\nnode_modules\ntest/\ntarget/\n**/*.tmp\n!keep/*.tmp\n")?;
    for i in 0..files.saturating_sub(1) {
        let sub = dir.join(format!("d{}/e{}", i % 20, i % 7));
        std::fs::create_dir_all(&sub)?;
        let ext = if i % 10 == 0 { "tmp" } else { "txt" };
        std::fs::write(sub.join(format!("f{i}.{ext}")), format!("file {i}\n"))?;
    }
    Ok(())
}

impl Report for BenchLintReport {
    fn render(&self) -> String {
        let mut table = Table::new(["SCENARIO", "WALL (MEDIAN)", "MIN-MAX", "GOAL", "MET"]);
        let (lint, lint_range) = spread(&self.lint_seconds);
        let (walk, _) = spread(&self.walk_seconds);
        table.row([
            format!("lint of the catalog ({} Dockerfiles)", self.dockerfiles),
            format!("{lint:.2}s"),
            lint_range,
            "< 3 s".into(),
            if lint < 3.0 { "yes" } else { "NO" }.to_string(),
        ]);
        table.row([
            format!("walk of a {}-file build context", self.context_files),
            format!("{:.1} ms", walk * 1000.0),
            format!("{:.1}-{:.1} ms", min(&self.walk_seconds) * 1000.0, max(&self.walk_seconds) * 1000.0),
            "< 0.5 s".into(),
            if walk < 0.5 { "yes" } else { "NO" }.to_string(),
        ]);
        let (hadolint, _) = spread(&self.hadolint_seconds);
        let (trivy, _) = spread(&self.trivy_seconds);
        table.render()
            + &format!("of the lint, in parallel: hadolint {hadolint:.2}s, trivy config {trivy:.2}s (medians)\n")
    }
}

fn min(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::INFINITY, f64::min)
}

fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(0.0, f64::max)
}
