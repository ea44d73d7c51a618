//! What each image weighs per platform, uncompressed and compressed, layer
//! by layer; its largest files; the bytes it wastes (as dive counts them);
//! and the verdict against its budget.
//!
//! An image `image build` wrote as an OCI layout is read from its blobs
//! there; any other is exported with `docker save` to a temporary file
//! first. The layers are streamed in parallel, a thread per layer (see
//! [`archive`]); nothing bigger than a file list is held in memory.

mod archive;
pub mod budget;
mod layers;

use std::collections::HashMap;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::engine::image::BuiltImage;
use crate::engine::{docker, imagetools};
use crate::model::catalog::{Budget, Image, Platform};
use crate::model::target::{build_hint, repository_of};

use archive::{platform_matches, PlatformImage, SavedImage, Span};
pub use budget::{mb, Status, Verdict, MB};
pub use layers::short_instruction;

/// How many of the largest files are listed, unless `--top` says otherwise.
pub const DEFAULT_TOP: usize = 10;

#[derive(Debug, Clone, clap::Args)]
pub struct SizeOptions {
    /// How many of the largest files of the final filesystem to list.
    #[arg(long, default_value_t = DEFAULT_TOP)]
    pub top: usize,
}

impl Default for SizeOptions {
    fn default() -> SizeOptions {
        SizeOptions { top: DEFAULT_TOP }
    }
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
    /// The OCI layout the layers were read from (`image build`'s); none:
    /// they came from a `docker save`.
    pub layout: Option<std::path::PathBuf>,
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

/// One image, all its platforms: its OCI layout when `image build` wrote
/// one, else one `docker save` per distinct reference (one for all
/// platforms on the containerd store).
pub fn measure(built: &BuiltImage<'_>, options: &SizeOptions) -> Result<ImageSize> {
    let started = Instant::now();
    let image = built.image;
    let mut save_seconds = 0.0;
    let mut platforms = Vec::new();
    for (reference, wanted) in built.exports() {
        let (saved, _file) = match &built.layout {
            Some(dir) => (SavedImage::open_layout(dir)?, None),
            None => {
                let saving = Instant::now();
                let file = save(image, reference)?;
                save_seconds += saving.elapsed().as_secs_f64();
                (SavedImage::open(file.path())?, Some(file))
            }
        };
        let found = saved.platform_images()?;
        let mut chosen: Vec<&PlatformImage> = Vec::new();
        for platform in &wanted {
            match found.iter().find(|i| platform_matches(platform, &i.platform)) {
                Some(i) => chosen.push(i),
                None => bail!(missing_platform(image, reference, platform, &found, built.registry.as_deref())),
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
        let scans = saved
            .scan_layers(&spans)
            .with_context(|| format!("image `{}`: reading the layers of {reference}", image.name))?;
        for (platform, found) in wanted.iter().zip(&chosen) {
            let layer_scans: Vec<&archive::LayerScan> =
                found.layers.iter().map(|l| &scans[blob_index[&l.span]]).collect();
            let registry_sizes = match &built.registry {
                Some(_) => Some(
                    registry_layer_sizes(&built.reference, platform, found, &layer_scans)
                        .with_context(|| format!("image `{}` on {platform}", image.name))?,
                ),
                None => None,
            };
            platforms.push(platform_size(image, options.top, found, &layer_scans, registry_sizes.as_deref()));
        }
    }
    // In the order asked for, whatever the order of the exports.
    platforms.sort_by_key(|p| built.platforms.iter().position(|q| platform_matches(q, &p.platform)));
    Ok(ImageSize {
        image: image.name.clone(),
        reference: built.reference.clone(),
        budget: image.budget.clone(),
        platforms,
        seconds: started.elapsed().as_secs_f64(),
        save_seconds,
        layout: built.layout.clone(),
    })
}

/// `docker save reference` into a temporary file.
fn save(image: &Image, reference: &str) -> Result<tempfile::NamedTempFile> {
    let file = tempfile::Builder::new()
        .prefix("xtask-size-")
        .suffix(".tar")
        .tempfile()
        .context("creating a temporary file for `docker save`")?;
    docker::docker().args(["save", reference, "-o"]).arg(file.path()).read().with_context(|| {
        format!(
            "image `{}`: exporting {reference} (if its layers are missing from the local store, run `{}`)",
            image.name,
            build_hint(image, None, None)
        )
    })?;
    Ok(file)
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
    format!(
        "image `{}` has no {platform} ({reference} has {}): run `{}`",
        image.name,
        if has.is_empty() { "none".to_string() } else { has.join(", ") },
        build_hint(image, Some(platform), registry)
    )
}

/// The platform's layer sizes in the registry's manifest, checked against
/// the layers measured locally.
/// Layers the local store holds as plain tar (the classic store re-exports
/// them so) can't be compared by digest, only counted.
fn registry_layer_sizes(
    reference: &str,
    platform: &Platform,
    local: &PlatformImage,
    scans: &[&archive::LayerScan],
) -> Result<Vec<u64>> {
    let top = imagetools::manifest_json(reference)?;
    let manifest = if top.get("manifests").is_some() {
        let index: docker::Manifest =
            serde_json::from_value(top).with_context(|| format!("the index of {reference}"))?;
        let digest = docker::platform_digests(&index)
            .into_iter()
            .find(|(p, _)| platform_matches(platform, p))
            .map(|(_, digest)| digest)
            .with_context(|| format!("the registry's {reference} has no {platform}"))?;
        imagetools::manifest_json(&format!("{}@{digest}", repository_of(reference)))?
    } else {
        top
    };
    let layers = manifest["layers"]
        .as_array()
        .with_context(|| format!("the manifest of {reference} for {platform} lists no layers"))?;
    let remote: Vec<(&str, u64)> =
        layers.iter().map(|l| (l["digest"].as_str().unwrap_or(""), l["size"].as_u64().unwrap_or(0))).collect();
    let same = remote.len() == local.layers.len()
        && local
            .layers
            .iter()
            .zip(&remote)
            .zip(scans)
            .all(|((l, (digest, _)), scan)| scan.compressed_estimated || l.digest.as_deref() == Some(*digest));
    if !same {
        bail!(
            "the registry's layers for {reference} differ from the pulled ones ({} vs {} layers): push the image again",
            remote.len(),
            local.layers.len()
        );
    }
    Ok(remote.into_iter().map(|(_, size)| size).collect())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_decimal() {
        assert_eq!(human(999), "999 B");
        assert_eq!(human(12_345), "12.3 kB");
        assert_eq!(human(301_200_000), "301.2 MB");
        assert_eq!(human(1_420_000_000), "1.42 GB");
    }
}
