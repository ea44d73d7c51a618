//! `cargo xtask bench build`: how much the build cache saves on the busybox
//! fixture: a cold build, a no-op rebuild, and a rebuild after touching the
//! file its last step copies.

use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;

use super::super::Command;
use crate::commands::build::format_cache;
use crate::engine::docker;
use crate::engine::progress::CacheStats;
use crate::model::catalog::{Catalog, Image, Platform};
use crate::output::table::Table;
use crate::output::{JsonOut, Report, Sinks};
use crate::pipeline::build::{self, BuildOptions, BuilderArg, ImageReport};

/// The fixture the benchmark builds (see images.toml).
const BENCH_IMAGE: &str = "busybox-fixture";
/// The file the "touched" scenario changes: copied by the fixture's last step.
const LATE_FILE: &str = "late.txt";

#[derive(Debug, Clone, clap::Args)]
pub struct BenchBuild {
    /// Megabytes of random data the fixture compresses per platform, so the
    /// cold build does measurable work.
    #[arg(long, default_value_t = 64)]
    pub work_mb: u32,
    /// Platforms (default: the fixture's, amd64 and arm64).
    #[arg(long, value_delimiter = ',')]
    pub platform: Vec<String>,
    #[command(flatten)]
    pub builder: BuilderArg,
    #[command(flatten)]
    pub out: JsonOut,
}

#[derive(Debug, Serialize)]
pub struct BenchBuildReport {
    pub scenarios: Vec<Scenario>,
}

#[derive(Debug, Serialize)]
pub struct Scenario {
    pub name: String,
    pub wall_seconds: f64,
    /// Wall time as a share of the cold build's.
    pub vs_cold: f64,
    pub platforms: Vec<(Platform, CacheStats)>,
}

impl Command for BenchBuild {
    type Report = BenchBuildReport;

    fn run(&self, catalog: &Catalog) -> Result<BenchBuildReport> {
        let fixture = catalog.get(BENCH_IMAGE)?;
        let scratch =
            tempfile::Builder::new().prefix("xtask-bench-").tempdir().context("creating a scratch directory")?;
        let catalog = scratch_catalog(catalog, fixture, scratch.path())?;
        let image = &catalog.images[0];
        let requested = Platform::parse_list(&self.platform)?;
        let mut options = BuildOptions {
            cache_dir: Some(scratch.path().join("cache")),
            no_cache: true,
            build_args: vec![format!("WORK_MB={}", self.work_mb)],
            quiet: true,
            builder: self.builder.clone(),
            ..BuildOptions::default()
        };
        let build = |options: &BuildOptions| -> Result<ImageReport> {
            build::run(&catalog, &[image], &requested, options)?.images.pop().context("the build reported no image")
        };
        eprintln!("bench: cold build (--no-cache) of {BENCH_IMAGE}, WORK_MB={} ...", self.work_mb);
        let cold = build(&options)?;
        options.no_cache = false;
        eprintln!("bench: no-op rebuild ...");
        let noop = build(&options)?;
        std::fs::write(image.context.join(LATE_FILE), format!("touched by bench {}\n", std::process::id()))?;
        eprintln!("bench: rebuild after touching {LATE_FILE} ...");
        let touched = build(&options)?;
        for tag in &cold.refs {
            let _ = docker::docker().args(["image", "rm", tag.as_str()]).probe().output();
        }
        let scenario = |name: &str, r: &ImageReport| Scenario {
            name: name.into(),
            wall_seconds: r.wall_seconds,
            vs_cold: r.wall_seconds / cold.wall_seconds,
            platforms: r
                .platforms
                .iter()
                .map(|p| (p.platform.clone(), CacheStats { cached: p.steps_cached, total: p.steps_total }))
                .collect(),
        };
        Ok(BenchBuildReport {
            scenarios: vec![
                scenario("cold", &cold),
                scenario("no-op rebuild", &noop),
                scenario("touch late file", &touched),
            ],
        })
    }

    fn sinks(&self) -> Sinks<'_> {
        self.out.sinks()
    }
}

impl Report for BenchBuildReport {
    fn render(&self) -> String {
        let mut table = Table::new(["SCENARIO", "WALL", "VS COLD", "PLATFORM", "CACHED STEPS", "EARLIER STEPS CACHED"]);
        for (i, s) in self.scenarios.iter().enumerate() {
            for (platform, stats) in &s.platforms {
                // Every step but the last (the COPY of the late file) should be cached.
                let earlier = stats.cached + 1 >= stats.total;
                table.row([
                    s.name.clone(),
                    format!("{:.2}s", s.wall_seconds),
                    format!("{:.1}%", 100.0 * s.vs_cold),
                    platform.to_string(),
                    format_cache(stats),
                    if i == 0 { "-".into() } else { yes_no(earlier) },
                ]);
            }
        }
        let noop = self.scenarios.get(1).map_or(f64::NAN, |s| s.vs_cold);
        let touched_ok =
            self.scenarios.get(2).is_some_and(|s| s.platforms.iter().all(|(_, c)| c.cached + 1 == c.total));
        table.render()
            + &format!(
                "goal: no-op rebuild under 10% of cold: {:.1}% ({}); every step before the changed one cached: {}\n",
                noop * 100.0,
                if noop < 0.10 { "met" } else { "NOT met" },
                yes_no(touched_ok)
            )
    }
}

fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.into()
}

/// The fixture copied to `dir`, so touching its late file leaves the
/// repository alone, with a catalog of its own.
fn scratch_catalog(repo: &Catalog, fixture: &Image, dir: &Path) -> Result<Catalog> {
    let context = dir.join("context");
    copy_dir(&fixture.context, &context)?;
    let dockerfile =
        fixture.dockerfile.strip_prefix(&fixture.context).context("the fixture's Dockerfile is in its context")?;
    let image = Image {
        dockerfile: context.join(dockerfile),
        context,
        // Its own repository, so the benchmark never retags the real fixture.
        repository: format!("{}-bench", fixture.repository),
        ..fixture.clone()
    };
    Ok(Catalog { path: dir.join("images.toml"), images: vec![image], ..repo.clone() })
}

/// Copies the tree at `from` to `to` (files and directories).
fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    for entry in walkdir::WalkDir::new(from) {
        let entry = entry.with_context(|| format!("reading {}", from.display()))?;
        let target = to.join(entry.path().strip_prefix(from).context("walkdir stays below its root")?);
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&target).with_context(|| format!("creating {}", target.display()))?;
        } else {
            std::fs::copy(entry.path(), &target).with_context(|| format!("copying to {}", target.display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_nested_trees() {
        let from = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(from.path().join("a/b")).unwrap();
        std::fs::write(from.path().join("a/b/c.txt"), "c").unwrap();
        std::fs::write(from.path().join("top.txt"), "t").unwrap();
        let to = tempfile::tempdir().unwrap();
        copy_dir(from.path(), &to.path().join("copy")).unwrap();
        assert_eq!(std::fs::read_to_string(to.path().join("copy/a/b/c.txt")).unwrap(), "c");
        assert_eq!(std::fs::read_to_string(to.path().join("copy/top.txt")).unwrap(), "t");
    }
}
