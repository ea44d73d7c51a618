//! `cargo xtask image size`: what each image weighs per platform,
//! uncompressed and compressed, layer by layer; its largest files; the bytes
//! it wastes (as dive counts them); and the verdict against its budget.
//!
//! The image is exported once with `docker save` to a temporary file and its
//! layers are streamed from there in parallel (see [`archive`]); nothing
//! bigger than a file list is held in memory.

mod archive;
mod bench;
mod budget;
mod layers;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::build;
use crate::built::{self, Target};
use crate::catalog::{Budget, Catalog, Image, Platform};
use crate::docker;

use archive::{platform_matches, PlatformImage, SavedImage, Span};
pub use bench::{bench, SizeBenchArgs};
pub use budget::MB;
use budget::{mb, Status, Verdict};

#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "Sizes and budgets are decimal: 1 MB = 1,000,000 bytes (kB = 1,000; GB = 1,000,000,000).\n\
Uncompressed: the layer tars' lengths. Compressed: what a pull transfers, i.e. the registry manifest's layer sizes \
with --registry (the platforms are pulled first, so the local copy is the pushed one), else the gzip blobs \
`docker save` exports (gzip of the layer where it is stored as plain tar).\n\
Wasted bytes and efficiency are dive's.\n\
Exits non-zero, after the report, when an image is over its budget.")]
pub struct SizeArgs {
    #[command(flatten)]
    pub selection: built::Selection,
    /// How many of the largest files of the final filesystem to list.
    #[arg(long, default_value_t = 10)]
    pub top: usize,
    /// Write the report as JSON to FILE.
    #[arg(long)]
    pub report: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SizeReport {
    /// Bytes per MB in every figure and summary: 1,000,000.
    pub mb_bytes: u64,
    pub images: Vec<ImageSize>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ImageSize {
    pub image: String,
    pub reference: String,
    pub budget: Option<Budget>,
    pub platforms: Vec<PlatformSize>,
    /// Wall time of the analysis: export, scan, sums.
    pub seconds: f64,
    /// Of which `docker save`.
    #[serde(skip)]
    pub save_seconds: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CompressedSource {
    /// The layer sizes in the registry's manifest.
    Registry,
    /// The gzip layer blobs the local store exported.
    LocalBlobs,
    /// Some layers were stored as plain tar: gzip (default level) of those.
    GzipEstimate,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlatformSize {
    pub platform: Platform,
    /// Sum of the layers' uncompressed sizes.
    pub uncompressed_bytes: u64,
    pub compressed_bytes: u64,
    pub compressed_source: CompressedSource,
    /// Sum of the sizes in the layers' tar headers: dive's image size.
    pub files_bytes: u64,
    pub layers: Vec<LayerSize>,
    pub largest_files: Vec<LargeFile>,
    /// dive's figures: see `layers::dive_efficiency`.
    pub wasted_bytes: u64,
    pub efficiency: f64,
    /// How many paths waste bytes; the largest are listed in `inefficiencies`.
    pub wasted_paths: usize,
    pub inefficiencies: Vec<Inefficiency>,
    pub budget: Verdict,
}

#[derive(Debug, Clone, Serialize)]
pub struct LayerSize {
    pub index: usize,
    pub digest: Option<String>,
    /// The history entry that made the layer.
    pub created_by: String,
    pub uncompressed_bytes: u64,
    pub compressed_bytes: u64,
    pub files_bytes: u64,
    pub entries: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct LargeFile {
    pub path: String,
    pub bytes: u64,
    /// Index of the layer that added it.
    pub layer: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Inefficiency {
    pub path: String,
    pub count: usize,
    pub wasted_bytes: u64,
}

/// How many of the wasting paths the report lists.
const LISTED_INEFFICIENCIES: usize = 10;

/// Measures every selected image, prints the report (and writes it with
/// `--report`), then fails if any image is over its budget.
pub fn run(catalog: &Catalog, args: &SizeArgs) -> Result<()> {
    let registry = args.selection.registry.as_deref();
    let targets = args.selection.resolve(catalog)?;
    docker::daemon_version()?;
    if let Some(registry) = registry {
        docker::check_registry(registry)?;
    }
    for target in &targets {
        built::ensure_built(target, registry)?;
    }
    let mut report = SizeReport { mb_bytes: MB, images: Vec::new() };
    for target in &targets {
        report.images.push(measure(target, registry, args.top)?);
    }
    print_report(&report);
    if let Some(path) = &args.report {
        build::write_report(path, &report)?;
    }
    ensure_within_budget(&report)
}

/// One image, all its requested platforms, from one `docker save`.
pub fn measure(target: &Target, registry: Option<&str>, top: usize) -> Result<ImageSize> {
    let started = Instant::now();
    let image = target.image;
    let reference = target.reference.as_str();
    let _pulled = match registry {
        Some(_) => Some(built::pull(reference, &target.platforms)?),
        None => None,
    };

    let file = TempFile(std::env::temp_dir().join(format!("xtask-size-{}-{}.tar", std::process::id(), image.name)));
    docker::docker().args(["save", reference, "-o"]).arg(&file.0).read().with_context(|| {
        format!(
            "image `{}`: exporting {reference} (if its layers are missing from the local store, run `{}`)",
            image.name,
            built::build_hint(image, None)
        )
    })?;
    let save_seconds = started.elapsed().as_secs_f64();
    let saved = SavedImage::open(&file.0)?;
    let found = saved.platform_images()?;

    let mut chosen: Vec<&PlatformImage> = Vec::new();
    for platform in &target.platforms {
        match found.iter().find(|i| platform_matches(platform, &i.platform)) {
            Some(i) => chosen.push(i),
            None => bail!(missing_platform(image, reference, platform, &found, registry)),
        }
    }

    // Each distinct blob once, all of them in parallel.
    let mut blob_index: HashMap<Span, usize> = HashMap::new();
    let mut spans: Vec<Span> = Vec::new();
    for layer in chosen.iter().flat_map(|i| &i.layers) {
        blob_index.entry(layer.span).or_insert_with(|| {
            spans.push(layer.span);
            spans.len() - 1
        });
    }
    let scans = archive::scan_layers(&saved.file, &spans)
        .with_context(|| format!("image `{}`: reading the layers of {reference}", image.name))?;

    let mut platforms = Vec::new();
    for (platform, found) in target.platforms.iter().zip(&chosen) {
        let layer_scans: Vec<&archive::LayerScan> = found.layers.iter().map(|l| &scans[blob_index[&l.span]]).collect();
        let registry_sizes = match registry {
            Some(_) => Some(
                registry_layer_sizes(reference, platform, found)
                    .with_context(|| format!("image `{}` on {platform}", image.name))?,
            ),
            None => None,
        };
        platforms.push(platform_size(image, top, found, &layer_scans, registry_sizes.as_deref()));
    }
    Ok(ImageSize {
        image: image.name.clone(),
        reference: reference.to_string(),
        budget: image.budget.clone(),
        platforms,
        seconds: started.elapsed().as_secs_f64(),
        save_seconds,
    })
}

/// Everything the report says about one platform, from its layers' scans.
fn platform_size(
    image: &Image,
    top: usize,
    found: &PlatformImage,
    scans: &[&archive::LayerScan],
    registry_sizes: Option<&[u64]>,
) -> PlatformSize {
    let instructions = layers::layer_instructions(&found.history, found.layers.len());
    let entries: Vec<&Vec<layers::Entry>> = scans.iter().map(|s| &s.entries).collect();
    let layer_sizes: Vec<LayerSize> = found
        .layers
        .iter()
        .zip(scans)
        .zip(instructions)
        .enumerate()
        .map(|(index, ((blob, scan), created_by))| LayerSize {
            index,
            digest: blob.digest.clone(),
            created_by,
            uncompressed_bytes: scan.uncompressed,
            compressed_bytes: registry_sizes.map_or(scan.compressed, |sizes| sizes[index]),
            files_bytes: scan.entries.iter().map(|e| e.size).sum(),
            entries: scan.entries.len(),
        })
        .collect();
    let compressed_source = match registry_sizes {
        Some(_) => CompressedSource::Registry,
        None if scans.iter().any(|s| s.compressed_estimated) => CompressedSource::GzipEstimate,
        None => CompressedSource::LocalBlobs,
    };
    let fs = layers::final_filesystem(&entries);
    let efficiency = layers::dive_efficiency(&entries);
    let uncompressed_bytes = layer_sizes.iter().map(|l| l.uncompressed_bytes).sum();
    let verdict = budget::verdict(image.budget.as_ref(), uncompressed_bytes, |file| layers::resolve_file(&fs, file));
    PlatformSize {
        platform: found.platform.clone(),
        uncompressed_bytes,
        compressed_bytes: layer_sizes.iter().map(|l| l.compressed_bytes).sum(),
        compressed_source,
        files_bytes: layer_sizes.iter().map(|l| l.files_bytes).sum(),
        largest_files: layers::largest_files(&fs, top)
            .into_iter()
            .map(|f| LargeFile { path: f.path, bytes: f.size, layer: f.layer })
            .collect(),
        wasted_bytes: efficiency.wasted_bytes,
        efficiency: efficiency.score,
        wasted_paths: efficiency.inefficiencies.len(),
        inefficiencies: efficiency
            .inefficiencies
            .into_iter()
            .take(LISTED_INEFFICIENCIES)
            .map(|i| Inefficiency { path: i.path, count: i.count, wasted_bytes: i.bytes })
            .collect(),
        layers: layer_sizes,
        budget: verdict,
    }
}

fn missing_platform(
    image: &Image,
    reference: &str,
    platform: &Platform,
    found: &[PlatformImage],
    registry: Option<&str>,
) -> String {
    let has: Vec<String> = found.iter().map(|i| i.platform.to_string()).collect();
    let push = registry.map(|r| format!(" --push --registry {r}")).unwrap_or_default();
    format!(
        "image `{}` has no {platform} ({reference} has {}): run `{}{push}`",
        image.name,
        if has.is_empty() { "none".to_string() } else { has.join(", ") },
        built::build_hint(image, Some(platform))
    )
}

/// The platform's layer sizes in the registry's manifest, checked against
/// the layers measured locally.
fn registry_layer_sizes(reference: &str, platform: &Platform, local: &PlatformImage) -> Result<Vec<u64>> {
    let top = docker::inspect_remote(reference)?;
    let manifest = if top.get("manifests").is_some() {
        let index: docker::Manifest =
            serde_json::from_value(top).with_context(|| format!("the index of {reference}"))?;
        let digest = docker::platform_digests(&index)
            .into_iter()
            .find(|(p, _)| platform_matches(platform, p))
            .map(|(_, digest)| digest)
            .with_context(|| format!("the registry's {reference} has no {platform}"))?;
        docker::inspect_remote(&format!("{}@{digest}", repository_of(reference)))?
    } else {
        top
    };
    let layers = manifest["layers"]
        .as_array()
        .with_context(|| format!("the manifest of {reference} for {platform} lists no layers"))?;
    let remote: Vec<(&str, u64)> =
        layers.iter().map(|l| (l["digest"].as_str().unwrap_or(""), l["size"].as_u64().unwrap_or(0))).collect();
    let local_digests: Vec<&str> = local.layers.iter().map(|l| l.digest.as_deref().unwrap_or("")).collect();
    let remote_digests: Vec<&str> = remote.iter().map(|(d, _)| *d).collect();
    if local_digests != remote_digests {
        bail!(
            "the registry's layers for {reference} differ from the pulled ones ({} vs {} layers): push the image again",
            remote.len(),
            local.layers.len()
        );
    }
    Ok(remote.into_iter().map(|(_, size)| size).collect())
}

/// `host:port/name:tag` or `name@sha256:…` without its tag or digest.
pub fn repository_of(reference: &str) -> &str {
    let without_digest = reference.split('@').next().unwrap_or(reference);
    match without_digest.rsplit_once(':') {
        Some((repository, tag)) if !tag.contains('/') => repository,
        _ => without_digest,
    }
}

struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A size for tables, in decimal units: `950 B`, `12.3 kB`, `301.2 MB`, `1.42 GB`.
pub fn human(bytes: u64) -> String {
    match bytes {
        b if b < 1_000 => format!("{b} B"),
        b if b < MB => format!("{:.1} kB", b as f64 / 1e3),
        b if b < 1_000 * MB => mb(b),
        b => format!("{:.2} GB", b as f64 / 1e9),
    }
}

fn source_text(source: CompressedSource) -> &'static str {
    match source {
        CompressedSource::Registry => "registry manifest",
        CompressedSource::LocalBlobs => "local gzip blobs",
        CompressedSource::GzipEstimate => "gzip of the plain-tar layers",
    }
}

/// Per image and platform: the layer table, the largest files, waste and
/// budget; then one summary row each.
pub fn print_report(report: &SizeReport) {
    for image in &report.images {
        for p in &image.platforms {
            println!("== {} {} ({})", image.image, p.platform, image.reference);
            println!(
                "{} uncompressed, {} compressed ({})",
                human(p.uncompressed_bytes),
                human(p.compressed_bytes),
                source_text(p.compressed_source)
            );
            build::print_rows(&layer_rows(p));
            println!();
            let mut files = vec![["LARGEST FILES", "SIZE", "LAYER"].map(String::from).to_vec()];
            files.extend(p.largest_files.iter().map(|f| vec![f.path.clone(), human(f.bytes), f.layer.to_string()]));
            build::print_rows(&files);
            println!();
            println!(
                "wasted: {} in {} paths, efficiency {:.2}% (as dive computes them)",
                human(p.wasted_bytes),
                p.wasted_paths,
                p.efficiency * 100.0
            );
            println!("budget: {}", p.budget.summary);
            println!();
        }
    }
    build::print_rows(&summary_rows(report));
}

fn layer_rows(p: &PlatformSize) -> Vec<Vec<String>> {
    let mut rows = vec![["LAYER", "SIZE", "COMPRESSED", "CREATED BY"].map(String::from).to_vec()];
    rows.extend(p.layers.iter().map(|l| {
        vec![
            l.index.to_string(),
            human(l.uncompressed_bytes),
            human(l.compressed_bytes),
            layers::short_instruction(&l.created_by, 72),
        ]
    }));
    rows
}

fn summary_rows(report: &SizeReport) -> Vec<Vec<String>> {
    let mut rows =
        vec![["IMAGE", "PLATFORM", "SIZE", "COMPRESSED", "WASTED", "EFFICIENCY", "BUDGET"].map(String::from).to_vec()];
    for image in &report.images {
        for p in &image.platforms {
            let budget = match (p.budget.status, p.budget.margin_bytes) {
                (Status::Within, Some(m)) => format!("ok ({} to spare)", mb(m as u64)),
                (Status::Over, Some(m)) => format!("OVER by {}", mb(m.unsigned_abs())),
                (Status::FileMissing, _) => "file missing".to_string(),
                _ => "no budget".to_string(),
            };
            rows.push(vec![
                image.image.clone(),
                p.platform.to_string(),
                human(p.uncompressed_bytes),
                human(p.compressed_bytes),
                human(p.wasted_bytes),
                format!("{:.1}%", p.efficiency * 100.0),
                budget,
            ]);
        }
    }
    rows
}

/// Fails, in one line naming each image and platform and by how much, when
/// any is over its budget (or its budget file is missing).
pub fn ensure_within_budget(report: &SizeReport) -> Result<()> {
    let failures: Vec<String> = report
        .images
        .iter()
        .flat_map(|image| image.platforms.iter().filter(|p| p.budget.failed()).map(move |p| (image, p)))
        .map(|(image, p)| match p.budget.margin_bytes {
            Some(margin) => format!(
                "image `{}` on {} is over its budget by {} ({} > {})",
                image.image,
                p.platform,
                mb(margin.unsigned_abs()),
                mb(p.budget.size_bytes),
                mb(p.budget.limit_bytes.unwrap_or(0))
            ),
            None => format!("image `{}` on {}: {}", image.image, p.platform, p.budget.summary),
        })
        .collect();
    if failures.is_empty() {
        Ok(())
    } else {
        bail!("{}", failures.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repositories_lose_their_tag_or_digest_but_keep_the_port() {
        assert_eq!(repository_of("localhost:5000/ralph-x:sha-0000000"), "localhost:5000/ralph-x");
        assert_eq!(repository_of("localhost:5000/ralph-x@sha256:abc"), "localhost:5000/ralph-x");
        assert_eq!(repository_of("localhost:5000/ralph-x"), "localhost:5000/ralph-x");
        assert_eq!(repository_of("ralph-x:1.0"), "ralph-x");
    }

    #[test]
    fn sizes_are_decimal() {
        assert_eq!(human(999), "999 B");
        assert_eq!(human(12_345), "12.3 kB");
        assert_eq!(human(301_200_000), "301.2 MB");
        assert_eq!(human(1_420_000_000), "1.42 GB");
    }

    fn platform_size(budget: Verdict) -> PlatformSize {
        PlatformSize {
            platform: Platform::parse("linux/amd64").unwrap(),
            uncompressed_bytes: 3_500_000,
            compressed_bytes: 1_200_000,
            compressed_source: CompressedSource::LocalBlobs,
            files_bytes: 3_000_000,
            layers: vec![LayerSize {
                index: 0,
                digest: Some("sha256:ab".into()),
                created_by: "COPY amd64/busybox /bin/busybox # buildkit".into(),
                uncompressed_bytes: 3_500_000,
                compressed_bytes: 1_200_000,
                files_bytes: 3_000_000,
                entries: 2,
            }],
            largest_files: vec![LargeFile { path: "/bin/busybox".into(), bytes: 3_000_000, layer: 0 }],
            wasted_bytes: 0,
            efficiency: 1.0,
            wasted_paths: 0,
            inefficiencies: vec![],
            budget,
        }
    }

    fn report(budget: Option<Budget>) -> SizeReport {
        let p = platform_size(budget::verdict(budget.as_ref(), 3_500_000, |_| Ok(("/bin/busybox".into(), 3_000_000))));
        SizeReport {
            mb_bytes: MB,
            images: vec![ImageSize {
                image: "fx".into(),
                reference: "fx:1".into(),
                budget,
                platforms: vec![p],
                seconds: 0.1,
                save_seconds: 0.0,
            }],
        }
    }

    #[test]
    fn tables_show_layers_and_the_verdict_per_platform() {
        let r = report(Some(Budget { max_mb: Some(4.0), file: None, extra_mb: None }));
        let layers = layer_rows(&r.images[0].platforms[0]);
        assert_eq!(layers[1], vec!["0", "3.5 MB", "1.2 MB", "COPY amd64/busybox /bin/busybox"]);
        let summary = summary_rows(&r);
        assert_eq!(summary[0][6], "BUDGET");
        assert_eq!(summary[1], vec!["fx", "linux/amd64", "3.5 MB", "1.2 MB", "0 B", "100.0%", "ok (0.5 MB to spare)"]);
        assert!(ensure_within_budget(&r).is_ok());
        assert!(ensure_within_budget(&report(None)).is_ok());
    }

    #[test]
    fn over_budget_fails_naming_the_image_and_how_much() {
        let r = report(Some(Budget { max_mb: Some(1.0), file: None, extra_mb: None }));
        assert_eq!(summary_rows(&r)[1][6], "OVER by 2.5 MB");
        let err = ensure_within_budget(&r).unwrap_err().to_string();
        assert_eq!(err, "image `fx` on linux/amd64 is over its budget by 2.5 MB (3.5 MB > 1.0 MB)");
    }

    #[test]
    fn the_report_serializes_with_snake_case_statuses() {
        let json = serde_json::to_value(report(None)).unwrap();
        assert_eq!(json["mb_bytes"], 1_000_000);
        let p = &json["images"][0]["platforms"][0];
        assert_eq!(p["platform"], "linux/amd64");
        assert_eq!(p["compressed_source"], "local-blobs");
        assert_eq!(p["budget"]["status"], "no_budget");
        assert_eq!(p["layers"][0]["created_by"], "COPY amd64/busybox /bin/busybox # buildkit");
    }
}
