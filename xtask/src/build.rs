//! `cargo xtask image build`: catalog images through `docker buildx build`,
//! for one or many platforms, loaded locally or pushed, with a report of
//! digests, tags, wall time and cache hits.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::catalog::{self, Catalog, Image, ImageKind, Platform};
use crate::docker;
use crate::process::Cmd;
use crate::progress::{self, CacheStats, Tracker};
use crate::tags::{self, GitInfo, Version};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheMode {
    /// A cache directory per image under target/buildx-cache (or --cache-dir).
    Local,
    /// `<registry>/<repository>:buildcache` (needs --registry).
    Registry,
    /// The GitHub Actions cache service (in GitHub Actions only).
    Gha,
    /// Only the engine's own build cache.
    None,
}

#[derive(Debug, Clone, clap::Args)]
pub struct BuildArgs {
    /// Images from the catalog (default: all that this machine can build).
    pub images: Vec<String>,
    /// Platforms, comma-separated or repeated (default: the catalog's).
    #[arg(long, value_delimiter = ',')]
    pub platform: Vec<String>,
    /// Load the result into the local engine (the default unless --push).
    #[arg(long, conflicts_with = "push")]
    pub load: bool,
    /// Push to --registry instead of loading.
    #[arg(long)]
    pub push: bool,
    /// Registry prefix for the image references, e.g. localhost:5000.
    #[arg(long)]
    pub registry: Option<String>,
    /// Where the build cache is imported from and exported to.
    #[arg(long, value_enum, default_value_t = CacheMode::Local)]
    pub cache: CacheMode,
    /// Directory for --cache local (default: target/buildx-cache/IMAGE).
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// Ignore every cache (a cold build).
    #[arg(long)]
    pub no_cache: bool,
    /// KEY=VALUE, passed to buildx after the catalog's args.
    #[arg(long = "build-arg")]
    pub build_args: Vec<String>,
    /// Attach a provenance attestation (mode=max).
    #[arg(long)]
    pub provenance: bool,
    /// Attach an SBOM attestation.
    #[arg(long)]
    pub sbom: bool,
    /// Release version (MAJOR.MINOR.PATCH); default: a vX.Y.Z tag at HEAD.
    #[arg(long)]
    pub release: Option<String>,
    /// Branch name to tag with, for CI checkouts on a detached HEAD.
    #[arg(long)]
    pub branch: Option<String>,
    /// Extra tag, repeatable.
    #[arg(long)]
    pub tag: Vec<String>,
    /// Don't stream buildx progress.
    #[arg(long, short)]
    pub quiet: bool,
    /// Write the report as JSON to FILE.
    #[arg(long)]
    pub report: Option<PathBuf>,
}

