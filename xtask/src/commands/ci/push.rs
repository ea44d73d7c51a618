//! `cargo xtask ci push`: a push job (pushes to the default branch and
//! version tags only). The checked image (`IMAGE` on `PLATFORM`, gated by
//! the check job's `reports/check.json`) rebuilt from the check's cache and
//! pushed by digest to the staging repository of `RALPH_REGISTRY`; its
//! digest in `reports/push.json` for the publish job.

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::commands::publish::{Publish, GITHUB_ISSUER};
use crate::commands::Command;
use crate::model::catalog::Catalog;
use crate::output::{JsonOut, Sinks};
use crate::pipeline::build::Rebuild;
use crate::pipeline::publish::PublishReport;
use crate::pipeline::Images;

#[derive(Debug, Clone, clap::Args)]
pub struct CiPush {}

impl Command for CiPush {
    type Report = PublishReport;

    fn run(&self, catalog: &Catalog) -> Result<PublishReport> {
        let event = super::event()?;
        super::must_publish(&event, "push")?;
        let publish = Publish {
            images: Images { images: vec![super::require("IMAGE")?], platform: vec![super::require("PLATFORM")?] },
            registry: super::registry()?,
            check_reports: vec![PathBuf::from(super::REPORTS).join("check.json")],
            push_only: true,
            digests: Vec::new(),
            no_tags: false,
            key: None,
            no_tlog: false,
            certificate_identity_regexp: None,
            certificate_oidc_issuer: GITHUB_ISSUER.into(),
            sbom_dir: None,
            build: Rebuild { cache: super::cache()?, ..super::rebuild(&event) },
            out: JsonOut::default(),
        };
        publish.run(catalog)
    }

    fn sinks(&self) -> Sinks<'_> {
        Sinks { json: Some(Path::new("reports/push.json")), ..Sinks::default() }
    }
}
