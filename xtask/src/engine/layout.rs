//! One platform of a built image as an OCI layout directory, for tools that
//! read one (Trivy): a view of the layout `image build` wrote (its blobs
//! linked, not copied), or for any other image `docker save` streamed into
//! a directory; then its `index.json` narrowed to the one platform's manifest. (Trivy takes the
//! first manifest of a layout and ignores `--platform` for local images, and
//! Engine 26 has no `docker save --platform`.)

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use super::docker;
use crate::model::catalog::Platform;

/// An exported image: the layout directory and its original index.
#[derive(Debug)]
pub struct Layout {
    pub dir: PathBuf,
    index: Value,
}

const INDEX_TYPES: &[&str] =
    &["application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json"];

impl Layout {
    /// `docker save reference` unpacked into `dir` (which must be empty or absent).
    pub fn export(reference: &str, dir: &Path) -> Result<Layout> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut reader = docker::docker().args(["save", reference]).reader()?;
        let unpacked = tar::Archive::new(&mut reader).unpack(dir);
        let stderr = reader.finish();
        unpacked.map_err(|e| {
            anyhow::anyhow!(
                "exporting {reference}: {}",
                if stderr.trim().is_empty() { e.to_string() } else { super::process::last_lines(&stderr, 1) }
            )
        })?;
        // A docker-archive manifest would be read before the OCI index.
        let _ = std::fs::remove_file(dir.join("manifest.json"));
        let index: Value = serde_json::from_slice(&std::fs::read(dir.join("index.json")).with_context(|| {
            format!("`docker save {reference}` wrote no index.json: this engine's export is not an OCI layout")
        })?)
        .context("index.json is not JSON")?;
        Ok(Layout { dir: dir.to_path_buf(), index })
    }

    /// A view of the OCI layout `build` in `dir` (which must be absent):
    /// its own `index.json` (to narrow), `blobs` a link to `build`'s.
    pub fn view(build: &Path, dir: &Path) -> Result<Layout> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        for file in ["oci-layout", "index.json"] {
            std::fs::copy(build.join(file), dir.join(file))
                .with_context(|| format!("copying {file} of the layout {}", build.display()))?;
        }
        let blobs = std::path::absolute(build.join("blobs")).context("resolving the layout's path")?;
        std::os::unix::fs::symlink(&blobs, dir.join("blobs"))
            .with_context(|| format!("linking {} into {}", blobs.display(), dir.display()))?;
        let index: Value = serde_json::from_slice(&std::fs::read(dir.join("index.json"))?)
            .with_context(|| format!("{}/index.json is not JSON", build.display()))?;
        Ok(Layout { dir: dir.to_path_buf(), index })
    }

    fn blob(&self, digest: &str) -> Result<Value> {
        let hex = digest.strip_prefix("sha256:").with_context(|| format!("digest {digest} is not sha256"))?;
        let bytes =
            std::fs::read(self.dir.join("blobs/sha256").join(hex)).with_context(|| format!("blob {digest} missing"))?;
        serde_json::from_slice(&bytes).with_context(|| format!("blob {digest} is not JSON"))
    }

    /// The layout's image manifests with their platforms (attestations left out).
    fn manifests(&self, node: &Value, depth: usize, out: &mut Vec<Value>) -> Result<()> {
        for desc in node["manifests"].as_array().into_iter().flatten() {
            let media = desc["mediaType"].as_str().unwrap_or("");
            if desc["annotations"].get("vnd.docker.reference.type").is_some() {
                continue;
            }
            if INDEX_TYPES.contains(&media) && depth < 4 {
                let nested = self.blob(desc["digest"].as_str().unwrap_or(""))?;
                self.manifests(&nested, depth + 1, out)?;
            } else if self
                .dir
                .join("blobs/sha256")
                .join(desc["digest"].as_str().unwrap_or("").trim_start_matches("sha256:"))
                .is_file()
            {
                out.push(desc.clone());
            }
        }
        Ok(())
    }

    /// Narrows `index.json` to `platform`'s manifest.
    pub fn select(&self, platform: &Platform) -> Result<()> {
        let mut found = Vec::new();
        self.manifests(&self.index, 0, &mut found)?;
        let chosen = match found.as_slice() {
            // A single-platform export (the classic store's by-digest save) names no platform.
            [only] if only.get("platform").is_none() => only.clone(),
            _ => found
                .iter()
                .find(|d| {
                    let p = &d["platform"];
                    p["os"] == platform.os.as_str()
                        && p["architecture"] == platform.arch.as_str()
                        && (platform.variant.is_none() || p["variant"].as_str() == platform.variant.as_deref())
                })
                .cloned()
                .with_context(|| {
                    let has: Vec<String> = found
                        .iter()
                        .map(|d| {
                            format!(
                                "{}/{}",
                                d["platform"]["os"].as_str().unwrap_or("?"),
                                d["platform"]["architecture"].as_str().unwrap_or("?")
                            )
                        })
                        .collect();
                    format!(
                        "the export has no {platform} (it has {})",
                        if has.is_empty() { "none".into() } else { has.join(", ") }
                    )
                })?,
        };
        if chosen["mediaType"].as_str().is_some_and(|m| INDEX_TYPES.contains(&m)) {
            bail!("the export's manifest for {platform} is an index, not an image");
        }
        let index = json!({"schemaVersion": 2, "mediaType": INDEX_TYPES[0], "manifests": [chosen]});
        std::fs::write(self.dir.join("index.json"), serde_json::to_vec(&index)?).context("writing index.json")
    }
}
