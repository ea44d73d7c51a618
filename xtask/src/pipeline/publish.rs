//! Publishing checked images: each platform pushed by digest, one index
//! (manifest list) made from them, signed, with an SBOM attestation per
//! platform, all of it verified, and only then the tags of our strategy
//! moved onto the index.
//!
//! Order, so that a failure anywhere leaves nothing half-tagged:
//!
//! 1. stage: each platform is built from the build cache (the image that
//!    was checked: same content, same digest) and pushed to the staging
//!    repository `REPOSITORY-staging` under a staging tag (the `docker`
//!    driver can't push by digest alone); CI's matrix jobs stop here
//!    (`--push-only`);
//! 2. manifest: the index of the staged platform manifests is computed, then
//!    pushed to `REPOSITORY` by its digest only (no tag);
//! 3. attest: a CycloneDX SBOM of each platform as pushed (Trivy on the
//!    registry's copy), attached as a signed attestation;
//! 4. sign: the index and every platform manifest;
//! 5. verify: the signatures and attestations, as `image verify` does, and
//!    each platform pulled by digest and run;
//! 6. tag: only now, and only once every image of the publish got this far
//!    and was verified, do the strategy's tags (and `latest` from the
//!    default branch) point at the index; `X.Y` and `X` only ever name the
//!    highest release of their line in the registry, so an older patch
//!    released later, or two releases at once, never move them backwards.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::build::{self, BuildOptions};
use crate::checks::trivy;
use crate::engine::container::{Session, Spec};
use crate::engine::cosign::{self, Signer, Verifier};
use crate::engine::{docker, imagetools, skopeo};
use crate::model::catalog::{Catalog, Image, Platform};
use crate::model::gate::Checked;
use crate::model::tags;

/// How long an SBOM of one platform may take (Trivy reads every layer).
const SBOM_TIMEOUT: Duration = Duration::from_secs(900);

/// What one publish did, per image: the JSON `--report` writes and
/// `--digests` reads back.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PublishReport {
    /// Only staged (`--push-only`): no index, signature or tag yet.
    pub push_only: bool,
    pub images: Vec<Published>,
    pub seconds: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Published {
    pub image: String,
    /// `REGISTRY/REPOSITORY`, where the index and the tags go.
    pub repository: String,
    /// `REGISTRY/REPOSITORY-staging`, where the platforms are pushed first.
    pub staging: String,
    pub platforms: Vec<PublishedPlatform>,
    /// The index (manifest list) digest.
    pub index_digest: Option<String>,
    /// `REPOSITORY@INDEX_DIGEST`: what to deploy.
    pub reference: Option<String>,
    /// Every tag moved onto the index, as full references.
    pub tags: Vec<String>,
    /// "key" or "keyless"; none when only staged.
    pub signed: Option<String>,
    /// Whether the signatures went to the transparency log.
    pub tlog: bool,
    /// Signatures and SBOM attestations verified after signing.
    pub verified_signatures: usize,
    pub verified_attestations: usize,
    /// What each platform printed when pulled by digest and run.
    #[serde(default)]
    pub ran: Vec<(Platform, String)>,
    /// Every step of the verification passed: the only state tags move on.
    #[serde(default)]
    pub verified: bool,
    pub phases: Phases,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PublishedPlatform {
    pub platform: Platform,
    /// The platform's manifest digest (the same in the staging repository
    /// and in the repository).
    pub digest: String,
    /// The staging reference it was pushed under.
    pub staged: String,
    /// The SBOM attested for it (a file), once attested.
    pub sbom: Option<PathBuf>,
    /// Its size as attested (compact JSON), in bytes.
    #[serde(default)]
    pub sbom_bytes: u64,
}

/// Wall time of each step, in seconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Phases {
    pub push: f64,
    pub manifest: f64,
    pub attest: f64,
    pub sign: f64,
    pub verify: f64,
    pub tag: f64,
}

