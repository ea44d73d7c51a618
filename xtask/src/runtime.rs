//! `cargo xtask image runtime`: how an image behaves when it runs, as the
//! standards' table has it: startup time (from `docker create` to the exit
//! of the entrypoint with `--version`, median of several runs) and peak
//! memory (the high-water mark of the container's memory cgroup).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use serde::Serialize;

use crate::built::{self, Selection, Target};
use crate::catalog::{Catalog, Platform};
use crate::container::{self, Session};
use crate::docker;

#[derive(Debug, Clone, clap::Args)]
pub struct RuntimeArgs {
    #[command(flatten)]
    pub selection: Selection,
    /// Runs per image and platform; the median is reported.
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// Write the figures as JSON to FILE.
    #[arg(long)]
    pub report: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RuntimeReport {
    pub images: Vec<RuntimeFigures>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RuntimeFigures {
    pub image: String,
    pub platform: Platform,
    pub args: Vec<String>,
    pub runs: usize,
    pub startup_ms_median: f64,
    pub startup_ms_min: f64,
    pub startup_ms_max: f64,
    /// The highest peak of the runs; `None` where the engine's cgroups can't
    /// be read (a systemd cgroup driver).
    pub peak_memory_bytes: Option<u64>,
}

/// What the entrypoint gets when the catalog doesn't say (`startup_args`).
pub const DEFAULT_ARGS: &[&str] = &["--version"];

pub fn run(catalog: &Catalog, args: &RuntimeArgs) -> Result<RuntimeReport> {
    let targets = args.selection.resolve(catalog)?;
    docker::daemon_version()?;
    let mut pulled = Vec::new();
    for t in &targets {
        built::ensure_built(t, args.selection.registry.as_deref())?;
        if args.selection.registry.is_some() {
            pulled.push(built::pull(&t.reference, &t.platforms)?);
        }
    }
    let session = Session::new("runtime");
    let mut images = Vec::new();
    for target in &targets {
        for platform in &target.platforms {
            eprintln!("==> runtime {} on {platform}: {} runs", target.image.name, args.runs.max(1));
            images.push(measure(&session, target, platform, args.runs.max(1))?);
        }
    }
    let report = RuntimeReport { images };
    if let Some(path) = &args.report {
        crate::build::write_report(path, &report)?;
    }
    Ok(report)
}

/// Startup and peak memory of one image on one platform.
pub fn measure(session: &Session, target: &Target, platform: &Platform, runs: usize) -> Result<RuntimeFigures> {
    let args: Vec<String> =
        target.image.startup_args.clone().unwrap_or_else(|| DEFAULT_ARGS.iter().map(|s| s.to_string()).collect());
    let mut times = Vec::new();
    let mut peak: Option<u64> = None;
    for run in 0..runs {
        let parent = format!("/{}-{run}", session.id());
        let spec = container::Spec {
            image: target.reference.clone(),
            platform: Some(platform.clone()),
            args: args.clone(),
            cgroup_parent: Some(parent.clone()),
            ..Default::default()
        };
        let started = Instant::now();
        let name = session.create(&spec, "startup")?;
        let out =
            docker::docker().args(["start", "--attach", &name]).probe().output_timeout(Duration::from_secs(120))?;
        let elapsed = started.elapsed();
        let (_, code) = container::state(&name)?;
        session.remove(&name);
        let run_peak = read_peak_memory(&parent);
        remove_cgroup(&parent);
        let Some(out) = out else {
            bail!("{} `{}` did not exit within 120s on {platform}", target.image.name, args.join(" "));
        };
        if code != 0 {
            bail!(
                "{} with `{}` exited {code} on {platform} ({}): set `startup_args` in images.toml to arguments it answers quickly",
                target.image.name,
                args.join(" "),
                crate::process::last_lines(&String::from_utf8_lossy(&out.stderr), 1)
            );
        }
        times.push(elapsed.as_secs_f64() * 1000.0);
        peak = match (peak, run_peak) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }
    let (median, min, max) = summarize(&times);
    Ok(RuntimeFigures {
        image: target.image.name.clone(),
        platform: platform.clone(),
        args,
        runs,
        startup_ms_median: median,
        startup_ms_min: min,
        startup_ms_max: max,
        peak_memory_bytes: peak,
    })
}

/// Median, min and max of the samples (the median of an even count is the
/// mean of the middle two).
pub fn summarize(samples: &[f64]) -> (f64, f64, f64) {
    if samples.is_empty() {
        return (0.0, 0.0, 0.0);
    }
    let mut s = samples.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let n = s.len();
    let median = if n % 2 == 1 { s[n / 2] } else { (s[n / 2 - 1] + s[n / 2]) / 2.0 };
    (median, s[0], s[n - 1])
}

/// The memory high-water mark of the cgroup the container ran under (its
/// parent outlives it): cgroup v2's `memory.peak`, or v1's
/// `memory.max_usage_in_bytes`.
fn read_peak_memory(parent: &str) -> Option<u64> {
    let root = Path::new("/sys/fs/cgroup");
    let rel = parent.trim_start_matches('/');
    [root.join(rel).join("memory.peak"), root.join("memory").join(rel).join("memory.max_usage_in_bytes")]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .and_then(|s| s.trim().parse().ok())
}

/// Removes the (now empty) parent cgroup from every hierarchy.
fn remove_cgroup(parent: &str) {
    let rel = parent.trim_start_matches('/');
    let root = Path::new("/sys/fs/cgroup");
    let _ = std::fs::remove_dir(root.join(rel));
    if let Ok(controllers) = std::fs::read_dir(root) {
        for c in controllers.flatten() {
            let _ = std::fs::remove_dir(c.path().join(rel));
        }
    }
}

pub fn format_bytes(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

pub fn print_table(report: &RuntimeReport) {
    let mut rows =
        vec![["IMAGE", "PLATFORM", "COMMAND", "STARTUP (MEDIAN)", "MIN-MAX", "PEAK MEMORY"].map(String::from).to_vec()];
    for f in &report.images {
        rows.push(vec![
            f.image.clone(),
            f.platform.to_string(),
            f.args.join(" "),
            format!("{:.0} ms", f.startup_ms_median),
            format!("{:.0}-{:.0} ms (n={})", f.startup_ms_min, f.startup_ms_max, f.runs),
            f.peak_memory_bytes.map_or("n/a".into(), format_bytes),
        ]);
    }
    crate::build::print_rows(&rows);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(summarize(&[30.0, 10.0, 20.0]), (20.0, 10.0, 30.0));
        assert_eq!(summarize(&[4.0, 1.0, 3.0, 2.0]), (2.5, 1.0, 4.0));
        assert_eq!(summarize(&[]), (0.0, 0.0, 0.0));
    }

    #[test]
    fn bytes_in_megabytes() {
        assert_eq!(format_bytes(12_345_678), "12.3 MB");
    }
}
