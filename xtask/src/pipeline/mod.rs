//! The image pipeline: the one way every command that looks at images works.
//!
//! 1. The selection (images, platforms, tag, registry) becomes [`Target`]s,
//!    validated against the catalog before anything runs.
//! 2. Each check's input is read up front (a smoke spec with a typo fails
//!    before any container starts).
//! 3. Each target becomes a [`BuiltImage`] once: built here (`image check`),
//!    found in the local engine, or pulled from `--registry`; anything else is
//!    a one-line error with the command that builds it.
//! 4. The checks run on that handle, per platform: smoke, read-only, size,
//!    runtime (and, as they land, lint and scan).
//!
//! `image check` is this pipeline with every check, going on past failures
//! so that its table shows all of them; `image smoke`, `size` and `runtime`
//! are the same pipeline with one check, stopping at the first error.

pub mod build;
pub mod publish;
pub mod rehearsal;
pub mod repro;

use std::time::Instant;

use anyhow::Result;

use crate::checks::lint::{self, Lint};
use crate::checks::runtime::{self, RuntimeFigures, RuntimeOptions};
use crate::checks::scan::{self, ImageScan, ScanOptions};
use crate::checks::size::{self, ImageSize, SizeOptions};
use crate::checks::smoke::{ImageResult, PlatformResult, Smoke, SmokeOptions};
use crate::checks::trivy::{self, Ignores};
use crate::checks::{readonly, CheckResult};
use crate::engine::container::Session;
use crate::engine::image::{self, BuiltImage};
use crate::engine::{docker, git};
use crate::model::catalog::{Catalog, Image, Platform};
use crate::model::tags;
use crate::model::target::Target;
use build::{BuildOptions, ImageReport};

/// Which images, on which platforms.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Images {
    /// Images from the catalog (default: every image this machine can build).
    pub images: Vec<String>,
    /// Platforms, comma-separated or repeated (default: the catalog's).
    #[arg(long, value_delimiter = ',')]
    pub platform: Vec<String>,
}

impl Images {
    pub fn new(images: &[&str], platforms: &[&str]) -> Images {
        Images {
            images: images.iter().map(|s| s.to_string()).collect(),
            platform: platforms.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// The catalog images named (or every image this machine can build) and
    /// the platforms asked for (none: each image's own).
    pub fn select<'c>(&self, catalog: &'c Catalog) -> Result<(Vec<&'c Image>, Vec<Platform>)> {
        let requested = Platform::parse_list(&self.platform)?;
        let images = catalog.select_buildable(&self.images)?;
        for image in &images {
            image.select_platforms(&requested)?;
        }
        Ok((images, requested))
    }
}

/// Which built images to look at: the selection, and where they are.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Selection {
    #[command(flatten)]
    pub images: Images,
    /// The tag to look at (default: the tag `image build` gives this checkout).
    #[arg(long)]
    pub tag: Option<String>,
    /// Look at the image pushed to this registry (e.g. localhost:5000).
    #[arg(long)]
    pub registry: Option<String>,
}

impl Selection {
    pub fn new(images: Images) -> Selection {
        Selection { images, tag: None, registry: None }
    }

    /// The targets, each validated against the catalog; the tag is `--tag`
    /// or the one `image build` gives this checkout.
    pub fn targets<'c>(&self, catalog: &'c Catalog) -> Result<Vec<Target<'c>>> {
        let (images, requested) = self.images.select(catalog)?;
        if let Some(tag) = &self.tag {
            tags::validate_tag(tag)?;
        }
        let tag = self.tag.clone().unwrap_or_else(|| tags::build_id(&git::discover()));
        images
            .into_iter()
            .map(|image| {
                let platforms = image.select_platforms(&requested)?;
                Ok(Target {
                    image,
                    tag: tag.clone(),
                    registry: self.registry.clone(),
                    layouts: catalog.layout_dirs(image, &platforms),
                    platforms,
                })
            })
            .collect()
    }
}

/// The checks a pipeline runs, in this order, on each image that declares
/// what they need.
#[derive(Debug, Clone, Default)]
pub struct Checks {
    /// hadolint, Trivy and our policy on the image's Dockerfile, each tool bounded by the timeout.
    pub lint: Option<std::time::Duration>,
    pub smoke: Option<SmokeOptions>,
    pub readonly: bool,
    pub size: Option<SizeOptions>,
    pub runtime: Option<RuntimeOptions>,
    /// Trivy on the built image, each run bounded by the timeout.
    pub scan: Option<(ScanOptions, std::time::Duration)>,
}

