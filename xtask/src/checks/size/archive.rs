//! Reading what `docker save` writes, or the OCI layout directory `image
//! build` wrote, without holding any layer in memory.
//!
//! With the containerd image store the archive is an OCI layout: index.json
//! → an index (manifest list) → one manifest per platform → its config and
//! layer blobs under `blobs/sha256/`, layers gzip-compressed as stored. The
//! classic store writes `manifest.json` and plain-tar layers. The archive is
//! indexed once (each member's offset and size in the outer tar; in a
//! layout directory, each member is a file of its own); then each
//! layer is streamed from its offset by its own thread, through gzip where
//! needed, and only each file's path, type and size are kept.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use anyhow::{bail, Context, Result};
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::layers::{normalize_path, Entry, HistoryEntry, Kind};
use crate::engine::clamp::Chunked;
use crate::model::catalog::Platform;

/// Configs and manifests are small; anything bigger is not one.
const MAX_JSON_BYTES: u64 = 64 << 20;
/// Enough for any real nesting of indexes.
const MAX_INDEX_DEPTH: usize = 4;

/// Where a member's content lies: in which of the image's files, from where.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Span {
    pub file: usize,
    pub offset: u64,
    pub size: u64,
}

/// A `docker save` archive or an OCI layout directory on disk, with where
/// each member lies.
#[derive(Debug)]
pub struct SavedImage {
    pub files: Vec<PathBuf>,
    members: HashMap<String, Span>,
}

/// One platform's image in the archive.
#[derive(Debug, Clone)]
pub struct PlatformImage {
    pub platform: Platform,
    pub history: Vec<HistoryEntry>,
    pub layers: Vec<LayerBlob>,
}

#[derive(Debug, Clone)]
pub struct LayerBlob {
    /// `sha256:…` when the archive names blobs by digest.
    pub digest: Option<String>,
    pub span: Span,
}

#[derive(Debug, Deserialize)]
struct Descriptor {
    #[serde(default)]
    digest: String,
    platform: Option<DescriptorPlatform>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
struct DescriptorPlatform {
    os: String,
    architecture: String,
}

/// An index (`manifests`) or a manifest (`config` + `layers`).
#[derive(Debug, Deserialize)]
struct IndexOrManifest {
    #[serde(default)]
    manifests: Vec<Descriptor>,
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Vec<Descriptor>,
}

#[derive(Debug, Deserialize)]
struct ImageConfig {
    #[serde(default)]
    os: String,
    #[serde(default)]
    architecture: String,
    variant: Option<String>,
    #[serde(default)]
    history: Vec<HistoryEntry>,
}

/// An entry of the classic store's `manifest.json`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct LegacyManifest {
    config: String,
    layers: Vec<String>,
}

impl SavedImage {
    /// Indexes the archive: one pass over the tar headers, seeking over the content.
    pub fn open(file: &Path) -> Result<SavedImage> {
        let reader = File::open(file).with_context(|| format!("opening {}", file.display()))?;
        let mut archive = tar::Archive::new(reader);
        let mut members = HashMap::new();
        for entry in archive.entries_with_seek().with_context(|| format!("reading {}", file.display()))? {
            let entry = entry.with_context(|| format!("{} is not a tar archive from `docker save`", file.display()))?;
            if !entry.header().entry_type().is_file() {
                continue;
            }
            if let Some(path) = normalize_path(&String::from_utf8_lossy(&entry.path_bytes())) {
                members.insert(path, Span { file: 0, offset: entry.raw_file_position(), size: entry.size() });
            }
        }
        Ok(SavedImage { files: vec![file.to_path_buf()], members })
    }

