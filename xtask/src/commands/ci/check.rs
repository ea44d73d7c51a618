//! `cargo xtask ci check`: a check job. `image check` of the matrix entry
//! (`IMAGE` on `PLATFORM`) for this run's branch or release, with the
//! vulnerability scan required against `RALPH_TRIVY_DB` (or `offline`, where
//! it is reported skipped), its reports under `reports/`: `check.json`,
//! `check.xml` (JUnit), `check.sarif` and `sbom/`.

use std::path::Path;

use anyhow::Result;

use crate::checks::runtime::RuntimeOptions;
use crate::checks::scan::ScanOptions;
use crate::checks::smoke::SmokeOptions;
use crate::commands::check::{Check, CheckReport};
use crate::commands::Command;
use crate::model::catalog::{Catalog, ImageKind};
use crate::output::{AllOut, Sinks};
use crate::pipeline::build::Rebuild;
use crate::pipeline::Images;

#[derive(Debug, Clone, clap::Args)]
pub struct CiCheck {}

/// `RALPH_TRIVY_DB`: the DB repositories to require, or none (`offline`).
pub fn vuln_db(value: &str) -> Option<String> {
    let list: Vec<&str> = value.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
    if list.is_empty() || list == ["offline"] {
        return None;
    }
    Some(list.join(","))
}

impl Command for CiCheck {
    type Report = CheckReport;

    fn run(&self, catalog: &Catalog) -> Result<CheckReport> {
        let event = super::event()?;
        let image = super::require("IMAGE")?;
        let platform = super::require("PLATFORM")?;
        let db = vuln_db(&super::require("RALPH_TRIVY_DB")?);
        std::fs::create_dir_all(super::REPORTS)?;
        // The products are proven reproducible on every check; the stand-ins by `image repro`.
        let repro = catalog.get(&image)?.kind == ImageKind::Product;
        let check = Check {
            images: Images { images: vec![image], platform: vec![platform] },
            repro,
            no_build: false,
            build: Rebuild { cache: super::cache()?, ..super::rebuild(&event) },
            smoke: SmokeOptions::default(),
            runtime: RuntimeOptions::default(),
            scan: ScanOptions {
                require_vuln_db: db.is_some(),
                db_repository: db,
                sbom: Some(Path::new(super::REPORTS).join("sbom")),
                ..ScanOptions::default()
            },
            out: AllOut::default(),
        };
        check.run(catalog)
    }

    fn sinks(&self) -> Sinks<'_> {
        Sinks {
            json: Some(Path::new("reports/check.json")),
            junit: Some(Path::new("reports/check.xml")),
            sarif: Some(Path::new("reports/check.sarif")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_db_list_or_offline() {
        assert_eq!(vuln_db("offline"), None);
        assert_eq!(vuln_db(" "), None);
        assert_eq!(
            vuln_db("mirror.gcr.io/aquasec/trivy-db:2, ghcr.io/aquasecurity/trivy-db:2").as_deref(),
            Some("mirror.gcr.io/aquasec/trivy-db:2,ghcr.io/aquasecurity/trivy-db:2")
        );
        assert!(Path::new(super::super::REPORTS).join("check.json") == Path::new("reports/check.json"));
    }
}
