//! ralph's build automation: `cargo xtask <command>`.
//!
//! This file only parses the command line and dispatches; each capability
//! lives in its own module.

mod bench;
mod build;
mod catalog;
mod docker;
mod doctor;
mod pin;
mod process;
mod progress;
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
        Command::Image(ImageCommand::Matrix { images }) => {
            let catalog = catalog::Catalog::load(&catalog_path)?;
            let selected = catalog.select(&images)?;
            println!("{}", serde_json::to_string_pretty(&catalog::matrix(&catalog, &selected))?);
            Ok(())
        }
        Command::Bench(BenchCommand::Build(args)) => bench::build(&args),
    }
}

/// The repository root: the xtask crate's parent directory.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the repository").to_path_buf()
}
