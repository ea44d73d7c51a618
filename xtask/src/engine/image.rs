//! A built image, ready to be checked: the handle every check takes.
//!
//! A [`Target`] (catalog image, tag, registry, platforms) becomes a
//! [`BuiltImage`] once: the image `image build` left in the local engine, or
//! the one pushed to `--registry`, pulled platform by platform so that what
//! is checked is what the registry serves. Anything else is a one-line error
//! with the command that builds it.
//!
//! On the containerd image store one tag holds every platform. The classic
//! store keeps one platform per tag, so each platform of a pushed image is
//! pulled by its own manifest digest and its containers run from that.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use super::docker::{self, ImageStore};
use crate::model::catalog::{Image, Platform};
use crate::model::target::{build_hint, repository_of, Target};

/// An image present in the local engine for each of its platforms.
#[derive(Debug)]
pub struct BuiltImage<'c> {
    pub image: &'c Image,
    /// The reference a user names it by: `[REGISTRY/]REPOSITORY:TAG`.
    pub reference: String,
    /// Where it was pulled from, when it was.
    pub registry: Option<String>,
    pub platforms: Vec<Platform>,
    /// The OCI layout `image build` wrote, when it holds exactly the image
    /// the reference names in the engine: what `image size` and `image
    /// scan` read instead of a `docker save`.
    pub layout: Option<PathBuf>,
    /// What a container of each platform runs from.
    runnable: Vec<(Platform, String)>,
    /// Undoes the pull on drop: what it added to the local store goes again.
    _pulled: Option<Pulled>,
}

impl BuiltImage<'_> {
    /// The reference to run (or `docker save`) for `platform`.
    pub fn runnable(&self, platform: &Platform) -> &str {
        self.runnable.iter().find(|(p, _)| p == platform).map_or(self.reference.as_str(), |(_, r)| r.as_str())
    }

    /// Each distinct runnable reference once, with the platforms it holds.
    pub fn exports(&self) -> Vec<(&str, Vec<Platform>)> {
        let mut out: Vec<(&str, Vec<Platform>)> = Vec::new();
        for p in &self.platforms {
            let r = self.runnable(p);
            match out.iter_mut().find(|(reference, _)| *reference == r) {
                Some((_, ps)) => ps.push(p.clone()),
                None => out.push((r, vec![p.clone()])),
            }
        }
        out
    }
}

/// The target in the local engine, or pulled from its registry.
pub fn resolve<'c>(target: &Target<'c>) -> Result<BuiltImage<'c>> {
    match &target.registry {
        Some(registry) => pull(target, registry),
        None => local(target),
    }
}

/// The image `image build` left in the local engine under the target's tag.
pub fn local<'c>(target: &Target<'c>) -> Result<BuiltImage<'c>> {
    let reference = target.reference();
    let Some(id) = local_id(&reference)? else {
        bail!(
            "image `{}` is not built ({reference} not found): run `{}`",
            target.image.name,
            build_hint(target.image, None, None)
        );
    };
    let layout = target
        .layouts
        .iter()
        .find(|dir| super::oci::Layout::open(dir).and_then(|l| l.digest()).is_ok_and(|digest| digest == id));
    Ok(BuiltImage {
        image: target.image,
        layout: layout.cloned(),
        runnable: target.platforms.iter().map(|p| (p.clone(), reference.clone())).collect(),
        reference,
        registry: None,
        platforms: target.platforms.clone(),
        _pulled: None,
    })
}

fn exists_locally(reference: &str) -> Result<bool> {
    Ok(local_id(reference)?.is_some())
}

/// The image ID the reference names in the local engine (on the containerd
/// store, the digest of what was loaded: an index for several platforms).
fn local_id(reference: &str) -> Result<Option<String>> {
    let out = docker::docker().args(["image", "inspect", "--format", "{{.Id}}", reference]).probe().output()?;
    Ok(out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string()))
}

/// Pulls each platform of the pushed image; they are removed again when the
/// handle is dropped, unless they were here before.
pub fn pull<'c>(target: &Target<'c>, registry: &str) -> Result<BuiltImage<'c>> {
    let reference = target.reference();
    let not_pushed = || {
        anyhow::anyhow!(
            "image `{}` is not pushed ({reference} not found in {registry}): run `{}`",
            target.image.name,
            build_hint(target.image, None, Some(registry))
        )
    };
    docker::check_registry(registry)?;
    let manifest = super::imagetools::manifest_json(&reference).map_err(|_| not_pushed())?;
    let plan = pull_plan(docker::image_store()?, &reference, &manifest, &target.platforms).map_err(|e| {
        let hint = build_hint(target.image, e.platform.as_ref(), Some(registry));
        anyhow::anyhow!("image `{}` {}: run `{hint}`", target.image.name, e.why)
    })?;
    let mut pulled = Pulled { added: Vec::new() };
    for step in &plan {
        if !pulled.added.contains(&step.pull) && !exists_locally(&step.pull)? {
            pulled.added.push(step.pull.clone());
        }
        docker::docker()
            .args(["pull", "--quiet", "--platform", &step.platform.to_string(), &step.pull])
            .read()
            .with_context(|| format!("pulling {} for {}", step.pull, step.platform))?;
    }
    Ok(BuiltImage {
        image: target.image,
        reference,
        registry: Some(registry.to_string()),
        layout: None,
        platforms: target.platforms.clone(),
        runnable: plan.into_iter().map(|s| (s.platform, s.pull)).collect(),
        _pulled: Some(pulled),
    })
}