impl Checks {
    /// Everything: what `image check` runs; `timeout` bounds each smoke check and tool run.
    pub fn all(smoke: SmokeOptions, runtime: RuntimeOptions, scan: ScanOptions) -> Checks {
        let timeout = std::time::Duration::from_secs(smoke.timeout.max(1));
        Checks {
            lint: Some(timeout),
            smoke: Some(smoke),
            readonly: true,
            size: Some(SizeOptions::default()),
            runtime: Some(runtime),
            scan: Some((scan, timeout)),
        }
    }

    /// Whether the smoke step (declared checks or the read-only check) has anything to run for `image`.
    pub fn smokes(&self, image: &Image) -> bool {
        (self.smoke.is_some() && image.smoke.is_some()) || (self.readonly && image.readonly.is_some())
    }
}

/// Where the images come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// Already built: in the local engine, or pushed to the targets' registry.
    Existing,
    /// Built here first, with these options.
    Build(BuildOptions),
}

/// A step's outcome when the pipeline goes on past failures: the value, or
/// the one-line reason it has none.
pub type Step<T> = std::result::Result<T, String>;

/// Everything the pipeline found for one image.
#[derive(Debug)]
pub struct ImageRun {
    pub image: String,
    pub reference: String,
    pub platforms: Vec<Platform>,
    /// Its Dockerfile's lint.
    pub lint: Option<Step<Lint>>,
    /// `None` when it was not built by this run.
    pub build: Option<Step<ImageReport>>,
    /// The image as a check sees it; an error here means no check ran.
    pub resolved: Step<()>,
    /// Declared checks and the read-only check, per platform.
    pub smoke: Option<Step<ImageResult>>,
    pub size: Option<Step<ImageSize>>,
    pub runtime: Vec<(Platform, Step<RuntimeFigures>)>,
    pub scan: Option<Step<ImageScan>>,
    /// Set by `image check --repro` after the checks.
    pub repro: Option<Step<crate::model::repro::ImageRepro>>,
}

pub struct Pipeline<'c> {
    pub catalog: &'c Catalog,
    pub checks: Checks,
    /// Record a failed step and go on (`image check`), or stop at the first.
    pub keep_going: bool,
    /// Names the session's containers (`xtask-PURPOSE-…`).
    pub purpose: &'static str,
}

impl<'c> Pipeline<'c> {
    /// Runs the checks on every target. `requested` is the platform list
    /// the targets were selected with (for what a build adds).
    pub fn run(&self, mut targets: Vec<Target<'c>>, requested: &[Platform], source: &Source) -> Result<Vec<ImageRun>> {
        let mut runs: Vec<ImageRun> = targets.iter().map(ImageRun::new).collect();
        // Specs first: a typo fails before anything is built or run.
        let smokes = targets
            .iter()
            .map(|t| match &self.checks.smoke {
                Some(options) => self.step_value(Smoke::load(t.image, options).map_err(|e| self.reason(&e))),
                None => Ok(Ok(None)),
            })
            .collect::<Result<Vec<Step<Option<Smoke>>>>>()?;
        if let Some(timeout) = self.checks.lint {
            self.lint(&targets, &mut runs, timeout)?;
        }
        // The ignore file, read before anything is built: a bad one is a bad start.
        let ignores = match &self.checks.scan {
            Some(_) => self.step_value(self.ignores().map_err(|e| self.reason(&e)))?,
            None => Ok(Ignores::default()),
        };

        match source {
            Source::Existing => {
                docker::daemon_version()?;
            }
            Source::Build(options) => {
                let built = self.build(&targets, requested, options)?;
                for ((t, run), result) in targets.iter_mut().zip(&mut runs).zip(built.results) {
                    t.tag.clone_from(&built.build_id);
                    run.reference = t.reference();
                    run.build = Some(result);
                }
            }
        }

        let session = Session::new(self.purpose);
        let checked: Vec<&str> = targets.iter().map(|t| t.image.name.as_str()).collect();
        for ((t, run), smoke) in targets.iter().zip(&mut runs).zip(smokes) {
            if let Some(Err(e)) = &run.build {
                run.resolved = Err(e.clone());
                continue;
            }
            let resolved = image::resolve(t).and_then(|built| Ok((self.database(t, &checked)?, built)));
            let (database, built) = match resolved {
                Ok(found) => found,
                Err(e) if self.keep_going => {
                    eprintln!("==> {}: {}", run.image, one_line(&e));
                    run.resolved = Err(one_line(&e));
                    continue;
                }
                Err(e) => return Err(e),
            };
            self.check_image(&session, &built, smoke, database.as_ref(), &ignores, run)?;
        }
        Ok(runs)
    }

