//! The image catalog (`images.toml`): the single source of truth for what we
//! build. Each image names its Dockerfile, context, target stage, platforms,
//! build args and named contexts; later capabilities (smoke checks, size
//! budgets) hang off the same entries.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

pub const DEFAULT_CATALOG: &str = "images.toml";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    #[serde(default)]
    defaults: Defaults,
    #[serde(default, rename = "image")]
    images: Vec<ImageEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Defaults {
    #[serde(default = "default_platforms")]
    platforms: Vec<String>,
    #[serde(default = "default_branch")]
    default_branch: String,
    /// `org.opencontainers.image.source`; falls back to the git remote.
    source: Option<String>,
}

impl Default for Defaults {
    fn default() -> Defaults {
        Defaults { platforms: default_platforms(), default_branch: default_branch(), source: None }
    }
}

fn default_platforms() -> Vec<String> {
    vec!["linux/amd64".into(), "linux/arm64".into()]
}

fn default_branch() -> String {
    "main".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ImageEntry {
    name: String,
    /// Repository part of the image reference; defaults to `name`.
    repository: Option<String>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    kind: ImageKind,
    dockerfile: PathBuf,
    #[serde(default = "dot")]
    context: PathBuf,
    target: Option<String>,
    platforms: Option<Vec<String>>,
    #[serde(default)]
    args: BTreeMap<String, String>,
    /// A KEY=VALUE file of more build args (`args` wins on a clash).
    args_file: Option<PathBuf>,
    /// Catalog images this one builds on: built first, and passed as named
    /// contexts (`FROM NAME` in the Dockerfile resolves to the built image).
    #[serde(default)]
    needs: Vec<String>,
    /// Named build contexts (`COPY --from=NAME`), path relative to the catalog.
    #[serde(default)]
    contexts: BTreeMap<String, PathBuf>,
    /// Its base image or packages come from the internet: it can only be
    /// built on a networked machine.
    #[serde(default)]
    networked: bool,
    /// Its checks, in container-structure-test's schema (`image smoke`).
    smoke: Option<PathBuf>,
    /// The read-only check (`image smoke`).
    readonly: Option<ReadOnlyCheck>,
    /// The size budget (`image size`).
    budget: Option<Budget>,
    /// What the entrypoint gets for the startup figure (`image runtime`;
    /// default `--version`).
    startup_args: Option<Vec<String>>,
    /// It serves something others probe (an HTTP endpoint): its Dockerfile
    /// must declare a HEALTHCHECK (`image lint`).
    #[serde(default)]
    service: bool,
    /// The vulnerability gate of `image scan` (default: no CRITICAL, at most 4 HIGH).
    #[serde(default)]
    scan: ScanGate,
}

/// How many vulnerabilities of each severity an image may have and pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ScanGate {
    #[serde(default)]
    pub max_critical: u32,
    #[serde(default = "default_max_high")]
    pub max_high: u32,
}

fn default_max_high() -> u32 {
    4
}

impl Default for ScanGate {
    /// The standards: zero CRITICAL, fewer than five HIGH.
    fn default() -> ScanGate {
        ScanGate { max_critical: 0, max_high: default_max_high() }
    }
}

fn dot() -> PathBuf {
    PathBuf::from(".")
}

/// What an image is for: products ship; stand-ins and fixtures are test
/// material that exercises the same contract where products can't be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageKind {
    #[default]
    Product,
    Standin,
    Fixture,
}

impl fmt::Display for ImageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ImageKind::Product => "product",
            ImageKind::Standin => "stand-in",
            ImageKind::Fixture => "fixture",
        })
    }
}