/// Everything a publish is told.
#[derive(Debug, Clone)]
pub struct PublishOptions {
    pub registry: String,
    /// None with `push_only`.
    pub signer: Option<Signer>,
    /// Whose signatures the verification step accepts.
    pub verifier: Option<Verifier>,
    pub no_tlog: bool,
    pub build: BuildOptions,
    /// Where the SBOMs are written (kept for the report).
    pub sbom_dir: PathBuf,
}

/// The repositories of `image` on `registry`: (product, staging).
pub fn repositories(registry: &str, image: &Image) -> (String, String) {
    let repository = format!("{}/{}", registry.trim_end_matches('/'), image.repository);
    let staging = format!("{repository}-staging");
    (repository, staging)
}

/// The staging tag of a platform: this checkout's build id and the platform.
pub fn staging_tag(build_id: &str, platform: &Platform) -> String {
    format!("{build_id}-{}", platform.to_string().replace('/', "-"))
}

/// The tags of this checkout's publish (the strategy `image build` uses)
/// and its build id.
pub fn tags_for(catalog: &Catalog, options: &BuildOptions) -> Result<(Vec<String>, String)> {
    let checkout = build::checkout(catalog, options)?;
    Ok((checkout.tags, tags::build_id(&checkout.git)))
}

/// Step 1: each platform of `image` pushed to the staging repository; each
/// digest must be the one its check saw, when the check report has it.
pub fn stage(
    catalog: &Catalog,
    image: &Image,
    checked: &[(Platform, Checked)],
    build_id: &str,
    options: &PublishOptions,
) -> Result<Published> {
    let (repository, staging) = repositories(&options.registry, image);
    let started = Instant::now();
    let mut platforms = Vec::new();
    for (platform, check) in checked {
        let staged = format!("{staging}:{}", staging_tag(build_id, platform));
        eprintln!("==> publish {}: pushing {platform} to {staged}", image.name);
        let digest = build::push_platform(catalog, image, platform, &staged, &options.build)?;
        if let Some(want) = check.digest.as_deref().filter(|d| *d != digest) {
            bail!(
                "the {platform} image pushed for {} ({}) is not the one checked ({want}, {}): its build is not reproducible from the cache; check and publish in one run",
                image.name,
                digest,
                check.source
            );
        }
        platforms.push(PublishedPlatform { platform: platform.clone(), digest, staged, sbom: None, sbom_bytes: 0 });
    }
    Ok(Published {
        image: image.name.clone(),
        repository,
        staging,
        platforms,
        index_digest: None,
        reference: None,
        tags: Vec::new(),
        signed: None,
        tlog: false,
        verified_signatures: 0,
        verified_attestations: 0,
        ran: Vec::new(),
        verified: false,
        phases: Phases { push: started.elapsed().as_secs_f64(), ..Phases::default() },
    })
}

