//! Building catalog images: everything decided before buildx runs (tags,
//! labels, build args, the images each one builds on, cache flags), so bad
//! input fails before any work; then each image through `docker buildx
//! build`, loaded locally or pushed, with its digests, tags, wall time and
//! cache hits.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::engine::buildx::{Built, Invocation, LayoutOutput};
use crate::engine::docker::{Builder, ImageStore};
use crate::engine::{clamp, docker, git, imagetools, oci, skopeo};
use crate::model::catalog::{Catalog, Image, ImageKind, Platform};
use crate::model::tags;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheMode {
    /// A cache directory per image under target/buildx-cache (or --cache-dir).
    #[default]
    Local,
    /// `<registry>/<repository>:buildcache` (needs --registry).
    Registry,
    /// The GitHub Actions cache service (in GitHub Actions only).
    Gha,
    /// Only the engine's own build cache.
    None,
}

/// Which buildx builder builds: the same option on every command that builds.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct BuilderArg {
    /// The buildx builder to build with (default: buildx's current one): a
    /// multi-node builder, a remote BuildKit, a Kubernetes builder, or a
    /// Docker context (its engine's own builder, which builds into that engine).
    #[arg(id = "builder", long = "builder", value_name = "NAME", env = "BUILDX_BUILDER")]
    pub name: Option<String>,
}

impl BuilderArg {
    /// `BUILDX_BUILDER`, for the commands that read their arguments from the environment (`ci …`).
    pub fn from_env() -> BuilderArg {
        BuilderArg { name: std::env::var("BUILDX_BUILDER").ok().filter(|b| !b.trim().is_empty()) }
    }
}

/// How to build, for `image build` (all of it) and for commands that build
/// first (`image check`, the benchmarks), which start from `Default`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct BuildOptions {
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
    #[arg(long, value_enum, default_value_t)]
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
    #[arg(long = "tag")]
    pub extra_tags: Vec<String>,
    /// Don't stream buildx progress.
    #[arg(long, short)]
    pub quiet: bool,
    #[command(flatten)]
    pub builder: BuilderArg,
    /// The command looks at what it built in the current engine afterwards
    /// (`image check`, the benchmarks): set by the command, not an option.
    #[arg(skip)]
    pub looked_at_here: bool,
}

/// What the commands that build before they look (`image check`, `image
/// publish`) take of `image build`'s options.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Rebuild {
    /// Where the build cache lives (see `image build --cache`).
    #[arg(long, value_enum, default_value_t)]
    pub cache: CacheMode,
    /// Don't stream buildx progress.
    #[arg(long, short)]
    pub quiet: bool,
    /// Branch name to tag with, for CI checkouts on a detached HEAD (as `image build --branch`).
    #[arg(long)]
    pub branch: Option<String>,
    /// Release version (MAJOR.MINOR.PATCH; default: a vX.Y.Z tag at HEAD): its tags, and the version label of what is built.
    #[arg(long)]
    pub release: Option<String>,
    #[command(flatten)]
    pub builder: BuilderArg,
}

