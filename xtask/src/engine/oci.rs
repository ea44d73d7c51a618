//! A build exported as an OCI layout directory: what `image build` writes
//! under `target/oci/IMAGE` (and `image repro` twice without cache):
//! `docker buildx build --output type=oci,dest=DIR,tar=false` with
//! `SOURCE_DATE_EPOCH` as a build argument (BuildKit then sets the config's
//! times from it), whose files' times `engine::clamp` then clamps to it.
//! Read back: per platform, the manifest digest, config and layers; loaded
//! into an engine as a tar stream; its blobs of earlier builds collected.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde_json::Value;

use super::buildx::{Invocation, LayoutOutput};
use super::docker;
use crate::model::repro::{self, FileDiff, PlatformImage};

/// Builds `inv` (image `name`) without cache into the fresh layout `dest`,
/// `SOURCE_DATE_EPOCH` = `epoch`, streaming progress unless `quiet`.
pub fn build(name: &str, inv: &Invocation, dest: &Path, epoch: u64, quiet: bool) -> Result<Layout> {
    let inv = Invocation {
        no_cache: true,
        cache_flags: Vec::new(),
        provenance: false,
        sbom: false,
        push: false,
        layout: Some(LayoutOutput { dest: dest.to_path_buf(), epoch }),
        ..inv.clone()
    };
    inv.run(name, quiet)?;
    Layout::open(dest)
}

/// An OCI layout directory.
#[derive(Debug)]
pub struct Layout {
    pub dir: PathBuf,
}

impl Layout {
    pub fn open(dir: &Path) -> Result<Layout> {
        if !dir.join("index.json").is_file() {
            bail!("{} has no index.json: it is not an OCI layout", dir.display());
        }
        Ok(Layout { dir: dir.to_path_buf() })
    }

    pub fn blob_path(&self, digest: &str) -> Result<PathBuf> {
        let hex = digest.strip_prefix("sha256:").with_context(|| format!("digest {digest} is not sha256"))?;
        Ok(self.dir.join("blobs/sha256").join(hex))
    }

    /// The digest of what the build exported (the first entry of `index.json`):
    /// an index for several platforms, the image ID in an engine that loaded it.
    pub fn digest(&self) -> Result<String> {
        let index = self.json(&self.dir.join("index.json"))?;
        index["manifests"][0]["digest"]
            .as_str()
            .map(str::to_string)
            .with_context(|| format!("{} names no image in its index.json", self.dir.display()))
    }

    /// Every blob `index.json` reaches: indexes, manifests (attestations
    /// too), configs and layers. Also of a BuildKit cache export (`--cache-to
    /// type=local`): its index lists the cache's layers and its cache config
    /// as `manifests`, which are read only when they are indexes or manifests.
    pub fn reachable(&self) -> Result<BTreeSet<String>> {
        fn walk(layout: &Layout, node: &Value, depth: usize, out: &mut BTreeSet<String>) -> Result<()> {
            let children = node["manifests"].as_array().into_iter().flatten();
            let parts = node["config"]
                .as_object()
                .into_iter()
                .map(|_| &node["config"])
                .chain(node["layers"].as_array().into_iter().flatten());
            for desc in parts {
                out.extend(desc["digest"].as_str().map(str::to_string));
            }
            for desc in children {
                let Some(digest) = desc["digest"].as_str() else { continue };
                let readable = desc["mediaType"].as_str().is_none_or(|t| t.contains("manifest") || t.contains("index"));
                if out.insert(digest.to_string()) && readable && depth < 4 {
                    let path = layout.blob_path(digest)?;
                    if path.is_file() {
                        walk(layout, &layout.json(&path)?, depth + 1, out)?;
                    }
                }
            }
            Ok(())
        }
        let mut out = BTreeSet::new();
        walk(self, &self.json(&self.dir.join("index.json"))?, 0, &mut out)?;
        Ok(out)
    }

