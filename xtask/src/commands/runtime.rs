//! `cargo xtask image runtime`: the image pipeline with the runtime check:
//! startup time (create to exit of the entrypoint with `--version`, median
//! of runs) and peak memory, per platform.

use anyhow::Result;
use serde::Serialize;

use super::Command;
use crate::checks::runtime::{format_bytes, RuntimeFigures, RuntimeOptions};
use crate::model::catalog::{Catalog, Platform};
use crate::output::table::Table;
use crate::output::{JsonOut, Report, Sinks};
use crate::pipeline::{Checks, Pipeline, Selection, Source};

#[derive(Debug, Clone, clap::Args)]
pub struct Runtime {
    #[command(flatten)]
    pub selection: Selection,
    #[command(flatten)]
    pub options: RuntimeOptions,
    #[command(flatten)]
    pub out: JsonOut,
}

#[derive(Debug, Clone, Serialize)]
pub struct RuntimeReport {
    pub images: Vec<RuntimeFigures>,
}

impl Command for Runtime {
    type Report = RuntimeReport;

    fn run(&self, catalog: &Catalog) -> Result<RuntimeReport> {
        let targets = self.selection.targets(catalog)?;
        let requested = Platform::parse_list(&self.selection.images.platform)?;
        let checks = Checks { runtime: Some(self.options.clone()), ..Checks::default() };
        let pipeline = Pipeline { catalog, checks, keep_going: false, purpose: "runtime" };
        let runs = pipeline.run(targets, &requested, &Source::Existing)?;
        let images = runs.into_iter().flat_map(|r| r.runtime).filter_map(|(_, f)| f.ok()).collect();
        Ok(RuntimeReport { images })
    }

    fn sinks(&self) -> Sinks<'_> {
        self.out.sinks()
    }
}

impl Report for RuntimeReport {
    fn render(&self) -> String {
        let mut table = Table::new(["IMAGE", "PLATFORM", "COMMAND", "STARTUP (MEDIAN)", "MIN-MAX", "PEAK MEMORY"]);
        for f in &self.images {
            table.row([
                f.image.clone(),
                f.platform.to_string(),
                f.args.join(" "),
                format!("{:.0} ms", f.startup_ms_median),
                format!("{:.0}-{:.0} ms (n={})", f.startup_ms_min, f.startup_ms_max, f.runs),
                f.peak_memory_bytes.map_or("n/a".into(), format_bytes),
            ]);
        }
        table.render()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_says_n_a_where_the_peak_is_unavailable() {
        let figures = |p: &str, peak: Option<u64>| RuntimeFigures {
            image: "worker-standin".into(),
            platform: Platform::parse(p).unwrap(),
            args: vec!["--version".into()],
            runs: 5,
            startup_ms_median: 409.4,
            startup_ms_min: 398.0,
            startup_ms_max: 455.6,
            peak_memory_bytes: peak,
        };
        let report =
            RuntimeReport { images: vec![figures("linux/amd64", Some(4_600_000)), figures("linux/arm64", None)] };
        crate::output::golden::check("runtime-table.txt", &report.render());
    }
}