    /// An OCI layout directory: `index.json` and every blob, each its own file.
    pub fn open_layout(dir: &Path) -> Result<SavedImage> {
        let mut files = Vec::new();
        let mut members = HashMap::new();
        let blobs = dir.join("blobs/sha256");
        let listed = std::fs::read_dir(&blobs).with_context(|| format!("{} is not an OCI layout", dir.display()))?;
        let names = listed
            .map(|e| e.map(|e| format!("blobs/sha256/{}", e.file_name().to_string_lossy())))
            .collect::<io::Result<Vec<_>>>()?;
        for member in names.into_iter().chain(["index.json".to_string()]) {
            let path = dir.join(&member);
            let size = std::fs::metadata(&path).with_context(|| format!("reading {}", path.display()))?.len();
            members.insert(member, Span { file: files.len(), offset: 0, size });
            files.push(path);
        }
        Ok(SavedImage { files, members })
    }

    /// Each layer scanned (see [`scan_layers`]).
    pub fn scan_layers(&self, spans: &[Span]) -> Result<Vec<LayerScan>> {
        scan_layers(&self.files, spans)
    }

    fn read_json<T: DeserializeOwned>(&self, member: &str) -> Result<T> {
        let span = *self.members.get(member).with_context(|| format!("the saved image has no {member}"))?;
        if span.size > MAX_JSON_BYTES {
            bail!("{member} in the saved image is {} bytes: too big for a manifest or config", span.size);
        }
        let mut text = Vec::with_capacity(span.size as usize);
        open_span(&self.files, span)?.read_to_end(&mut text)?;
        serde_json::from_slice(&text).with_context(|| format!("{member} in the saved image is not the JSON expected"))
    }

    fn blob(&self, digest: &str) -> Option<(String, Span)> {
        let (algorithm, hex) = digest.split_once(':')?;
        let member = format!("blobs/{algorithm}/{hex}");
        self.members.get(&member).map(|span| (member, *span))
    }

    /// Every platform image in the archive whose content is there
    /// (attestation manifests left out).
    pub fn platform_images(&self) -> Result<Vec<PlatformImage>> {
        let mut images = Vec::new();
        if self.members.contains_key("index.json") {
            let index: IndexOrManifest = self.read_json("index.json")?;
            for descriptor in &index.manifests {
                self.walk(descriptor, 0, &mut images)?;
            }
        } else {
            let manifests: Vec<LegacyManifest> = self.read_json("manifest.json")?;
            for manifest in manifests {
                let config: ImageConfig = self.read_json(&manifest.config)?;
                let layers = manifest
                    .layers
                    .iter()
                    .map(|member| {
                        let span = *self
                            .members
                            .get(member)
                            .with_context(|| format!("the saved image lacks its layer {member}"))?;
                        Ok(LayerBlob { digest: None, span })
                    })
                    .collect::<Result<_>>()?;
                push_unique(&mut images, config, layers);
            }
        }
        Ok(images)
    }

    fn walk(&self, descriptor: &Descriptor, depth: usize, images: &mut Vec<PlatformImage>) -> Result<()> {
        let attestation = descriptor.annotations.contains_key("vnd.docker.reference.type")
            || descriptor.platform.as_ref().is_some_and(|p| p.os == "unknown" || p.architecture == "unknown");
        // A platform whose content isn't in the local store is left out of the archive.
        let Some((member, _)) = self.blob(&descriptor.digest) else { return Ok(()) };
        if attestation || depth > MAX_INDEX_DEPTH {
            return Ok(());
        }
        let node: IndexOrManifest = self.read_json(&member)?;
        match &node.config {
            Some(config) => {
                let (config_member, _) = self
                    .blob(&config.digest)
                    .with_context(|| format!("the saved image lacks the config {}", config.digest))?;
                let config: ImageConfig = self.read_json(&config_member)?;
                let layers = node
                    .layers
                    .iter()
                    .map(|layer| {
                        let (_, span) = self
                            .blob(&layer.digest)
                            .with_context(|| format!("the saved image lacks the layer {}", layer.digest))?;
                        Ok(LayerBlob { digest: Some(layer.digest.clone()), span })
                    })
                    .collect::<Result<_>>()?;
                push_unique(images, config, layers);
            }
            None => {
                for child in &node.manifests {
                    self.walk(child, depth + 1, images)?;
                }
            }
        }
        Ok(())
    }
}