    /// Removes the blobs of earlier builds that `index.json` no longer
    /// reaches, and BuildKit's leftover `ingest` directory.
    pub fn collect_garbage(&self) -> Result<u64> {
        let keep = self.reachable()?;
        let mut freed = 0;
        let blobs = self.dir.join("blobs/sha256");
        for entry in std::fs::read_dir(&blobs).with_context(|| format!("reading {}", blobs.display()))? {
            let entry = entry?;
            let digest = format!("sha256:{}", entry.file_name().to_string_lossy());
            if !keep.contains(&digest) {
                freed += entry.metadata().map(|m| m.len()).unwrap_or(0);
                std::fs::remove_file(entry.path()).with_context(|| format!("removing {}", entry.path().display()))?;
            }
        }
        let _ = std::fs::remove_dir_all(self.dir.join("ingest"));
        Ok(freed)
    }

    /// The layout as a tar stream (what `docker load` reads): `oci-layout`,
    /// `index.json` and the blobs it reaches.
    pub fn write_tar(&self, to: impl std::io::Write) -> Result<()> {
        let mut tar = tar::Builder::new(to);
        tar.mode(tar::HeaderMode::Deterministic);
        for file in ["oci-layout", "index.json"] {
            tar.append_path_with_name(self.dir.join(file), file)
                .with_context(|| format!("adding {file} of {}", self.dir.display()))?;
        }
        for digest in self.reachable()? {
            let path = self.blob_path(&digest)?;
            if path.is_file() {
                let name = format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"));
                tar.append_path_with_name(&path, name).with_context(|| format!("adding blob {digest}"))?;
            }
        }
        tar.finish().context("writing the layout's tar stream")
    }

    pub fn json(&self, path: &Path) -> Result<Value> {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_slice(&bytes).with_context(|| format!("{} is not JSON", path.display()))
    }

    /// Each platform's image (`os/arch[/variant]`): `index.json`, through a
    /// nested index for a multi-platform build, attestations left out.
    pub fn platforms(&self) -> Result<BTreeMap<String, PlatformImage>> {
        let mut descriptors = Vec::new();
        self.collect(&self.json(&self.dir.join("index.json"))?, 0, &mut descriptors)?;
        let mut out = BTreeMap::new();
        for desc in descriptors {
            let digest = desc["digest"].as_str().context("a manifest descriptor without a digest")?.to_string();
            let manifest = self.json(&self.blob_path(&digest)?)?;
            let config_digest = manifest["config"]["digest"].as_str().context("a manifest without a config")?;
            let config = self.json(&self.blob_path(config_digest)?)?;
            let p = if desc["platform"].is_object() { &desc["platform"] } else { &config };
            let mut platform =
                format!("{}/{}", p["os"].as_str().unwrap_or("?"), p["architecture"].as_str().unwrap_or("?"));
            if let Some(v) = p["variant"].as_str() {
                platform = format!("{platform}/{v}");
            }
            let layers = manifest["layers"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|l| l["digest"].as_str().unwrap_or("").to_string())
                .collect();
            out.insert(platform, PlatformImage { manifest: digest, manifest_json: manifest, config, layers });
        }
        Ok(out)
    }

    fn collect(&self, index: &Value, depth: usize, out: &mut Vec<Value>) -> Result<()> {
        for desc in index["manifests"].as_array().into_iter().flatten() {
            if desc["annotations"].get("vnd.docker.reference.type").is_some() {
                continue;
            }
            let media = desc["mediaType"].as_str().unwrap_or("");
            if (media.contains("index") || media.contains("manifest.list")) && depth < 4 {
                let nested = self.json(&self.blob_path(desc["digest"].as_str().unwrap_or(""))?)?;
                self.collect(&nested, depth + 1, out)?;
            } else {
                out.push(desc.clone());
            }
        }
        Ok(())
    }