/// Steps 2 to 5 on a staged image: index, SBOM attestations, signatures,
/// verification. No tag yet: [`move_tags`] comes last, once every image of
/// the publish got this far.
pub fn release(mut published: Published, options: &PublishOptions, run_args: &[String]) -> Result<Published> {
    let signer = options.signer.as_ref().context("publishing needs a signer: pass --key, or run with an OIDC token")?;
    let verifier = options.verifier.as_ref().context("publishing needs a verifier")?;
    let name = published.image.clone();
    let repo = published.repository.clone();
    let sources: Vec<String> =
        published.platforms.iter().map(|p| format!("{}@{}", published.staging, p.digest)).collect();

    let t = Instant::now();
    let (_, index) = imagetools::plan_index(&repo, &sources)?;
    eprintln!("==> publish {name}: index {index} of {} platforms, pushed by digest to {repo}", sources.len());
    imagetools::push_index(&repo, &index, &sources)?;
    let reference = format!("{repo}@{index}");
    published.index_digest = Some(index.clone());
    published.reference = Some(reference.clone());
    published.phases.manifest = t.elapsed().as_secs_f64();

    let t = Instant::now();
    std::fs::create_dir_all(&options.sbom_dir)
        .with_context(|| format!("creating the SBOM directory {}", options.sbom_dir.display()))?;
    let tmp = tempfile::Builder::new().prefix("xtask-publish-").tempdir().context("creating a temporary directory")?;
    for p in &mut published.platforms {
        let file_name = format!("{name}-{}.cdx.json", p.platform.to_string().replace('/', "-"));
        let platform_ref = format!("{repo}@{}", p.digest);
        eprintln!("==> publish {name}: SBOM of {} ({platform_ref}), attested", p.platform);
        // Made and attested in this run's own directory (two publishes of
        // one checkout must not attest each other's), then kept.
        let made = tmp.path().join(&file_name);
        trivy::sbom_remote(&platform_ref, &made, tmp.path(), SBOM_TIMEOUT)
            .with_context(|| format!("the SBOM of {platform_ref}"))?;
        p.sbom_bytes = compact_json(&made)?;
        eprintln!("==> publish {name}: SBOM of {} is {} bytes", p.platform, p.sbom_bytes);
        cosign::attest_sbom(&platform_ref, &made, signer, options.no_tlog)?;
        let file = options.sbom_dir.join(&file_name);
        keep(&made, &file)?;
        p.sbom = Some(file);
    }
    published.phases.attest = t.elapsed().as_secs_f64();

    let t = Instant::now();
    eprintln!("==> publish {name}: signing {reference} and its platform manifests");
    cosign::sign(&reference, signer, options.no_tlog, true)?;
    published.signed = Some(match signer {
        Signer::Key(_) => "key".into(),
        Signer::Keyless => "keyless".into(),
    });
    published.tlog = !options.no_tlog;
    published.phases.sign = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let digests: Vec<String> = published.platforms.iter().map(|p| p.digest.clone()).collect();
    let verified = verify_signed(&repo, &index, &digests, verifier, options.no_tlog)?;
    published.verified_signatures = verified.signatures;
    published.verified_attestations = verified.attestations;
    let platforms: Vec<(Platform, String)> =
        published.platforms.iter().map(|p| (p.platform.clone(), p.digest.clone())).collect();
    eprintln!("==> publish {name}: each platform pulled by digest and run (`{}`)", run_args.join(" "));
    published.ran = run_platforms(&repo, &platforms, run_args, None)?;
    published.verified = true;
    published.phases.verify = t.elapsed().as_secs_f64();
    Ok(published)
}

/// Copies `from` to `to` through a temporary file beside it, renamed over:
/// a reader sees one whole file.
fn keep(from: &Path, to: &Path) -> Result<()> {
    let dir = to.parent().context("a file without a folder")?;
    let tmp = tempfile::NamedTempFile::new_in(dir).with_context(|| format!("writing in {}", dir.display()))?;
    std::fs::copy(from, tmp.path()).with_context(|| format!("copying {}", from.display()))?;
    tmp.persist(to).with_context(|| format!("replacing {}", to.display()))?;
    Ok(())
}

/// Rewrites a JSON file without its indentation (Trivy writes SBOMs
/// indented: a third of their bytes, which the attestation and the
/// transparency log would carry for nothing). Returns its new size.
fn compact_json(file: &Path) -> Result<u64> {
    let text = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let value: serde_json::Value =
        serde_json::from_slice(&text).with_context(|| format!("{} is not JSON", file.display()))?;
    let compact = serde_json::to_vec(&value)?;
    std::fs::write(file, &compact).with_context(|| format!("writing {}", file.display()))?;
    Ok(compact.len() as u64)
}

