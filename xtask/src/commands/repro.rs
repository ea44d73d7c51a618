//! `cargo xtask image repro`: is the build reproducible? Each image is
//! built twice with `--no-cache` into OCI layouts (`SOURCE_DATE_EPOCH` the
//! commit's time, the files' times clamped to it), and the manifest digests are
//! compared per platform. Where they differ, the report names the layers
//! that differ, the instruction that made each, the files inside them that
//! differ and the config fields that differ (as diffoci does), and the
//! command exits 1.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Result;
use serde::Serialize;

use super::Command;
use crate::checks::size::short_instruction;
use crate::model::catalog::Catalog;
use crate::model::repro::{Change, ImageRepro};
use crate::output::table::Table;
use crate::output::{JsonOut, Report, Sinks};
use crate::pipeline::build::{self, BuildOptions, BuilderArg, CacheMode};
use crate::pipeline::{self, Images};

#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "Each image is built twice with `docker buildx build --no-cache --output \
type=oci,dest=DIR,tar=false --build-arg SOURCE_DATE_EPOCH=<commit time>`, its files' times clamped to \
that time, and the manifest digests are compared per platform. Images another image needs (`needs`) must be built first \
(`image build`). Exits 1 when a platform's digests differ, after the list of what differs.")]
pub struct Repro {
    #[command(flatten)]
    pub images: Images,
    /// Keep the two layouts as DIR/IMAGE/build-1 and DIR/IMAGE/build-2 (default: a temporary directory, removed).
    #[arg(long)]
    pub layouts: Option<PathBuf>,
    /// Don't stream buildx progress.
    #[arg(long, short)]
    pub quiet: bool,
    /// Branch name to label with, as `image build --branch` (the labels are part of the image).
    #[arg(long)]
    pub branch: Option<String>,
    #[command(flatten)]
    pub builder: BuilderArg,
    #[command(flatten)]
    pub out: JsonOut,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReproReport {
    /// The time both builds were given (the commit's, else $SOURCE_DATE_EPOCH, else now).
    pub source_date_epoch: u64,
    pub images: Vec<ImageRepro>,
}

impl Command for Repro {
    type Report = ReproReport;

    fn run(&self, catalog: &Catalog) -> Result<ReproReport> {
        let (images, requested) = self.images.select(catalog)?;
        let options = BuildOptions {
            cache: CacheMode::None,
            no_cache: true,
            quiet: self.quiet,
            branch: self.branch.clone(),
            builder: self.builder.clone(),
            ..BuildOptions::default()
        };
        let mut plan = build::plan(catalog, &images, &requested, &options)?;
        // The machine and the builder, as `image build` checks them (the layouts are written here).
        plan.check_machine()?;
        let epoch = plan.epoch;

        let mut out = Vec::new();
        for p in plan.images.iter().filter(|p| images.iter().any(|i| i.name == p.image.name)) {
            out.push(pipeline::repro::image(p, epoch, self.layouts.as_deref(), self.quiet)?);
        }
        Ok(ReproReport { source_date_epoch: epoch, images: out })
    }

    fn sinks(&self) -> Sinks<'_> {
        self.out.sinks()
    }
}

/// Files listed per differing layer in the readable report (the JSON has all).
const MAX_FILES: usize = 20;

fn change_text(c: Change) -> &'static str {
    match c {
        Change::Added => "added",
        Change::Removed => "removed",
        Change::Content => "content differs",
        Change::Metadata => "metadata differs",
    }
}

/// `sha256:` and the first 12 hex digits, for tables.
pub(super) fn short_digest(d: &str) -> String {
    let hex = d.trim_start_matches("sha256:");
    format!("sha256:{}", &hex[..hex.len().min(12)])
}

impl Report for ReproReport {
    /// The verdict table, then per differing platform every layer (same or
    /// not), the files that differ and the config fields that differ.
    fn render(&self) -> String {
        let mut table = Table::new(["IMAGE", "PLATFORM", "DIGEST 1", "DIGEST 2", "VERDICT"]);
        for image in &self.images {
            for p in &image.platforms {
                table.row([
                    image.image.clone(),
                    p.platform.clone(),
                    p.digest_1.clone(),
                    p.digest_2.clone(),
                    if p.same { "reproducible".into() } else { "DIFFERS".to_string() },
                ]);
            }
        }
        let mut out = table.render();
        for image in &self.images {
            if let Some(dir) = &image.reused_build {
                let _ = writeln!(
                    out,
                    "{}: build 1 is `image build`'s, which cached no step ({})",
                    image.image,
                    dir.display()
                );
            }
        }
        for image in &self.images {
            for p in image.platforms.iter().filter(|p| !p.same) {
                let _ = writeln!(out, "\n== {} {}: what differs between build 1 and build 2", image.image, p.platform);
                for l in &p.layers {
                    let verdict = if l.same { "same" } else { "DIFFERS" };
                    let digests = match (&l.digest_1, &l.digest_2) {
                        (Some(x), Some(y)) if x == y => short_digest(x),
                        (x, y) => format!(
                            "{} != {}",
                            x.as_deref().map_or("(none)".into(), short_digest),
                            y.as_deref().map_or("(none)".into(), short_digest)
                        ),
                    };
                    let _ = writeln!(
                        out,
                        "layer {} {verdict}: {}  [{digests}]",
                        l.index,
                        short_instruction(&l.created_by, 72)
                    );
                    for f in l.files.iter().take(MAX_FILES) {
                        let _ = writeln!(out, "    {}: {} ({})", f.path, change_text(f.change), f.details.join(", "));
                    }
                    if l.files.len() > MAX_FILES {
                        let _ = writeln!(
                            out,
                            "    … and {} more files (all of them in --report)",
                            l.files.len() - MAX_FILES
                        );
                    }
                    if !l.same && l.files.is_empty() && l.digest_1.is_some() && l.digest_2.is_some() {
                        let _ = writeln!(out, "    (same files: the tar stream or its compression differs)");
                    }
                }
                for c in &p.config {
                    let _ = writeln!(out, "config {c}");
                }
                for a in &p.annotations {
                    let _ = writeln!(out, "manifest annotation {a}");
                }
            }
        }
        out
    }

    /// One line naming each image and platform whose builds differ.
    fn failure(&self) -> Option<String> {
        let failures: Vec<String> = self
            .images
            .iter()
            .flat_map(|i| i.platforms.iter().filter(|p| !p.same).map(move |p| (i, p)))
            .map(|(i, p)| {
                let layers: Vec<String> = p
                    .differing_layers()
                    .map(|l| format!("layer {} (`{}`)", l.index, short_instruction(&l.created_by, 48)))
                    .collect();
                let what = match layers.len() {
                    0 => "its config".to_string(),
                    n if n > 3 => format!("{} and {} more layers", layers[..3].join(", "), n - 3),
                    _ => layers.join(", "),
                };
                format!("image `{}` on {} is not reproducible: {what} differs", i.image, p.platform)
            })
            .collect();
        (!failures.is_empty()).then(|| {
            format!(
                "{}: the differing files are listed above; make those steps deterministic (no dates, random data or unordered output)",
                failures.join("; ")
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::repro::{FileDiff, LayerVerdict, PlatformVerdict};

    fn layer(index: usize, same: bool, created_by: &str, files: Vec<FileDiff>) -> LayerVerdict {
        let d = |s: &str| Some(format!("sha256:{s}{index}"));
        LayerVerdict {
            index,
            same,
            digest_1: d("aaaa"),
            digest_2: if same { d("aaaa") } else { d("bbbb") },
            diff_id_1: None,
            diff_id_2: None,
            created_by: created_by.into(),
            files,
        }
    }

    fn report(same: bool) -> ReproReport {
        let layers = if same {
            vec![]
        } else {
            vec![
                layer(0, true, "COPY /busybox /bin/busybox # buildkit", vec![]),
                layer(
                    1,
                    false,
                    "RUN /bin/sh -c date +%s%N > /etc/built-at # buildkit",
                    vec![FileDiff {
                        path: "etc/built-at".into(),
                        change: Change::Content,
                        details: vec!["content sha256 0123 != 4567".into()],
                    }],
                ),
            ]
        };
        ReproReport {
            source_date_epoch: 1_700_000_000,
            images: vec![ImageRepro {
                image: "fx".into(),
                reused_build: None,
                layouts: None,
                platforms: vec![PlatformVerdict {
                    platform: "linux/amd64".into(),
                    digest_1: "sha256:m1".into(),
                    digest_2: if same { "sha256:m1".into() } else { "sha256:m2".into() },
                    same,
                    layers,
                    config: vec![],
                    annotations: vec![],
                }],
                seconds: 1.0,
            }],
        }
    }

    #[test]
    fn a_reproducible_image_passes() {
        let r = report(true);
        assert_eq!(r.failure(), None);
        assert!(r.render().contains("reproducible"), "{}", r.render());
    }

    #[test]
    fn a_difference_fails_naming_the_layer_and_lists_its_files() {
        let r = report(false);
        let text = r.render();
        assert!(text.contains("layer 0 same: COPY"), "{text}");
        assert!(text.contains("layer 1 DIFFERS: RUN"), "{text}");
        assert!(text.contains("    etc/built-at: content differs (content sha256 0123 != 4567)"), "{text}");
        let line = r.failure().unwrap();
        assert!(line.starts_with("image `fx` on linux/amd64 is not reproducible: layer 1 (`RUN"), "{line}");
        assert!(!line.contains('\n'));
    }

    #[test]
    fn long_file_lists_are_cut_in_the_table_not_in_the_json() {
        let mut r = report(false);
        let files: Vec<FileDiff> = (0..25)
            .map(|i| FileDiff {
                path: format!("bin/f{i:02}"),
                change: Change::Metadata,
                details: vec!["mtime 1 != 2".into()],
            })
            .collect();
        r.images[0].platforms[0].layers[1].files = files;
        let text = r.render();
        assert!(text.contains("bin/f19: metadata differs") && !text.contains("bin/f20"), "{text}");
        assert!(text.contains("    … and 5 more files (all of them in --report)"), "{text}");
        assert_eq!(
            serde_json::to_value(&r).unwrap()["images"][0]["platforms"][0]["layers"][1]["files"]
                .as_array()
                .unwrap()
                .len(),
            25
        );
    }
}
