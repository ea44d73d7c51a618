//! `cargo xtask ci publish`: a publish job, one per product. The platforms
//! the push jobs staged (every `push.json` under `reports/`), gated by the
//! check jobs' `check.json`, merged into one index, SBOMs attested, signed
//! (keyless, or `RALPH_SIGNING=key:PATH`) and verified: signatures, SBOMs,
//! and every platform pulled by digest and run. No tag moves here: the
//! release job does that once every product is verified. Step outputs
//! `name` and `digest` (the index) for the provenance attestation;
//! the report in `reports/publish.json`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::commands::publish::{Publish, GITHUB_ISSUER};
use crate::commands::Command;
use crate::model::catalog::Catalog;
use crate::output::{JsonOut, Sinks};
use crate::pipeline::publish::PublishReport;
use crate::pipeline::Images;

#[derive(Debug, Clone, clap::Args)]
pub struct CiPublish {}

/// How `RALPH_SIGNING` signs: keyless (None), or with a key file.
pub fn signing(value: &str) -> Result<Option<PathBuf>> {
    match value.split_once(':') {
        None if value == "keyless" => Ok(None),
        Some(("key", path)) if !path.is_empty() => Ok(Some(PathBuf::from(path))),
        _ => bail!(
            "RALPH_SIGNING is `{value}`: use `keyless`, or `key:PATH` (a cosign key, its password in COSIGN_PASSWORD)"
        ),
    }
}

impl Command for CiPublish {
    type Report = PublishReport;

    fn run(&self, catalog: &Catalog) -> Result<PublishReport> {
        let event = super::event()?;
        super::must_publish(&event, "publish")?;
        let image = super::require("IMAGE")?;
        let key = signing(&super::require("RALPH_SIGNING")?)?;
        let reports = Path::new(super::REPORTS);
        let check_reports = super::files_named(reports, "check.json");
        let digests = super::files_named(reports, "push.json");
        if check_reports.is_empty() || digests.is_empty() {
            bail!(
                "no check.json or push.json under {}/: download the check and push jobs' artifacts of {image} there first",
                reports.display()
            );
        }
        let publish = Publish {
            images: Images { images: vec![image], platform: Vec::new() },
            registry: super::registry()?,
            check_reports,
            push_only: false,
            digests,
            no_tags: true,
            no_tlog: key.is_some(),
            key,
            certificate_identity_regexp: Some(event.identity_regexp()),
            certificate_oidc_issuer: GITHUB_ISSUER.into(),
            sbom_dir: Some(reports.join("sbom-attested")),
            build: super::rebuild(&event),
            out: JsonOut::default(),
        };
        let report = publish.run(catalog)?;
        let published = report.images.first().context("the publish made no image")?;
        let digest = published.index_digest.as_deref().context("the publish pushed no index")?;
        super::set_output("name", &published.repository)?;
        super::set_output("digest", digest)?;
        Ok(report)
    }

    fn sinks(&self) -> Sinks<'_> {
        Sinks { json: Some(Path::new("reports/publish.json")), ..Sinks::default() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyless_or_a_key() {
        assert_eq!(signing("keyless").unwrap(), None);
        assert_eq!(signing("key:/k/cosign.key").unwrap(), Some(PathBuf::from("/k/cosign.key")));
        assert!(signing("key:").unwrap_err().to_string().contains("RALPH_SIGNING is `key:`"));
        assert!(signing("gpg").is_err());
    }
}
