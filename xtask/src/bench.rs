//! Benchmarks that print figures and assert nothing (machines are noisy):
//! `bench build`, how much the build cache saves on the busybox fixture;
//! `bench smoke`, how long all smoke checks of one image take on amd64.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::build::{self, BuildArgs, ImageReport};
use crate::catalog::{Catalog, Image};

/// The fixture the benchmark builds (see images.toml).
const BENCH_IMAGE: &str = "busybox-fixture";
/// The file the "touched" scenario changes: copied by the fixture's last step.
const LATE_FILE: &str = "late.txt";

#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Megabytes of random data the fixture compresses per platform, so the
    /// cold build does measurable work.
    #[arg(long, default_value_t = 64)]
    pub work_mb: u32,
    /// Platforms (default: the fixture's, amd64 and arm64).
    #[arg(long, value_delimiter = ',')]
    pub platform: Vec<String>,
}

pub fn build(args: &BenchArgs) -> Result<()> {
    let repo_catalog = Catalog::load(&crate::repo_root().join(crate::catalog::DEFAULT_CATALOG))?;
    let fixture = repo_catalog.select(&[BENCH_IMAGE.to_string()])?[0].clone();
    let scratch = std::env::temp_dir().join(format!("xtask-bench-{}", std::process::id()));
    let _cleanup = RemoveDirOnDrop(scratch.clone());
    let catalog = scratch_catalog(&repo_catalog, &fixture, &scratch)?;

    let mut build_args = BuildArgs {
        cache_dir: Some(scratch.join("cache")),
        no_cache: true,
        build_args: vec![format!("WORK_MB={}", args.work_mb)],
        ..BuildArgs::local(vec![BENCH_IMAGE.into()], args.platform.clone())
    };

    eprintln!("bench: cold build (--no-cache) of {BENCH_IMAGE}, WORK_MB={} ...", args.work_mb);
    let cold = single(build::run(&catalog, &build_args)?)?;
    build_args.no_cache = false;
    eprintln!("bench: no-op rebuild ...");
    let noop = single(build::run(&catalog, &build_args)?)?;
    let late = catalog.images[0].context.join(LATE_FILE);
    std::fs::write(&late, format!("touched by bench {}\n", std::process::id()))?;
    eprintln!("bench: rebuild after touching {LATE_FILE} ...");
    let touched = single(build::run(&catalog, &build_args)?)?;

    let mut rows = vec![["SCENARIO", "WALL", "VS COLD", "PLATFORM", "CACHED STEPS", "EARLIER STEPS CACHED"]
        .map(String::from)
        .to_vec()];
    for (name, r) in [("cold", &cold), ("no-op rebuild", &noop), ("touch late file", &touched)] {
        for p in &r.platforms {
            // Every step but the last (the COPY of the late file) should be cached.
            let earlier = p.steps_cached >= p.steps_total.saturating_sub(1);
            rows.push(vec![
                name.into(),
                format!("{:.2}s", r.wall_seconds),
                format!("{:.1}%", 100.0 * r.wall_seconds / cold.wall_seconds),
                p.platform.to_string(),
                build::format_cache(&crate::progress::CacheStats { cached: p.steps_cached, total: p.steps_total }),
                if name == "cold" { "-".into() } else { yes_no(earlier) },
            ]);
        }
    }
    build::print_rows(&rows);
    let ratio = noop.wall_seconds / cold.wall_seconds;
    println!(
        "goal: no-op rebuild under 10% of cold: {:.1}% ({}); every step before the changed one cached: {}",
        ratio * 100.0,
        if ratio < 0.10 { "met" } else { "NOT met" },
        yes_no(touched.platforms.iter().all(|p| p.steps_cached + 1 == p.steps_total))
    );
    for tag in &cold.refs {
        let _ = crate::docker::docker().args(["image", "rm", tag.as_str()]).probe().output();
    }
    Ok(())
}

#[derive(Debug, Clone, clap::Args)]
pub struct SmokeBenchArgs {
    /// The image whose checks are timed (built first, outside the timing).
    #[arg(default_value = "worker-standin")]
    pub image: String,
    /// Timed runs of each scenario; the median is reported.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
}

/// All smoke checks of one image on linux/amd64, without and with the
/// read-only check (which waits `stay_up_seconds` on purpose). Goal: under
/// 10 s, the build excluded.
pub fn smoke(args: &SmokeBenchArgs) -> Result<()> {
    let catalog = Catalog::load(&crate::repo_root().join(crate::catalog::DEFAULT_CATALOG))?;
    let amd64 = "linux/amd64".to_string();
    let build_args = BuildArgs::local(vec![args.image.clone()], vec![amd64.clone()]);
    eprintln!("bench: building {} for linux/amd64 (not timed) ...", args.image);
    build::run(&catalog, &build_args)?;
    let mut rows = vec![["SCENARIO", "WALL (MEDIAN)", "MIN-MAX", "CHECKS", "GOAL < 10 s"].map(String::from).to_vec()];
    for (name, no_readonly) in [("declared checks", true), ("declared checks + read-only", false)] {
        let mut times = Vec::new();
        let mut checks = 0;
        for run in 0..args.runs.max(1) {
            eprintln!("bench: {name}, run {} ...", run + 1);
            let smoke_args = crate::smoke::SmokeArgs {
                selection: crate::built::Selection {
                    images: vec![args.image.clone()],
                    platform: vec![amd64.clone()],
                    tag: None,
                    registry: None,
                },
                timeout: 120,
                jobs: 4,
                no_readonly,
                report: None,
                junit: None,
            };
            let started = std::time::Instant::now();
            let report = crate::smoke::run(&catalog, &smoke_args)?;
            times.push(started.elapsed().as_secs_f64());
            checks = report.passed + report.failed;
            crate::smoke::ensure_passed(&report)?;
        }
        let (median, min, max) = crate::runtime::summarize(&times);
        rows.push(vec![
            name.into(),
            format!("{median:.2}s"),
            format!("{min:.2}-{max:.2}s (n={})", times.len()),
            checks.to_string(),
            if median < 10.0 { "met" } else { "NOT met" }.into(),
        ]);
    }
    build::print_rows(&rows);
    Ok(())
}

fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.into()
}

fn single(report: build::BuildReport) -> Result<ImageReport> {
    report.images.into_iter().next().context("the build reported no image")
}

/// The fixture copied to `dir`, so touching its late file leaves the
/// repository alone, and its cache in `dir` too.
fn scratch_catalog(repo: &Catalog, fixture: &Image, dir: &Path) -> Result<Catalog> {
    let context = dir.join("context");
    copy_dir(&fixture.context, &context)?;
    let dockerfile_rel =
        fixture.dockerfile.strip_prefix(&fixture.context).context("the fixture's Dockerfile is in its context")?;
    let image = Image {
        dockerfile: context.join(dockerfile_rel),
        context,
        // Its own repository, so the benchmark never retags the real fixture.
        repository: format!("{}-bench", fixture.repository),
        ..fixture.clone()
    };
    Ok(Catalog { path: dir.join("images.toml"), images: vec![image], ..repo.clone() })
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

struct RemoveDirOnDrop(PathBuf);

impl Drop for RemoveDirOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
