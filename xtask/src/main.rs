//! ralph's build automation: `cargo xtask <command>`.
//!
//! This file only parses the command line and dispatches; each capability
//! lives in its own module.

mod bench;
mod build;
mod built;
mod catalog;
mod check;
mod container;
mod docker;
mod doctor;
mod http;
mod pin;
mod process;
mod progress;
mod readonly;
mod runtime;
mod size;
mod smoke;
mod tags;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

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
enum Command {
    /// Every tool the xtask uses: version, ok/missing, and the fix.
    Doctor {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Build and inspect the images in the catalog.
    #[command(subcommand)]
    Image(ImageCommand),
    /// Benchmarks that print their figures.
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Subcommand)]
enum ImageCommand {
    /// Build images with docker buildx (both architectures by default).
    Build(build::BuildArgs),
    /// Update digest-pinned base images (`NAME:TAG@sha256:…`) to what their tags point at now.
    Pin(pin::PinArgs),
    /// Run each image's declared checks (container-structure-test schema) and its read-only check, per platform.
    Smoke(smoke::SmokeArgs),
    /// Size per platform (uncompressed, compressed, per layer), largest files, wasted bytes, budget verdict.
    Size(size::SizeArgs),
    /// Startup time (create to exit of `--version`, median of runs) and peak memory, per platform.
    Runtime(runtime::RuntimeArgs),
    /// Build, smoke, read-only, size and runtime figures in one run, with one summary table (what CI runs).
    Check(check::CheckArgs),
    /// Print the catalog as a CI matrix (JSON, one entry per image and platform).
    Matrix {
        /// Images to include (default: all).
        images: Vec<String>,
    },
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Cold build, no-op rebuild and rebuild after touching one late file.
    Build(bench::BenchArgs),
    /// All smoke checks of one image on amd64, without and with the read-only check.
    Smoke(bench::SmokeBenchArgs),
    /// `image size` on a fixture with 100 and 400 MB of layers: wall time and peak RSS.
    Size(size::SizeBenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    process::set_verbose(cli.verbose);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    let catalog_path = cli.catalog.unwrap_or_else(|| repo_root().join(catalog::DEFAULT_CATALOG));
    match cli.command {
        Command::Doctor { json } => doctor::run(json),
        Command::Image(ImageCommand::Build(args)) => {
            let catalog = catalog::Catalog::load(&catalog_path)?;
            let report = build::run(&catalog, &args)?;
            build::print_table(&report);
            Ok(())
        }
        Command::Image(ImageCommand::Pin(args)) => {
            let catalog = catalog::Catalog::load(&catalog_path)?;
            let report = pin::run(&catalog, &args)?;
            pin::print_table(&report);
            if let Some(path) = &args.report {
                build::write_report(path, &report)?;
            }
            if args.check {
                pin::ensure_fresh(&report)?;
            }
            Ok(())
        }
        Command::Image(ImageCommand::Smoke(args)) => {
            let catalog = catalog::Catalog::load(&catalog_path)?;
            let report = smoke::run(&catalog, &args)?;
            smoke::print_table(&report);
            smoke::ensure_passed(&report)
        }
        Command::Image(ImageCommand::Size(args)) => size::run(&catalog::Catalog::load(&catalog_path)?, &args),
        Command::Image(ImageCommand::Runtime(args)) => {
            let catalog = catalog::Catalog::load(&catalog_path)?;
            runtime::print_table(&runtime::run(&catalog, &args)?);
            Ok(())
        }
        Command::Image(ImageCommand::Check(args)) => {
            let catalog = catalog::Catalog::load(&catalog_path)?;
            let report = check::run(&catalog, &args)?;
            check::print_table(&report);
            check::ensure_passed(&report)
        }
        Command::Image(ImageCommand::Matrix { images }) => {
            let catalog = catalog::Catalog::load(&catalog_path)?;
            let selected = catalog.select(&images)?;
            println!("{}", serde_json::to_string_pretty(&catalog::matrix(&catalog, &selected))?);
            Ok(())
        }
        Command::Bench(BenchCommand::Build(args)) => bench::build(&args),
        Command::Bench(BenchCommand::Smoke(args)) => bench::smoke(&args),
        Command::Bench(BenchCommand::Size(args)) => size::bench(&args),
    }
}

/// The repository root: the xtask crate's parent directory.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the repository").to_path_buf()
}