impl Rebuild {
    pub fn options(&self) -> BuildOptions {
        BuildOptions {
            cache: self.cache,
            quiet: self.quiet,
            branch: self.branch.clone(),
            release: self.release.clone(),
            builder: self.builder.clone(),
            ..BuildOptions::default()
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct BuildReport {
    /// The buildx builder that built them, and its driver.
    pub builder: Builder,
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
    /// The buildx builder that built it, and its driver.
    pub builder: Builder,
    /// The OCI layout it was written to (all its platforms), which later
    /// steps read (and a push pushed); none on the classic store.
    pub layout: Option<PathBuf>,
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

/// Every image of a build, planned.
#[derive(Debug)]
pub struct BuildPlan<'c> {
    pub images: Vec<Plan<'c>>,
    /// The tag unique to this checkout (`<branch>-<shortsha>[-dirty]`): what checks look at.
    pub build_id: String,
    /// `SOURCE_DATE_EPOCH`: the commit's time (else `$SOURCE_DATE_EPOCH`, else now).
    pub epoch: u64,
    options: BuildOptions,
    /// The builder, once [`BuildPlan::check_machine`] found it.
    builder: Option<Builder>,
}

/// One image's build, decided.
#[derive(Debug)]
pub struct Plan<'c> {
    pub image: &'c Image,
    pub platforms: Vec<Platform>,
    pub tags: Vec<String>,
    pub refs: Vec<String>,
    invocation: Invocation,
    /// Where its OCI layout goes, when the engine's store takes one.
    layout: PathBuf,
    /// The `--cache local` directory its build exports the cache to.
    local_cache: Option<PathBuf>,
}

impl Plan<'_> {
    /// What buildx is told for this image (`image repro` exports it elsewhere).
    pub fn invocation(&self) -> &Invocation {
        &self.invocation
    }

    /// Where `image build` writes its OCI layout.
    pub fn layout_dir(&self) -> &Path {
        &self.layout
    }
}

/// Plans and runs the build of `images` (with what they build on) for the
/// `requested` platforms (none: each image's own).
pub fn run(
    catalog: &Catalog,
    images: &[&Image],
    requested: &[Platform],
    options: &BuildOptions,
) -> Result<BuildReport> {
    let mut plan = plan(catalog, images, requested, options)?;
    let builder = plan.check_machine()?;
    let images = plan.images.iter().map(|p| plan.execute(p)).collect::<Result<_>>()?;
    Ok(BuildReport { builder, images })
}

/// Decides everything about a build without running anything but git.
pub fn plan<'c>(
    catalog: &'c Catalog,
    images: &[&'c Image],
    requested: &[Platform],
    options: &BuildOptions,
) -> Result<BuildPlan<'c>> {
    let images = catalog.with_needs(images);
    let Checkout { git, release, tags } = checkout(catalog, options)?;
    let extra_args = parse_build_args(&options.build_args)?;
    if options.push && options.registry.is_none() {
        bail!("--push needs --registry (for example --registry localhost:5000)");
    }
    if options.cache == CacheMode::Registry && options.registry.is_none() {
        bail!("--cache registry needs --registry (the cache is stored there as REPOSITORY:buildcache)");
    }

    // The commit's time, else SOURCE_DATE_EPOCH (the reproducible-builds
    // convention), else now: a rebuild of the same content then has the
    // same config, so the same digest (what `image publish` compares).
    let epoch = git.commit_time.or_else(source_date_epoch).unwrap_or_else(now_unix);
    let created = tags::rfc3339_utc(epoch)?;
    let prefix = options.registry.as_ref().map(|r| format!("{}/", r.trim_end_matches('/'))).unwrap_or_default();

    let mut plans: Vec<Plan<'c>> = Vec::new();
    for image in images {
        check_paths(image)?;
        let platforms = image.select_platforms(requested)?;
        let refs: Vec<String> = tags.iter().map(|t| format!("{prefix}{}:{t}", image.repository)).collect();
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
        let mut contexts: Vec<(String, String)> =
            image.contexts.iter().map(|(name, dir)| (name.clone(), dir.display().to_string())).collect();
        // What it needs was planned before it (catalog order): use its most specific tag.
        for need in &image.needs {
            let planned = plans.iter().find(|p| &p.image.name == need).expect("needs are planned first");
            contexts.push((need.clone(), format!("docker-image://{}", planned.refs[0])));
        }
        let local_cache = local_cache_dir(catalog, image, options);
        let invocation = Invocation {
            platforms: platforms.clone(),
            dockerfile: image.dockerfile.clone(),
            context: image.context.clone(),
            target: image.target.clone(),
            refs: refs.clone(),
            labels,
            build_args,
            contexts,
            push: options.push,
            provenance: options.provenance,
            sbom: options.sbom,
            no_cache: options.no_cache,
            cache_flags: cache_flags(image, &platforms, options, local_cache.as_deref()),
            builder: options.builder.name.clone(),
            docker_context: None,
            layout: None,
            store_only: false,
        };
        let layout = catalog.layout_dir(image, &platforms);
        plans.push(Plan { image, platforms, tags: tags.clone(), refs, invocation, layout, local_cache });
    }
    Ok(BuildPlan { images: plans, build_id: tags::build_id(&git), epoch, options: options.clone(), builder: None })
}

/// This checkout as a build sees it (`--branch` applied), the release it
/// is for, and its tags: the strategy's, then the `--tag`s.
pub struct Checkout {
    pub git: tags::GitInfo,
    pub release: Option<tags::Version>,
    pub tags: Vec<String>,
}