#[derive(Debug, Clone)]
pub struct Catalog {
    pub path: PathBuf,
    pub default_branch: String,
    pub source: Option<String>,
    pub images: Vec<Image>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Image {
    pub name: String,
    pub repository: String,
    pub description: String,
    pub kind: ImageKind,
    pub dockerfile: PathBuf,
    pub context: PathBuf,
    pub target: Option<String>,
    pub platforms: Vec<Platform>,
    pub args: BTreeMap<String, String>,
    pub needs: Vec<String>,
    pub contexts: BTreeMap<String, PathBuf>,
    pub networked: bool,
    pub smoke: Option<PathBuf>,
    pub readonly: Option<ReadOnlyCheck>,
    pub budget: Option<Budget>,
    pub startup_args: Option<Vec<String>>,
    pub service: bool,
    pub scan: ScanGate,
}

/// `[image.readonly]`: run the image with a read-only root filesystem, only
/// `tmpfs` writable, all capabilities dropped and no-new-privileges, as its
/// own (non-root) user; it must start, answer `health` and stay up. An
/// image that starts as root only to drop privileges declares
/// `privileged_start`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReadOnlyCheck {
    /// Arguments for the image's entrypoint (default: its CMD).
    pub args: Option<Vec<String>>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// The only writable paths.
    #[serde(default = "default_tmpfs")]
    pub tmpfs: Vec<String>,
    /// A PostgreSQL image (a catalog image's name, or a reference) started
    /// beside it on a private network; `RALPH_DB_URL` points at it.
    pub database: Option<String>,
    pub health: Health,
    /// How long the container may take to answer its health check on this
    /// machine's architecture (`EMULATION_FACTOR` times that under emulation).
    #[serde(default = "default_ready_seconds")]
    pub ready_seconds: u64,
    /// How long it must then stay up.
    #[serde(default = "default_stay_up_seconds")]
    pub stay_up_seconds: u64,
    /// The image starts as root to drop privileges at once (privilege
    /// separation: lib/privsep.sh): it runs with these capabilities given
    /// back, and once up every process but its init must run as `drops_to`.
    pub privileged_start: Option<PrivilegedStart>,
}

/// `[image.readonly.privileged_start]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PrivilegedStart {
    /// Capabilities given back (`--cap-add`), e.g. SETUID, SETGID, KILL.
    pub cap_add: Vec<String>,
    /// The uid it drops to.
    pub drops_to: u32,
}

fn default_tmpfs() -> Vec<String> {
    vec!["/tmp".into()]
}

fn default_ready_seconds() -> u64 {
    60
}

fn default_stay_up_seconds() -> u64 {
    3
}

/// How the read-only check asks whether the container is healthy: an HTTP
/// GET of `path` on the container's `port` (from the host), or a command run
/// in the container (`docker exec`) that must exit 0.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Health {
    pub port: Option<u16>,
    pub path: Option<String>,
    /// The HTTP status that means healthy.
    #[serde(default = "default_status")]
    pub status: u16,
    pub exec: Option<Vec<String>>,
}

fn default_status() -> u16 {
    200
}

/// `budget`: the most the image may weigh, uncompressed: `max_mb`, or the
/// size of one file in the image (the Claude Code binary) plus `extra_mb`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    pub max_mb: Option<f64>,
    pub file: Option<String>,
    pub extra_mb: Option<f64>,
}

impl Budget {
    fn validate(&self) -> Result<()> {
        match (self.max_mb, &self.file, self.extra_mb) {
            (Some(max), None, None) if max > 0.0 => Ok(()),
            (None, Some(file), Some(extra)) if file.starts_with('/') && extra >= 0.0 => Ok(()),
            _ => bail!("budget needs either max_mb = N, or file = \"/absolute/path\" with extra_mb = N (sizes in MB, not negative)"),
        }
    }
}

impl Health {
    fn validate(&self) -> Result<()> {
        match (self.port, &self.path, &self.exec) {
            (Some(_), Some(path), None) if path.starts_with('/') => Ok(()),
            (None, None, Some(cmd)) if !cmd.is_empty() => Ok(()),
            _ => bail!("[image.readonly] health needs either port = N with path = \"/…\", or exec = [\"command\", …]"),
        }
    }
}

