//! `cargo xtask image size`: the image pipeline with the size check: per
//! platform, uncompressed and compressed (pull) size, a per-layer table with
//! the instruction that made each layer, the largest files, wasted bytes
//! and efficiency (as dive computes them), and the verdict against the
//! catalog's budget. Fails, after the report, when an image is over it.

use std::fmt::Write as _;

use anyhow::Result;
use serde::Serialize;

use super::Command;
use crate::checks::size::{
    human, mb, short_instruction, CompressedSource, ImageSize, PlatformSize, SizeOptions, Status, MB,
};
use crate::model::catalog::{Catalog, Platform};
use crate::output::table::Table;
use crate::output::{JsonOut, Report, Sinks};
use crate::pipeline::{Checks, Pipeline, Selection, Source};

#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "Sizes and budgets are decimal: 1 MB = 1,000,000 bytes (kB = 1,000; GB = 1,000,000,000).\n\
Uncompressed: the layer tars' lengths. Compressed: what a pull transfers, i.e. the registry manifest's layer sizes \
with --registry (the platforms are pulled first, so the local copy is the pushed one), else the gzip blobs \
`docker save` exports (gzip of the layer where it is stored as plain tar).\n\
Wasted bytes and efficiency are dive's.\n\
Exits non-zero, after the report, when an image is over its budget.")]
pub struct Size {
    #[command(flatten)]
    pub selection: Selection,
    #[command(flatten)]
    pub options: SizeOptions,
    #[command(flatten)]
    pub out: JsonOut,
}

#[derive(Debug, Clone, Serialize)]
pub struct SizeReport {
    /// Bytes per MB in every figure and summary: 1,000,000.
    pub mb_bytes: u64,
    pub images: Vec<ImageSize>,
}

impl Command for Size {
    type Report = SizeReport;

    fn run(&self, catalog: &Catalog) -> Result<SizeReport> {
        let targets = self.selection.targets(catalog)?;
        let requested = Platform::parse_list(&self.selection.images.platform)?;
        let checks = Checks { size: Some(self.options.clone()), ..Checks::default() };
        let pipeline = Pipeline { catalog, checks, keep_going: false, purpose: "size" };
        let runs = pipeline.run(targets, &requested, &Source::Existing)?;
        let images = runs.into_iter().filter_map(|r| r.size).filter_map(Result::ok).collect();
        Ok(SizeReport { mb_bytes: MB, images })
    }

    fn sinks(&self) -> Sinks<'_> {
        self.out.sinks()
    }
}

fn source_text(source: CompressedSource) -> &'static str {
    match source {
        CompressedSource::Registry => "registry manifest",
        CompressedSource::LocalBlobs => "local gzip blobs",
        CompressedSource::GzipEstimate => "gzip of the plain-tar layers",
    }
}

impl Report for SizeReport {
    /// Per image and platform: the layer table, the largest files, waste and
    /// budget; then one summary row each.
    fn render(&self) -> String {
        let mut out = String::new();
        for image in &self.images {
            for p in &image.platforms {
                let _ = writeln!(out, "== {} {} ({})", image.image, p.platform, image.reference);
                let _ = writeln!(
                    out,
                    "{} uncompressed, {} compressed ({})",
                    human(p.uncompressed_bytes),
                    human(p.compressed_bytes),
                    source_text(p.compressed_source)
                );
                out += &layer_table(p).render();
                out.push('\n');
                let mut files = Table::new(["LARGEST FILES", "SIZE", "LAYER"]);
                for f in &p.largest_files {
                    files.row([f.path.clone(), human(f.bytes), f.layer.to_string()]);
                }
                out += &files.render();
                out.push('\n');
                let _ = writeln!(
                    out,
                    "wasted: {} in {} paths, efficiency {:.2}% (as dive computes them)",
                    human(p.wasted_bytes),
                    p.wasted_paths,
                    p.efficiency * 100.0
                );
                let _ = writeln!(out, "budget: {}\n", p.budget.summary);
            }
        }
        out + &summary_table(self).render()
    }

    /// One line naming each image and platform over its budget, and by how
    /// much (or whose budget file is missing).
    fn failure(&self) -> Option<String> {
        let failures: Vec<String> = self
            .images
            .iter()
            .flat_map(|image| image.platforms.iter().filter(|p| p.budget.failed()).map(move |p| (image, p)))
            .map(|(image, p)| match p.budget.margin_bytes {
                Some(margin) => format!(
                    "image `{}` on {} is over its budget by {} ({} > {})",
                    image.image,
                    p.platform,
                    mb(margin.unsigned_abs()),
                    mb(p.budget.size_bytes),
                    mb(p.budget.limit_bytes.unwrap_or(0))
                ),
                None => format!("image `{}` on {}: {}", image.image, p.platform, p.budget.summary),
            })
            .collect();
        (!failures.is_empty()).then(|| failures.join("; "))
    }
}