fn push_unique(images: &mut Vec<PlatformImage>, config: ImageConfig, layers: Vec<LayerBlob>) {
    let platform =
        Platform { os: config.os, arch: config.architecture, variant: config.variant.filter(|v| !v.is_empty()) };
    if !images.iter().any(|i| i.platform == platform) {
        images.push(PlatformImage { platform, history: config.history, layers });
    }
}

/// Whether an image's platform is the one asked for: a request without a
/// variant (`linux/arm64`) takes any variant (`linux/arm64/v8`).
pub fn platform_matches(requested: &Platform, found: &Platform) -> bool {
    requested.os == found.os
        && requested.arch == found.arch
        && (requested.variant.is_none() || requested.variant == found.variant)
}

fn open_span(files: &[PathBuf], span: Span) -> Result<io::Take<File>> {
    let file = &files[span.file];
    let mut f = File::open(file).with_context(|| format!("opening {}", file.display()))?;
    f.seek(SeekFrom::Start(span.offset))?;
    Ok(f.take(span.size))
}

/// What one layer holds and weighs.
#[derive(Debug, Clone)]
pub struct LayerScan {
    /// The layer tar's length: what the layer's diff_id hashes.
    pub uncompressed: u64,
    /// The gzip blob's size, or what gzip makes of a plain-tar layer.
    pub compressed: u64,
    /// The blob was stored uncompressed: `compressed` is our gzip's figure.
    pub compressed_estimated: bool,
    pub entries: Vec<Entry>,
}

/// Streams one layer blob: a gzip blob through the decoder (its size is the
/// compressed size), a plain tar through a gzip encoder into a counter.
pub fn scan_layer(files: &[PathBuf], span: Span) -> Result<LayerScan> {
    let mut blob = BufReader::with_capacity(256 << 10, open_span(files, span)?);
    let magic = blob.fill_buf()?.get(..4).map(<[u8]>::to_vec).unwrap_or_default();
    match magic.as_slice() {
        [0x1f, 0x8b, ..] => {
            let (entries, uncompressed) = read_tar(MultiGzDecoder::new(blob))?;
            Ok(LayerScan { uncompressed, compressed: span.size, compressed_estimated: false, entries })
        }
        [0x28, 0xb5, 0x2f, 0xfd] => bail!(
            "the layer is zstd-compressed, which `image size` does not read: build it with gzip (buildx's default)"
        ),
        _ => {
            let encoder = Chunked::new(GzEncoder::new(ByteCounter(0), flate2::Compression::default()));
            let (entries, uncompressed, tee) = read_tar_keeping(GzipTee { inner: blob, encoder })?;
            let compressed = tee.encoder.finish()?.finish()?.0;
            Ok(LayerScan { uncompressed, compressed, compressed_estimated: true, entries })
        }
    }
}

fn read_tar(reader: impl Read) -> Result<(Vec<Entry>, u64)> {
    let (entries, uncompressed, _) = read_tar_keeping(reader)?;
    Ok((entries, uncompressed))
}

/// Lists a tar stream's entries and reads it to its very end (the padding
/// after the end marker belongs to the layer's size too).
fn read_tar_keeping<R: Read>(reader: R) -> Result<(Vec<Entry>, u64, R)> {
    let mut archive = tar::Archive::new(CountingReader { inner: reader, count: 0 });
    let mut entries = Vec::new();
    for entry in archive.entries().context("reading the layer tar")? {
        let entry = entry.context("reading the layer tar")?;
        if let Some(e) = layer_entry(&entry) {
            entries.push(e);
        }
    }
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink()).context("reading the layer tar")?;
    Ok((entries, rest.count, rest.inner))
}

fn layer_entry<R: Read>(entry: &tar::Entry<'_, R>) -> Option<Entry> {
    use tar::EntryType as T;
    let entry_type = entry.header().entry_type();
    if entry_type.is_pax_global_extensions() || entry_type.is_pax_local_extensions() {
        return None;
    }
    let path = normalize_path(&String::from_utf8_lossy(&entry.path_bytes()))?;
    let link = || entry.link_name_bytes().map(|l| String::from_utf8_lossy(&l).into_owned()).unwrap_or_default();
    let kind = match entry_type {
        T::Directory => Kind::Dir,
        T::Symlink => Kind::Symlink(link()),
        T::Link => Kind::Hardlink(link()),
        T::Regular | T::Continuous | T::GNUSparse => Kind::File,
        _ => Kind::Other,
    };
    Some(Entry { path, kind, size: entry.size() })
}

