//! What we ask the Docker engine, buildx and registries, with errors that say
//! how to fix the machine.

use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use super::process::Cmd;
use crate::model::catalog::{self, Platform};

pub const SETUP_HINT: &str = "run `sudo bash scripts/setup-host.sh`";

pub fn docker() -> Cmd {
    Cmd::new("docker")
}

pub fn daemon_version() -> Result<String> {
    if which::which("docker").is_err() {
        bail!("the docker client is not installed: {SETUP_HINT}");
    }
    let out = docker().args(["version", "--format", "{{.Server.Version}}"]).probe().output()?;
    let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || version.is_empty() {
        bail!("the docker daemon is not running (docker version could not reach it): start dockerd or {SETUP_HINT}");
    }
    Ok(version)
}

pub fn buildx_version() -> Result<String> {
    let out = docker().args(["buildx", "version"]).probe().output()?;
    if !out.status.success() {
        bail!("docker buildx is missing: install the buildx plugin (Debian package docker-buildx) or {SETUP_HINT}");
    }
    Ok(String::from_utf8_lossy(&out.stdout).split_whitespace().nth(1).unwrap_or("?").to_string())
}

/// Where the engine keeps images.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageStore {
    /// The containerd image store: one tag holds every platform of an index
    /// (needed to `--load` a multi-platform image).
    Containerd,
    /// The classic graph-driver store: one tag holds one platform.
    Classic,
}

pub fn image_store() -> Result<ImageStore> {
    image_store_of(None)
}

/// The current Docker context's name (`default` for `DOCKER_HOST`).
pub fn current_context() -> Result<String> {
    docker().args(["context", "show"]).probe().read()
}

/// The image store of the engine behind Docker context `context` (none: the current one).
pub fn image_store_of(context: Option<&str>) -> Result<ImageStore> {
    let context: Vec<&str> = context.map(|c| vec!["--context", c]).unwrap_or_default();
    let status = docker().args(context).args(["info", "--format", "{{json .DriverStatus}}"]).probe().read()?;
    Ok(if status.contains("io.containerd.snapshotter") { ImageStore::Containerd } else { ImageStore::Classic })
}

/// The engine's cgroup driver: `cgroupfs` or `systemd` (empty when it doesn't say).
pub fn cgroup_driver() -> Result<String> {
    docker().args(["info", "--format", "{{.CgroupDriver}}"]).probe().read()
}

/// A buildx builder, as `docker buildx inspect` describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Builder {
    pub name: String,
    /// `docker`, `docker-container`, `kubernetes`, `remote`.
    pub driver: String,
    /// Its first node's endpoint: a Docker context for the `docker` driver.
    pub endpoint: Option<String>,
    /// What its nodes can build (natively or emulated).
    #[serde(skip)]
    pub platforms: Vec<Platform>,
}

impl Builder {
    /// The `docker` driver: BuildKit inside an engine, which builds into
    /// that engine's own image store.
    pub fn is_docker_driver(&self) -> bool {
        self.driver == "docker"
    }
}

/// The builder `name` (none: the current one, which `BUILDX_BUILDER` or
/// `docker buildx use` chose), or a one-line error that says how to make it.
pub fn inspect_builder(name: Option<&str>) -> Result<Builder> {
    let out = docker().args(["buildx", "inspect"]).args(name).probe().output()?;
    if !out.status.success() {
        let why = super::process::last_lines(&String::from_utf8_lossy(&out.stderr), 1);
        match name {
            Some(name) => bail!(
                "builder {name} does not exist ({why}): create it with `docker buildx create --name {name} …` \
                 (or `docker context create {name} …` for an engine's own builder) or drop --builder (and BUILDX_BUILDER)"
            ),
            None => bail!("the current buildx builder can't be inspected ({why}): `docker buildx use default`, or pass --builder"),
        }
    }
    parse_builder(&String::from_utf8_lossy(&out.stdout))
}