    /// The entries of the layer blob `digest` (gzip or plain tar), streamed.
    pub fn entries(&self, digest: &str) -> Result<BTreeMap<String, repro::Entry>> {
        let path = self.blob_path(digest)?;
        let mut file = std::fs::File::open(&path).with_context(|| format!("layer {digest} missing"))?;
        let mut magic = [0u8; 2];
        let gzip = std::io::Read::read(&mut file, &mut magic)? == 2 && magic == [0x1f, 0x8b];
        let file = std::fs::File::open(&path)?;
        let reader: Box<dyn std::io::Read> = if gzip {
            Box::new(flate2::read::GzDecoder::new(std::io::BufReader::new(file)))
        } else {
            Box::new(std::io::BufReader::new(file))
        };
        repro::read_entries(reader).with_context(|| format!("layer {digest}"))
    }
}

/// The files that differ in layer `index` of `platform` between two layouts.
pub fn layer_files(a: (&Layout, &PlatformImage), b: (&Layout, &PlatformImage), index: usize) -> Result<Vec<FileDiff>> {
    Ok(repro::diff_entries(&a.0.entries(&a.1.layers[index])?, &b.0.entries(&b.1.layers[index])?))
}

/// Makes `layout`'s image what `refs` name in the engine (of Docker context
/// `context`, else the current one): `docker load` of the layout's tar
/// stream, unless the engine has that digest already (a rebuild of the
/// same content gives the same digest); then each reference tagged.
/// An image a reference named before is removed once no tag names it (and
/// no container uses it): Docker would keep it as `<none>`, with its
/// layers, and every rebuild at a new commit would leave one more.
/// Returns whether it loaded.
pub fn load(layout: &Layout, refs: &[String], context: Option<&str>) -> Result<bool> {
    let digest = layout.digest()?;
    let docker = || docker::docker().args(context.iter().flat_map(|c| ["--context", *c]));
    let id_of = |reference: &str| -> Result<Option<String>> {
        let out = docker().args(["image", "inspect", "--format", "{{.Id}}", reference]).probe().output()?;
        Ok(out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string()))
    };
    let loaded = id_of(&digest)?.as_deref() != Some(digest.as_str());
    let mut replaced = BTreeSet::new();
    for reference in refs {
        replaced.extend(id_of(reference)?.filter(|id| *id != digest));
    }
    if loaded {
        docker()
            .args(["load", "--quiet"])
            .read_fed(|pipe| layout.write_tar(pipe))
            .with_context(|| format!("loading the layout {} into the engine", layout.dir.display()))?;
    }
    for reference in refs {
        docker().args(["tag", &digest, reference]).read()?;
    }
    for id in replaced {
        let tags = docker().args(["image", "inspect", "--format", "{{len .RepoTags}}", &id]).probe().output()?;
        if tags.status.success() && String::from_utf8_lossy(&tags.stdout).trim() == "0" {
            // Not forced: an image a container still uses stays.
            let _ = docker().args(["image", "rm", &id]).probe().output()?;
        }
    }
    Ok(loaded)
}

/// What a layout was written from: the digest of the build as the engine
/// stored it (before the clamp) and the epoch. Kept next to the layout
/// (`DIR.memo`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Memo {
    pub raw: String,
    pub epoch: u64,
    /// What it was built from (`Invocation::fingerprint`).
    pub inputs: String,
    /// Whether its files' times were clamped (not with attestations).
    pub clamped: bool,
}

impl Memo {
    fn path(dir: &Path) -> PathBuf {
        dir.with_extension("memo")
    }

    /// The layout at `dir` when a build with no step cached wrote it at
    /// `epoch` with its files' times clamped, and it still holds what that
    /// build wrote: as good as a `--no-cache` build of this commit.
    pub fn cold(dir: &Path, epoch: u64, inputs: &str) -> Result<Option<Layout>> {
        let Ok(text) = std::fs::read_to_string(Self::path(dir)) else { return Ok(None) };
        let Ok(written) = serde_json::from_str::<Value>(&text) else { return Ok(None) };
        let reproducible = written["cold"] == true && written["clamped"] == true;
        if !reproducible || written["epoch"] != epoch || written["inputs"] != inputs {
            return Ok(None);
        }
        let Ok(layout) = Layout::open(dir) else { return Ok(None) };
        Ok((written["layout"].as_str() == Some(layout.digest()?.as_str())).then_some(layout))
    }