pub fn checkout(catalog: &Catalog, options: &BuildOptions) -> Result<Checkout> {
    let mut git = git::discover();
    if let Some(branch) = &options.branch {
        git.branch = Some(branch.clone());
    }
    let (release, note) = tags::release(options.release.as_deref(), git.tag.as_deref())?;
    if let Some(note) = note {
        eprintln!("note: {note}");
    }
    for tag in &options.extra_tags {
        tags::validate_tag(tag)?;
    }
    let mut tags = tags::compute_tags(&git, &catalog.default_branch, release.as_ref());
    tags.extend(options.extra_tags.iter().cloned());
    Ok(Checkout { git, release, tags })
}

impl BuildPlan<'_> {
    /// The machine and the builder, checked once before anything is built
    /// or pushed: what the builder's driver can't do is refused here.
    pub fn check_machine(&mut self) -> Result<Builder> {
        docker::daemon_version()?;
        docker::buildx_version()?;
        let builder = docker::inspect_builder(self.options.builder.name.as_deref())?;
        let all_platforms: Vec<Platform> = self.images.iter().flat_map(|p| p.platforms.clone()).collect();
        docker::ensure_platforms_buildable(&all_platforms, &builder)?;
        // A `docker`-driver builder builds into its own engine, used through
        // its context; any other loads into the current engine.
        let context =
            builder.endpoint.clone().filter(|_| builder.is_docker_driver() && self.options.builder.name.is_some());
        if let Some(context) = context.as_deref().filter(|_| self.options.looked_at_here && !self.options.push) {
            if context != docker::current_context()? {
                bail!(
                    "builder {} (driver docker) builds into the engine of Docker context {context}, but this command \
                     looks at the image in the current engine: run it with DOCKER_CONTEXT={context}, or use `image build --builder {}`",
                    builder.name,
                    builder.name
                );
            }
        }
        let demands = Demands {
            push: self.options.push,
            multi_platform: self.images.iter().any(|p| p.platforms.len() > 1),
            cache: self.options.cache,
            attestations: self.options.provenance || self.options.sbom,
        };
        let store = docker::image_store_of(context.as_deref())?;
        check_builder(&builder, store, &demands)?;
        if let Some(registry) =
            self.options.registry.as_deref().filter(|_| self.options.push || self.options.cache == CacheMode::Registry)
        {
            docker::check_registry(registry)?;
        }
        // The engine's store holds every platform of an image, so the build
        // is written once as an OCI layout, loaded from it or pushed from it
        // (the classic store keeps buildx's own --load and --push).
        let layouts = store == ImageStore::Containerd;
        for plan in &mut self.images {
            plan.invocation.docker_context.clone_from(&context);
            if layouts {
                plan.invocation.layout = Some(LayoutOutput { dest: plan.layout.clone(), epoch: self.epoch });
            }
        }
        if !self.options.quiet {
            eprintln!("==> builder {} (driver {})", builder.name, builder.driver);
        }
        self.builder = Some(builder.clone());
        Ok(builder)
    }

    /// Builds one planned image (what it needs must be built already).
    pub fn execute(&self, plan: &Plan<'_>) -> Result<ImageReport> {
        let builder = self.builder.clone().context("the builder is checked (check_machine) before a build")?;
        // One build exports to the image's local cache at a time; what it no longer reaches goes after.
        let _cache_lock = plan.local_cache.as_deref().map(oci::lock).transpose()?;
        let report = self.execute_unlocked(plan, builder)?;
        // (No index.json: nothing was exported there.)
        if let Some(cache) = plan.local_cache.as_deref().and_then(|d| oci::Layout::open(d).ok()) {
            let freed = cache.collect_garbage()?;
            if !self.options.quiet && freed > 0 {
                let mb = freed as f64 / 1e6;
                eprintln!("==> {}: {mb:.1} MB of earlier caches removed from {}", plan.image.name, cache.dir.display());
            }
        }
        Ok(report)
    }

    fn execute_unlocked(&self, plan: &Plan<'_>, builder: Builder) -> Result<ImageReport> {
        let (built, layout) = match &plan.invocation.layout {
            Some(out) => {
                let (built, layout) = build_layout(plan, out, self.options.quiet, !self.options.push)?;
                if self.options.push {
                    // The layout's own blobs and manifests: the pushed digest is the built one.
                    for reference in &plan.refs {
                        skopeo::push_layout(&layout.dir, reference)
                            .with_context(|| format!("image `{}`", plan.image.name))?;
                    }
                    if !self.options.quiet {
                        eprintln!("==> pushed {} from {}", plan.refs.join(", "), layout.dir.display());
                    }
                }
                (built, Some(layout))
            }
            None => (plan.invocation.run(&plan.image.name, self.options.quiet)?, None),
        };
        let digests = match &layout {
            Some(layout) => layout
                .platforms()?
                .into_iter()
                .filter_map(|(p, image)| Some((Platform::parse(&p).ok()?, image.manifest)))
                .collect(),
            None => self.platform_digests(plan, &built)?,
        };
        let platforms = plan
            .platforms
            .iter()
            .map(|p| {
                let s = built.cache.get(p).copied().unwrap_or_default();
                PlatformReport {
                    platform: p.clone(),
                    digest: digests.get(p).cloned(),
                    steps_cached: s.cached,
                    steps_total: s.total,
                    cache_hit_rate: s.rate(),
                }
            })
            .collect();
        Ok(ImageReport {
            image: plan.image.name.clone(),
            kind: plan.image.kind,
            refs: plan.refs.clone(),
            tags: plan.tags.clone(),
            digest: built.digest,
            pushed: self.options.push,
            wall_seconds: built.wall_seconds,
            platforms,
            builder,
            layout: layout.map(|l| l.dir),
        })
    }

    /// Each platform's manifest digest: from the registry's index after a
    /// push; the build's digest for a single-platform image.
    fn platform_digests(&self, plan: &Plan<'_>, built: &Built) -> Result<BTreeMap<Platform, String>> {
        let single = |digest: &str| plan.platforms.iter().map(|p| (p.clone(), digest.to_string())).collect();
        if self.options.push {
            let repository = crate::model::target::repository_of(&plan.refs[0]);
            let index = imagetools::manifest_json(&format!("{repository}@{}", built.digest))?;
            return Ok(if built.is_index {
                docker::platform_digests(&serde_json::from_value(index)?).into_iter().collect()
            } else {
                single(&built.digest)
            });
        }
        Ok(if !built.is_index && plan.platforms.len() == 1 { single(&built.digest) } else { BTreeMap::new() })
    }
}

