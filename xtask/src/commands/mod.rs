//! The commands: each one parses its arguments (clap), runs through the
//! pipeline or the engine, and returns a [`Report`]; [`execute`] hands it
//! to the output layer, which prints it and sets the exit status. A command
//! file holds its arguments, its report and how the report reads.

pub mod bench;
pub mod build;
pub mod check;
pub mod ci;
pub mod doctor;
pub mod explain;
pub mod lint;
pub mod matrix;
pub mod pin;
pub mod publish;
pub mod repro;
pub mod runtime;
pub mod scan;
pub mod size;
pub mod smoke;
pub mod verify;

use anyhow::Result;

use crate::model::catalog::Catalog;
use crate::output::{self, Report, Sinks};

/// A subcommand: `run(args, &Catalog) -> Result<Report>`.
pub trait Command {
    type Report: Report;

    fn run(&self, catalog: &Catalog) -> Result<Self::Report>;

    /// Where the report goes besides stdout (`--report`, `--junit`).
    fn sinks(&self) -> Sinks<'_> {
        Sinks::default()
    }
}

/// Runs the command and emits its report: the one place a command's result
/// becomes output and an exit status.
pub fn execute<C: Command>(command: &C, catalog: &Catalog) -> Result<()> {
    let report = command.run(catalog)?;
    output::emit(&report, command.sinks())
}
