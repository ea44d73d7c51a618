//! `cargo xtask bench size`: the size analysis on the size fixture with growing
//! layers of random data: wall time, and the process's peak RSS, which must
//! stay flat however big the layers are (everything is streamed).

use std::time::Instant;

use anyhow::{Context, Result};
use serde::Serialize;

use super::super::Command;
use crate::checks::size::{self, human, SizeOptions};
use crate::engine::{docker, image, tools};
use crate::model::catalog::{Catalog, Image, Platform};
use crate::model::target::Target;
use crate::output::table::Table;
use crate::output::{JsonOut, Report, Sinks};
use crate::pipeline::build::{self, BuildOptions, BuilderArg, CacheMode};

#[derive(Debug, Clone, clap::Args)]
pub struct BenchSize {
    /// MB of random data in the fixture, spread over four layers; one run per value.
    #[arg(long, value_delimiter = ',', default_values_t = vec![100, 400])]
    pub mb: Vec<u64>,
    /// The platform to build and measure.
    #[arg(long, default_value = "linux/amd64")]
    pub platform: String,
    /// Also time dive on the same image in the same run (goal: `image size` in at most half of dive's time).
    #[arg(long)]
    pub vs_dive: bool,
    #[command(flatten)]
    pub builder: BuilderArg,
    #[command(flatten)]
    pub out: JsonOut,
}

/// The size fixture's Dockerfile and context, relative to the catalog (test/images/size-fixture).
const FIXTURE_DIR: &str = "test/images/size-fixture";

#[derive(Debug, Serialize)]
pub struct BenchSizeReport {
    pub runs: Vec<SizeRun>,
}

#[derive(Debug, Serialize)]
pub struct SizeRun {
    pub data_mb: u64,
    pub largest_layer_bytes: u64,
    pub image_bytes: u64,
    pub wall_seconds: f64,
    pub save_seconds: f64,
    pub peak_rss_bytes: Option<u64>,
    /// False when the kernel would not reset the peak: the figure is the process's.
    pub peak_rss_reset: bool,
    /// dive's wall time on the same image (`--vs-dive`).
    pub dive_seconds: Option<f64>,
}

impl Command for BenchSize {
    type Report = BenchSizeReport;

    /// Builds the size fixture with `mb` MB of random data for each value
    /// asked for and times the size analysis on it: wall time, the process's
    /// peak RSS (which must not grow with the layers) and the largest layer.
    fn run(&self, catalog: &Catalog) -> Result<BenchSizeReport> {
        let platform = Platform::parse(&self.platform)?;
        let busybox = catalog.get("busybox-fixture")?;
        let root = catalog.path.parent().unwrap_or(std::path::Path::new("."));
        let mut runs = Vec::new();
        for &total_mb in &self.mb {
            let fixture = Image {
                name: "size-bench".into(),
                repository: "ralph-size-bench".into(),
                description: "benchmark fixture for `image size`".into(),
                dockerfile: root.join(FIXTURE_DIR).join("Dockerfile"),
                context: root.join(FIXTURE_DIR),
                platforms: vec![platform.clone()],
                args: [("BULK_MB".to_string(), (total_mb / 4).to_string())].into(),
                budget: None,
                ..busybox.clone()
            };
            let catalog = Catalog { images: vec![fixture], ..catalog.clone() };
            let fixture = &catalog.images[0];
            eprintln!("bench: building the size fixture with {total_mb} MB of random data ...");
            let options = BuildOptions {
                cache: CacheMode::None,
                quiet: true,
                builder: self.builder.clone(),
                looked_at_here: true,
                ..BuildOptions::default()
            };
            let built = build::run(&catalog, &[fixture], std::slice::from_ref(&platform), &options)?;
            let report = built.images.first().context("the build reported no image")?;
            let target = Target {
                image: fixture,
                tag: report.tags[0].clone(),
                registry: None,
                platforms: vec![platform.clone()],
                layouts: catalog.layout_dirs(fixture, std::slice::from_ref(&platform)),
            };

            let reset = reset_peak_rss();
            let started = Instant::now();
            let measured = image::local(&target).and_then(|b| size::measure(&b, &SizeOptions::default()));
            let wall = started.elapsed().as_secs_f64();
            let peak = peak_rss_bytes();
            let dive = if self.vs_dive {
                eprintln!("bench: dive on the same image ...");
                let reference = report.refs.first().context("the build reported no reference")?;
                Some(tools::dive_seconds(reference, std::time::Duration::from_secs(600)))
            } else {
                None
            };
            for r in &report.refs {
                let _ = docker::docker().args(["image", "rm", r.as_str()]).probe().output();
            }
            let measured = measured?;
            let p = &measured.platforms[0];
            runs.push(SizeRun {
                data_mb: total_mb,
                largest_layer_bytes: p.layers.iter().map(|l| l.uncompressed_bytes).max().unwrap_or(0),
                image_bytes: p.uncompressed_bytes,
                wall_seconds: wall,
                save_seconds: measured.save_seconds,
                peak_rss_bytes: peak,
                peak_rss_reset: reset,
                dive_seconds: dive.transpose()?,
            });
        }
        Ok(BenchSizeReport { runs })
    }