impl BuildArgs {
    /// A quiet local build (`--load`, local cache) of `images` for
    /// `platforms` (empty: the catalog's), for commands that build first.
    pub fn local(images: Vec<String>, platforms: Vec<String>) -> BuildArgs {
        BuildArgs {
            images,
            platform: platforms,
            load: true,
            push: false,
            registry: None,
            cache: CacheMode::Local,
            cache_dir: None,
            no_cache: false,
            build_args: vec![],
            provenance: false,
            sbom: false,
            release: None,
            branch: None,
            tag: vec![],
            quiet: true,
            report: None,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct BuildReport {
    pub images: Vec<ImageReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ImageReport {
    pub image: String,
    pub kind: ImageKind,
    pub refs: Vec<String>,
    pub tags: Vec<String>,
    /// Digest of what was exported: an index for several platforms.
    pub digest: String,
    pub pushed: bool,
    pub wall_seconds: f64,
    pub platforms: Vec<PlatformReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlatformReport {
    pub platform: Platform,
    /// The platform's own manifest digest, when it can be read (pushed
    /// images, single-platform builds).
    pub digest: Option<String>,
    pub steps_cached: usize,
    pub steps_total: usize,
    pub cache_hit_rate: f64,
}

/// Everything decided before buildx runs, so bad input fails before any work.
#[derive(Debug)]
struct Plan<'a> {
    image: &'a Image,
    platforms: Vec<Platform>,
    tags: Vec<String>,
    refs: Vec<String>,
    labels: BTreeMap<String, String>,
    build_args: Vec<(String, String)>,
    /// Named contexts for the images this one builds on: (name, image ref).
    needs: Vec<(String, String)>,
}

pub fn run(catalog: &Catalog, args: &BuildArgs) -> Result<BuildReport> {
    let images = catalog.with_needs(&catalog.select_buildable(&args.images)?);
    let requested = catalog::Platform::parse_list(&args.platform)?;
    let mut git = GitInfo::discover();
    if let Some(branch) = &args.branch {
        git.branch = Some(branch.clone());
    }
    let release = args.release.as_deref().or(git.tag.as_deref()).map(Version::parse).transpose()?;
    for tag in &args.tag {
        tags::validate_tag(tag)?;
    }
    let extra_args = parse_build_args(&args.build_args)?;
    if args.push && args.registry.is_none() {
        bail!("--push needs --registry (for example --registry localhost:5000)");
    }
    if matches!(args.cache, CacheMode::Registry) && args.registry.is_none() {
        bail!("--cache registry needs --registry (the cache is stored there as REPOSITORY:buildcache)");
    }

    let mut tags = tags::compute_tags(&git, &catalog.default_branch, release.as_ref());
    tags.extend(args.tag.iter().cloned());
    let created = tags::rfc3339_utc(git.commit_time.unwrap_or_else(now_unix));

    let mut plans: Vec<Plan> = Vec::new();
    for image in images {
        check_paths(image)?;
        let platforms = image.select_platforms(&requested)?;
        let prefix = args.registry.as_ref().map(|r| format!("{}/", r.trim_end_matches('/'))).unwrap_or_default();
        let refs = tags.iter().map(|t| format!("{prefix}{}:{t}", image.repository)).collect();
        let labels = tags::oci_labels(
            &image.repository,
            &image.description,
            &git,
            release.as_ref(),
            catalog.source.as_deref(),
            &created,
        );
        let mut build_args: Vec<(String, String)> = image.args.clone().into_iter().collect();
        build_args.extend(extra_args.iter().cloned());
        // What it needs was planned before it (catalog order): use its most specific tag.
        let needs = image
            .needs
            .iter()
            .map(|need| {
                let planned = plans.iter().find(|p| &p.image.name == need).expect("needs are planned first");
                (need.clone(), planned.refs[0].clone())
            })
            .collect();
        plans.push(Plan { image, platforms, tags: tags.clone(), refs, labels, build_args, needs });
    }

    // The machine: checked once, before anything is built or pushed.
    docker::daemon_version()?;
    docker::buildx_version()?;
    let all_platforms: Vec<Platform> = plans.iter().flat_map(|p| p.platforms.clone()).collect();
    docker::ensure_platforms_buildable(&all_platforms)?;
    if !args.push && plans.iter().any(|p| p.platforms.len() > 1) && !docker::containerd_image_store()? {
        bail!(
            "loading a multi-platform image needs the containerd image store: set {{\"features\":{{\"containerd-snapshotter\":true}}}} \
             in /etc/docker/daemon.json and restart dockerd, or build one --platform, or --push"
        );
    }
    if let Some(registry) = args.registry.as_deref().filter(|_| args.push || args.cache == CacheMode::Registry) {
        docker::check_registry(registry)?;
    }

    let mut report = BuildReport { images: Vec::new() };
    for plan in &plans {
        report.images.push(build_one(catalog, plan, args)?);
    }
    if let Some(path) = &args.report {
        write_report(path, &report)?;
    }
    Ok(report)
}

fn check_paths(image: &Image) -> Result<()> {
    let fix = "fix its path in images.toml";
    if !image.dockerfile.is_file() {
        bail!("Dockerfile {} for image `{}` does not exist: {fix}", image.dockerfile.display(), image.name);
    }
    if !image.context.is_dir() {
        bail!("build context {} for image `{}` is not a directory: {fix}", image.context.display(), image.name);
    }
    for (name, dir) in &image.contexts {
        if !dir.exists() {
            bail!(
                "build context `{name}` = {} for image `{}` does not exist: {fix}, or run scripts/setup-host.sh if it is host material",
                dir.display(),
                image.name
            );
        }
    }
    Ok(())
}

pub fn parse_build_args(args: &[String]) -> Result<Vec<(String, String)>> {
    args.iter()
        .map(|a| match a.split_once('=') {
            Some((k, v)) if !k.is_empty() && !k.contains(char::is_whitespace) => Ok((k.to_string(), v.to_string())),
            _ => bail!("build arg `{a}` is not KEY=VALUE: write --build-arg NAME=value"),
        })
        .collect()
}

fn build_one(catalog: &Catalog, plan: &Plan, args: &BuildArgs) -> Result<ImageReport> {
    let image = plan.image;
    let metadata_file = std::env::temp_dir().join(format!("xtask-build-{}-{}.json", image.name, std::process::id()));
    let _cleanup = RemoveOnDrop(metadata_file.clone());
    let cmd = buildx_command(catalog, plan, args, &metadata_file);

    if !args.quiet {
        eprintln!("==> building {} for {}", image.name, catalog::join(&plan.platforms));
    }
    let started = Instant::now();
    let mut tracker = Tracker::new(!args.quiet);
    let status = cmd.stream_stderr(|line| tracker.feed_line(line))?;
    let wall_seconds = started.elapsed().as_secs_f64();

    if !status.success() {
        return Err(build_failure(&image.name, &tracker));
    }
    let metadata: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&metadata_file).context("buildx wrote no metadata file")?)
            .context("buildx's metadata file is not JSON")?;
    let digest = metadata["containerimage.digest"]
        .as_str()
        .context("buildx's metadata has no containerimage.digest")?
        .to_string();
    let is_index = metadata["containerimage.descriptor"]["mediaType"]
        .as_str()
        .is_some_and(|m| m.contains("index") || m.contains("manifest.list"));

    let platform_digests: BTreeMap<Platform, String> = if args.push {
        let index = docker::inspect_remote(&format!(
            "{}@{digest}",
            plan.refs[0].rsplit_once(':').map_or(&plan.refs[0][..], |r| r.0)
        ))?;
        if is_index {
            docker::platform_digests(&serde_json::from_value(index)?).into_iter().collect()
        } else {
            plan.platforms.iter().map(|p| (p.clone(), digest.clone())).collect()
        }
    } else if !is_index && plan.platforms.len() == 1 {
        plan.platforms.iter().map(|p| (p.clone(), digest.clone())).collect()
    } else {
        BTreeMap::new()
    };

    let stats = progress::cache_stats(&tracker.steps(), &plan.platforms);
    let platforms = plan
        .platforms
        .iter()
        .map(|p| {
            let s = stats.get(p).copied().unwrap_or_default();
            PlatformReport {
                platform: p.clone(),
                digest: platform_digests.get(p).cloned(),
                steps_cached: s.cached,
                steps_total: s.total,
                cache_hit_rate: s.rate(),
            }
        })
        .collect();
    Ok(ImageReport {
        image: image.name.clone(),
        kind: image.kind,
        refs: plan.refs.clone(),
        tags: plan.tags.clone(),
        digest,
        pushed: args.push,
        wall_seconds,
        platforms,
    })
}

fn buildx_command(catalog: &Catalog, plan: &Plan, args: &BuildArgs, metadata_file: &Path) -> Cmd {
    let image = plan.image;
    let mut cmd = docker::docker()
        .args(["buildx", "build", "--progress=rawjson"])
        .arg("--platform")
        .arg(catalog::join(&plan.platforms))
        .arg("--file")
        .arg(&image.dockerfile)
        .arg("--metadata-file")
        .arg(metadata_file);
    if let Some(target) = &image.target {
        cmd = cmd.args(["--target", target]);
    }
    cmd = cmd.arg(if args.push { "--push" } else { "--load" });
    for r in &plan.refs {
        cmd = cmd.args(["--tag", r]);
    }
    for (k, v) in &plan.labels {
        cmd = cmd.arg("--label").arg(format!("{k}={v}"));
    }
    for (k, v) in &plan.build_args {
        cmd = cmd.arg("--build-arg").arg(format!("{k}={v}"));
    }
    for (name, dir) in &image.contexts {
        cmd = cmd.arg("--build-context").arg(format!("{name}={}", dir.display()));
    }
    for (name, reference) in &plan.needs {
        cmd = cmd.arg("--build-context").arg(format!("{name}=docker-image://{reference}"));
    }
    cmd = cmd.arg(if args.provenance { "--provenance=mode=max" } else { "--provenance=false" });
    cmd = cmd.arg(format!("--sbom={}", args.sbom));
    if args.no_cache {
        cmd = cmd.arg("--no-cache");
    }
    for flag in cache_flags(catalog, image, args) {
        cmd = cmd.arg(flag);
    }
    cmd.arg(&image.context)
}

fn cache_flags(catalog: &Catalog, image: &Image, args: &BuildArgs) -> Vec<String> {
    match args.cache {
        CacheMode::None => vec![],
        CacheMode::Local => {
            let dir = args.cache_dir.clone().unwrap_or_else(|| {
                catalog.path.parent().unwrap_or(Path::new(".")).join("target/buildx-cache").join(&image.name)
            });
            let mut flags = Vec::new();
            // Importing a cache that was never exported only prints a warning.
            if dir.join("index.json").is_file() && !args.no_cache {
                flags.push(format!("--cache-from=type=local,src={}", dir.display()));
            }
            flags.push(format!("--cache-to=type=local,dest={},mode=max", dir.display()));
            flags
        }
        CacheMode::Registry => {
            let registry = args.registry.as_deref().unwrap_or_default().trim_end_matches('/');
            let r = format!("{registry}/{}:buildcache", image.repository);
            vec![format!("--cache-from=type=registry,ref={r}"), format!("--cache-to=type=registry,ref={r},mode=max")]
        }
        CacheMode::Gha => {
            let scope = &image.name;
            vec![format!("--cache-from=type=gha,scope={scope}"), format!("--cache-to=type=gha,scope={scope},mode=max")]
        }
    }
}

/// One line naming the failed step, after the tail of its output.
fn build_failure(image: &str, tracker: &Tracker) -> anyhow::Error {
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

pub fn write_report(path: &Path, report: &impl Serialize) -> Result<()> {
    let json = serde_json::to_string_pretty(report)?;
    std::fs::write(path, json + "\n").with_context(|| format!("writing the report to {}", path.display()))
}

pub fn print_table(report: &BuildReport) {
    let mut rows = vec![["IMAGE", "PLATFORM", "DIGEST", "TAGS", "TIME", "CACHE"].map(String::from).to_vec()];
    for image in &report.images {
        for p in &image.platforms {
            let digest = p.digest.clone().unwrap_or_else(|| format!("{} (index)", image.digest));
            rows.push(vec![
                image.image.clone(),
                p.platform.to_string(),
                short_digest(&digest),
                image.tags.join(","),
                format!("{:.1}s", image.wall_seconds),
                format_cache(&CacheStats { cached: p.steps_cached, total: p.steps_total }),
            ]);
        }
    }
    print_rows(&rows);
}

pub fn print_rows(rows: &[Vec<String>]) {
    let widths: Vec<usize> =
        (0..rows[0].len()).map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
    for row in rows {
        let line: Vec<String> = row.iter().zip(&widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
        println!("{}", line.join("  ").trim_end());
    }
}

pub fn format_cache(s: &CacheStats) -> String {
    format!("{}/{} ({:.0}%)", s.cached, s.total, s.rate() * 100.0)
}

fn short_digest(d: &str) -> String {
    match d.strip_prefix("sha256:") {
        Some(hex) if hex.len() > 12 => format!("sha256:{}{}", &hex[..12], &d[7 + hex.len().min(64)..]),
        _ => d.to_string(),
    }
}

fn now_unix() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_args_must_be_key_value() {
        assert_eq!(
            parse_build_args(&["A=1".into(), "B=x=y".into(), "C=".into()]).unwrap()[1],
            ("B".into(), "x=y".into())
        );
        let err = parse_build_args(&["NOPE".into()]).unwrap_err().to_string();
        assert!(err.contains("`NOPE` is not KEY=VALUE"), "{err}");
        assert!(parse_build_args(&["=v".into()]).is_err());
    }

    #[test]
    fn digests_are_shortened_for_the_table() {
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(short_digest(&d), "sha256:aaaaaaaaaaaa");
        assert_eq!(short_digest(&format!("{d} (index)")), "sha256:aaaaaaaaaaaa (index)");
        assert_eq!(format_cache(&CacheStats { cached: 3, total: 4 }), "3/4 (75%)");
    }
}
