//! `cargo xtask image verify REF`: what a deployment should check of a
//! published image: the index and every platform manifest signed by the
//! expected key or identity, an SBOM attestation on each platform, and each
//! platform actually running (`--version`, or the catalog's `startup_args`
//! for an image of the catalog), pulled by digest.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::Serialize;

use super::publish::GITHUB_ISSUER;
use super::Command;
use crate::checks::runtime::DEFAULT_ARGS;
use crate::engine::cosign::Verifier;
use crate::engine::{docker, imagetools};
use crate::model::catalog::{Catalog, Platform};
use crate::model::target::repository_of;
use crate::output::table::Table;
use crate::output::{JsonOut, Report, Sinks};
use crate::pipeline::publish::{self, Verified};

#[derive(Debug, Clone, clap::Args)]
pub struct Verify {
    /// The published image: REPOSITORY:TAG or REPOSITORY@DIGEST.
    pub reference: String,
    /// The cosign public key its signatures must verify with.
    #[arg(long, conflicts_with = "certificate_identity_regexp")]
    pub key: Option<std::path::PathBuf>,
    /// Keyless: the signer identity to accept (a regular expression), e.g.
    /// ^https://github.com/OWNER/REPO/
    #[arg(long)]
    pub certificate_identity_regexp: Option<String>,
    /// Keyless: the OIDC issuer to accept.
    #[arg(long, default_value = GITHUB_ISSUER)]
    pub certificate_oidc_issuer: String,
    /// Verify without the transparency log (for images signed with --no-tlog).
    #[arg(long)]
    pub no_tlog: bool,
    /// Arguments each platform runs with (default: the catalog's
    /// `startup_args` for an image of the catalog, else --version).
    #[arg(long = "arg", allow_hyphen_values = true)]
    pub args: Vec<String>,
    /// Seconds each platform's run may take (default: 120 on this machine's
    /// architecture, 300 for one emulated under QEMU).
    #[arg(long)]
    pub timeout: Option<u64>,
    #[command(flatten)]
    pub out: JsonOut,
}

#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub reference: String,
    pub repository: String,
    pub index_digest: String,
    pub verified: Verified,
    pub tlog: bool,
    pub platforms: Vec<VerifiedPlatform>,
}

#[derive(Debug, Clone, Serialize)]
pub struct VerifiedPlatform {
    pub platform: Platform,
    pub digest: String,
    /// The first line it printed.
    pub output: String,
}

impl Command for Verify {
    type Report = VerifyReport;

    fn run(&self, catalog: &Catalog) -> Result<VerifyReport> {
        let verifier = match (&self.key, &self.certificate_identity_regexp) {
            (Some(key), _) => {
                if !key.is_file() {
                    bail!(
                        "the public key {} does not exist: pass the cosign.pub the image was signed for",
                        key.display()
                    );
                }
                Verifier::Key(key.clone())
            }
            (None, Some(re)) => {
                Verifier::Keyless { identity_regexp: re.clone(), issuer: self.certificate_oidc_issuer.clone() }
            }
            (None, None) => bail!(
                "whose signature? pass --key cosign.pub, or --certificate-identity-regexp for a keyless signature"
            ),
        };
        let repository = repository_of(&self.reference).to_string();
        docker::check_registry(&repository)?;
        let (raw, index) = imagetools::manifest(&self.reference)?;
        let manifest: docker::Manifest =
            serde_json::from_slice(&raw).with_context(|| format!("the manifest of {} is not JSON", self.reference))?;
        let platforms = docker::platform_digests(&manifest);
        if platforms.is_empty() {
            bail!(
                "{} is not a multi-platform index (no platform manifests): verify what `image publish` made",
                self.reference
            );
        }
        let digests: Vec<String> = platforms.iter().map(|(_, d)| d.clone()).collect();
        let verified = publish::verify_signed(&repository, &index, &digests, &verifier, self.no_tlog)?;
        let args = self.args_for(catalog, &repository);
        let ran = publish::run_platforms(&repository, &platforms, &args, self.timeout.map(Duration::from_secs))?;
        Ok(VerifyReport {
            reference: self.reference.clone(),
            repository,
            index_digest: index,
            verified,
            tlog: !self.no_tlog,
            platforms: platforms
                .into_iter()
                .zip(ran)
                .map(|((platform, digest), (_, output))| VerifiedPlatform { platform, digest, output })
                .collect(),
        })
    }

    fn sinks(&self) -> Sinks<'_> {
        self.out.sinks()
    }
}

impl Verify {
    fn args_for(&self, catalog: &Catalog, repository: &str) -> Vec<String> {
        if !self.args.is_empty() {
            return self.args.clone();
        }
        let name = repository.rsplit('/').next().unwrap_or(repository);
        catalog
            .images
            .iter()
            .find(|i| i.repository == name)
            .map_or_else(|| DEFAULT_ARGS.iter().map(|s| s.to_string()).collect(), publish::run_args)
    }
}

impl Report for VerifyReport {
    fn render(&self) -> String {
        let mut table = Table::new(["PLATFORM", "DIGEST", "SIGNED", "SBOM", "RUNS"]);
        for p in &self.platforms {
            table.row([
                p.platform.to_string(),
                p.digest.clone(),
                "verified".into(),
                "attested".into(),
                if p.output.is_empty() { "exit 0".into() } else { p.output.clone() },
            ]);
        }
        format!(
            "{}@{}: {} signatures, {} SBOM attestations verified{}\n{}",
            self.repository,
            self.index_digest,
            self.verified.signatures,
            self.verified.attestations,
            if self.tlog { "" } else { " (without the transparency log)" },
            table.render()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_verify_report_reads_as_a_table() {
        let report = VerifyReport {
            reference: "localhost:5000/ralph-worker-standin:latest".into(),
            repository: "localhost:5000/ralph-worker-standin".into(),
            index_digest: format!("sha256:{}", "c".repeat(64)),
            verified: Verified { signatures: 3, attestations: 2 },
            tlog: false,
            platforms: ["linux/amd64", "linux/arm64"]
                .iter()
                .zip(['a', 'b'])
                .map(|(p, d)| VerifiedPlatform {
                    platform: Platform::parse(p).unwrap(),
                    digest: format!("sha256:{}", d.to_string().repeat(64)),
                    output: "ralph 0.1.0".into(),
                })
                .collect(),
        };
        crate::output::golden::check("verify-report.txt", &report.render());
    }
}