/// Builds `plan` into its layout `out` (under the layout's lock: the layout
/// keeps the last build only, its older blobs collected), clamps its files'
/// times to the epoch (`engine::clamp`: reproducible), then makes it what
/// the plan's references name in the engine (with `load`).
///
/// The build first runs for its digest only (a fraction of a second when
/// cached; no image is stored): when that digest and the epoch are the ones
/// the layout was written from, the layout is current and is neither
/// exported nor clamped again.
fn build_layout(plan: &Plan<'_>, out: &LayoutOutput, quiet: bool, load: bool) -> Result<(Built, oci::Layout)> {
    let _lock = oci::lock(&out.dest)?;
    let raw = Invocation { store_only: true, ..plan.invocation.clone() }.run(&plan.image.name, quiet)?;
    let memo = oci::Memo {
        raw: raw.digest.clone(),
        epoch: out.epoch,
        inputs: plan.invocation.fingerprint(),
        // Attestations name the digests they attest: such a layout is kept as BuildKit wrote it.
        clamped: !(plan.invocation.provenance || plan.invocation.sbom),
    };
    if let Some(layout) = memo.current(&out.dest)? {
        if !quiet {
            eprintln!("==> {}: unchanged since its layout was written ({})", plan.image.name, out.dest.display());
        }
        if load {
            oci::load(&layout, &plan.refs, plan.invocation.docker_context.as_deref())?;
        }
        let built = Built { digest: layout.digest()?, is_index: plan.platforms.len() > 1, ..raw };
        return Ok((built, layout));
    }
    // The exporter adds to index.json: the layout is to name this build only.
    match std::fs::remove_file(out.dest.join("index.json")) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            bail!("removing the old {}/index.json: {e}", out.dest.display())
        }
        _ => {}
    }
    // From what the first run just built (`--no-cache` or not), its cache already exported.
    let export = Invocation {
        no_cache: false,
        cache_flags: plan.invocation.cache_flags.iter().filter(|f| !f.starts_with("--cache-to=")).cloned().collect(),
        ..plan.invocation.clone()
    };
    let exported = export.run(&plan.image.name, quiet)?;
    // The first run did the building: its cache hits are the build's.
    let built = Built { wall_seconds: raw.wall_seconds + exported.wall_seconds, cache: raw.cache, ..exported };
    let layout = oci::Layout::open(&out.dest)?;
    let digest = layout.digest()?;
    if digest != built.digest {
        bail!(
            "image `{}`: buildx reported {} but the layout {} holds {digest}: remove that directory and build again",
            plan.image.name,
            built.digest,
            out.dest.display()
        );
    }
    let digest = if memo.clamped {
        let started = std::time::Instant::now();
        let c = clamp::layout(&layout, out.epoch, &plan.layout, &[plan.layout.as_path()])?;
        if !quiet {
            eprintln!(
                "==> {}: files' times clamped to {} ({} layers rewritten, {} reused, {} kept) in {:.1}s",
                plan.image.name,
                out.epoch,
                c.rewritten,
                c.reused,
                c.kept,
                started.elapsed().as_secs_f64()
            );
        }
        layout.digest()?
    } else {
        if !quiet {
            eprintln!("==> {}: not reproducible: its attestations are kept as BuildKit wrote them", plan.image.name);
        }
        digest
    };
    let built = Built { digest: digest.clone(), ..built };
    layout.collect_garbage()?;
    let cold = built.cache.values().all(|s| s.cached == 0) && built.cache.values().any(|s| s.total > 0);
    memo.write(&out.dest, &digest, cold)?;
    if load && oci::load(&layout, &plan.refs, plan.invocation.docker_context.as_deref())? && !quiet {
        eprintln!("==> loaded {} ({digest}) from {}", plan.image.name, out.dest.display());
    }
    Ok((built, layout))
}

