//! `cargo xtask image publish`: checked images to a registry, as a release
//! is made: each platform pushed by digest, one signed index with an SBOM
//! attestation per platform, verified, and only then tagged (see
//! `pipeline::publish` for the order). Refused, before anything is pushed,
//! for an image whose `image check` did not pass on every platform (in
//! this run, or in `--check-report` files), a key that can't be read, or
//! no way to sign.
//!
//! CI splits it: each matrix job runs `--push-only` for its platform, the
//! merge job publishes what they staged with `--digests` (their reports).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use super::check::Check;
use super::Command;
use crate::checks::runtime::RuntimeOptions;
use crate::checks::scan::ScanOptions;
use crate::checks::smoke::SmokeOptions;
use crate::engine::cosign::{self, Signer, Verifier};
use crate::engine::docker;
use crate::model::catalog::{Catalog, Image, ImageKind, Platform};
use crate::model::gate::{self, CheckReport};
use crate::output::table::Table;
use crate::output::{AllOut, JsonOut, Report, Sinks};
use crate::pipeline::build::Rebuild;
use crate::pipeline::publish::{self, PublishOptions, PublishReport, Published};
use crate::pipeline::Images;

/// GitHub Actions' OIDC issuer: keyless signatures made in CI name it.
pub const GITHUB_ISSUER: &str = "https://token.actions.githubusercontent.com";

#[derive(Debug, Clone, clap::Args)]
pub struct Publish {
    /// Images from the catalog (default: the products) and `--platform`s.
    #[command(flatten)]
    pub images: Images,
    /// The registry (and namespace) to publish to, e.g. ghcr.io/OWNER or localhost:5000.
    #[arg(long)]
    pub registry: String,
    /// `image check --report` files that passed for every platform published
    /// (default: `image check` runs in this run first).
    #[arg(long = "check-report")]
    pub check_reports: Vec<PathBuf>,
    /// Only push each platform by digest (staged) and report the digests: CI's matrix jobs.
    #[arg(long, conflicts_with = "digests")]
    pub push_only: bool,
    /// Reports of `--push-only` runs: publish the platforms they staged (CI's merge job).
    #[arg(long = "digests", num_args = 1..)]
    pub digests: Vec<PathBuf>,
    /// Stop once the index is signed and verified: move no tag (CI's publish
    /// job; its release job moves the tags with `ci tag`).
    #[arg(long, conflicts_with = "push_only")]
    pub no_tags: bool,
    /// A cosign private key (its password in COSIGN_PASSWORD); without it,
    /// keyless signing with the ambient OIDC token (GitHub Actions).
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// Sign and verify without the transparency log (where none is reachable).
    #[arg(long)]
    pub no_tlog: bool,
    /// Keyless: the signer identity the verification step accepts (a regular
    /// expression; required for keyless signing).
    #[arg(long)]
    pub certificate_identity_regexp: Option<String>,
    /// Keyless: the OIDC issuer the verification step accepts.
    #[arg(long, default_value = GITHUB_ISSUER)]
    pub certificate_oidc_issuer: String,
    /// Where the SBOMs attested are kept (default: target/publish/sbom).
    #[arg(long)]
    pub sbom_dir: Option<PathBuf>,
    #[command(flatten)]
    pub build: Rebuild,
    #[command(flatten)]
    pub out: JsonOut,
}

impl Command for Publish {
    type Report = PublishReport;

    fn run(&self, catalog: &Catalog) -> Result<PublishReport> {
        let started = Instant::now();
        let build = self.build.options();
        // Everything that can be refused is, before anything is pushed.
        let (tags, build_id) = publish::tags_for(catalog, &build)?;
        let (signer, verifier, _key_dir) = self.signing()?;
        let registry = self.registry.trim_end_matches('/').to_string();
        if registry.is_empty() {
            bail!("--registry is empty: pass the registry to publish to, e.g. --registry localhost:5000");
        }
        docker::check_registry(&registry)?;
        let images = self.selected(catalog)?;
        let requested = Platform::parse_list(&self.images.platform)?;
        let reports = self.check_reports(catalog, &images, &requested)?;
        // With --digests: what the matrix jobs staged, read once.
        let staged_reports = if self.digests.is_empty() { None } else { Some(publish::read_staged(&self.digests)?) };
        let mut checked = Vec::new();
        let mut staged_images = Vec::new();
        for image in &images {
            let platforms = image.select_platforms(&requested)?;
            let staged = match &staged_reports {
                Some(all) => Some(staged_image(all, image, &platforms, &self.registry)?),
                None => None,
            };
            let verdicts = platforms
                .iter()
                .map(|p| Ok((p.clone(), gate::verdict(&reports, &image.name, p, &build_id)?)))
                .collect::<Result<Vec<_>>>()?;
            if let Some(staged) = staged {
                staged_as_checked(&staged, &verdicts)?;
                staged_images.push(staged);
            }
            checked.push((*image, verdicts));
        }

        let options = PublishOptions {
            registry,
            signer,
            verifier,
            no_tlog: self.no_tlog,
            build,
            sbom_dir: self.sbom_dir.clone().unwrap_or_else(|| {
                catalog.path.parent().unwrap_or(std::path::Path::new(".")).join("target/publish/sbom")
            }),
        };
        let staged = if staged_reports.is_some() {
            staged_images
        } else {
            checked
                .iter()
                .map(|(image, verdicts)| publish::stage(catalog, image, verdicts, &build_id, &options))
                .collect::<Result<Vec<_>>>()?
        };
        if self.push_only {
            return Ok(PublishReport { push_only: true, images: staged, seconds: started.elapsed().as_secs_f64() });
        }
        let mut images = staged
            .into_iter()
            .map(|s| {
                let args = catalog.images.iter().find(|i| i.name == s.image).map(publish::run_args).unwrap_or_default();
                publish::release(s, &options, &args)
            })
            .collect::<Result<Vec<Published>>>()?;
        if !self.no_tags {
            for image in &mut images {
                publish::move_tags(image, &tags)?;
            }
        }
        Ok(PublishReport { push_only: false, images, seconds: started.elapsed().as_secs_f64() })
    }

