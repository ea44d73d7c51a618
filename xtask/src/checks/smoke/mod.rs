//! The checks each image declares (`smoke` in images.toml), in the schema
//! of Google's container-structure-test: command tests in their own
//! containers, file existence and content tests through `docker cp`, the
//! metadata test against the platform's image config; `jobs` at a time, each
//! bounded by the timeout, on every platform (arm64 under emulation).

mod run;
pub mod spec;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Result;
use serde::Serialize;

use super::CheckResult;
use crate::engine::container::{self, Session};
use crate::engine::image::BuiltImage;
use crate::model::catalog::{Image, Platform};
use crate::output::junit;
use spec::Spec;

/// Seconds one check may take, unless `--timeout` says otherwise.
pub const DEFAULT_TIMEOUT: u64 = 120;
/// Checks run at once per platform, unless `--jobs` says otherwise.
pub const DEFAULT_JOBS: usize = 4;

#[derive(Debug, Clone, clap::Args)]
pub struct SmokeOptions {
    /// Seconds one check may take; a check that hangs fails and its container is removed.
    #[arg(long, default_value_t = DEFAULT_TIMEOUT)]
    pub timeout: u64,
    /// Checks run at once (per platform).
    #[arg(long, default_value_t = DEFAULT_JOBS)]
    pub jobs: usize,
}

impl Default for SmokeOptions {
    fn default() -> SmokeOptions {
        SmokeOptions { timeout: DEFAULT_TIMEOUT, jobs: DEFAULT_JOBS }
    }
}

/// An image's declared checks, read and validated.
#[derive(Debug)]
pub struct Smoke {
    spec: Spec,
    options: SmokeOptions,
}

impl Smoke {
    /// The image's spec, read and validated before any container runs;
    /// `None` when it declares none.
    pub fn load(image: &Image, options: &SmokeOptions) -> Result<Option<Smoke>> {
        let Some(path) = &image.smoke else { return Ok(None) };
        Ok(Some(Smoke { spec: Spec::load(path)?, options: options.clone() }))
    }

    /// Every check on one platform, in the spec's order.
    pub fn run(&self, session: &Session, built: &BuiltImage<'_>, platform: &Platform) -> Result<Vec<CheckResult>> {
        let reference = built.runnable(platform);
        let probe = session.create(
            &container::Spec { image: reference.to_string(), platform: Some(platform.clone()), ..Default::default() },
            "probe",
        )?;
        let config = run::ImageConfig::inspect(&probe)?;
        let ctx = run::Context {
            session,
            spec: &self.spec,
            reference,
            platform,
            probe: &probe,
            config: &config,
            timeout: Duration::from_secs(self.options.timeout.max(1)),
        };
        let jobs = run::jobs(&self.spec);
        let results: Mutex<Vec<Option<CheckResult>>> = Mutex::new(vec![None; jobs.len()]);
        let next = AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for _ in 0..self.options.jobs.clamp(1, 16) {
                scope.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(job) = jobs.get(i) else { break };
                    let result = ctx.run(job);
                    result.print_progress();
                    results.lock().unwrap()[i] = Some(result);
                });
            }
        });
        session.remove(&probe);
        Ok(results.into_inner().unwrap().into_iter().flatten().collect())
    }
}

/// The check lines of one image, per platform (smoke's and the read-only check's).
#[derive(Debug, Clone, Serialize)]
pub struct ImageResult {
    pub image: String,
    pub reference: String,
    pub platforms: Vec<PlatformResult>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlatformResult {
    pub platform: Platform,
    pub passed: usize,
    pub failed: usize,
    pub seconds: f64,
    pub checks: Vec<CheckResult>,
}

impl PlatformResult {
    pub fn new(platform: Platform, checks: Vec<CheckResult>, started: Instant) -> PlatformResult {
        let failed = checks.iter().filter(|c| !c.passed).count();
        PlatformResult {
            platform,
            passed: checks.len() - failed,
            failed,
            seconds: started.elapsed().as_secs_f64(),
            checks,
        }
    }
}

/// JUnit XML for CI systems: a suite per image and platform, a case per
/// check (named as container-structure-test names them), a failure per
/// failed check with expected vs actual.
pub fn junit_suites(images: &[ImageResult], seconds: f64) -> junit::Suites {
    let suites = images
        .iter()
        .flat_map(|image| {
            image.platforms.iter().map(move |p| junit::Suite {
                name: format!("{} {}", image.image, p.platform),
                seconds: p.seconds,
                properties: vec![("reference".into(), image.reference.clone())],
                cases: p
                    .checks
                    .iter()
                    .map(|c| junit::Case {
                        classname: format!("{}.{}", image.image, p.platform),
                        name: c.title(),
                        seconds: c.seconds,
                        failure: (!c.passed).then(|| junit::Failure {
                            message: c.errors.first().cloned().unwrap_or_else(|| "failed".into()),
                            text: format!("expected: {}\nactual: {}\n{}", c.expected, c.actual, c.errors.join("\n")),
                        }),
                        stdout: c.stdout.clone(),
                        stderr: c.stderr.clone(),
                    })
                    .collect(),
            })
        })
        .collect();
    junit::Suites { name: "xtask image smoke".into(), seconds, suites }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::CheckKind;

    fn check(passed: bool) -> CheckResult {
        CheckResult {
            kind: CheckKind::Command,
            name: "claude <version> & \"musl\"".into(),
            passed,
            expected: "exit 0".into(),
            actual: "exit 1, stdout '\u{1b}[31mred'".into(),
            errors: if passed {
                vec![]
            } else {
                vec!["Test 'x' exited with incorrect error code. Expected: 0, Actual: 1".into()]
            },
            seconds: 0.25,
            stdout: String::new(),
            stderr: "boom\n".into(),
        }
    }

    #[test]
    fn junit_has_a_suite_per_platform_and_a_case_per_check() {
        let images = vec![ImageResult {
            image: "worker".into(),
            reference: "ralph-worker:main-abc".into(),
            platforms: vec![PlatformResult {
                platform: Platform::parse("linux/arm64").unwrap(),
                passed: 1,
                failed: 1,
                seconds: 1.0,
                checks: vec![check(true), check(false)],
            }],
        }];
        crate::output::golden::check("smoke-junit.xml", &junit_suites(&images, 1.5).to_xml());
    }
}
