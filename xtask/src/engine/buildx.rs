//! One `docker buildx build`: the command line from a planned build, its
//! progress streamed in BuildKit's `--progress=plain` look (from the
//! `rawjson` stream, which also tells which steps were cached), and what it
//! made: the digest, and the cache hits per platform. A failed build is one
//! line naming the failed step, after the tail of that step's output.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};

use super::docker;
use super::process::Cmd;
use super::progress::{self, CacheStats, Tracker};
use crate::model::catalog::{self, Platform};

/// Everything buildx is told.
#[derive(Debug, Clone, Default)]
pub struct Invocation {
    pub platforms: Vec<Platform>,
    pub dockerfile: PathBuf,
    pub context: PathBuf,
    /// The stage to build (`--target`).
    pub target: Option<String>,
    pub refs: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub build_args: Vec<(String, String)>,
    /// Named contexts: `NAME=PATH` or `NAME=docker-image://REF`.
    pub contexts: Vec<(String, String)>,
    /// Push instead of loading into the local engine.
    pub push: bool,
    pub provenance: bool,
    pub sbom: bool,
    pub no_cache: bool,
    /// `--cache-from=…`/`--cache-to=…` flags.
    pub cache_flags: Vec<String>,
    /// `--builder NAME` (none: buildx's current builder).
    pub builder: Option<String>,
    /// `docker --context NAME`: a `docker`-driver builder of another
    /// engine is used from its own context (buildx refuses it otherwise).
    pub docker_context: Option<String>,
    /// Export an OCI layout instead of loading or pushing.
    pub layout: Option<LayoutOutput>,
    /// Only the image's digest (`--output type=image,unpack=false,store=false`):
    /// it says whether anything changed since the layout was written. Its
    /// layers are compressed into the build cache (where the layout's export
    /// finds them), but no image is stored: with `store=true` each build
    /// left an unnamed image behind, holding its blobs.
    pub store_only: bool,
}

/// An OCI layout directory as the build's output, every platform, with
/// `SOURCE_DATE_EPOCH` = `epoch` as a build argument (the config's times;
/// the files' times are clamped to it afterwards, by `engine::clamp`, so
/// that a rebuild of the same commit without cache gives the same digest).
#[derive(Debug, Clone)]
pub struct LayoutOutput {
    pub dest: PathBuf,
    pub epoch: u64,
}

/// What a build made.
#[derive(Debug, Clone)]
pub struct Built {
    /// Digest of what was exported: an index for several platforms.
    pub digest: String,
    pub is_index: bool,
    pub wall_seconds: f64,
    pub cache: BTreeMap<Platform, CacheStats>,
}

impl Invocation {
    pub fn command(&self, metadata_file: &std::path::Path) -> Cmd {
        let context: Vec<&str> = self.docker_context.iter().flat_map(|c| ["--context", c.as_str()]).collect();
        let builder: Vec<&str> = self.builder.iter().flat_map(|b| ["--builder", b.as_str()]).collect();
        let mut cmd = docker::docker()
            .args(context)
            .args(["buildx", "build"])
            .args(builder)
            .arg("--progress=rawjson")
            .arg("--platform")
            .arg(catalog::join(&self.platforms))
            .arg("--file")
            .arg(&self.dockerfile)
            .arg("--metadata-file")
            .arg(metadata_file);
        if let Some(target) = &self.target {
            cmd = cmd.args(["--target", target]);
        }
        match (&self.layout, self.store_only) {
            (_, true) => {
                cmd = cmd.args(["--output", "type=image,unpack=false,store=false"]);
            }
            // The first reference names the image in the layout (what `docker load` tags).
            (Some(out), false) => {
                let name = self.refs.first().map(|r| format!(",name={r}")).unwrap_or_default();
                cmd = cmd.arg("--output").arg(format!("type=oci,dest={},tar=false{name}", out.dest.display()));
            }
            (None, false) => {
                cmd = cmd.arg(if self.push { "--push" } else { "--load" });
                for r in &self.refs {
                    cmd = cmd.args(["--tag", r]);
                }
            }
        }
        for (k, v) in &self.labels {
            cmd = cmd.arg("--label").arg(format!("{k}={v}"));
        }
        let epoch = self.layout.as_ref().map(|out| out.epoch);
        for (k, v) in self.build_args.iter().filter(|(k, _)| epoch.is_none() || k != "SOURCE_DATE_EPOCH") {
            cmd = cmd.arg("--build-arg").arg(format!("{k}={v}"));
        }
        if let Some(epoch) = epoch {
            cmd = cmd.arg("--build-arg").arg(format!("SOURCE_DATE_EPOCH={epoch}"));
        }
        for (name, value) in &self.contexts {
            cmd = cmd.arg("--build-context").arg(format!("{name}={value}"));
        }
        cmd = cmd.arg(if self.provenance { "--provenance=mode=max" } else { "--provenance=false" });
        cmd = cmd.arg(format!("--sbom={}", self.sbom));
        if self.no_cache {
            cmd = cmd.arg("--no-cache");
        }
        cmd.args(&self.cache_flags).arg(&self.context)
    }

    /// What the image is built from, whatever the output or the cache: a
    /// digest of the platforms, Dockerfile, context, target, labels, build
    /// arguments and named contexts.
    pub fn fingerprint(&self) -> String {
        use sha2::Digest as _;
        let text = format!(
            "{:?}",
            (
                catalog::join(&self.platforms),
                &self.dockerfile,
                &self.context,
                &self.target,
                &self.labels,
                &self.build_args,
                &self.contexts
            )
        );
        format!("sha256:{:x}", sha2::Sha256::digest(text.as_bytes()))
    }