impl Catalog {
    pub fn load(path: &Path) -> Result<Catalog> {
        let text = std::fs::read_to_string(path).with_context(|| {
            format!("cannot read the image catalog {}: pass --catalog PATH or run from the repository", path.display())
        })?;
        // Absolute, so that `--catalog images.toml` has a directory too
        // (its parent would be the empty path, which git refuses).
        let path = &std::path::absolute(path).with_context(|| format!("resolving {}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        Catalog::parse(&text, path, base)
    }

    /// Parses catalog text; relative paths are resolved against `base`.
    pub fn parse(text: &str, path: &Path, base: &Path) -> Result<Catalog> {
        let file: CatalogFile = toml::from_str(text)
            .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.to_string().trim().replace('\n', " ")))?;
        let mut images: Vec<Image> = Vec::new();
        for entry in file.images {
            if images.iter().any(|i| i.name == entry.name) {
                bail!(
                    "{}: image `{}` is declared twice: give each [[image]] a unique name",
                    path.display(),
                    entry.name
                );
            }
            let platforms = entry
                .platforms
                .as_ref()
                .unwrap_or(&file.defaults.platforms)
                .iter()
                .map(|p| Platform::parse(p))
                .collect::<Result<Vec<_>>>()
                .with_context(|| format!("{}: image `{}`", path.display(), entry.name))?;
            for need in &entry.needs {
                if !images.iter().any(|i| &i.name == need) {
                    bail!(
                        "{}: image `{}` needs `{need}`, which is not declared before it: declare `{need}` earlier in the catalog",
                        path.display(),
                        entry.name
                    );
                }
            }
            let mut args = match &entry.args_file {
                Some(file) => read_args_file(&base.join(file))
                    .with_context(|| format!("{}: image `{}`", path.display(), entry.name))?,
                None => BTreeMap::new(),
            };
            args.extend(entry.args);
            let context = |e: anyhow::Error| anyhow::anyhow!("{}: image `{}`: {e}", path.display(), entry.name);
            if let Some(budget) = &entry.budget {
                budget.validate().map_err(context)?;
            }
            if let Some(readonly) = &entry.readonly {
                readonly.health.validate().map_err(context)?;
            }
            images.push(Image {
                repository: entry.repository.unwrap_or_else(|| entry.name.clone()),
                name: entry.name,
                description: entry.description,
                kind: entry.kind,
                dockerfile: base.join(entry.dockerfile),
                context: base.join(entry.context),
                target: entry.target,
                platforms,
                args,
                needs: entry.needs,
                contexts: entry.contexts.into_iter().map(|(k, v)| (k, base.join(v))).collect(),
                networked: entry.networked,
                smoke: entry.smoke.map(|p| base.join(p)),
                readonly: entry.readonly,
                budget: entry.budget,
                startup_args: entry.startup_args,
                service: entry.service,
                scan: entry.scan,
            });
        }
        Ok(Catalog {
            path: path.to_path_buf(),
            default_branch: file.defaults.default_branch,
            source: file.defaults.source,
            images,
        })
    }

    /// `target/` next to the catalog: build caches, OCI layouts, reports.
    pub fn target_dir(&self) -> PathBuf {
        self.path.parent().unwrap_or(Path::new(".")).join("target")
    }

    /// Where `image build` writes `image` for `platforms` as an OCI layout
    /// (its last build), which the later steps read: `target/oci/IMAGE` for
    /// the image's own platforms, `target/oci/IMAGE@linux-amd64` for one of
    /// them, so that builds for other platform sets don't overwrite each other.
    pub fn layout_dir(&self, image: &Image, platforms: &[Platform]) -> PathBuf {
        let root = self.target_dir().join("oci");
        if platforms.is_empty() || platforms == image.platforms.as_slice() {
            return root.join(&image.name);
        }
        let set: Vec<String> = platforms.iter().map(|p| p.to_string().replace('/', "-")).collect();
        root.join(format!("{}@{}", image.name, set.join("+")))
    }

    /// The layouts that may hold `image` for `platforms`: its own platform
    /// set's, then that of all its platforms.
    pub fn layout_dirs(&self, image: &Image, platforms: &[Platform]) -> Vec<PathBuf> {
        let mut dirs = vec![self.layout_dir(image, platforms)];
        let all = self.layout_dir(image, &[]);
        if !dirs.contains(&all) {
            dirs.push(all);
        }
        dirs
    }

    pub fn names(&self) -> Vec<&str> {
        self.images.iter().map(|i| i.name.as_str()).collect()
    }

    /// The images named, in catalog order; none named means every image.
    pub fn select(&self, names: &[String]) -> Result<Vec<&Image>> {
        for name in names {
            self.get(name)?;
        }
        Ok(self.images.iter().filter(|i| names.is_empty() || names.contains(&i.name)).collect())
    }

    /// The images named, or every image this machine can build: networked
    /// images (whose bases can't be pulled here) only when named.
    pub fn select_buildable(&self, names: &[String]) -> Result<Vec<&Image>> {
        let images = self.select(names)?;
        if !names.is_empty() {
            return Ok(images);
        }
        let (networked, local): (Vec<&Image>, Vec<&Image>) = images.into_iter().partition(|i| i.networked);
        if !networked.is_empty() {
            let names: Vec<&str> = networked.iter().map(|i| i.name.as_str()).collect();
            eprintln!(
                "note: leaving out {} (they need a networked machine); name them to include them",
                names.join(", ")
            );
        }
        if local.is_empty() {
            bail!(
                "no image in {} can be built without a network: name one ({})",
                self.path.display(),
                self.names().join(", ")
            );
        }
        Ok(local)
    }