    /// The layout at `dir`, when it was written from this memo's build and still holds what it wrote.
    pub fn current(&self, dir: &Path) -> Result<Option<Layout>> {
        let Ok(text) = std::fs::read_to_string(Self::path(dir)) else { return Ok(None) };
        let Ok(written) = serde_json::from_str::<Value>(&text) else { return Ok(None) };
        let same =
            written["raw"] == self.raw.as_str() && written["epoch"] == self.epoch && written["clamped"] == self.clamped;
        let Ok(layout) = Layout::open(dir) else { return Ok(None) };
        Ok((same && written["layout"].as_str() == Some(layout.digest()?.as_str())).then_some(layout))
    }

    /// Records that the layout at `dir`, holding `digest`, was written from
    /// this build; `cold`: no step of it came from the cache.
    pub fn write(&self, dir: &Path, digest: &str, cold: bool) -> Result<()> {
        let json = serde_json::json!({
            "raw": self.raw, "epoch": self.epoch, "inputs": self.inputs, "clamped": self.clamped,
            "layout": digest, "cold": cold
        });
        std::fs::write(Self::path(dir), json.to_string())
            .with_context(|| format!("writing {}", Self::path(dir).display()))
    }
}

/// Holds `dir`'s lock file (`DIR.lock`) while one build writes the layout:
/// two builds of one image never write or collect the same layout at once.
pub fn lock(dir: &Path) -> Result<std::fs::File> {
    let path = dir.with_extension("lock");
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    let file = std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    file.lock().with_context(|| format!("locking {}", path.display()))?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Writes `content` as a blob of the layout at `dir`; its digest.
    fn blob(dir: &Path, content: &[u8]) -> String {
        use sha2::Digest as _;
        let hex = format!("{:x}", sha2::Sha256::digest(content));
        std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
        std::fs::write(dir.join("blobs/sha256").join(&hex), content).unwrap();
        format!("sha256:{hex}")
    }

    /// A two-platform layout and a leftover blob of an earlier build.
    fn layout(dir: &Path) -> (String, Vec<String>, String) {
        let mut reached = Vec::new();
        let mut manifests = Vec::new();
        for arch in ["amd64", "arm64"] {
            let config = blob(dir, json!({"architecture": arch, "os": "linux"}).to_string().as_bytes());
            let layer = blob(dir, format!("layer of {arch}").as_bytes());
            let manifest =
                blob(dir, json!({"config": {"digest": config}, "layers": [{"digest": layer}]}).to_string().as_bytes());
            reached.extend([config, layer, manifest.clone()]);
            manifests.push(json!({
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": manifest,
                "platform": {"os": "linux", "architecture": arch}
            }));
        }
        let index = blob(dir, json!({"manifests": manifests}).to_string().as_bytes());
        reached.push(index.clone());
        let old = blob(dir, b"a layer of an earlier build");
        std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        let top = json!({"manifests": [{"mediaType": "application/vnd.oci.image.index.v1+json", "digest": index}]});
        std::fs::write(dir.join("index.json"), top.to_string()).unwrap();
        std::fs::create_dir_all(dir.join("ingest/x")).unwrap();
        reached.sort();
        (index, reached, old)
    }

    /// A BuildKit cache export (`--cache-to type=local`): its index lists
    /// the cache's layers and its cache config as `manifests`.
    #[test]
    fn a_cache_export_keeps_its_layers_and_config_and_loses_the_rest() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let layer = blob(dir, &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0]);
        let config = blob(dir, br#"{"layers":[{"blob":"x"}],"records":[]}"#);
        let index = blob(
            dir,
            json!({"manifests": [
                {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer},
                {"mediaType": "application/vnd.buildkit.cacheconfig.v0", "digest": config}
            ]})
            .to_string()
            .as_bytes(),
        );
        let old = blob(dir, b"a layer of an earlier cache");
        let top = json!({"manifests": [{"mediaType": "application/vnd.oci.image.index.v1+json", "digest": index}]});
        std::fs::write(dir.join("index.json"), top.to_string()).unwrap();
        let l = Layout::open(dir).unwrap();
        let mut want = vec![layer, config, index];
        want.sort();
        assert_eq!(l.reachable().unwrap().into_iter().collect::<Vec<_>>(), want);
        assert_eq!(l.collect_garbage().unwrap(), b"a layer of an earlier cache".len() as u64);
        assert!(!l.blob_path(&old).unwrap().exists());
        assert!(want.iter().all(|d| l.blob_path(d).unwrap().is_file()));
    }

    #[test]
    fn garbage_is_what_the_index_no_longer_reaches() {
        let tmp = tempfile::tempdir().unwrap();
        let (index, reached, old) = layout(tmp.path());
        let l = Layout::open(tmp.path()).unwrap();
        assert_eq!(l.digest().unwrap(), index);
        assert_eq!(l.reachable().unwrap().into_iter().collect::<Vec<_>>(), reached);
        assert_eq!(l.collect_garbage().unwrap(), b"a layer of an earlier build".len() as u64);
        assert!(!l.blob_path(&old).unwrap().exists());
        assert!(reached.iter().all(|d| l.blob_path(d).unwrap().is_file()));
        assert!(!tmp.path().join("ingest").exists());
        assert_eq!(l.platforms().unwrap().keys().cloned().collect::<Vec<_>>(), ["linux/amd64", "linux/arm64"]);
    }

    #[test]
    fn the_tar_stream_holds_the_layout_and_only_what_it_reaches() {
        let tmp = tempfile::tempdir().unwrap();
        let (_, reached, _) = layout(tmp.path());
        let mut bytes = Vec::new();
        Layout::open(tmp.path()).unwrap().write_tar(&mut bytes).unwrap();
        let mut names: Vec<String> = tar::Archive::new(bytes.as_slice())
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        names.sort();
        let mut want: Vec<String> =
            reached.iter().map(|d| format!("blobs/sha256/{}", d.trim_start_matches("sha256:"))).collect();
        want.extend(["index.json".to_string(), "oci-layout".to_string()]);
        want.sort();
        assert_eq!(names, want);
    }

    #[test]
    fn a_memo_holds_only_for_the_same_build_epoch_and_layout() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("img");
        std::fs::create_dir_all(&dir).unwrap();
        let (index, _, _) = layout(&dir);
        let memo = Memo { raw: "sha256:raw".into(), epoch: 7, inputs: "sha256:in".into(), clamped: true };
        assert!(memo.current(&dir).unwrap().is_none(), "no memo written yet");
        memo.write(&dir, &index, false).unwrap();
        assert!(Memo::cold(&dir, 7, "sha256:in").unwrap().is_none(), "a build with cache hits is not cold");
        memo.write(&dir, &index, true).unwrap();
        assert_eq!(Memo::cold(&dir, 7, "sha256:in").unwrap().unwrap().dir, dir);
        assert!(Memo::cold(&dir, 8, "sha256:in").unwrap().is_none(), "another commit's cold build");
        assert!(Memo::cold(&dir, 7, "sha256:other").unwrap().is_none(), "a cold build of other inputs");
        Memo { clamped: false, ..memo.clone() }.write(&dir, &index, true).unwrap();
        assert!(Memo::cold(&dir, 7, "sha256:in").unwrap().is_none(), "a cold build without its times clamped");
        memo.write(&dir, &index, true).unwrap();
        assert_eq!(memo.current(&dir).unwrap().unwrap().dir, dir);
        assert!(Memo { epoch: 8, ..memo.clone() }.current(&dir).unwrap().is_none());
        assert!(Memo { clamped: false, ..memo.clone() }.current(&dir).unwrap().is_none());
        assert!(Memo { raw: "sha256:other".into(), ..memo.clone() }.current(&dir).unwrap().is_none());
        // The layout was rewritten since (or is half written): the memo no longer holds.
        std::fs::write(dir.join("index.json"), json!({"manifests": [{"digest": "sha256:0"}]}).to_string()).unwrap();
        assert!(memo.current(&dir).unwrap().is_none());
        std::fs::remove_file(dir.join("index.json")).unwrap();
        assert!(memo.current(&dir).unwrap().is_none());
    }
}