    /// Runs the build of image `name`, streaming its progress unless `quiet`.
    pub fn run(&self, name: &str, quiet: bool) -> Result<Built> {
        let metadata = tempfile::Builder::new()
            .prefix("xtask-build-")
            .suffix(".json")
            .tempfile()
            .context("creating the buildx metadata file")?;
        let cmd = self.command(metadata.path());
        if !quiet {
            eprintln!("==> building {name} for {}", catalog::join(&self.platforms));
        }
        let started = Instant::now();
        let mut tracker = Tracker::new(!quiet);
        let status = cmd.stream_stderr(|line| tracker.feed_line(line))?;
        let wall_seconds = started.elapsed().as_secs_f64();
        if !status.success() {
            return Err(failure(name, &tracker));
        }
        let metadata: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(metadata.path()).context("buildx wrote no metadata file")?)
                .context("buildx's metadata file is not JSON")?;
        let digest =
            metadata["containerimage.digest"].as_str().context("buildx's metadata has no containerimage.digest")?;
        let is_index = metadata["containerimage.descriptor"]["mediaType"]
            .as_str()
            .is_some_and(|m| m.contains("index") || m.contains("manifest.list"));
        Ok(Built {
            digest: digest.to_string(),
            is_index,
            wall_seconds,
            cache: progress::cache_stats(&tracker.steps(), &self.platforms),
        })
    }
}

/// One line naming the failed step, after the tail of its output.
fn failure(image: &str, tracker: &Tracker) -> anyhow::Error {
    if let Some(f) = tracker.failure() {
        if !f.log_tail.is_empty() {
            eprintln!("--- last output of `{}` ---", f.step);
            for line in &f.log_tail {
                eprintln!("  | {line}");
            }
        }
        return anyhow::anyhow!(
            "image `{image}`: step `{}` failed: {}: fix that step (its output is above) and build again",
            f.step,
            f.error.lines().next().unwrap_or_default()
        );
    }
    let why = tracker
        .text
        .iter()
        .rev()
        .find(|l| l.starts_with("ERROR"))
        .or(tracker.text.last())
        .cloned()
        .unwrap_or_else(|| "buildx exited without saying why".into());
    anyhow::anyhow!("image `{image}`: buildx failed: {why}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_says_everything_planned() {
        let inv = Invocation {
            platforms: vec![Platform::parse("linux/amd64").unwrap(), Platform::parse("linux/arm64").unwrap()],
            dockerfile: "ctx/Dockerfile".into(),
            context: "ctx".into(),
            target: Some("runtime".into()),
            refs: vec!["r/x:main-abc".into()],
            labels: [("org.opencontainers.image.title".to_string(), "x".to_string())].into(),
            build_args: vec![("A".into(), "1".into())],
            contexts: vec![("base".into(), "docker-image://r/base:main-abc".into())],
            cache_flags: vec!["--cache-to=type=local,dest=c,mode=max".into()],
            ..Invocation::default()
        };
        assert_eq!(
            inv.command(std::path::Path::new("m.json")).display(),
            "docker buildx build --progress=rawjson --platform linux/amd64,linux/arm64 --file ctx/Dockerfile \
             --metadata-file m.json --target runtime --load --tag r/x:main-abc \
             --label org.opencontainers.image.title=x --build-arg A=1 \
             --build-context base=docker-image://r/base:main-abc --provenance=false --sbom=false \
             --cache-to=type=local,dest=c,mode=max ctx"
        );
        let elsewhere = Invocation {
            platforms: vec![Platform::parse("linux/amd64").unwrap()],
            dockerfile: "D".into(),
            context: ".".into(),
            builder: Some("other".into()),
            docker_context: Some("other".into()),
            ..Invocation::default()
        };
        assert_eq!(
            elsewhere.command(std::path::Path::new("m.json")).display(),
            "docker --context other buildx build --builder other --progress=rawjson --platform linux/amd64 \
             --file D --metadata-file m.json --load --provenance=false --sbom=false ."
        );
    }

    #[test]
    fn a_layout_build_exports_oci_with_the_epoch_and_a_store_only_run_names_nothing() {
        let inv = Invocation {
            platforms: vec![Platform::parse("linux/amd64").unwrap()],
            dockerfile: "D".into(),
            context: ".".into(),
            refs: vec!["r/x:main-abc".into(), "r/x:latest".into()],
            build_args: vec![("SOURCE_DATE_EPOCH".into(), "1".into()), ("A".into(), "1".into())],
            layout: Some(LayoutOutput { dest: "target/oci/x".into(), epoch: 1700000000 }),
            ..Invocation::default()
        };
        assert_eq!(
            inv.command(std::path::Path::new("m.json")).display(),
            "docker buildx build --progress=rawjson --platform linux/amd64 --file D --metadata-file m.json \
             --output type=oci,dest=target/oci/x,tar=false,name=r/x:main-abc \
             --build-arg A=1 --build-arg SOURCE_DATE_EPOCH=1700000000 --provenance=false --sbom=false ."
        );
        let raw = Invocation { store_only: true, ..inv };
        assert_eq!(
            raw.command(std::path::Path::new("m.json")).display(),
            "docker buildx build --progress=rawjson --platform linux/amd64 --file D --metadata-file m.json \
             --output type=image,unpack=false,store=false --build-arg A=1 --build-arg SOURCE_DATE_EPOCH=1700000000 \
             --provenance=false --sbom=false ."
        );
    }
}