/// Step 6: the tags onto the released, verified index. The fixed tags
/// (`X.Y.Z`, `<branch>-<sha>`, `latest`) name this index; each floating
/// one (`X.Y`, `X`) then names the highest release of its line in the
/// registry, this one included, re-read after every move until it holds,
/// so that two releases tagging at once both leave it there.
pub fn move_tags(published: &mut Published, tags: &[String]) -> Result<()> {
    let repo = published.repository.clone();
    let index = published.index_digest.clone().context("not released yet: publish it first")?;
    if !published.verified {
        bail!(
            "{repo}@{index} was not verified (signatures, SBOMs, every platform run): no tag moves onto it; publish it again"
        );
    }
    let t = Instant::now();
    let (floating, fixed): (Vec<&String>, Vec<&String>) = tags.iter().partition(|t| tags::is_floating(t));
    let fixed: Vec<String> = fixed.into_iter().cloned().collect();
    eprintln!("==> publish {}: tagging {repo}@{index} with {}", published.image, fixed.join(", "));
    // A registry can fail a request while another release writes to the
    // same repository: the fixed tags are tried again before giving up.
    let mut tried = 0;
    while let Err(e) = imagetools::tag(&repo, &index, &fixed) {
        tried += 1;
        if tried == 3 {
            return Err(e);
        }
        eprintln!("==> tag {repo}: {e:#} (retrying)");
        std::thread::sleep(Duration::from_millis(500 * tried));
    }
    let mut moved: Vec<String> = fixed.iter().map(|tag| format!("{repo}:{tag}")).collect();
    for tag in floating {
        let target = converge_floating(&repo, tag)?;
        if target == index {
            moved.push(format!("{repo}:{tag}"));
        } else {
            eprintln!("==> publish {}: {repo}:{tag} stays on {target}, a higher release of its line", published.image);
        }
    }
    published.tags = moved;
    published.phases.tag = t.elapsed().as_secs_f64();
    Ok(())
}

/// Points the floating tag at the digest of the highest release of its
/// line, re-reading the registry until a read after the last move finds it
/// there. A registry error on the way (two releases writing one tag at
/// once) is retried the same way. Returns that digest.
fn converge_floating(repo: &str, tag: &str) -> Result<String> {
    let mut last_error = None;
    for attempt in 0..8 {
        if attempt > 0 {
            std::thread::sleep(Duration::from_millis(250 * attempt));
        }
        match floating_step(repo, tag) {
            Ok(Some(settled)) => return Ok(settled),
            Ok(None) => {}
            Err(e) => {
                eprintln!("==> tag {repo}:{tag}: {e:#} (retrying)");
                last_error = Some(e);
            }
        }
    }
    match last_error {
        Some(e) => Err(e.context(format!("{repo}:{tag} could not be settled: publish again to settle it"))),
        None => {
            bail!("{repo}:{tag} kept moving while it was tagged (other releases at once?): publish again to settle it")
        }
    }
}

/// One read of the line and, unless the tag already names its highest
/// release, one move: the settled digest, or None after a move.
fn floating_step(repo: &str, tag: &str) -> Result<Option<String>> {
    let all = skopeo::list_tags(repo)?;
    let Some(highest) = tags::highest_in_line(&all, tag) else {
        bail!("{repo} has no release of the line {tag}: tag the full version first");
    };
    let (_, want) = imagetools::manifest(&format!("{repo}:{highest}"))?;
    let now = imagetools::manifest(&format!("{repo}:{tag}")).ok().map(|(_, d)| d);
    if now.as_deref() == Some(want.as_str()) {
        return Ok(Some(want));
    }
    eprintln!("==> tag {repo}:{tag} → {highest} ({want})");
    imagetools::retag(repo, &want, tag)?;
    Ok(None)
}

/// What a verification found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Verified {
    pub signatures: usize,
    pub attestations: usize,
}