    fn sinks(&self) -> Sinks<'_> {
        self.out.sinks()
    }
}

impl Report for BenchSizeReport {
    fn render(&self) -> String {
        let mut table = Table::new(["DATA", "LARGEST LAYER", "IMAGE", "WALL", "DOCKER SAVE", "PEAK RSS", "DIVE"]);
        for r in &self.runs {
            table.row([
                format!("{} MB", r.data_mb),
                human(r.largest_layer_bytes),
                human(r.image_bytes),
                format!("{:.2}s", r.wall_seconds),
                format!("{:.2}s", r.save_seconds),
                format!(
                    "{}{}",
                    r.peak_rss_bytes.map_or("?".into(), human),
                    if r.peak_rss_reset { "" } else { " (process peak)" }
                ),
                r.dive_seconds.map_or("-".into(), |d| format!("{d:.2}s ({})", vs_dive(r.wall_seconds, d))),
            ]);
        }
        let slowest = self.runs.iter().map(|r| r.wall_seconds).fold(0.0f64, f64::max);
        table.render()
            + &format!(
                "goal: under 15 s each: {} (slowest {slowest:.2}s); peak RSS should stay flat as the layers grow\n",
                if slowest < 15.0 { "met" } else { "NOT met" }
            )
    }
}

/// `image size` against dive on the same image: the share of dive's time it took, and the verdict against
/// the goal (at most half).
pub fn vs_dive(ours: f64, dive: f64) -> String {
    let share = if dive > 0.0 { ours / dive * 100.0 } else { f64::INFINITY };
    format!("xtask at {share:.0}% of it: {}", if share <= 50.0 { "goal met" } else { "goal NOT met" })
}

/// Resets the kernel's peak-RSS mark for this process (Linux 4.0+), so each
/// run's peak is its own. False when the kernel refuses.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// VmHWM: the most resident memory this process has had.
fn peak_rss_bytes() -> Option<u64> {
    parse_vm_hwm(&std::fs::read_to_string("/proc/self/status").ok()?)
}

fn parse_vm_hwm(status: &str) -> Option<u64> {
    let line = status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?;
    let kb: u64 = line.trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_share_of_dives_time() {
        assert_eq!(vs_dive(4.0, 10.0), "xtask at 40% of it: goal met");
        assert_eq!(vs_dive(6.0, 10.0), "xtask at 60% of it: goal NOT met");
        assert_eq!(vs_dive(1.0, 0.0), "xtask at inf% of it: goal NOT met");
    }

    #[test]
    fn peak_rss_is_read_from_vm_hwm() {
        assert_eq!(parse_vm_hwm("Name:\txtask\nVmPeak:\t  9000 kB\nVmHWM:\t    2048 kB\n"), Some(2048 * 1024));
        assert_eq!(parse_vm_hwm("Name:\txtask\n"), None);
    }
}