/// Builds `image` for `platform` from the build cache and pushes it to
/// `reference` (a staging tag, never one of the strategy's). What it builds
/// on is built and loaded for this platform first, from the cache (in CI
/// the two platforms' checks run one after the other on one engine, and the
/// last one's base must not become this one's). The same content as the
/// build that was checked, so the same manifest digest; the caller
/// compares. On the containerd store it is written as an OCI layout of its
/// own (`target/oci/IMAGE-publish-PLATFORM`, not loaded) and that layout's
/// blobs and manifest are pushed as they are, so the pushed digest is the
/// built one. Returns the pushed manifest's digest.
pub fn push_platform(
    catalog: &Catalog,
    image: &Image,
    platform: &Platform,
    reference: &str,
    options: &BuildOptions,
) -> Result<String> {
    let local = BuildOptions { push: false, registry: None, provenance: false, sbom: false, ..options.clone() };
    let mut planned = plan(catalog, &[image], std::slice::from_ref(platform), &local)?;
    planned.check_machine()?;
    let mut last = planned.images.pop().expect("the image itself is planned last");
    // What it builds on, loaded for this platform first (from the cache): a
    // tag another platform's build loaded last must not become its base.
    for need in &planned.images {
        planned.execute(need)?;
    }
    // The check's cache, read only: what is pushed is what was checked, and
    // no second cache is written that nothing reads.
    last.invocation.cache_flags.retain(|f| !f.starts_with("--cache-to="));
    last.invocation.refs = vec![reference.to_string()];
    if let Some(out) = &mut last.invocation.layout {
        let slug = platform.to_string().replace('/', "-");
        out.dest = last.layout.with_file_name(format!("{}-publish-{slug}", image.name));
        let out = out.clone();
        let (_, layout) = build_layout(&last, &out, options.quiet, false)?;
        let digest = layout.digest()?;
        skopeo::push_layout(&layout.dir, reference)
            .with_context(|| format!("image `{}` for {platform}", image.name))?;
        return Ok(digest);
    }
    last.invocation.push = true;
    let built = last.invocation.run(&image.name, options.quiet)?;
    if built.is_index {
        bail!(
            "the build of {} for {platform} made an index, not one manifest: build it without attestations",
            image.name
        );
    }
    Ok(built.digest)
}

/// What a build asks of its builder.
#[derive(Debug, Clone, Copy, Default)]
pub struct Demands {
    pub push: bool,
    /// Some image is built for more than one platform.
    pub multi_platform: bool,
    pub cache: CacheMode,
    /// Provenance or SBOM attestations.
    pub attestations: bool,
}