/// The index and each platform manifest signed (by `verifier`'s identity),
/// each platform with an SBOM attestation.
pub fn verify_signed(
    repository: &str,
    index: &str,
    platforms: &[String],
    verifier: &Verifier,
    no_tlog: bool,
) -> Result<Verified> {
    let mut verified =
        Verified { signatures: cosign::verify(&format!("{repository}@{index}"), verifier, no_tlog)?, attestations: 0 };
    for digest in platforms {
        let reference = format!("{repository}@{digest}");
        verified.signatures += cosign::verify(&reference, verifier, no_tlog)?;
        let found = cosign::verify_sbom(&reference, verifier, no_tlog)?;
        if found == 0 {
            bail!("{reference} has no SBOM attestation: publish it again");
        }
        verified.attestations += found;
    }
    Ok(verified)
}

/// What each platform of `image` runs with to prove it starts: the
/// catalog's `startup_args`, else `--version`.
pub fn run_args(image: &Image) -> Vec<String> {
    image
        .startup_args
        .clone()
        .unwrap_or_else(|| crate::checks::runtime::DEFAULT_ARGS.iter().map(|s| s.to_string()).collect())
}

/// How long one platform's run may take: emulated platforms (another
/// architecture than this machine's, run under QEMU) get longer.
pub fn run_timeout(platform: &Platform) -> Duration {
    Duration::from_secs(if platform.is_emulated() { EMULATED_RUN_SECONDS } else { NATIVE_RUN_SECONDS })
}

/// A platform's run on its own architecture, and under emulation (the
/// repository's emulated tests need up to 300 s on two cores).
pub const NATIVE_RUN_SECONDS: u64 = 120;
pub const EMULATED_RUN_SECONDS: u64 = 300;

/// Each platform of a pushed image runs: `docker run --platform P REF@DIGEST
/// ARGS` exits 0 within `timeout` (default: [`run_timeout`]). Returns the
/// first line each printed.
pub fn run_platforms(
    repository: &str,
    platforms: &[(Platform, String)],
    args: &[String],
    timeout: Option<Duration>,
) -> Result<Vec<(Platform, String)>> {
    let session = Session::new("verify");
    let mut out = Vec::new();
    for (platform, digest) in platforms {
        let timeout = timeout.unwrap_or_else(|| run_timeout(platform));
        let reference = format!("{repository}@{digest}");
        let spec = Spec {
            image: reference.clone(),
            platform: Some(platform.clone()),
            args: args.to_vec(),
            allow_pull: true,
            ..Spec::default()
        };
        let done = session.run(&spec, "verify", timeout)?;
        match done.exit_code {
            Some(0) => out.push((platform.clone(), done.stdout.lines().next().unwrap_or("").trim().to_string())),
            Some(code) => bail!(
                "{reference} ({platform}) exited {code} on `{}`: {}",
                args.join(" "),
                crate::engine::process::last_lines(&done.stderr, 1)
            ),
            None => bail!("{reference} ({platform}) did not finish `{}` within {}s", args.join(" "), timeout.as_secs()),
        }
        let _ = docker::docker().args(["image", "rm", &reference]).probe().output();
    }
    Ok(out)
}

/// The staged images of earlier `--push-only` runs (their `--report`
/// files), merged per image: every platform's digest, each from one file.
pub fn read_staged(files: &[PathBuf]) -> Result<Vec<Published>> {
    let mut merged: Vec<Published> = Vec::new();
    for file in files {
        let report = read_report(file)?;
        if !report.push_only {
            bail!(
                "{} is the report of a full publish, not of --push-only: pass the matrix jobs' push reports",
                file.display()
            );
        }
        for image in report.images {
            match merged.iter_mut().find(|m| m.image == image.image) {
                Some(m) => {
                    if m.repository != image.repository {
                        bail!(
                            "{}: {} was staged for {} here and for {} elsewhere: publish to one registry",
                            file.display(),
                            image.image,
                            image.repository,
                            m.repository
                        );
                    }
                    for p in image.platforms {
                        if m.platforms.iter().any(|q| q.platform == p.platform) {
                            bail!(
                                "{}: {} on {} is in two push reports: pass each once",
                                file.display(),
                                image.image,
                                p.platform
                            );
                        }
                        m.platforms.push(p);
                    }
                }
                None => merged.push(image),
            }
        }
    }
    for m in &mut merged {
        m.platforms.sort_by(|a, b| a.platform.cmp(&b.platform));
    }
    Ok(merged)
}

