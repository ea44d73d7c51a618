//! One image to look at: a catalog image, the tag it was built under, where
//! it lives (the local engine, or a registry), and the platforms asked for.

use super::catalog::{Image, Platform};

#[derive(Debug, Clone)]
pub struct Target<'c> {
    pub image: &'c Image,
    /// The tag `image build` gave it (`<branch>-<shortsha>[-dirty]`) or `--tag`.
    pub tag: String,
    /// The registry it was pushed to (`--registry`), when it is looked at there.
    pub registry: Option<String>,
    pub platforms: Vec<Platform>,
    /// Where `image build` writes its OCI layout (`Catalog::layout_dirs`):
    /// the one that holds the image the tag names is read instead of a `docker save`.
    pub layouts: Vec<std::path::PathBuf>,
}

impl Target<'_> {
    /// `[REGISTRY/]REPOSITORY:TAG`.
    pub fn reference(&self) -> String {
        reference(self.image, &self.tag, self.registry.as_deref())
    }
}

pub fn reference(image: &Image, tag: &str, registry: Option<&str>) -> String {
    match registry {
        Some(r) => format!("{}/{}:{tag}", r.trim_end_matches('/'), image.repository),
        None => format!("{}:{tag}", image.repository),
    }
}

/// The command that builds what a check needs, for error messages.
pub fn build_hint(image: &Image, platform: Option<&Platform>, registry: Option<&str>) -> String {
    let mut hint = format!("cargo xtask image build {}", image.name);
    if let Some(p) = platform {
        hint += &format!(" --platform {p}");
    }
    if let Some(r) = registry {
        hint += &format!(" --push --registry {r}");
    }
    hint
}

/// `host:port/name:tag` or `name@sha256:…` without its tag or digest.
pub fn repository_of(reference: &str) -> &str {
    let without_digest = reference.split('@').next().unwrap_or(reference);
    match without_digest.rsplit_once(':') {
        Some((repository, tag)) if !tag.contains('/') => repository,
        _ => without_digest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::catalog::Catalog;
    use std::path::Path;

    #[test]
    fn references_use_the_tag_and_the_registry() {
        let catalog = Catalog::parse(
            "[[image]]\nname='w'\nrepository='ralph-w'\ndockerfile='D'\n",
            Path::new("c.toml"),
            Path::new("."),
        )
        .unwrap();
        let image = &catalog.images[0];
        assert_eq!(reference(image, "main-abc1234", None), "ralph-w:main-abc1234");
        assert_eq!(reference(image, "1.2.3", Some("localhost:5000/")), "localhost:5000/ralph-w:1.2.3");
        let arm = Platform::parse("linux/arm64").ok();
        assert_eq!(build_hint(image, arm.as_ref(), None), "cargo xtask image build w --platform linux/arm64");
        assert_eq!(build_hint(image, None, Some("r:5000")), "cargo xtask image build w --push --registry r:5000");
    }

    #[test]
    fn repositories_lose_their_tag_or_digest_but_keep_the_port() {
        assert_eq!(repository_of("localhost:5000/ralph-x:sha-0000000"), "localhost:5000/ralph-x");
        assert_eq!(repository_of("localhost:5000/ralph-x@sha256:abc"), "localhost:5000/ralph-x");
        assert_eq!(repository_of("localhost:5000/ralph-x"), "localhost:5000/ralph-x");
        assert_eq!(repository_of("ralph-x:1.0"), "ralph-x");
    }
}
