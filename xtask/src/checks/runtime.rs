//! How an image behaves when it runs, as the standards' table has it:
//! startup time (from `docker create` to the exit of the entrypoint with
//! `--version`, median of several runs) and peak memory (the high-water mark
//! of the memory cgroup the container ran under).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use serde::Serialize;

use crate::engine::container::{self, Session};
use crate::engine::image::BuiltImage;
use crate::engine::{docker, process};
use crate::model::catalog::Platform;

/// Runs per image and platform, unless `--runs` says otherwise.
pub const DEFAULT_RUNS: usize = 5;

#[derive(Debug, Clone, clap::Args)]
pub struct RuntimeOptions {
    /// Runs per image and platform for the startup figure; the median is reported.
    #[arg(long, default_value_t = DEFAULT_RUNS)]
    pub runs: usize,
}

impl Default for RuntimeOptions {
    fn default() -> RuntimeOptions {
        RuntimeOptions { runs: DEFAULT_RUNS }
    }
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
    /// be read (an unknown cgroup driver, or a parent cgroup it refused).
    pub peak_memory_bytes: Option<u64>,
}

/// What the entrypoint gets when the catalog doesn't say (`startup_args`).
pub const DEFAULT_ARGS: &[&str] = &["--version"];

/// How long one startup may take.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(120);

/// Where a run's container goes, so that its memory high-water mark can be
/// read after it is gone: the parent cgroup outlives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupParent {
    /// What `--cgroup-parent` gets.
    pub arg: String,
    /// The parent's directory under each cgroup hierarchy.
    pub dir: String,
}

/// The parent cgroup for run `run` of a session, as the engine's cgroup
/// driver wants it named: a path for `cgroupfs`, a `.slice` for `systemd`
/// (which refuses paths; `-` in a slice name means nesting, so none is
/// used). `None` for a driver we don't know: the figure is then unavailable.
pub fn cgroup_parent(driver: &str, session: &str, run: usize) -> Option<CgroupParent> {
    match driver {
        "cgroupfs" => Some(CgroupParent { arg: format!("/{session}-{run}"), dir: format!("{session}-{run}") }),
        "systemd" => {
            let slice = format!("{}_{run}.slice", session.replace(|c: char| !c.is_ascii_alphanumeric(), "_"));
            Some(CgroupParent { arg: slice.clone(), dir: slice })
        }
        _ => None,
    }
}

/// Startup and peak memory of one image on one platform.
pub fn measure(session: &Session, built: &BuiltImage<'_>, platform: &Platform, runs: usize) -> Result<RuntimeFigures> {
    let image = built.image;
    let args: Vec<String> =
        image.startup_args.clone().unwrap_or_else(|| DEFAULT_ARGS.iter().map(|s| s.to_string()).collect());
    let driver = docker::cgroup_driver().unwrap_or_default();
    let mut times = Vec::new();
    let mut peaks: Vec<Option<u64>> = Vec::new();
    for run in 0..runs.max(1) {
        let mut parent = cgroup_parent(&driver, session.id(), run);
        let mut spec = container::Spec {
            image: built.runnable(platform).to_string(),
            platform: Some(platform.clone()),
            args: args.clone(),
            cgroup_parent: parent.as_ref().map(|p| p.arg.clone()),
            ..Default::default()
        };
        let started = Instant::now();
        let name = match session.create(&spec, "startup") {
            Ok(name) => name,
            // A daemon that refuses the parent still gives the startup time.
            Err(_) if parent.is_some() => {
                parent = None;
                spec.cgroup_parent = None;
                session.create(&spec, "startup")?
            }
            Err(e) => return Err(e),
        };
        let out = docker::docker().args(["start", "--attach", &name]).probe().output_timeout(STARTUP_TIMEOUT)?;
        let elapsed = started.elapsed();
        let (_, code) = container::state(&name)?;
        session.remove(&name);
        peaks.push(parent.as_ref().and_then(|p| read_peak_memory(&p.dir)));
        if let Some(p) = &parent {
            remove_cgroup(&p.dir);
        }
        let Some(out) = out else {
            bail!(
                "{} `{}` did not exit within {}s on {platform}",
                image.name,
                args.join(" "),
                STARTUP_TIMEOUT.as_secs()
            );
        };
        if code != 0 {
            bail!(
                "{} with `{}` exited {code} on {platform} ({}): set `startup_args` in images.toml to arguments it answers quickly",
                image.name,
                args.join(" "),
                process::last_lines(&String::from_utf8_lossy(&out.stderr), 1)
            );
        }
        times.push(elapsed.as_secs_f64() * 1000.0);
    }
    let (median, min, max) = summarize(&times);
    Ok(RuntimeFigures {
        image: image.name.clone(),
        platform: platform.clone(),
        args,
        runs: times.len(),
        startup_ms_median: median,
        startup_ms_min: min,
        startup_ms_max: max,
        peak_memory_bytes: highest(&peaks),
    })
}

/// The highest peak of the runs that have one.
fn highest(peaks: &[Option<u64>]) -> Option<u64> {
    peaks.iter().flatten().max().copied()
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

/// The memory high-water mark of the parent cgroup `dir` the container ran
/// under: cgroup v2's `memory.peak`, or v1's `memory.max_usage_in_bytes`.
fn read_peak_memory(dir: &str) -> Option<u64> {
    let root = Path::new("/sys/fs/cgroup");
    let rel = dir;
    [root.join(rel).join("memory.peak"), root.join("memory").join(rel).join("memory.max_usage_in_bytes")]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .and_then(|s| s.trim().parse().ok())
}

/// Removes the (now empty) parent cgroup from every hierarchy.
fn remove_cgroup(dir: &str) {
    let rel = dir;
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
    fn the_parent_cgroup_is_named_as_the_driver_wants_it() {
        // Before: always `--cgroup-parent=/…`, which a systemd-driven daemon refuses.
        let fs = cgroup_parent("cgroupfs", "xtask-runtime-12-ab", 0).unwrap();
        assert_eq!((fs.arg.as_str(), fs.dir.as_str()), ("/xtask-runtime-12-ab-0", "xtask-runtime-12-ab-0"));
        let sd = cgroup_parent("systemd", "xtask-runtime-12-ab", 1).unwrap();
        assert_eq!((sd.arg.as_str(), sd.dir.as_str()), ("xtask_runtime_12_ab_1.slice", "xtask_runtime_12_ab_1.slice"));
        assert_eq!(cgroup_parent("", "x", 0), None, "unknown driver: the figure is unavailable, the check still runs");
    }

    #[test]
    fn the_peak_is_the_highest_of_the_runs_that_have_one() {
        assert_eq!(highest(&[Some(3), Some(7), Some(5)]), Some(7));
        assert_eq!(highest(&[Some(3), None]), Some(3));
        assert_eq!(highest(&[None, None]), None);
        assert_eq!(highest(&[]), None);
    }

    #[test]
    fn bytes_in_megabytes() {
        assert_eq!(format_bytes(12_345_678), "12.3 MB");
    }
}