/// The builder's name, driver, first endpoint and platforms from `docker
/// buildx inspect`'s text: `Name:` and `Driver:` above `Nodes:`, then each
/// node's `Name:`, `Endpoint:`, `Platforms:`.
pub fn parse_builder(inspect: &str) -> Result<Builder> {
    let field = |line: &str, key: &str| line.trim().strip_prefix(key).map(|v| v.trim().to_string());
    let (head, nodes) = inspect.split_once("\nNodes:").unwrap_or((inspect, ""));
    let name = head.lines().find_map(|l| field(l, "Name:"));
    let driver = head.lines().find_map(|l| field(l, "Driver:"));
    let (Some(name), Some(driver)) = (name, driver) else {
        bail!(
            "`docker buildx inspect` printed no builder name and driver: update buildx (0.13 or later) or {SETUP_HINT}"
        );
    };
    Ok(Builder {
        name,
        driver,
        endpoint: nodes.lines().find_map(|l| field(l, "Endpoint:")).filter(|e| !e.is_empty()),
        platforms: parse_builder_platforms(nodes),
    })
}

/// Platforms the current buildx builder can build (natively or emulated).
pub fn builder_platforms() -> Result<Vec<Platform>> {
    Ok(inspect_builder(None)?.platforms)
}

pub fn parse_builder_platforms(inspect: &str) -> Vec<Platform> {
    let mut platforms: Vec<Platform> = Vec::new();
    // A multi-node builder lists each node's platforms: the union, in order.
    for p in inspect
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Platforms:"))
        .flat_map(|l| l.split(','))
        .filter_map(|p| Platform::parse(p.trim().trim_end_matches('*')).ok())
    {
        if !platforms.contains(&p) {
            platforms.push(p);
        }
    }
    platforms
}

/// Checks that `builder` can build every platform, with the fix for arm64.
pub fn ensure_platforms_buildable(platforms: &[Platform], builder: &Builder) -> Result<()> {
    let available = &builder.platforms;
    for p in platforms {
        if !buildable(p, available) {
            bail!(
                "the buildx builder {} cannot build {p} (it has {}): install qemu-user-static and binfmt-support, \
                 mount binfmt_misc and restart dockerd ({SETUP_HINT}), or use a builder with a node of that platform (--builder)",
                builder.name,
                catalog::join(available)
            );
        }
    }
    Ok(())
}

/// Whether the builder can build `p`: listed (with or without its variant),
/// or 386 on an amd64 builder (amd64 kernels run i386 code, and BuildKit
/// builds it, but doesn't always list it).
pub fn buildable(p: &Platform, available: &[Platform]) -> bool {
    let base = Platform { variant: None, ..p.clone() };
    let amd64 = Platform { os: p.os.clone(), arch: "amd64".into(), variant: None };
    available.contains(p) || available.contains(&base) || (p.arch == "386" && available.contains(&amd64))
}

/// `host[:port]` of an image reference's registry.
pub fn registry_host(registry: &str) -> &str {
    registry.split('/').next().unwrap_or(registry)
}

/// A registry answers the distribution API's `/v2/` probe. Plain HTTP for
/// localhost (as Docker allows), TCP reachability otherwise.
pub fn check_registry(registry: &str) -> Result<()> {
    let host = registry_host(registry);
    let addr = if host.contains(':') { host.to_string() } else { format!("{host}:443") };
    let unreachable = |why: String| {
        anyhow::anyhow!("registry {host} is unreachable ({why}): start it (scripts/setup-host.sh runs one on 127.0.0.1:5000) or fix --registry")
    };
    let sock = addr
        .to_socket_addrs()
        .map_err(|e| unreachable(e.to_string()))?
        .next()
        .ok_or_else(|| unreachable("no address".into()))?;
    if !(host.starts_with("localhost") || host.starts_with("127.")) {
        // Over TLS: reachable is all that is asked here.
        return TcpStream::connect_timeout(&sock, Duration::from_secs(3))
            .map(drop)
            .map_err(|e| unreachable(e.to_string()));
    }
    // 200, or 401 from a registry with auth: either is a registry.
    match super::http::get_status(sock, host, "/v2/") {
        Ok(200 | 401) => Ok(()),
        Ok(code) => Err(unreachable(format!("/v2/ answered {code}"))),
        Err(e) => Err(unreachable(e.to_string())),
    }
}

#[derive(Debug, Deserialize)]
pub struct Manifest {
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
}