fn read_report(file: &Path) -> Result<PublishReport> {
    let text = std::fs::read_to_string(file).with_context(|| {
        format!("reading {}: pass a file `image publish --push-only --report` wrote", file.display())
    })?;
    serde_json::from_str(&text).with_context(|| {
        format!("{} is not a publish report: pass a file `image publish --push-only --report` wrote", file.display())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn staged(image: &str, platform: &str, digest: &str) -> Published {
        Published {
            image: image.into(),
            repository: format!("r/{image}"),
            staging: format!("r/{image}-staging"),
            platforms: vec![PublishedPlatform {
                platform: Platform::parse(platform).unwrap(),
                digest: digest.into(),
                staged: "s".into(),
                sbom: None,
                sbom_bytes: 0,
            }],
            index_digest: None,
            reference: None,
            tags: vec![],
            signed: None,
            tlog: false,
            verified_signatures: 0,
            verified_attestations: 0,
            ran: Vec::new(),
            verified: false,
            phases: Phases::default(),
        }
    }

    fn write(dir: &Path, name: &str, push_only: bool, images: Vec<Published>) -> PathBuf {
        let file = dir.join(name);
        let report = PublishReport { push_only, images, seconds: 0.0 };
        std::fs::write(&file, serde_json::to_string(&report).unwrap()).unwrap();
        file
    }

    #[test]
    fn push_reports_of_the_matrix_jobs_merge_per_image() {
        let dir = tempfile::tempdir().unwrap();
        let arm = write(dir.path(), "arm.json", true, vec![staged("w", "linux/arm64", "sha256:b")]);
        let amd = write(dir.path(), "amd.json", true, vec![staged("w", "linux/amd64", "sha256:a")]);
        let merged = read_staged(&[arm, amd]).unwrap();
        assert_eq!(merged.len(), 1);
        let digests: Vec<&str> = merged[0].platforms.iter().map(|p| p.digest.as_str()).collect();
        assert_eq!(digests, ["sha256:a", "sha256:b"], "sorted by platform");
    }

    #[test]
    fn a_platform_twice_or_a_full_report_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let a = write(dir.path(), "a.json", true, vec![staged("w", "linux/amd64", "sha256:a")]);
        let b = write(dir.path(), "b.json", true, vec![staged("w", "linux/amd64", "sha256:c")]);
        let e = read_staged(&[a.clone(), b]).unwrap_err().to_string();
        assert!(e.contains("w on linux/amd64 is in two push reports"), "{e}");
        let full = write(dir.path(), "full.json", false, vec![staged("w", "linux/arm64", "sha256:b")]);
        let e = read_staged(&[a, full]).unwrap_err().to_string();
        assert!(e.contains("not of --push-only"), "{e}");
        let e = read_staged(&[dir.path().join("missing.json")]).unwrap_err();
        assert!(format!("{e:#}").contains("reading"), "{e:#}");
    }

    #[test]
    fn staging_names() {
        let catalog = Catalog::parse(
            "[[image]]\nname='w'\nrepository='ralph-w'\ndockerfile='D'\n",
            Path::new("/repo/images.toml"),
            Path::new("/repo"),
        )
        .unwrap();
        let (repo, staging) = repositories("localhost:5000/", &catalog.images[0]);
        assert_eq!(repo, "localhost:5000/ralph-w");
        assert_eq!(staging, "localhost:5000/ralph-w-staging");
        let p = Platform::parse("linux/arm64/v8").unwrap();
        assert_eq!(staging_tag("main-abc1234", &p), "main-abc1234-linux-arm64-v8");
    }
}