struct CountingReader<R> {
    inner: R,
    count: u64,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        Ok(n)
    }
}

/// Counts what is written to it and keeps nothing.
struct ByteCounter(u64);

impl Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Hands everything read through it to a gzip encoder as well, in chunks
/// that do not depend on how it is read (the gzip size would).
struct GzipTee<R> {
    inner: R,
    encoder: Chunked<GzEncoder<ByteCounter>>,
}

impl<R: Read> Read for GzipTee<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.encoder.write_all(&buf[..n])?;
        Ok(n)
    }
}

/// Scans the layers in parallel: a thread per layer, at most one per CPU.
/// Each thread opens the file itself and streams its own span.
pub fn scan_layers(files: &[PathBuf], spans: &[Span]) -> Result<Vec<LayerScan>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(spans.len()).max(1);
    let next = AtomicUsize::new(0);
    let results: Vec<Mutex<Option<Result<LayerScan>>>> = spans.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(span) = spans.get(i) else { break };
                let scan = scan_layer(files, *span);
                *results[i].lock().unwrap_or_else(|p| p.into_inner()) = Some(scan);
            });
        }
    });
    results
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            let scan = r.into_inner().unwrap_or_else(|p| p.into_inner()).expect("every layer was scanned");
            scan.with_context(|| format!("layer at offset {} of {}", spans[i].offset, files[spans[i].file].display()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer_tar(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, content) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(content.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder.append_data(&mut header, path, *content).unwrap();
        }
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_size(0);
        header.set_cksum();
        builder.append_link(&mut header, "bin/sh", "busybox").unwrap();
        builder.into_inner().unwrap()
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    /// `content` in a temporary file, removed when the returned path is dropped.
    fn temp_file(content: &[u8]) -> tempfile::TempPath {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(content).unwrap();
        file.into_temp_path()
    }

    #[test]
    fn gzip_and_plain_layers_give_the_same_entries_and_sizes() {
        let tar = layer_tar(&[("./bin/busybox", &[7u8; 3000]), ("etc/.wh.old", b"")]);
        let gz = gzip(&tar);
        // Both layers inside one file, after some other bytes, as in an archive.
        let mut file = vec![0u8; 100];
        file.extend(&gz);
        file.extend(&tar);
        let path = temp_file(&file);
        let spans = [
            Span { file: 0, offset: 100, size: gz.len() as u64 },
            Span { file: 0, offset: 100 + gz.len() as u64, size: tar.len() as u64 },
        ];
        let scans = scan_layers(&[path.to_path_buf()], &spans).unwrap();

        for scan in &scans {
            assert_eq!(scan.uncompressed, tar.len() as u64);
            let listed: Vec<(&str, &Kind, u64)> =
                scan.entries.iter().map(|e| (e.path.as_str(), &e.kind, e.size)).collect();
            assert_eq!(
                listed,
                vec![
                    ("bin/busybox", &Kind::File, 3000),
                    ("etc/.wh.old", &Kind::File, 0),
                    ("bin/sh", &Kind::Symlink("busybox".into()), 0)
                ]
            );
        }
        assert_eq!((scans[0].compressed, scans[0].compressed_estimated), (gz.len() as u64, false));
        // The estimate is what the same gzip level makes of the tar.
        assert_eq!((scans[1].compressed, scans[1].compressed_estimated), (gz.len() as u64, true));
    }

    /// A `docker save` archive with these members, in a temporary file.
    fn saved(members: &[(&str, Vec<u8>)]) -> (SavedImage, tempfile::TempPath) {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, content) in members {
            let mut header = tar::Header::new_gnu();
            header.set_size(content.len() as u64);
            header.set_mode(0o444);
            header.set_cksum();
            builder.append_data(&mut header, path, content.as_slice()).unwrap();
        }
        let file = temp_file(&builder.into_inner().unwrap());
        (SavedImage::open(&file).unwrap(), file)
    }

    fn config(arch: &str, variant: Option<&str>) -> Vec<u8> {
        let history = serde_json::json!([{"created_by": "ARG X", "empty_layer": true}, {"created_by": "COPY a /a"}]);
        serde_json::to_vec(
            &serde_json::json!({"os": "linux", "architecture": arch, "variant": variant, "history": history}),
        )
        .unwrap()
    }

    #[test]
    fn oci_layouts_list_each_platform_present_and_skip_attestations() {
        let layer = gzip(&layer_tar(&[("a", b"x")]));
        let blob = |hex: &str| format!("blobs/sha256/{hex}");
        let manifest = |cfg: &str| {
            serde_json::to_vec(&serde_json::json!({"config": {"digest": format!("sha256:{cfg}")}, "layers": [{"digest": "sha256:l1"}]})).unwrap()
        };
        let index = serde_json::json!({"manifests": [
            {"digest": "sha256:amd", "platform": {"os": "linux", "architecture": "amd64"}},
            {"digest": "sha256:arm", "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
            // Not in the local store: left out of the archive, and of the list.
            {"digest": "sha256:gone", "platform": {"os": "linux", "architecture": "s390x"}},
            {"digest": "sha256:att", "platform": {"os": "unknown", "architecture": "unknown"},
             "annotations": {"vnd.docker.reference.type": "attestation-manifest"}}
        ]});
        let top = serde_json::json!({"manifests": [{"digest": "sha256:list"}]});
        let (saved, _file) = saved(&[
            (&blob("l1"), layer.clone()),
            (&blob("amd"), manifest("c1")),
            (&blob("arm"), manifest("c2")),
            (&blob("att"), manifest("c1")),
            (&blob("c1"), config("amd64", None)),
            (&blob("c2"), config("arm64", Some("v8"))),
            (&blob("list"), serde_json::to_vec(&index).unwrap()),
            ("index.json", serde_json::to_vec(&top).unwrap()),
        ]);
        let images = saved.platform_images().unwrap();
        let platforms: Vec<String> = images.iter().map(|i| i.platform.to_string()).collect();
        assert_eq!(platforms, vec!["linux/amd64", "linux/arm64/v8"]);
        assert_eq!(images[1].layers[0].digest.as_deref(), Some("sha256:l1"));
        assert_eq!(images[1].layers[0].span.size, layer.len() as u64);
        assert_eq!(super::super::layers::layer_instructions(&images[0].history, 1), vec!["COPY a /a"]);
    }

    #[test]
    fn classic_archives_are_read_from_manifest_json() {
        let layer = layer_tar(&[("a", b"x")]);
        let manifest = serde_json::json!([{"Config": "abc.json", "RepoTags": ["x:1"], "Layers": ["abc/layer.tar"]}]);
        let (saved, _file) = saved(&[
            ("abc/layer.tar", layer.clone()),
            ("abc.json", config("amd64", None)),
            ("manifest.json", serde_json::to_vec(&manifest).unwrap()),
        ]);
        let images = saved.platform_images().unwrap();
        let scan = scan_layer(&saved.files, images[0].layers[0].span).unwrap();
        assert_eq!(images[0].platform.to_string(), "linux/amd64");
        assert_eq!(
            (images[0].layers[0].digest.as_ref(), scan.uncompressed, scan.compressed_estimated),
            (None, layer.len() as u64, true)
        );
    }

    #[test]
    fn platforms_match_with_or_without_a_variant() {
        let p = |s: &str| Platform::parse(s).unwrap();
        assert!(platform_matches(&p("linux/arm64"), &p("linux/arm64/v8")));
        assert!(!platform_matches(&p("linux/arm64/v8"), &p("linux/arm64")));
        assert!(!platform_matches(&p("linux/amd64"), &p("linux/arm64")));
    }
}
