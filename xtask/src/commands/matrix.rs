//! `cargo xtask image matrix`: the catalog as a CI matrix, JSON
//! `{"include": [{image, platform, arch, kind, dockerfile, networked}…]}`.

use anyhow::Result;
use serde::Serialize;

use super::Command;
use crate::model::catalog::{self, Catalog};
use crate::output::Report;

#[derive(Debug, Clone, clap::Args)]
pub struct Matrix {
    /// Images to include (default: all).
    pub images: Vec<String>,
}

/// The matrix, printed as JSON.
#[derive(Debug, Serialize)]
#[serde(transparent)]
pub struct MatrixReport(serde_json::Value);

impl Command for Matrix {
    type Report = MatrixReport;

    fn run(&self, catalog: &Catalog) -> Result<MatrixReport> {
        let selected = catalog.select(&self.images)?;
        Ok(MatrixReport(catalog::matrix(catalog, &selected)))
    }
}

impl Report for MatrixReport {
    fn render(&self) -> String {
        serde_json::to_string_pretty(&self.0).unwrap_or_default() + "\n"
    }
}
