//! `cargo xtask bench smoke`: all smoke checks of one image on linux/amd64,
//! without and with the read-only check (which waits `stay_up_seconds` on
//! purpose), through the same pipeline `image smoke` runs. Goal: under 10 s,
//! the build excluded.

use std::time::Instant;

use anyhow::{bail, Result};
use serde::Serialize;

use super::super::Command;
use super::spread;
use crate::checks::smoke::SmokeOptions;
use crate::model::catalog::{Catalog, Platform};
use crate::output::table::Table;
use crate::output::{JsonOut, Report, Sinks};
use crate::pipeline::build::{BuildOptions, BuilderArg};
use crate::pipeline::{Checks, Images, Pipeline, Selection, Source};

#[derive(Debug, Clone, clap::Args)]
pub struct BenchSmoke {
    /// The image whose checks are timed (built first, outside the timing).
    #[arg(default_value = "worker-standin")]
    pub image: String,
    /// Timed runs of each scenario; the median is reported.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    #[command(flatten)]
    pub builder: BuilderArg,
    #[command(flatten)]
    pub out: JsonOut,
}

#[derive(Debug, Serialize)]
pub struct BenchSmokeReport {
    pub scenarios: Vec<SmokeScenario>,
}

#[derive(Debug, Serialize)]
pub struct SmokeScenario {
    pub name: String,
    pub seconds: Vec<f64>,
    pub median_seconds: f64,
    pub checks: usize,
}

impl Command for BenchSmoke {
    type Report = BenchSmokeReport;

    fn run(&self, catalog: &Catalog) -> Result<BenchSmokeReport> {
        let selection = Selection::new(Images::new(&[&self.image], &["linux/amd64"]));
        let requested = Platform::parse_list(&selection.images.platform)?;
        // The image and its read-only check's database, built before the timing.
        eprintln!("bench: building {} for linux/amd64 (not timed) ...", self.image);
        let build = Pipeline {
            catalog,
            checks: Checks { readonly: true, ..Checks::default() },
            keep_going: false,
            purpose: "bench",
        };
        let options = BuildOptions { quiet: true, builder: self.builder.clone(), ..BuildOptions::default() };
        build.run(selection.targets(catalog)?, &requested, &Source::Build(options))?;

        let mut scenarios = Vec::new();
        for (name, readonly) in [("declared checks", false), ("declared checks + read-only", true)] {
            let checks = Checks { smoke: Some(SmokeOptions::default()), readonly, ..Checks::default() };
            let pipeline = Pipeline { catalog, checks, keep_going: false, purpose: "bench" };
            let mut seconds = Vec::new();
            let mut count = 0;
            for run in 0..self.runs.max(1) {
                eprintln!("bench: {name}, run {} ...", run + 1);
                let started = Instant::now();
                let runs = pipeline.run(selection.targets(catalog)?, &requested, &Source::Existing)?;
                seconds.push(started.elapsed().as_secs_f64());
                let results: Vec<_> =
                    runs.iter().filter_map(|r| r.smoke.as_ref()).filter_map(|s| s.as_ref().ok()).collect();
                let lines: Vec<_> = results.iter().flat_map(|r| &r.platforms).flat_map(|p| &p.checks).collect();
                if let Some(failed) = lines.iter().find(|c| !c.passed) {
                    bail!(
                        "`{}` failed: a benchmark times passing checks; run `cargo xtask image smoke {}`",
                        failed.name,
                        self.image
                    );
                }
                count = lines.len();
            }
            let (median, _) = spread(&seconds);
            scenarios.push(SmokeScenario { name: name.into(), seconds, median_seconds: median, checks: count });
        }
        Ok(BenchSmokeReport { scenarios })
    }

    fn sinks(&self) -> Sinks<'_> {
        self.out.sinks()
    }
}

impl Report for BenchSmokeReport {
    fn render(&self) -> String {
        let mut table = Table::new(["SCENARIO", "WALL (MEDIAN)", "MIN-MAX", "CHECKS", "GOAL < 10 s"]);
        for s in &self.scenarios {
            let (median, range) = spread(&s.seconds);
            table.row([
                s.name.clone(),
                format!("{median:.2}s"),
                range,
                s.checks.to_string(),
                if median < 10.0 { "met" } else { "NOT met" }.into(),
            ]);
        }
        table.render()
    }
}