#[derive(Debug, Deserialize)]
pub struct Descriptor {
    pub digest: String,
    pub platform: Option<DescriptorPlatform>,
    #[serde(default)]
    pub annotations: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
pub struct DescriptorPlatform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

/// Per-platform manifest digests of an image index (attestation manifests,
/// `unknown/unknown`, are left out).
pub fn platform_digests(index: &Manifest) -> Vec<(Platform, String)> {
    index
        .manifests
        .iter()
        .filter(|d| !d.annotations.contains_key("vnd.docker.reference.type"))
        .filter_map(|d| {
            let p = d.platform.as_ref()?;
            let platform = Platform { os: p.os.clone(), arch: p.architecture.clone(), variant: p.variant.clone() };
            Platform::parse(&platform.to_string()).ok()?;
            Some((platform, d.digest.clone()))
        })
        .collect()
}

/// The local engine's tags of `repositories`: `REPOSITORY:TAG` → image ID.
pub fn local_tags(repositories: &[String]) -> Result<std::collections::BTreeMap<String, String>> {
    let out =
        docker().args(["image", "ls", "--no-trunc", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"]).probe().read()?;
    Ok(parse_local_tags(&out, repositories))
}

/// `docker image ls --format '{{.Repository}}:{{.Tag}} {{.ID}}'` lines of
/// `repositories`, untagged images left out.
pub fn parse_local_tags(out: &str, repositories: &[String]) -> std::collections::BTreeMap<String, String> {
    out.lines()
        .filter_map(|l| l.trim().split_once(' '))
        .filter(|(r, _)| {
            r.rsplit_once(':').is_some_and(|(repo, tag)| tag != "<none>" && repositories.iter().any(|x| x == repo))
        })
        .map(|(r, id)| (r.to_string(), id.trim().to_string()))
        .collect()
}

/// Points `reference` at the local image `id`.
pub fn tag(id: &str, reference: &str) -> Result<()> {
    docker().args(["tag", id, reference]).read().map(drop)
}

/// Removes the tag `reference` (and the image, when nothing else names it).
pub fn untag(reference: &str) -> Result<()> {
    docker().args(["image", "rm", reference]).read().map(drop)
}

/// The `Config` object of a local image (`docker image inspect`).
pub fn image_config(reference: &str) -> Result<serde_json::Value> {
    let out = docker().args(["image", "inspect", "--format", "{{json .Config}}", reference]).probe().output()?;
    if !out.status.success() {
        bail!(
            "image {reference} is not in the local image store ({}): build or load it first",
            super::process::last_lines(&String::from_utf8_lossy(&out.stderr), 1)
        );
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_tags_of_the_named_repositories_only() {
        let out = "ralph-worker-standin:latest sha256:aa\nralph-worker-standin:<none> sha256:bb\n\
                   localhost:5000/ralph-worker-standin:latest sha256:cc\nralph-debian-base:main-1234567 sha256:dd\n";
        let got = parse_local_tags(out, &["ralph-worker-standin".into(), "ralph-debian-base".into()]);
        let want: Vec<(&str, &str)> =
            vec![("ralph-debian-base:main-1234567", "sha256:dd"), ("ralph-worker-standin:latest", "sha256:aa")];
        assert_eq!(got.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect::<Vec<_>>(), want);
    }

    #[test]
    fn builder_platforms_from_inspect() {
        let text = "Name: default\nNodes:\nName: default\nPlatforms: linux/amd64, linux/amd64/v2, linux/arm64*\n";
        let ps = parse_builder_platforms(text);
        assert_eq!(catalog::join(&ps), "linux/amd64,linux/amd64/v2,linux/arm64");
    }

    /// `docker buildx inspect` of a Docker context's own builder (buildx 0.13.1).
    const CONTEXT_BUILDER: &str = "Name:   xdexpctx\nDriver: docker\n\nNodes:\nName:             xdexpctx\n\
        Endpoint:         xdexpctx\nStatus:           running\nBuildKit version: v0.0.0+unknown\n\
        Platforms:        linux/amd64, linux/amd64/v2, linux/amd64/v3, linux/amd64/v4, linux/arm64, linux/386\n\
        Labels:\n org.mobyproject.buildkit.worker.moby.host-gateway-ip: 10.213.78.1\n";

    /// A two-node docker-container builder, one node per architecture (as the README sets up).
    const MULTI_NODE: &str =
        "Name:          multi\nDriver:        docker-container\nLast Activity: 2026-12-05 23:44:52 +0000 UTC\n\n\
        Nodes:\nName:      amd64\nEndpoint:  unix:///var/run/docker.sock\nStatus:    running\n\
        Buildkit:  v0.13.1\nPlatforms: linux/amd64*, linux/amd64/v2, linux/386\n\n\
        Name:      arm64\nEndpoint:  ssh://arm-host\nStatus:    running\nBuildkit:  v0.13.1\n\
        Platforms: linux/arm64*, linux/arm/v7\n";

    #[test]
    fn builder_from_inspect() {
        let b = parse_builder(CONTEXT_BUILDER).unwrap();
        assert_eq!(
            (b.name.as_str(), b.driver.as_str(), b.endpoint.as_deref()),
            ("xdexpctx", "docker", Some("xdexpctx"))
        );
        assert!(b.is_docker_driver());
        assert_eq!(b.platforms.len(), 6);
        assert_eq!(b.platforms[5].to_string(), "linux/386");

        let multi = parse_builder(MULTI_NODE).unwrap();
        assert_eq!((multi.name.as_str(), multi.driver.as_str()), ("multi", "docker-container"));
        assert!(!multi.is_docker_driver());
        // The node's name is not the builder's; the first node's endpoint is kept.
        assert_eq!(multi.endpoint.as_deref(), Some("unix:///var/run/docker.sock"));
        assert_eq!(catalog::join(&multi.platforms), "linux/amd64,linux/amd64/v2,linux/386,linux/arm64,linux/arm/v7");
        assert!(buildable(&Platform::parse("linux/arm64").unwrap(), &multi.platforms));

        let err = parse_builder("ERROR: no builder \"nope\" found\n").unwrap_err().to_string();
        assert!(err.contains("no builder name and driver"), "{err}");
    }

    #[test]
    fn an_unknown_builder_is_one_line_with_the_fix() {
        let err = inspect_builder(Some("xtask-no-such-builder")).unwrap_err().to_string();
        assert!(err.starts_with("builder xtask-no-such-builder does not exist"), "{err}");
        assert!(err.contains("docker buildx create --name xtask-no-such-builder"), "{err}");
        assert!(!err.contains('\n'), "{err}");
    }

    #[test]
    fn buildable_platforms() {
        let available = parse_builder_platforms("Platforms: linux/amd64, linux/amd64/v2, linux/arm64\n");
        let p = |s: &str| Platform::parse(s).unwrap();
        assert!(buildable(&p("linux/arm64/v8"), &available));
        assert!(buildable(&p("linux/386"), &available));
        assert!(!buildable(&p("linux/s390x"), &available));
        assert!(!buildable(&p("linux/386"), &parse_builder_platforms("Platforms: linux/arm64\n")));
    }

    #[test]
    fn index_digests_skip_attestations() {
        let index: Manifest = serde_json::from_value(serde_json::json!({
            "manifests": [
                {"digest": "sha256:a", "platform": {"os": "linux", "architecture": "amd64"}},
                {"digest": "sha256:b", "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
                {"digest": "sha256:c", "platform": {"os": "unknown", "architecture": "unknown"},
                 "annotations": {"vnd.docker.reference.type": "attestation-manifest"}}
            ]
        }))
        .unwrap();
        let d = platform_digests(&index);
        assert_eq!(d.len(), 2);
        assert_eq!(d[1].0.to_string(), "linux/arm64/v8");
        assert_eq!(d[1].1, "sha256:b");
    }

    #[test]
    fn unreachable_registry_is_one_clear_line() {
        // Port 9 on loopback: nothing listens there on a test machine.
        let err = check_registry("127.0.0.1:9").unwrap_err().to_string();
        assert!(err.starts_with("registry 127.0.0.1:9 is unreachable"), "{err}");
        assert!(!err.contains('\n'));
    }
}