fn layer_table(p: &PlatformSize) -> Table {
    let mut table = Table::new(["LAYER", "SIZE", "COMPRESSED", "CREATED BY"]);
    for l in &p.layers {
        table.row([
            l.index.to_string(),
            human(l.uncompressed_bytes),
            human(l.compressed_bytes),
            short_instruction(&l.created_by, 72),
        ]);
    }
    table
}

/// The budget cell of the summary.
pub fn budget_cell(p: &PlatformSize) -> String {
    match (p.budget.status, p.budget.margin_bytes) {
        (Status::Within, Some(m)) => format!("ok ({} to spare)", mb(m as u64)),
        (Status::Over, Some(m)) => format!("OVER by {}", mb(m.unsigned_abs())),
        (Status::FileMissing, _) => "file missing".to_string(),
        _ => "no budget".to_string(),
    }
}

fn summary_table(report: &SizeReport) -> Table {
    let mut table = Table::new(["IMAGE", "PLATFORM", "SIZE", "COMPRESSED", "WASTED", "EFFICIENCY", "BUDGET"]);
    for image in &report.images {
        for p in &image.platforms {
            table.row([
                image.image.clone(),
                p.platform.to_string(),
                human(p.uncompressed_bytes),
                human(p.compressed_bytes),
                human(p.wasted_bytes),
                format!("{:.1}%", p.efficiency * 100.0),
                budget_cell(p),
            ]);
        }
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::size::budget::{self, Verdict};
    use crate::checks::size::{LargeFile, LayerSize};
    use crate::model::catalog::Budget;

    fn platform_size(budget: Verdict) -> PlatformSize {
        PlatformSize {
            platform: Platform::parse("linux/amd64").unwrap(),
            uncompressed_bytes: 3_500_000,
            compressed_bytes: 1_200_000,
            compressed_source: CompressedSource::LocalBlobs,
            files_bytes: 3_000_000,
            layers: vec![LayerSize {
                index: 0,
                digest: Some("sha256:ab".into()),
                created_by: "COPY amd64/busybox /bin/busybox # buildkit".into(),
                uncompressed_bytes: 3_500_000,
                compressed_bytes: 1_200_000,
                files_bytes: 3_000_000,
                entries: 2,
            }],
            largest_files: vec![LargeFile { path: "/bin/busybox".into(), bytes: 3_000_000, layer: 0 }],
            wasted_bytes: 0,
            efficiency: 1.0,
            wasted_paths: 0,
            inefficiencies: vec![],
            budget,
        }
    }

    fn report(budget: Option<Budget>) -> SizeReport {
        let p = platform_size(budget::verdict(budget.as_ref(), 3_500_000, |_| Ok(("/bin/busybox".into(), 3_000_000))));
        SizeReport {
            mb_bytes: MB,
            images: vec![ImageSize {
                image: "fx".into(),
                reference: "fx:1".into(),
                budget,
                platforms: vec![p],
                seconds: 0.1,
                save_seconds: 0.0,
                layout: None,
            }],
        }
    }

    #[test]
    fn the_report_shows_layers_files_waste_and_the_verdict() {
        let r = report(Some(Budget { max_mb: Some(4.0), file: None, extra_mb: None }));
        crate::output::golden::check("size-report.txt", &r.render());
        assert_eq!(r.failure(), None);
        assert_eq!(report(None).failure(), None);
    }

    #[test]
    fn over_budget_fails_naming_the_image_and_how_much() {
        let r = report(Some(Budget { max_mb: Some(1.0), file: None, extra_mb: None }));
        assert_eq!(budget_cell(&r.images[0].platforms[0]), "OVER by 2.5 MB");
        assert_eq!(r.failure().unwrap(), "image `fx` on linux/amd64 is over its budget by 2.5 MB (3.5 MB > 1.0 MB)");
    }

    #[test]
    fn the_report_serializes_with_snake_case_statuses() {
        let json = serde_json::to_value(report(None)).unwrap();
        assert_eq!(json["mb_bytes"], 1_000_000);
        let p = &json["images"][0]["platforms"][0];
        assert_eq!(p["platform"], "linux/amd64");
        assert_eq!(p["compressed_source"], "local-blobs");
        assert_eq!(p["budget"]["status"], "no_budget");
        assert_eq!(p["layers"][0]["created_by"], "COPY amd64/busybox /bin/busybox # buildkit");
    }
}
