//! ralph's build automation: `cargo xtask <command>`.
//!
//! This file only parses the command line and dispatches. The layers, from
//! the bottom up (a module imports only from layers below its own, which
//! `tidy` checks):
//!
//! - `model`: the catalog, tags and targets (pure);
//! - `output`: tables, JSON, JUnit, and the one place reports are printed;
//! - `engine`: processes (only `engine::process` starts them), Docker,
//!   buildx, containers, built images;
//! - `checks`: lint on a Dockerfile; smoke, read-only, size, runtime and
//!   scan on a built image;
//! - `pipeline`: building and resolving images, running checks over them;
//! - `commands`: one file per subcommand, each returning a report.

mod checks;
mod commands;
mod engine;
mod model;
mod output;
mod pipeline;
#[cfg(test)]
mod tidy;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

use commands::{
    bench, build, check, ci, doctor, execute, explain, lint, matrix, pin, publish, repro, runtime, scan, size, smoke,
    verify,
};
use model::catalog::{Catalog, DEFAULT_CATALOG};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Build, verify and ship ralph's worker images", version)]
struct Cli {
    /// The image catalog (default: images.toml at the repository root).
    #[arg(long, global = true)]
    catalog: Option<PathBuf>,
    /// Also print the probe commands (versions, docker info).
    #[arg(long, short, global = true)]
    verbose: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once per run
enum Command {
    /// Every tool the xtask uses: version, ok/missing, and the fix.
    Doctor(doctor::Doctor),
    /// Build and inspect the images in the catalog.
    #[command(subcommand)]
    Image(ImageCommand),
    /// The CI workflow's jobs, one command each (arguments from the environment), and their rehearsal here.
    #[command(subcommand)]
    Ci(CiCommand),
    /// Benchmarks that print their figures.
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Subcommand)]
enum CiCommand {
    /// The plan job: the matrix, the products and whether this run publishes (step outputs).
    Plan(ci::plan::Plan),
    /// A check job: `image check` of IMAGE on PLATFORM, reports under reports/.
    Check(ci::check::CiCheck),
    /// A push job: the checked image pushed by digest to staging, reports/push.json.
    Push(ci::push::CiPush),
    /// A publish job: one product's index, SBOMs, signatures, verified; no tag yet.
    Publish(ci::publish::CiPublish),
    /// The release job: every product verified, then the tags moved.
    Tag(ci::tag::CiTag),
    /// The scheduled job: `image pin`, and what moved for the pull request (step outputs).
    Pin(ci::pin::CiPin),
    /// The workflow run here for a pull request, a push to main and tag v1.2.3.
    Rehearse(ci::rehearse::Rehearse),
}

#[derive(Subcommand)]
enum ImageCommand {
    /// Build images with docker buildx (both architectures by default).
    Build(build::Build),
    /// Update digest-pinned base images (`NAME:TAG@sha256:…`) to what their tags point at now.
    Pin(pin::Pin),
    /// Run each image's declared checks (container-structure-test schema) and its read-only check, per platform.
    Smoke(smoke::Smoke),
    /// Size per platform (uncompressed, compressed, per layer), largest files, wasted bytes, budget verdict.
    Size(size::Size),
    /// Build twice with --no-cache and compare the digests per platform; name the layers and files that differ.
    Repro(repro::Repro),
    /// Startup time (create to exit of `--version`, median of runs) and peak memory, per platform.
    Runtime(runtime::Runtime),
    /// hadolint, Trivy and our container policy on Dockerfiles and their build contexts, in one report.
    Lint(lint::Lint),
    /// What the lint's model of BuildKit says a Dockerfile builds: stages, steps, config, files placed.
    Explain(explain::Explain),
    /// Trivy on built images, per platform: secrets, vulnerabilities (with a DB), the gate, SBOMs.
    Scan(scan::Scan),
    /// Lint, build, smoke, read-only, size, runtime figures and scan in one run, one summary table (what CI runs).
    Check(check::Check),
    /// Print the catalog as a CI matrix (JSON, one entry per image and platform).
    Matrix(matrix::Matrix),
    /// Push checked images by digest, one signed index with SBOM attestations, verified, then tagged.
    Publish(publish::Publish),
    /// A published image's signatures (index and platforms), SBOM attestations, and each platform running.
    Verify(verify::Verify),
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Cold build, no-op rebuild and rebuild after touching one late file.
    Build(bench::build::BenchBuild),
    /// All smoke checks of one image on amd64, without and with the read-only check.
    Smoke(bench::smoke::BenchSmoke),
    /// The size analysis on a fixture with 100 and 400 MB of layers: wall time and peak RSS.
    Size(bench::size::BenchSize),
    /// The lint of the whole catalog and the walk of a 2,000-file build context: wall times.
    Lint(bench::lint::BenchLint),
    /// Publish of a checked two-platform image to a private registry, twice: time per step, bytes uploaded.
    Publish(bench::publish::BenchPublish),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    engine::process::set_verbose(cli.verbose);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    let path = cli.catalog.unwrap_or_else(|| repo_root().join(DEFAULT_CATALOG));
    let catalog = &Catalog::load(&path)?;
    match cli.command {
        Command::Doctor(cmd) => execute(&cmd, catalog),
        Command::Image(ImageCommand::Build(cmd)) => execute(&cmd, catalog),
        Command::Image(ImageCommand::Pin(cmd)) => execute(&cmd, catalog),
        Command::Image(ImageCommand::Smoke(cmd)) => execute(&cmd, catalog),
        Command::Image(ImageCommand::Size(cmd)) => execute(&cmd, catalog),
        Command::Image(ImageCommand::Repro(cmd)) => execute(&cmd, catalog),
        Command::Image(ImageCommand::Runtime(cmd)) => execute(&cmd, catalog),
        Command::Image(ImageCommand::Lint(cmd)) => execute(&cmd, catalog),
        Command::Image(ImageCommand::Explain(cmd)) => execute(&cmd, catalog),
        Command::Image(ImageCommand::Scan(cmd)) => execute(&cmd, catalog),
        Command::Image(ImageCommand::Check(cmd)) => execute(&cmd, catalog),
        Command::Image(ImageCommand::Matrix(cmd)) => execute(&cmd, catalog),
        Command::Image(ImageCommand::Publish(cmd)) => execute(&cmd, catalog),
        Command::Image(ImageCommand::Verify(cmd)) => execute(&cmd, catalog),
        Command::Ci(CiCommand::Plan(cmd)) => execute(&cmd, catalog),
        Command::Ci(CiCommand::Check(cmd)) => execute(&cmd, catalog),
        Command::Ci(CiCommand::Push(cmd)) => execute(&cmd, catalog),
        Command::Ci(CiCommand::Publish(cmd)) => execute(&cmd, catalog),
        Command::Ci(CiCommand::Tag(cmd)) => execute(&cmd, catalog),
        Command::Ci(CiCommand::Pin(cmd)) => execute(&cmd, catalog),
        Command::Ci(CiCommand::Rehearse(cmd)) => execute(&cmd, catalog),
        Command::Bench(BenchCommand::Build(cmd)) => execute(&cmd, catalog),
        Command::Bench(BenchCommand::Smoke(cmd)) => execute(&cmd, catalog),
        Command::Bench(BenchCommand::Size(cmd)) => execute(&cmd, catalog),
        Command::Bench(BenchCommand::Lint(cmd)) => execute(&cmd, catalog),
        Command::Bench(BenchCommand::Publish(cmd)) => execute(&cmd, catalog),
    }
}

/// The repository root: the xtask crate's parent directory.
fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the repository").to_path_buf()
}
