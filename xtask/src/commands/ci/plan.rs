//! `cargo xtask ci plan`: the plan job. Which images this run checks (the
//! products, or `RALPH_CI_IMAGES`), as the check jobs' matrix, the product
//! names for the publish jobs, and whether this run publishes: step outputs
//! `matrix`, `products` and `publish`, and a summary table.

use anyhow::{bail, Result};
use serde::Serialize;

use crate::commands::Command;
use crate::model::catalog::{self, Catalog, Image, ImageKind};
use crate::output::table::Table;
use crate::output::Report;

#[derive(Debug, Clone, clap::Args)]
pub struct Plan {}

#[derive(Debug, Clone, Serialize)]
pub struct PlanReport {
    pub matrix: serde_json::Value,
    pub products: Vec<String>,
    pub publish: bool,
    pub event: String,
    pub git_ref: String,
}

/// The images `RALPH_CI_IMAGES` names: `products`, or names.
pub fn select<'c>(catalog: &'c Catalog, spec: &str) -> Result<Vec<&'c Image>> {
    if spec == "products" {
        let products: Vec<&Image> = catalog.images.iter().filter(|i| i.kind == ImageKind::Product).collect();
        if products.is_empty() {
            bail!("RALPH_CI_IMAGES is `products` and the catalog has none: name the images");
        }
        return Ok(products);
    }
    let names: Vec<String> = spec.split([',', ' ']).filter(|s| !s.is_empty()).map(str::to_string).collect();
    if names.is_empty() {
        bail!("RALPH_CI_IMAGES is empty: set it to `products` or to image names");
    }
    catalog.select(&names)
}

impl Command for Plan {
    type Report = PlanReport;

    fn run(&self, catalog: &Catalog) -> Result<PlanReport> {
        let event = super::event()?;
        let images = select(catalog, &super::require("RALPH_CI_IMAGES")?)?;
        let matrix = catalog::matrix(catalog, &images);
        let publish = event.publishes();
        let mut products: Vec<String> = images.iter().map(|i| i.name.clone()).collect();
        products.dedup();
        let report = PlanReport { matrix, products, publish, event: event.name, git_ref: event.git_ref };
        super::set_output("matrix", &serde_json::to_string(&report.matrix)?)?;
        super::set_output("products", &serde_json::to_string(&report.products)?)?;
        super::set_output("publish", &report.publish.to_string())?;
        super::summary(&format!("### Plan\n\n```\n{}```\n", report.render()))?;
        Ok(report)
    }
}

impl Report for PlanReport {
    fn render(&self) -> String {
        let mut table = Table::new(["IMAGE", "PLATFORM", "KIND"]);
        for e in self.matrix["include"].as_array().into_iter().flatten() {
            let field = |k: &str| e[k].as_str().unwrap_or("").to_string();
            table.row([field("image"), field("platform"), field("kind")]);
        }
        format!(
            "{}{} of {}: {}\n",
            table.render(),
            self.event,
            self.git_ref,
            if self.publish { "checks, then publishes" } else { "checks only (publishes nothing)" }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn products_or_names() {
        let catalog = Catalog::parse(
            "[[image]]\nname='p'\nkind='product'\ndockerfile='D'\n[[image]]\nname='s'\nkind='standin'\ndockerfile='D'\n",
            Path::new("/r/images.toml"),
            Path::new("/r"),
        )
        .unwrap();
        let names = |spec: &str| select(&catalog, spec).map(|v| v.iter().map(|i| i.name.clone()).collect::<Vec<_>>());
        assert_eq!(names("products").unwrap(), ["p"]);
        assert_eq!(names("s").unwrap(), ["s"]);
        assert_eq!(names("p, s").unwrap(), ["p", "s"]);
        assert!(names(" ").unwrap_err().to_string().contains("RALPH_CI_IMAGES is empty"));
        assert!(names("nope").is_err());
    }
}