/// Refuses, up front and in one line with the fix, what `builder` can't
/// do. `store` is the image store of the engine a `--load` goes to (for the
/// `docker` driver, its own engine). What buildx 0.13 refuses of the
/// `docker` driver on the classic store (checked against Docker Engine
/// 26.1): cache export (`Cache export is not supported for the docker
/// driver`), attestations, and manifest lists; with the containerd store it
/// does all three. Other drivers export anything, but a multi-platform
/// image can only be loaded into an engine with the containerd store.
pub fn check_builder(builder: &Builder, store: ImageStore, demands: &Demands) -> Result<()> {
    let who = format!("builder {} (driver {})", builder.name, builder.driver);
    let containerd =
        "set {\"features\":{\"containerd-snapshotter\":true}} in /etc/docker/daemon.json and restart dockerd";
    let other_driver = "a docker-container builder (`docker buildx create --name NAME --driver docker-container`)";
    if store == ImageStore::Containerd {
        return Ok(());
    }
    if builder.is_docker_driver() {
        if demands.multi_platform {
            bail!(
                "{who} on an engine with the classic image store can't build a multi-platform image: \
                 build one --platform, {containerd}, or use {other_driver} with --push"
            );
        }
        if demands.attestations {
            bail!(
                "{who} on an engine with the classic image store can't attach provenance or SBOM attestations: \
                 drop --provenance/--sbom, {containerd}, or use {other_driver}"
            );
        }
        let cache = match demands.cache {
            CacheMode::None => None,
            CacheMode::Local => Some("local"),
            CacheMode::Registry => Some("registry"),
            CacheMode::Gha => Some("gha"),
        };
        if let Some(cache) = cache {
            bail!(
                "{who} on an engine with the classic image store can't export a build cache (--cache {cache}): \
                 use --cache none (the engine's own cache still works), {containerd}, or use {other_driver}"
            );
        }
    } else if demands.multi_platform && !demands.push {
        bail!(
            "{who} can't --load a multi-platform image into an engine with the classic image store: \
             use --push to a registry (--push --registry HOST:PORT), a docker-driver builder on an engine with \
             the containerd image store, or build one --platform"
        );
    }
    Ok(())
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

/// The directory of `--cache local` (default: target/buildx-cache/IMAGE);
/// `None` for the other modes.
fn local_cache_dir(catalog: &Catalog, image: &Image, options: &BuildOptions) -> Option<PathBuf> {
    (options.cache == CacheMode::Local).then(|| {
        options.cache_dir.clone().unwrap_or_else(|| catalog.target_dir().join("buildx-cache").join(&image.name))
    })
}

/// `local`: the `--cache local` directory (`Some` exactly for that mode).
fn cache_flags(image: &Image, platforms: &[Platform], options: &BuildOptions, local: Option<&Path>) -> Vec<String> {
    match options.cache {
        CacheMode::None => vec![],
        CacheMode::Local => {
            let dir = local.expect("a local cache has its directory");
            let mut flags = Vec::new();
            // Importing a cache that was never exported only prints a warning.
            if dir.join("index.json").is_file() && !options.no_cache {
                flags.push(format!("--cache-from=type=local,src={}", dir.display()));
            }
            flags.push(format!("--cache-to=type=local,dest={},mode=max", dir.display()));
            flags
        }
        CacheMode::Registry => {
            let registry = options.registry.as_deref().unwrap_or_default().trim_end_matches('/');
            let r = format!("{registry}/{}:buildcache", image.repository);
            vec![format!("--cache-from=type=registry,ref={r}"), format!("--cache-to=type=registry,ref={r},mode=max")]
        }
        CacheMode::Gha => {
            // One scope per image and platform set: the matrix jobs of one
            // image (one platform each) don't overwrite each other's cache.
            let scope = std::iter::once(image.name.clone())
                .chain(platforms.iter().map(|p| p.to_string().replace('/', "-")))
                .collect::<Vec<_>>()
                .join("_");
            vec![format!("--cache-from=type=gha,scope={scope}"), format!("--cache-to=type=gha,scope={scope},mode=max")]
        }
    }
}

fn source_date_epoch() -> Option<u64> {
    std::env::var("SOURCE_DATE_EPOCH").ok()?.trim().parse().ok()
}

fn now_unix() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

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

    fn builder(name: &str, driver: &str) -> Builder {
        Builder { name: name.into(), driver: driver.into(), endpoint: Some(name.into()), platforms: vec![] }
    }

    #[test]
    fn the_docker_driver_on_the_classic_store_is_refused_what_it_cannot_do() {
        let docker = builder("other-engine", "docker");
        let err = |store, demands: &Demands| check_builder(&docker, store, demands).unwrap_err().to_string();
        let plain = Demands { cache: CacheMode::None, ..Demands::default() };
        assert!(check_builder(&docker, ImageStore::Classic, &plain).is_ok());
        assert!(check_builder(&docker, ImageStore::Classic, &Demands { push: true, ..plain }).is_ok());
        for (cache, name) in [(CacheMode::Local, "local"), (CacheMode::Registry, "registry"), (CacheMode::Gha, "gha")] {
            let e = err(ImageStore::Classic, &Demands { cache, ..plain });
            assert!(
                e.starts_with("builder other-engine (driver docker) on an engine with the classic image store can't export a build cache"),
                "{e}"
            );
            assert!(e.contains(&format!("(--cache {name})")) && e.contains("use --cache none"), "{e}");
            assert!(!e.contains('\n'));
            // The containerd store exports caches through the docker driver.
            assert!(check_builder(&docker, ImageStore::Containerd, &Demands { cache, ..plain }).is_ok());
        }
        let e = err(ImageStore::Classic, &Demands { attestations: true, ..plain });
        assert!(e.contains("can't attach provenance or SBOM attestations: drop --provenance/--sbom"), "{e}");
        let e = err(ImageStore::Classic, &Demands { multi_platform: true, push: true, ..plain });
        assert!(e.contains("can't build a multi-platform image: build one --platform"), "{e}");
        let all = Demands { multi_platform: true, attestations: true, cache: CacheMode::Gha, push: false };
        assert!(check_builder(&docker, ImageStore::Containerd, &all).is_ok());
    }

    #[test]
    fn other_drivers_load_several_platforms_only_into_the_containerd_store() {
        let container = builder("multi", "docker-container");
        let multi = Demands { multi_platform: true, cache: CacheMode::Registry, attestations: true, push: false };
        let e = check_builder(&container, ImageStore::Classic, &multi).unwrap_err().to_string();
        assert!(
            e.starts_with("builder multi (driver docker-container) can't --load a multi-platform image into an engine with the classic image store: use --push to a registry"),
            "{e}"
        );
        assert!(e.contains("docker-driver builder"), "{e}");
        assert!(check_builder(&container, ImageStore::Classic, &Demands { push: true, ..multi }).is_ok());
        assert!(check_builder(&container, ImageStore::Containerd, &multi).is_ok());
        // One platform loads anywhere; caches and attestations are any driver's but docker's.
        assert!(check_builder(&container, ImageStore::Classic, &Demands { multi_platform: false, ..multi }).is_ok());
    }

    #[test]
    fn caches_live_where_the_mode_says() {
        let catalog = Catalog::parse(
            "[[image]]\nname='w'\nrepository='r-w'\ndockerfile='D'\n",
            Path::new("/repo/images.toml"),
            Path::new("/repo"),
        )
        .unwrap();
        let image = &catalog.images[0];
        let amd64 = [Platform::parse("linux/amd64").unwrap()];
        let both = [amd64[0].clone(), Platform::parse("linux/arm64").unwrap()];
        let cache_flags = |platforms: &[Platform], options: &BuildOptions| {
            cache_flags(image, platforms, options, local_cache_dir(&catalog, image, options).as_deref())
        };
        let local = cache_flags(&amd64, &BuildOptions::default());
        assert_eq!(local, ["--cache-to=type=local,dest=/repo/target/buildx-cache/w,mode=max"]);
        let registry =
            BuildOptions { cache: CacheMode::Registry, registry: Some("r:5000/".into()), ..BuildOptions::default() };
        assert_eq!(cache_flags(&amd64, &registry)[0], "--cache-from=type=registry,ref=r:5000/r-w:buildcache");
        let gha = BuildOptions { cache: CacheMode::Gha, ..BuildOptions::default() };
        assert_eq!(cache_flags(&amd64, &gha)[1], "--cache-to=type=gha,scope=w_linux-amd64,mode=max");
        assert_eq!(cache_flags(&both, &gha)[0], "--cache-from=type=gha,scope=w_linux-amd64_linux-arm64");
        assert!(cache_flags(&amd64, &BuildOptions { cache: CacheMode::None, ..BuildOptions::default() }).is_empty());
    }
}