    pub fn get(&self, name: &str) -> Result<&Image> {
        self.images.iter().find(|i| i.name == name).ok_or_else(|| {
            anyhow::anyhow!(
                "unknown image `{name}`: the catalog {} has {}",
                self.path.display(),
                self.names().join(", ")
            )
        })
    }

    /// `images` plus everything they need, each once, in catalog order (a
    /// need is always declared before the images that need it).
    pub fn with_needs<'a>(&'a self, images: &[&'a Image]) -> Vec<&'a Image> {
        let mut wanted: Vec<&str> = images.iter().map(|i| i.name.as_str()).collect();
        let mut i = 0;
        while i < wanted.len() {
            let image = self.images.iter().find(|img| img.name == wanted[i]).expect("selected from the catalog");
            for need in &image.needs {
                if !wanted.contains(&need.as_str()) {
                    wanted.push(need);
                }
            }
            i += 1;
        }
        self.images.iter().filter(|img| wanted.contains(&img.name.as_str())).collect()
    }
}

impl Image {
    /// The requested platforms, each of which must be declared for the image;
    /// none requested means all declared ones.
    pub fn select_platforms(&self, requested: &[Platform]) -> Result<Vec<Platform>> {
        if requested.is_empty() {
            return Ok(self.platforms.clone());
        }
        for p in requested {
            if !self.platforms.contains(p) {
                bail!(
                    "platform {p} is not in the catalog for image `{}` (it has {}): choose one of those or add it to images.toml",
                    self.name,
                    join(&self.platforms)
                );
            }
        }
        Ok(requested.to_vec())
    }
}

/// Reads `KEY=VALUE` lines; blank lines and `#` comments are skipped.
pub fn read_args_file(path: &Path) -> Result<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read args_file {}", path.display()))?;
    parse_args_file(&text).with_context(|| format!("in {}", path.display()))
}

pub fn parse_args_file(text: &str) -> Result<BTreeMap<String, String>> {
    let mut args = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.split_once('=') {
            Some((k, v)) if !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => {
                args.insert(k.to_string(), v.to_string());
            }
            _ => bail!("line {}: `{line}` is not KEY=VALUE", n + 1),
        }
    }
    Ok(args)
}

pub fn join(platforms: &[Platform]) -> String {
    platforms.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(",")
}

/// An OCI platform, `os/arch[/variant]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Platform {
    pub os: String,
    pub arch: String,
    pub variant: Option<String>,
}

const KNOWN_OS: &[&str] = &["linux", "windows", "darwin", "freebsd"];
const KNOWN_ARCH: &[&str] = &["amd64", "arm64", "arm", "386", "ppc64le", "s390x", "riscv64", "mips64le", "loong64"];

impl Platform {
    pub fn parse(s: &str) -> Result<Platform> {
        let parts: Vec<&str> = s.trim().split('/').collect();
        let malformed = || {
            anyhow::anyhow!(
                "platform `{s}` is malformed: write OS/ARCH[/VARIANT], for example linux/amd64 or linux/arm64"
            )
        };
        if !(2..=3).contains(&parts.len()) || parts.iter().any(|p| p.is_empty()) {
            return Err(malformed());
        }
        if !KNOWN_OS.contains(&parts[0]) || !KNOWN_ARCH.contains(&parts[1]) {
            return Err(malformed());
        }
        Ok(Platform { os: parts[0].into(), arch: parts[1].into(), variant: parts.get(2).map(|v| v.to_string()) })
    }

