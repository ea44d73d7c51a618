//! `cargo xtask bench size`: `image size` on the size fixture with growing
//! layers of random data: wall time, and the process's peak RSS, which must
//! stay flat however big the layers are (everything is streamed).

use std::time::Instant;

use anyhow::{Context, Result};

use super::{human, measure};
use crate::build;
use crate::built::Target;
use crate::catalog::{Catalog, Image, Platform};
use crate::docker;

#[derive(Debug, Clone, clap::Args)]
pub struct SizeBenchArgs {
    /// MB of random data in the fixture, spread over four layers; one run per value.
    #[arg(long, value_delimiter = ',', default_values_t = vec![100, 400])]
    pub mb: Vec<u64>,
    /// The platform to build and measure.
    #[arg(long, default_value = "linux/amd64")]
    pub platform: String,
}

/// The size fixture's Dockerfile and context (test/images/size-fixture).
const FIXTURE_DIR: &str = "test/images/size-fixture";

/// Builds the size fixture with `mb` MB of random data for each value asked
/// for and times `image size` on it: wall time, the process's peak RSS
/// (which must not grow with the layers) and the largest layer. Figures, not
/// a pass/fail test.
pub fn bench(args: &SizeBenchArgs) -> Result<()> {
    let platform = Platform::parse(&args.platform)?;
    let repo_catalog = Catalog::load(&crate::repo_root().join(crate::catalog::DEFAULT_CATALOG))?;
    let busybox = repo_catalog.get("busybox-fixture")?;
    let mut rows =
        vec![["DATA", "LARGEST LAYER", "IMAGE", "WALL", "DOCKER SAVE", "PEAK RSS"].map(String::from).to_vec()];
    let mut slowest = 0.0f64;
    for &total_mb in &args.mb {
        let fixture = Image {
            name: "size-bench".into(),
            repository: "ralph-size-bench".into(),
            description: "benchmark fixture for `image size`".into(),
            dockerfile: crate::repo_root().join(FIXTURE_DIR).join("Dockerfile"),
            context: crate::repo_root().join(FIXTURE_DIR),
            platforms: vec![platform.clone()],
            args: [("BULK_MB".to_string(), (total_mb / 4).to_string())].into(),
            budget: None,
            ..busybox.clone()
        };
        let catalog = Catalog { images: vec![fixture], ..repo_catalog.clone() };
        eprintln!("bench: building the size fixture with {total_mb} MB of random data ...");
        let built = build::run(&catalog, &bench_build_args(&platform))?;
        let refs = built.images.first().map(|i| i.refs.clone()).unwrap_or_default();
        let reference = refs.first().context("the build reported no image")?.clone();
        let tag = built.images[0].tags[0].clone();
        let target =
            Target { image: &catalog.images[0], reference: reference.clone(), tag, platforms: vec![platform.clone()] };

        let reset = reset_peak_rss();
        let started = Instant::now();
        let measured = measure(&target, None, 10);
        let wall = started.elapsed().as_secs_f64();
        let peak = peak_rss_bytes();
        for r in &refs {
            let _ = docker::docker().args(["image", "rm", r.as_str()]).probe().output();
        }
        let measured = measured?;
        let p = &measured.platforms[0];
        let largest = p.layers.iter().map(|l| l.uncompressed_bytes).max().unwrap_or(0);
        slowest = slowest.max(wall);
        rows.push(vec![
            format!("{total_mb} MB"),
            human(largest),
            human(p.uncompressed_bytes),
            format!("{wall:.2}s"),
            format!("{:.2}s", measured.save_seconds),
            format!("{}{}", peak.map_or("?".into(), human), if reset { "" } else { " (process peak)" }),
        ]);
    }
    build::print_rows(&rows);
    println!(
        "goal: under 15 s each: {} (slowest {slowest:.2}s); peak RSS should stay flat as the layers grow",
        if slowest < 15.0 { "met" } else { "NOT met" }
    );
    Ok(())
}

fn bench_build_args(platform: &Platform) -> build::BuildArgs {
    build::BuildArgs {
        cache: build::CacheMode::None,
        ..build::BuildArgs::local(vec!["size-bench".into()], vec![platform.to_string()])
    }
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
    fn peak_rss_is_read_from_vm_hwm() {
        assert_eq!(parse_vm_hwm("Name:\txtask\nVmPeak:\t  9000 kB\nVmHWM:\t    2048 kB\n"), Some(2048 * 1024));
        assert_eq!(parse_vm_hwm("Name:\txtask\n"), None);
    }
}