/// One platform's pull: what to pull, which is then also what runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullStep {
    pub platform: Platform,
    pub pull: String,
}

/// Why a pushed image can't be pulled as asked.
#[derive(Debug, PartialEq, Eq)]
pub struct NotPullable {
    /// The platform the registry lacks, if that is why.
    pub platform: Option<Platform>,
    pub why: String,
}

/// How to bring `platforms` of the pushed `reference` (whose manifest or
/// index is `manifest`) into a store.
pub fn pull_plan(
    store: ImageStore,
    reference: &str,
    manifest: &serde_json::Value,
    platforms: &[Platform],
) -> std::result::Result<Vec<PullStep>, NotPullable> {
    let index: docker::Manifest = serde_json::from_value(manifest.clone())
        .map_err(|e| NotPullable { platform: None, why: format!("has a manifest we can't read ({e})") })?;
    if index.manifests.is_empty() {
        // A single-platform manifest: its tag is all there is.
        return Ok(platforms.iter().map(|p| PullStep { platform: p.clone(), pull: reference.to_string() }).collect());
    }
    let digests = docker::platform_digests(&index);
    platforms
        .iter()
        .map(|p| {
            let digest = digests
                .iter()
                .find(|(found, _)| {
                    found.os == p.os && found.arch == p.arch && (p.variant.is_none() || found.variant == p.variant)
                })
                .map(|(_, d)| d)
                .ok_or_else(|| {
                    let has: Vec<String> = digests.iter().map(|(found, _)| found.to_string()).collect();
                    let has = if has.is_empty() { "none".into() } else { has.join(", ") };
                    NotPullable {
                        platform: Some(p.clone()),
                        why: format!("has no {p} in the registry ({reference} has {has})"),
                    }
                })?;
            let pull = match store {
                ImageStore::Containerd => reference.to_string(),
                ImageStore::Classic => format!("{}@{digest}", repository_of(reference)),
            };
            Ok(PullStep { platform: p.clone(), pull })
        })
        .collect()
}

/// What a pull added to the local store.
#[derive(Debug)]
struct Pulled {
    added: Vec<String>,
}

impl Drop for Pulled {
    fn drop(&mut self) {
        if !self.added.is_empty() {
            let _ = docker::docker().args(["image", "rm"]).args(&self.added).probe().output();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index() -> serde_json::Value {
        serde_json::json!({
            "manifests": [
                {"digest": "sha256:aaa", "platform": {"os": "linux", "architecture": "amd64"}},
                {"digest": "sha256:bbb", "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
                {"digest": "sha256:ccc", "platform": {"os": "unknown", "architecture": "unknown"},
                 "annotations": {"vnd.docker.reference.type": "attestation-manifest"}}
            ]
        })
    }

    fn platforms(list: &[&str]) -> Vec<Platform> {
        list.iter().map(|p| Platform::parse(p).unwrap()).collect()
    }

    #[test]
    fn the_classic_store_pulls_and_runs_each_platform_by_digest() {
        // Before: `docker pull --platform P TAG` per platform, and on the
        // classic store the tag kept only the last one pulled.
        let both = platforms(&["linux/amd64", "linux/arm64"]);
        let plan = pull_plan(ImageStore::Classic, "localhost:5000/x:sha-1", &index(), &both).unwrap();
        let pulls: Vec<&str> = plan.iter().map(|s| s.pull.as_str()).collect();
        assert_eq!(pulls, ["localhost:5000/x@sha256:aaa", "localhost:5000/x@sha256:bbb"]);
        let plan = pull_plan(ImageStore::Containerd, "localhost:5000/x:sha-1", &index(), &both).unwrap();
        assert!(plan.iter().all(|s| s.pull == "localhost:5000/x:sha-1"));
    }

    #[test]
    fn a_platform_the_registry_lacks_is_named() {
        let err = pull_plan(ImageStore::Classic, "r/x:1", &index(), &platforms(&["linux/s390x"])).unwrap_err();
        assert_eq!(err.why, "has no linux/s390x in the registry (r/x:1 has linux/amd64, linux/arm64/v8)");
        assert_eq!(err.platform, Some(platforms(&["linux/s390x"])[0].clone()));
    }

    #[test]
    fn a_single_manifest_is_pulled_by_its_tag() {
        let manifest = serde_json::json!({"config": {"digest": "sha256:c"}, "layers": []});
        let plan = pull_plan(ImageStore::Classic, "r/x:1", &manifest, &platforms(&["linux/amd64"])).unwrap();
        assert_eq!(plan, vec![PullStep { platform: platforms(&["linux/amd64"])[0].clone(), pull: "r/x:1".into() }]);
    }
}