    fn sinks(&self) -> Sinks<'_> {
        self.out.sinks()
    }
}

impl Publish {
    /// The signer and the verifier, checked (a key that can't be read or
    /// decrypted is refused here). The key's public half goes to a
    /// temporary directory, kept as long as the returned handle.
    fn signing(&self) -> Result<(Option<Signer>, Option<Verifier>, Option<tempfile::TempDir>)> {
        if self.push_only {
            return Ok((None, None, None));
        }
        if let Some(key) = &self.key {
            let public = cosign::check_key(key)?;
            let dir =
                tempfile::Builder::new().prefix("xtask-cosign-").tempdir().context("creating a temporary directory")?;
            let pub_file = dir.path().join("cosign.pub");
            std::fs::write(&pub_file, public).context("writing the public key")?;
            return Ok((Some(Signer::Key(key.clone())), Some(Verifier::Key(pub_file)), Some(dir)));
        }
        if !cosign::oidc_available() {
            bail!(
                "no way to sign: pass --key FILE (a cosign key; its password in COSIGN_PASSWORD), or publish from GitHub Actions with `id-token: write` for keyless signing"
            );
        }
        let Some(identity) = self.certificate_identity_regexp.clone() else {
            bail!(
                "keyless signing needs --certificate-identity-regexp: the signer the verification accepts (`cargo xtask ci publish` builds it from the run)"
            );
        };
        let verifier = Verifier::Keyless { identity_regexp: identity, issuer: self.certificate_oidc_issuer.clone() };
        Ok((Some(Signer::Keyless), Some(verifier), None))
    }

    /// The images to publish: those named, else the catalog's products.
    fn selected<'c>(&self, catalog: &'c Catalog) -> Result<Vec<&'c Image>> {
        if !self.images.images.is_empty() {
            return catalog.select(&self.images.images);
        }
        let products: Vec<&Image> = catalog.images.iter().filter(|i| i.kind == ImageKind::Product).collect();
        if products.is_empty() {
            bail!("the catalog has no product images: name the images to publish");
        }
        Ok(products)
    }

    /// The check reports the gate reads: the files given, else this run's check.
    fn check_reports(&self, catalog: &Catalog, images: &[&Image], requested: &[Platform]) -> Result<Vec<CheckReport>> {
        if !self.check_reports.is_empty() {
            return self
                .check_reports
                .iter()
                .map(|f| {
                    let text = std::fs::read_to_string(f).with_context(|| {
                        format!("reading the check report {}: pass a file `image check --report` wrote", f.display())
                    })?;
                    CheckReport::parse(&f.display().to_string(), &text)
                })
                .collect();
        }
        if !self.digests.is_empty() {
            bail!("--digests needs --check-report: the reports of the `image check` runs that staged them");
        }
        eprintln!("==> publish: `image check` first, in this run");
        let check = Check {
            images: Images {
                images: images.iter().map(|i| i.name.clone()).collect(),
                platform: requested.iter().map(|p| p.to_string()).collect(),
            },
            no_build: false,
            build: self.build.clone(),
            smoke: SmokeOptions::default(),
            runtime: RuntimeOptions::default(),
            scan: ScanOptions::default(),
            repro: false,
            out: AllOut::default(),
        };
        let report = check.run(catalog)?;
        eprint!("{}", report.render());
        Ok(vec![CheckReport::from_value("this run's check", serde_json::to_value(&report)?)?])
    }
}

