//! A build exported as an OCI layout directory, for the reproducibility
//! check: `docker buildx build --no-cache --output
//! type=oci,dest=DIR,tar=false,rewrite-timestamp=true` with
//! `SOURCE_DATE_EPOCH` as a build argument (BuildKit then sets the config's
//! times from it and rewrites the files' mtimes to it), then the layout
//! read back: per platform, the manifest digest, config and layers.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde_json::Value;

use super::buildx::Invocation;
use super::docker;
use super::process::Cmd;
use super::progress::Tracker;
use crate::model::catalog;
use crate::model::repro::{self, FileDiff, PlatformImage};

/// The command line of a no-cache build of `inv` into the layout `dest`,
/// its files' times set to `epoch`.
pub fn command(inv: &Invocation, dest: &Path, epoch: u64) -> Cmd {
    let context: Vec<&str> = inv.docker_context.iter().flat_map(|c| ["--context", c.as_str()]).collect();
    let builder: Vec<&str> = inv.builder.iter().flat_map(|b| ["--builder", b.as_str()]).collect();
    let mut cmd = docker::docker()
        .args(context)
        .args(["buildx", "build"])
        .args(builder)
        .args(["--progress=rawjson", "--no-cache"])
        .arg("--platform")
        .arg(catalog::join(&inv.platforms))
        .arg("--file")
        .arg(&inv.dockerfile)
        .arg("--output")
        .arg(format!("type=oci,dest={},tar=false,rewrite-timestamp=true", dest.display()));
    if let Some(target) = &inv.target {
        cmd = cmd.args(["--target", target]);
    }
    for (k, v) in &inv.labels {
        cmd = cmd.arg("--label").arg(format!("{k}={v}"));
    }
    for (k, v) in inv.build_args.iter().filter(|(k, _)| k != "SOURCE_DATE_EPOCH") {
        cmd = cmd.arg("--build-arg").arg(format!("{k}={v}"));
    }
    cmd = cmd.arg("--build-arg").arg(format!("SOURCE_DATE_EPOCH={epoch}"));
    for (name, value) in &inv.contexts {
        cmd = cmd.arg("--build-context").arg(format!("{name}={value}"));
    }
    cmd.args(["--provenance=false", "--sbom=false"]).arg(&inv.context)
}

/// Builds `inv` (image `name`) into the layout `dest`, streaming progress unless `quiet`.
pub fn build(name: &str, inv: &Invocation, dest: &Path, epoch: u64, quiet: bool) -> Result<Layout> {
    let mut tracker = Tracker::new(!quiet);
    let status = command(inv, dest, epoch).stream_stderr(|line| tracker.feed_line(line))?;
    if !status.success() {
        if let Some(f) = tracker.failure() {
            for line in &f.log_tail {
                eprintln!("  | {line}");
            }
            bail!(
                "image `{name}`: step `{}` failed: {}: fix that step and run again",
                f.step,
                f.error.lines().next().unwrap_or("")
            );
        }
        let why = tracker.text.iter().rev().find(|l| l.starts_with("ERROR")).or(tracker.text.last()).cloned();
        bail!("image `{name}`: buildx failed: {}", why.unwrap_or_else(|| "buildx exited without saying why".into()));
    }
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

    fn json(&self, path: &Path) -> Result<Value> {
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