    /// This machine's architecture, as platforms name it (`amd64`, `arm64`).
    pub fn native_arch() -> &'static str {
        match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            other => other,
        }
    }

    /// This machine's platform (`linux/<native_arch>`).
    pub fn native() -> Platform {
        Platform { os: "linux".into(), arch: Platform::native_arch().into(), variant: None }
    }

    /// Whether this platform runs here under emulation (QEMU): another
    /// architecture than this machine's.
    pub fn is_emulated(&self) -> bool {
        self.arch != Platform::native_arch()
    }

    /// Parses a comma-separated list, as `--platform` takes it.
    pub fn parse_list(list: &[String]) -> Result<Vec<Platform>> {
        let mut out: Vec<Platform> = Vec::new();
        for p in list.iter().flat_map(|s| s.split(',')).filter(|s| !s.trim().is_empty()) {
            let p = Platform::parse(p)?;
            if !out.contains(&p) {
                out.push(p);
            }
        }
        Ok(out)
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.arch)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl Serialize for Platform {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Platform {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Platform, D::Error> {
        let s = String::deserialize(d)?;
        Platform::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// One CI matrix entry: an image on one platform.
#[derive(Debug, Serialize, PartialEq)]
pub struct MatrixEntry {
    pub image: String,
    pub platform: String,
    pub arch: String,
    pub kind: ImageKind,
    pub dockerfile: String,
    pub networked: bool,
}

/// The catalog as a GitHub-Actions-style matrix: `{"include": [...]}`.
pub fn matrix(catalog: &Catalog, images: &[&Image]) -> serde_json::Value {
    let root = catalog.path.parent().unwrap_or(Path::new("."));
    let include: Vec<MatrixEntry> = images
        .iter()
        .flat_map(|image| {
            image.platforms.iter().map(move |p| MatrixEntry {
                image: image.name.clone(),
                platform: p.to_string(),
                arch: p.arch.clone(),
                kind: image.kind,
                dockerfile: image.dockerfile.strip_prefix(root).unwrap_or(&image.dockerfile).display().to_string(),
                networked: image.networked,
            })
        })
        .collect();
    serde_json::json!({ "include": include })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
        [defaults]
        default_branch = "trunk"

        [[image]]
        name = "worker"
        repository = "ralph-worker"
        dockerfile = "Dockerfile.worker"
        networked = true
        args = { CLAUDE_VERSION = "2.1.328" }

        [[image]]
        name = "fixture"
        kind = "fixture"
        dockerfile = "test/images/busybox/Dockerfile"
        context = "test/images/busybox"
        platforms = ["linux/amd64"]
        contexts = { busybox = "/opt/busybox" }
    "#;

    fn sample() -> Catalog {
        Catalog::parse(SAMPLE, Path::new("/repo/images.toml"), Path::new("/repo")).unwrap()
    }

    #[test]
    fn parses_entries_with_defaults_and_resolved_paths() {
        let c = sample();
        assert_eq!(c.default_branch, "trunk");
        let worker = &c.images[0];
        assert_eq!(worker.repository, "ralph-worker");
        assert_eq!(
            worker.platforms,
            vec![Platform::parse("linux/amd64").unwrap(), Platform::parse("linux/arm64").unwrap()]
        );
        assert_eq!(worker.context, Path::new("/repo/."));
        assert_eq!(worker.args["CLAUDE_VERSION"], "2.1.328");
        assert!(worker.networked);
        let fixture = &c.images[1];
        assert_eq!(fixture.repository, "fixture");
        assert_eq!(fixture.kind, ImageKind::Fixture);
        assert_eq!(fixture.contexts["busybox"], Path::new("/opt/busybox"));
        assert_eq!(fixture.platforms.len(), 1);
    }

    #[test]
    fn each_platform_set_has_a_layout_of_its_own() {
        let c = sample();
        let worker = &c.images[0];
        let amd64 = Platform::parse("linux/amd64").unwrap();
        assert_eq!(c.layout_dir(worker, &worker.platforms), Path::new("/repo/target/oci/worker"));
        assert_eq!(c.layout_dir(worker, &[]), Path::new("/repo/target/oci/worker"));
        let one = c.layout_dir(worker, std::slice::from_ref(&amd64));
        assert_eq!(one, Path::new("/repo/target/oci/worker@linux-amd64"));
        assert_eq!(c.layout_dirs(worker, std::slice::from_ref(&amd64)), [one, c.layout_dir(worker, &[])]);
        assert_eq!(c.layout_dirs(worker, &worker.platforms).len(), 1);
    }

    #[test]
    fn rejects_unknown_fields_with_the_file_name() {
        let err =
            Catalog::parse("[[image]]\nname='a'\ndockerfile='D'\nsize='1'\n", Path::new("c.toml"), Path::new("."))
                .unwrap_err()
                .to_string();
        assert!(err.starts_with("c.toml:"), "{err}");
        assert!(err.contains("unknown field `size`"), "{err}");
    }

    #[test]
    fn rejects_duplicate_names_and_bad_platforms() {
        let dup = "[[image]]\nname='a'\ndockerfile='D'\n[[image]]\nname='a'\ndockerfile='E'\n";
        assert!(Catalog::parse(dup, Path::new("c.toml"), Path::new("."))
            .unwrap_err()
            .to_string()
            .contains("declared twice"));
        let bad = "[[image]]\nname='a'\ndockerfile='D'\nplatforms=['linux-amd64']\n";
        let err = format!("{:#}", Catalog::parse(bad, Path::new("c.toml"), Path::new(".")).unwrap_err());
        assert!(err.contains("`linux-amd64` is malformed"), "{err}");
    }

    #[test]
    fn select_names_unknown_images_and_lists_the_known_ones() {
        let c = sample();
        assert_eq!(c.select(&[]).unwrap().len(), 2);
        assert_eq!(c.select(&["fixture".into()]).unwrap()[0].name, "fixture");
        let err = c.select(&["wroker".into()]).unwrap_err().to_string();
        assert!(err.contains("unknown image `wroker`") && err.contains("worker, fixture"), "{err}");
    }

    #[test]
    fn needs_come_first_and_must_be_declared_earlier() {
        let text = "[[image]]\nname='base'\ndockerfile='B'\n[[image]]\nname='app'\ndockerfile='A'\nneeds=['base']\n[[image]]\nname='other'\ndockerfile='O'\n";
        let c = Catalog::parse(text, Path::new("c.toml"), Path::new(".")).unwrap();
        let app = c.select(&["app".into()]).unwrap();
        let names: Vec<&str> = c.with_needs(&app).iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, vec!["base", "app"]);
        let backwards =
            "[[image]]\nname='app'\ndockerfile='A'\nneeds=['base']\n[[image]]\nname='base'\ndockerfile='B'\n";
        let err = Catalog::parse(backwards, Path::new("c.toml"), Path::new(".")).unwrap_err().to_string();
        assert!(err.contains("needs `base`, which is not declared before it"), "{err}");
    }

    #[test]
    fn args_files_are_key_value_lines() {
        let args = parse_args_file("# pins\nCLAUDE_VERSION=2.1.328\n\nSHA=ab=cd\n").unwrap();
        assert_eq!(args["CLAUDE_VERSION"], "2.1.328");
        assert_eq!(args["SHA"], "ab=cd");
        let err = format!("{:#}", parse_args_file("OK=1\nnot a pin\n").unwrap_err());
        assert!(err.contains("line 2: `not a pin` is not KEY=VALUE"), "{err}");
    }

    #[test]
    fn platform_parsing() {
        let p = Platform::parse("linux/arm64/v8").unwrap();
        assert_eq!((p.os.as_str(), p.arch.as_str(), p.variant.as_deref()), ("linux", "arm64", Some("v8")));
        assert_eq!(p.to_string(), "linux/arm64/v8");
        for bad in ["linux", "linux/", "amd64/linux", "linux/amd64/v1/x", "linux/x86_64", ""] {
            assert!(Platform::parse(bad).is_err(), "{bad} should be rejected");
        }
        let list = Platform::parse_list(&["linux/amd64,linux/arm64".into(), "linux/amd64".into()]).unwrap();
        assert_eq!(join(&list), "linux/amd64,linux/arm64");
    }

    #[test]
    fn platforms_must_be_declared_for_the_image() {
        let c = sample();
        let fixture = &c.images[1];
        assert_eq!(fixture.select_platforms(&[]).unwrap().len(), 1);
        let err = fixture.select_platforms(&[Platform::parse("linux/arm64").unwrap()]).unwrap_err().to_string();
        assert!(err.contains("linux/arm64 is not in the catalog for image `fixture`"), "{err}");
    }

    #[test]
    fn matrix_has_one_entry_per_image_and_platform() {
        let c = sample();
        let m = matrix(&c, &c.select(&[]).unwrap());
        let include = m["include"].as_array().unwrap();
        assert_eq!(include.len(), 3);
        assert_eq!(include[1]["image"], "worker");
        assert_eq!(include[1]["arch"], "arm64");
        assert_eq!(include[2]["dockerfile"], "test/images/busybox/Dockerfile");
        assert_eq!(include[2]["kind"], "fixture");
    }
}
