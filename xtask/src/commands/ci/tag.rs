//! `cargo xtask ci tag`: the release job, last. Every product of the plan
//! (`PRODUCTS`) must have a publish report under `published/` that says its
//! index was verified, for this registry; otherwise no tag moves at all.
//! Then each index gets this run's tags (`<branch>-<sha>`, `latest` on the
//! default branch, `X.Y.Z` on a release), and `X.Y` and `X` the highest
//! release of their line in the registry.

use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::commands::Command;
use crate::model::catalog::Catalog;
use crate::pipeline::publish::{self, PublishReport, Published};

#[derive(Debug, Clone, clap::Args)]
pub struct CiTag {}

/// The verified publish of each product, from the publish jobs' reports;
/// refused, naming the first product that lacks one.
pub fn verified(reports: &[PublishReport], products: &[String], registry: &str) -> Result<Vec<Published>> {
    let mut out = Vec::new();
    for product in products {
        let found: Vec<&Published> =
            reports.iter().filter(|r| !r.push_only).flat_map(|r| &r.images).filter(|p| &p.image == product).collect();
        let [one] = found[..] else {
            bail!(
                "{} publish reports for {product}, not one: every product must be published and verified before any tag moves; re-run the failed publish job",
                found.len()
            );
        };
        if !one.verified || one.index_digest.is_none() {
            bail!("{product}'s publish was not verified: no tag moves; re-run its publish job");
        }
        let want = format!("{registry}/");
        if !one.repository.starts_with(&want) {
            bail!("{product} was published to {}, not under {registry}: tag where it was published", one.repository);
        }
        out.push(one.clone());
    }
    Ok(out)
}

impl Command for CiTag {
    type Report = PublishReport;

    fn run(&self, catalog: &Catalog) -> Result<PublishReport> {
        let event = super::event()?;
        super::must_publish(&event, "tag")?;
        let products_json = super::require("PRODUCTS")?;
        let products: Vec<String> = serde_json::from_str(&products_json).with_context(|| {
            format!("PRODUCTS is `{products_json}`, not a JSON list: pass the plan's `products` output")
        })?;
        let files = super::files_named(Path::new(super::PUBLISHED), "publish.json");
        let reports = files
            .iter()
            .map(|f| {
                let text = std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
                serde_json::from_str(&text).with_context(|| format!("{} is not a publish report", f.display()))
            })
            .collect::<Result<Vec<PublishReport>>>()?;
        let mut images = verified(&reports, &products, &super::registry()?)?;
        let build = super::rebuild(&event).options();
        let (tags, _) = publish::tags_for(catalog, &build)?;
        for image in &mut images {
            publish::move_tags(image, &tags)?;
        }
        Ok(PublishReport { push_only: false, images, seconds: 0.0 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::publish::Phases;

    fn published(image: &str, verified: bool) -> Published {
        Published {
            image: image.into(),
            repository: format!("r.io/acme/ralph-{image}"),
            staging: format!("r.io/acme/ralph-{image}-staging"),
            platforms: vec![],
            index_digest: Some("sha256:1".into()),
            reference: None,
            tags: vec![],
            signed: Some("keyless".into()),
            tlog: true,
            verified_signatures: 3,
            verified_attestations: 2,
            ran: vec![],
            verified,
            phases: Phases::default(),
        }
    }

    fn report(images: Vec<Published>) -> PublishReport {
        PublishReport { push_only: false, images, seconds: 1.0 }
    }

    #[test]
    fn no_tag_moves_unless_every_product_was_verified() {
        let products = ["w".to_string(), "al".to_string()];
        let both = [report(vec![published("w", true)]), report(vec![published("al", true)])];
        assert_eq!(verified(&both, &products, "r.io/acme").unwrap().len(), 2);
        let e = verified(&both[..1], &products, "r.io/acme").unwrap_err().to_string();
        assert!(e.starts_with("0 publish reports for al, not one"), "{e}");
        let failed = [report(vec![published("w", true)]), report(vec![published("al", false)])];
        let e = verified(&failed, &products, "r.io/acme").unwrap_err().to_string();
        assert!(e.contains("al's publish was not verified"), "{e}");
        let twice = [both[0].clone(), both[0].clone(), both[1].clone()];
        assert!(verified(&twice, &products, "r.io/acme")
            .unwrap_err()
            .to_string()
            .starts_with("2 publish reports for w"));
        let e = verified(&both, &products, "other.io/x").unwrap_err().to_string();
        assert!(e.contains("not under other.io/x"), "{e}");
    }
}