/// With `--digests`: `image` as the matrix jobs staged it, for `platforms`
/// (each staged by one of them) and for this `registry`.
fn staged_image(staged: &[Published], image: &Image, platforms: &[Platform], registry: &str) -> Result<Published> {
    let Some(s) = staged.iter().find(|s| s.image == image.name) else {
        bail!("no --digests report stages {}: pass the push reports of its matrix jobs", image.name);
    };
    for p in platforms {
        if !s.platforms.iter().any(|q| &q.platform == p) {
            bail!(
                "no --digests report stages {} on {p}: pass the push report of that matrix job (or publish fewer --platform)",
                image.name
            );
        }
    }
    let (repository, _) = publish::repositories(registry, image);
    if s.repository != repository {
        bail!(
            "{} was staged for {}, not {repository}: publish to the registry the matrix jobs pushed to",
            image.name,
            s.repository
        );
    }
    let mut s = s.clone();
    s.platforms.retain(|p| platforms.contains(&p.platform));
    Ok(s)
}

/// Each staged platform's digest is the one its check saw (when the check report names it).
fn staged_as_checked(staged: &Published, verdicts: &[(Platform, gate::Checked)]) -> Result<()> {
    for p in &staged.platforms {
        let want = verdicts.iter().find(|(q, _)| *q == p.platform).and_then(|(_, c)| c.digest.as_deref());
        if let Some(want) = want.filter(|w| *w != p.digest) {
            bail!(
                "{} on {} was staged as {} but checked as {want}: publish what was checked",
                staged.image,
                p.platform,
                p.digest
            );
        }
    }
    Ok(())
}

impl Report for PublishReport {
    fn render(&self) -> String {
        let mut table = Table::new(["IMAGE", "PLATFORM", "DIGEST", "SBOM", "SIGNED"]);
        let mut lines = String::new();
        for image in &self.images {
            for p in &image.platforms {
                table.row([
                    image.image.clone(),
                    p.platform.to_string(),
                    p.digest.clone(),
                    match (&p.sbom, p.sbom_bytes) {
                        (Some(_), 0) => "attested".into(),
                        (Some(_), bytes) => format!("attested, {:.1} kB", bytes as f64 / 1000.0),
                        (None, _) => "-".into(),
                    },
                    image.signed.clone().unwrap_or_else(|| "-".into()),
                ]);
            }
            if self.push_only {
                lines.push_str(&format!("{}: staged in {} (not yet published)\n", image.image, image.staging));
                continue;
            }
            if let Some(reference) = &image.reference {
                lines.push_str(&format!("{}: {reference}\n", image.image));
            }
            for tag in &image.tags {
                lines.push_str(&format!("  tag {tag}\n"));
            }
            let ph = &image.phases;
            lines.push_str(&format!(
                "  verified: {} signatures, {} SBOM attestations{}\n  time: push {:.1}s, manifest {:.1}s, attest {:.1}s, sign {:.1}s, verify {:.1}s, tag {:.1}s\n",
                image.verified_signatures,
                image.verified_attestations,
                if image.tlog { "" } else { " (no transparency log: --no-tlog)" },
                ph.push,
                ph.manifest,
                ph.attest,
                ph.sign,
                ph.verify,
                ph.tag
            ));
        }
        table.render() + &lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::publish::{Phases, PublishedPlatform};

    fn published(push_only: bool) -> PublishReport {
        let platform = |p: &str, d: char| PublishedPlatform {
            platform: Platform::parse(p).unwrap(),
            digest: format!("sha256:{}", d.to_string().repeat(64)),
            staged: format!("localhost:5000/ralph-worker-standin-staging:main-abc1234-{}", p.replace('/', "-")),
            sbom: (!push_only).then(|| PathBuf::from("target/publish/sbom/x.cdx.json")),
            sbom_bytes: if push_only { 0 } else { 182_924 },
        };
        let index = format!("sha256:{}", "c".repeat(64));
        PublishReport {
            push_only,
            seconds: 12.5,
            images: vec![Published {
                image: "worker-standin".into(),
                repository: "localhost:5000/ralph-worker-standin".into(),
                staging: "localhost:5000/ralph-worker-standin-staging".into(),
                platforms: vec![platform("linux/amd64", 'a'), platform("linux/arm64", 'b')],
                index_digest: (!push_only).then(|| index.clone()),
                reference: (!push_only).then(|| format!("localhost:5000/ralph-worker-standin@{index}")),
                tags: if push_only {
                    vec![]
                } else {
                    vec![
                        "localhost:5000/ralph-worker-standin:main-abc1234".into(),
                        "localhost:5000/ralph-worker-standin:latest".into(),
                    ]
                },
                signed: (!push_only).then(|| "key".into()),
                tlog: false,
                verified_signatures: if push_only { 0 } else { 3 },
                verified_attestations: if push_only { 0 } else { 2 },
                ran: Vec::new(),
                verified: !push_only,
                phases: Phases { push: 8.25, manifest: 0.5, attest: 2.0, sign: 0.5, verify: 0.75, tag: 0.25 },
            }],
        }
    }

    #[test]
    fn the_publish_report_reads_as_a_table_and_a_summary() {
        crate::output::golden::check("publish-report.txt", &published(false).render());
        crate::output::golden::check("publish-push-only.txt", &published(true).render());
    }
}
