//! `cargo xtask ci pin`: the scheduled job that keeps the bases fresh.
//! `image pin` on the catalog's Dockerfiles (or `RALPH_PIN_DOCKERFILES`,
//! comma-separated), all-or-nothing; step outputs `changed` (whether any pin
//! moved) and `body` (what moved, as Markdown) for the pull request the next
//! step opens. A stale base becomes a reviewed pull request with its own
//! checks, rather than a release failing on a base's new HIGH CVEs.

use std::path::PathBuf;

use anyhow::Result;

use crate::commands::pin::{Pin, PinReport, PinRow};
use crate::commands::Command;
use crate::model::catalog::Catalog;
use crate::output::JsonOut;

#[derive(Debug, Clone, clap::Args)]
pub struct CiPin {}

/// The pull request's body: a row per pin that moved.
pub fn body(rows: &[PinRow]) -> String {
    let moved: Vec<&PinRow> = rows.iter().filter(|r| r.status == "updated").collect();
    if moved.is_empty() {
        return format!("Every base pin is current ({} checked).\n", rows.len());
    }
    let mut out = String::from(
        "The bases' tags moved; `cargo xtask ci pin` (`image pin`) rewrote their pins. \
         This pull request's checks build and scan the images on them.\n\n\
         | Dockerfile | line | image | was | now |\n|---|---|---|---|---|\n",
    );
    for r in moved {
        out.push_str(&format!(
            "| {} | {} | `{}` | `{}` | `{}` |\n",
            r.dockerfile, r.line, r.image, r.pinned, r.current
        ));
    }
    out
}

impl Command for CiPin {
    type Report = PinReport;

    fn run(&self, catalog: &Catalog) -> Result<PinReport> {
        let dockerfiles: Vec<PathBuf> = std::env::var("RALPH_PIN_DOCKERFILES")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
            .collect();
        let pin = Pin { dockerfiles, check: false, out: JsonOut::default() };
        let report = pin.run(catalog)?;
        let changed = report.rows.iter().any(|r| r.status == "updated");
        super::set_output("changed", &changed.to_string())?;
        super::set_output("body", &body(&report.rows))?;
        super::summary(&format!("### Base pins\n\n{}", body(&report.rows)))?;
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(status: &'static str) -> PinRow {
        PinRow {
            dockerfile: "Dockerfile.worker".into(),
            line: 8,
            image: "alpine:3.21".into(),
            pinned: "sha256:old".into(),
            current: "sha256:new".into(),
            status,
        }
    }

    #[test]
    fn the_body_lists_what_moved() {
        let b = body(&[row("updated"), row("current")]);
        assert!(b.contains("| Dockerfile.worker | 8 | `alpine:3.21` | `sha256:old` | `sha256:new` |"), "{b}");
        assert_eq!(b.matches("| Dockerfile.worker").count(), 1, "only the pin that moved: {b}");
        assert_eq!(body(&[row("current")]), "Every base pin is current (1 checked).\n");
    }
}