    /// Builds the targets' images (and the read-only checks' databases
    /// from the catalog): planned once, then image by image, so that one
    /// failed build fails only the images that need it. A database that is
    /// not itself checked is built for this machine's platform, where it
    /// runs ([`Pipeline::database`]).
    fn build(&self, targets: &[Target<'c>], requested: &[Platform], options: &BuildOptions) -> Result<Built> {
        let images: Vec<&Image> = targets.iter().map(|t| t.image).collect();
        let mut databases: Vec<&Image> = Vec::new();
        for t in targets {
            if let Some(db) = t.image.readonly.as_ref().and_then(|r| r.database.as_deref()) {
                if let Ok(image) = self.catalog.get(db) {
                    if !images.iter().chain(&databases).any(|i| i.name == image.name) {
                        databases.push(image);
                    }
                }
            }
        }
        // The checks then look at what was built in the current engine.
        let options = BuildOptions { looked_at_here: true, ..options.clone() };
        let mut plans = vec![build::plan(self.catalog, &images, requested, &options)?];
        let checked: Vec<&str> = images.iter().map(|i| i.name.as_str()).collect();
        for db in databases {
            let platforms = database_platform(db, &checked).map_or_else(|| requested.to_vec(), |p| vec![p]);
            plans.push(build::plan(self.catalog, &[db], &platforms, &options)?);
        }
        for plan in &mut plans {
            plan.check_machine()?;
        }
        let mut done: Vec<(String, Step<ImageReport>)> = Vec::new();
        for plan in &plans {
            // A base both plans build (for two platforms) counts in its own plan.
            let mine = done.len();
            for p in &plan.images {
                let failed_need =
                    p.image.needs.iter().find(|n| done[mine..].iter().any(|(name, r)| name == *n && r.is_err()));
                let result = match failed_need {
                    Some(need) => Err(format!("it builds on `{need}`, which failed to build")),
                    None => plan.execute(p).map_err(|e| self.reason(&e)),
                };
                if let Err(e) = &result {
                    if !self.keep_going {
                        anyhow::bail!("{e}");
                    }
                    eprintln!("==> {}: build failed: {e}", p.image.name);
                }
                done.push((p.image.name.clone(), result));
            }
        }
        let result_of = |name: &str| -> Step<ImageReport> {
            done.iter().find(|(n, _)| n == name).map(|(_, r)| r.clone()).unwrap_or_else(|| Err("not planned".into()))
        };
        let mut results: Vec<Step<ImageReport>> = targets.iter().map(|t| result_of(&t.image.name)).collect();
        // A target whose read-only database failed to build can't be checked either.
        for (t, result) in targets.iter().zip(&mut results) {
            if let Some(db) = t.image.readonly.as_ref().and_then(|r| r.database.as_deref()) {
                if let (Ok(_), Err(_)) = (&result, result_of(db)) {
                    *result = Err(format!("its read-only check's database `{db}` failed to build"));
                }
            }
        }
        Ok(Built { build_id: plans[0].build_id.clone(), results })
    }

    /// The read-only check's database: a catalog image is the one built
    /// with the target's tag (in the local engine, which must have it, or
    /// in the target's registry), run where [`database_platform`] says; any
    /// other reference is pulled for this machine's platform.
    fn database(&self, t: &Target<'c>, checked: &[&str]) -> Result<Option<readonly::Database>> {
        let Some(db) = t.image.readonly.as_ref().and_then(|r| r.database.as_deref()) else { return Ok(None) };
        if !self.checks.readonly {
            return Ok(None);
        }
        let Ok(image) = self.catalog.get(db) else {
            return Ok(Some(readonly::Database { reference: db.to_string(), platform: Some(Platform::native()) }));
        };
        let db_target =
            Target { image, tag: t.tag.clone(), registry: t.registry.clone(), platforms: vec![], layouts: vec![] };
        if db_target.registry.is_none() {
            image::local(&db_target)?;
        }
        Ok(Some(readonly::Database { reference: db_target.reference(), platform: database_platform(image, checked) }))
    }

    /// The lint of every target's Dockerfile, the tools run once for all.
    fn lint(&self, targets: &[Target<'c>], runs: &mut [ImageRun], timeout: std::time::Duration) -> Result<()> {
        let lint_targets: Vec<lint::Target> = targets.iter().map(|t| lint::Target::of(t.image)).collect();
        eprintln!("==> lint {}", targets.iter().map(|t| t.image.name.as_str()).collect::<Vec<_>>().join(", "));
        let root = self.catalog.path.parent().unwrap_or(std::path::Path::new("."));
        let linted = lint::lint(&lint_targets, root, timeout);
        for run in runs.iter_mut() {
            let mine = linted.for_image(&run.image);
            let result = match mine.failure() {
                Some(why) if !self.keep_going => Err(why),
                _ => Ok(mine),
            };
            run.lint = Some(self.step_value(result)?);
        }
        Ok(())
    }

    /// `.trivyignore.yaml` next to the catalog.
    fn ignores(&self) -> Result<Ignores> {
        let root = self.catalog.path.parent().unwrap_or(std::path::Path::new("."));
        Ignores::load(&root.join(".trivyignore.yaml"), trivy::today())
    }

    fn check_image(
        &self,
        session: &Session,
        built: &BuiltImage<'_>,
        smoke: Step<Option<Smoke>>,
        database: Option<&readonly::Database>,
        ignores: &Step<Ignores>,
        run: &mut ImageRun,
    ) -> Result<()> {
        let image = built.image;
        if self.checks.smokes(image) {
            let result = smoke.and_then(|smoke| self.smoke(session, built, smoke.as_ref(), database));
            run.smoke = Some(self.step_value(result)?);
        }
        if let Some(options) = &self.checks.size {
            eprintln!("==> size {} ({})", image.name, built.reference);
            let result = size::measure(built, options).map_err(|e| self.reason(&e));
            run.size = Some(self.step_value(result)?);
        }
        if let Some(options) = &self.checks.runtime {
            for platform in &built.platforms {
                eprintln!("==> runtime {} on {platform}: {} runs", image.name, options.runs.max(1));
                let result = runtime::measure(session, built, platform, options.runs).map_err(|e| self.reason(&e));
                run.runtime.push((platform.clone(), self.step_value(result)?));
            }
        }
        if let Some((options, timeout)) = &self.checks.scan {
            let result = ignores
                .clone()
                .and_then(|ignores| scan::scan(built, options, &ignores, *timeout).map_err(|e| self.reason(&e)));
            run.scan = Some(self.step_value(result)?);
        }
        Ok(())
    }

    /// The declared checks and the read-only check, platform by platform.
    fn smoke(
        &self,
        session: &Session,
        built: &BuiltImage<'_>,
        smoke: Option<&Smoke>,
        database: Option<&readonly::Database>,
    ) -> Step<ImageResult> {
        let image = built.image;
        let mut platforms = Vec::new();
        for platform in &built.platforms {
            eprintln!("==> smoke {} ({}) on {platform}", image.name, built.reference);
            let started = Instant::now();
            let mut lines: Vec<CheckResult> = match smoke {
                Some(smoke) => smoke.run(session, built, platform).map_err(|e| self.reason(&e))?,
                None => Vec::new(),
            };
            if let (Some(spec), true) = (&image.readonly, self.checks.readonly) {
                lines.push(readonly::run(session, built, platform, spec, database));
            }
            platforms.push(PlatformResult::new(platform.clone(), lines, started));
        }
        Ok(ImageResult { image: image.name.clone(), reference: built.reference.clone(), platforms })
    }

    /// A step's outcome to record: a failure stops the pipeline unless it goes on.
    fn step_value<T>(&self, result: Step<T>) -> Result<Step<T>> {
        match result {
            Err(e) if !self.keep_going => Err(anyhow::anyhow!("{e}")),
            other => Ok(other),
        }
    }

    /// Why a step failed: the whole chain when the pipeline stops (it becomes
    /// the command's one-line error), its first line when it goes on (a
    /// table cell).
    fn reason(&self, e: &anyhow::Error) -> String {
        if self.keep_going {
            one_line(e)
        } else {
            format!("{e:#}")
        }
    }
}

struct Built {
    build_id: String,
    results: Vec<Step<ImageReport>>,
}

impl ImageRun {
    fn new(t: &Target<'_>) -> ImageRun {
        ImageRun {
            image: t.image.name.clone(),
            reference: t.reference(),
            platforms: t.platforms.clone(),
            lint: None,
            build: None,
            resolved: Ok(()),
            smoke: None,
            size: None,
            runtime: Vec::new(),
            scan: None,
            repro: None,
        }
    }
}

/// Where a read-only check's catalog database is built and runs: this
/// machine's platform alone, when the catalog has it for that platform and
/// it is not among the images `checked` (beside an emulated image it is
/// not what is checked, and emulated it only slows the check down: a
/// PostgreSQL under QEMU took minutes to build cold, and over 60 s to start
/// in CI); `None`: the checked image's platform, as requested.
fn database_platform(db: &Image, checked: &[&str]) -> Option<Platform> {
    let native = Platform::native();
    (!checked.contains(&db.name.as_str()) && db.platforms.contains(&native)).then_some(native)
}

/// An error's first line, for a table cell.
pub fn one_line(e: &anyhow::Error) -> String {
    format!("{e:#}").lines().next().unwrap_or("").to_string()
}
