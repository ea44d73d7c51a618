//! `cargo xtask image build`: catalog images through `docker buildx build`,
//! for one or many platforms, loaded locally or pushed, with a table of
//! digests, tags, wall time and cache hits.

use anyhow::Result;

use super::Command;
use crate::engine::progress::CacheStats;
use crate::model::catalog::Catalog;
use crate::output::table::Table;
use crate::output::{JsonOut, Report, Sinks};
use crate::pipeline::build::{self, BuildOptions, BuildReport};
use crate::pipeline::Images;

#[derive(Debug, Clone, clap::Args)]
pub struct Build {
    #[command(flatten)]
    pub images: Images,
    #[command(flatten)]
    pub options: BuildOptions,
    #[command(flatten)]
    pub out: JsonOut,
}

impl Command for Build {
    type Report = BuildReport;

    fn run(&self, catalog: &Catalog) -> Result<BuildReport> {
        let (images, requested) = self.images.select(catalog)?;
        build::run(catalog, &images, &requested, &self.options)
    }

    fn sinks(&self) -> Sinks<'_> {
        self.out.sinks()
    }
}

impl Report for BuildReport {
    fn render(&self) -> String {
        let mut table = Table::new(["IMAGE", "PLATFORM", "DIGEST", "TAGS", "TIME", "CACHE"]);
        for image in &self.images {
            for p in &image.platforms {
                let digest = p.digest.clone().unwrap_or_else(|| format!("{} (index)", image.digest));
                table.row([
                    image.image.clone(),
                    p.platform.to_string(),
                    short_digest(&digest),
                    image.tags.join(","),
                    format!("{:.1}s", image.wall_seconds),
                    format_cache(&CacheStats { cached: p.steps_cached, total: p.steps_total }),
                ]);
            }
        }
        let b = &self.builder;
        let endpoint = b.endpoint.as_deref().map(|e| format!(", endpoint {e}")).unwrap_or_default();
        let mut out = format!("{}built by builder {} (driver {}{endpoint})\n", table.render(), b.name, b.driver);
        for image in self.images.iter().filter(|i| i.layout.is_some()) {
            let dir = image.layout.as_deref().unwrap_or(std::path::Path::new("")).display();
            out.push_str(&format!("{}: OCI layout {dir} (size, scan and publish read it)\n", image.image));
        }
        out
    }
}

pub fn format_cache(s: &CacheStats) -> String {
    format!("{}/{} ({:.0}%)", s.cached, s.total, s.rate() * 100.0)
}

fn short_digest(d: &str) -> String {
    match d.strip_prefix("sha256:") {
        Some(hex) if hex.len() > 12 => format!("sha256:{}{}", &hex[..12], &d[7 + hex.len().min(64)..]),
        _ => d.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::docker::Builder;
    use crate::model::catalog::{ImageKind, Platform};
    use crate::pipeline::build::{ImageReport, PlatformReport};

    #[test]
    fn digests_are_shortened_for_the_table() {
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(short_digest(&d), "sha256:aaaaaaaaaaaa");
        assert_eq!(short_digest(&format!("{d} (index)")), "sha256:aaaaaaaaaaaa (index)");
        assert_eq!(format_cache(&CacheStats { cached: 3, total: 4 }), "3/4 (75%)");
    }

    #[test]
    fn the_table_has_a_line_per_image_and_platform() {
        let platform = |p: &str, digest: Option<&str>, cached| PlatformReport {
            platform: Platform::parse(p).unwrap(),
            digest: digest.map(str::to_string),
            steps_cached: cached,
            steps_total: 6,
            cache_hit_rate: cached as f64 / 6.0,
        };
        let builder = Builder {
            name: "multi".into(),
            driver: "docker-container".into(),
            endpoint: Some("unix:///var/run/docker.sock".into()),
            platforms: vec![],
        };
        let report = BuildReport {
            builder: builder.clone(),
            images: vec![ImageReport {
                image: "worker-standin".into(),
                kind: ImageKind::Standin,
                refs: vec!["ralph-worker-standin:main-1ceab2b".into()],
                tags: vec!["main-1ceab2b".into(), "latest".into()],
                digest: format!("sha256:{}", "1".repeat(64)),
                pushed: false,
                wall_seconds: 9.95,
                platforms: vec![
                    platform("linux/amd64", None, 6),
                    platform("linux/arm64", Some(&format!("sha256:{}", "2".repeat(64))), 5),
                ],
                builder,
                layout: Some("target/oci/worker-standin".into()),
            }],
        };
        crate::output::golden::check("build-table.txt", &report.render());
    }
}
