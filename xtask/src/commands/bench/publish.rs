//! `cargo xtask bench publish [IMAGE]`: `image publish` of an image already
//! built and checked (default `worker-standin`, both platforms) to a private
//! local registry, twice: wall time split into push, manifest, attest, sign,
//! verify and tag, and the blobs and bytes uploaded, read from the
//! registry's request log: the image's own (layers and configs) apart from
//! signatures and attestations. The second publish of the same digests
//! should upload no layer again.

use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde::Serialize;

use super::super::Command;
use crate::checks::size::human;
use crate::engine::imagetools;
use crate::engine::process::{last_lines, Cmd};
use crate::engine::registry::{self, LocalRegistry};
use crate::model::catalog::Catalog;
use crate::output::table::Table;
use crate::output::{JsonOut, Report, Sinks};
use crate::pipeline::publish::{Phases, PublishReport};

#[derive(Debug, Clone, clap::Args)]
pub struct BenchPublish {
    /// The image to publish (its `image check` runs first, untimed).
    #[arg(default_value = "worker-standin")]
    pub image: String,
    #[command(flatten)]
    pub out: JsonOut,
}

#[derive(Debug, Serialize)]
pub struct BenchPublishReport {
    pub image: String,
    pub platforms: usize,
    pub runs: Vec<PublishRun>,
}

#[derive(Debug, Serialize)]
pub struct PublishRun {
    pub run: String,
    pub wall_seconds: f64,
    pub phases: Phases,
    /// The image's own blobs (layers and configs) uploaded.
    pub image_blobs_uploaded: usize,
    pub image_bytes_uploaded: u64,
    /// Signatures and attestations uploaded (new with every signing).
    pub other_blobs_uploaded: usize,
    pub other_bytes_uploaded: u64,
}

const PASSWORD: &str = "bench";

impl Command for BenchPublish {
    type Report = BenchPublishReport;

    fn run(&self, catalog: &Catalog) -> Result<BenchPublishReport> {
        catalog.select(std::slice::from_ref(&self.image))?;
        let dir = tempfile::Builder::new()
            .prefix("xtask-bench-publish-")
            .tempdir()
            .context("creating a scratch directory")?;
        let key = dir.path().join("cosign");
        Cmd::new("cosign")
            .args(["generate-key-pair", "--output-key-prefix"])
            .arg(&key)
            .env("COSIGN_PASSWORD", PASSWORD)
            .read()
            .context("generating a cosign key pair")?;
        let check = dir.path().join("check.json");
        eprintln!("bench: image check {} (untimed) ...", self.image);
        xtask(catalog, &["image", "check", &self.image, "--quiet", "--report"], &check)?;
        let registry = LocalRegistry::start(dir.path())?;
        let mut offset = 0;
        let mut report = BenchPublishReport { image: self.image.clone(), platforms: 0, runs: Vec::new() };
        for run in ["first publish", "same digests again"] {
            eprintln!("bench: {run} to {} ...", registry.address);
            let out = dir.path().join("publish.json");
            let started = Instant::now();
            let args = [
                "image",
                "publish",
                &self.image,
                "--registry",
                &registry.address,
                "--check-report",
                &check.display().to_string(),
                "--key",
                &key.with_extension("key").display().to_string(),
                "--no-tlog",
                "--quiet",
                "--report",
            ];
            xtask(catalog, &args, &out)?;
            let wall_seconds = started.elapsed().as_secs_f64();
            let (log, end) = registry.log_since(offset)?;
            offset = end;
            let published: PublishReport = serde_json::from_str(&std::fs::read_to_string(&out)?)?;
            let image = published.images.first().context("the publish report names no image")?;
            let mut own = std::collections::BTreeSet::new();
            for p in &image.platforms {
                let (raw, _) = imagetools::manifest(&format!("{}@{}", image.repository, p.digest))?;
                let manifest: serde_json::Value = serde_json::from_slice(&raw)?;
                own.extend(manifest["config"]["digest"].as_str().map(str::to_string));
                own.extend(
                    manifest["layers"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|l| l["digest"].as_str().map(str::to_string)),
                );
            }
            let (image_blobs, other_blobs): (Vec<String>, Vec<String>) =
                registry::uploaded_blobs(&log).into_iter().partition(|d| own.contains(d));
            let bytes = |blobs: &[String]| blobs.iter().filter_map(|d| registry.blob_size(d)).sum();
            report.platforms = image.platforms.len();
            report.runs.push(PublishRun {
                run: run.into(),
                wall_seconds,
                phases: image.phases.clone(),
                image_blobs_uploaded: image_blobs.len(),
                image_bytes_uploaded: bytes(&image_blobs),
                other_blobs_uploaded: other_blobs.len(),
                other_bytes_uploaded: bytes(&other_blobs),
            });
        }
        Ok(report)
    }

    fn sinks(&self) -> Sinks<'_> {
        self.out.sinks()
    }
}

/// This xtask, on the same catalog, with `args` and the report file last.
fn xtask(catalog: &Catalog, args: &[&str], report: &Path) -> Result<()> {
    let exe = std::env::current_exe().context("finding the xtask binary")?;
    let out = Cmd::new(exe)
        .arg("--catalog")
        .arg(&catalog.path)
        .args(args)
        .arg(report)
        .env("COSIGN_PASSWORD", PASSWORD)
        .output()?;
    if !out.status.success() {
        bail!("`xtask {}` failed: {}", args[..2].join(" "), last_lines(&String::from_utf8_lossy(&out.stderr), 2));
    }
    Ok(())
}

impl Report for BenchPublishReport {
    fn render(&self) -> String {
        let mut table = Table::new([
            "RUN",
            "TOTAL",
            "PUSH",
            "MANIFEST",
            "ATTEST",
            "SIGN",
            "VERIFY",
            "TAG",
            "LAYERS UPLOADED",
            "SIGNATURES UPLOADED",
        ]);
        for r in &self.runs {
            let p = &r.phases;
            table.row([
                r.run.clone(),
                format!("{:.1}s", r.wall_seconds),
                format!("{:.1}s", p.push),
                format!("{:.1}s", p.manifest),
                format!("{:.1}s", p.attest),
                format!("{:.1}s", p.sign),
                format!("{:.1}s", p.verify),
                format!("{:.1}s", p.tag),
                format!("{} ({})", r.image_blobs_uploaded, human(r.image_bytes_uploaded)),
                format!("{} ({})", r.other_blobs_uploaded, human(r.other_bytes_uploaded)),
            ]);
        }
        format!(
            "{} ({} platforms) published to a private local registry:\n{}",
            self.image,
            self.platforms,
            table.render()
        )
    }
}
