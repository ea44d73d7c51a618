//! Which built image a check looks at: the catalog image under the tag
//! `image build` gives this checkout (`<branch>-<shortsha>[-dirty]`, or
//! `sha-<shortsha>` when detached), unless `--tag` names another.

use anyhow::{bail, Context, Result};

use crate::catalog::{Catalog, Image, Platform};
use crate::docker;
use crate::tags::{self, GitInfo};

/// How the checks pick the image to look at (shared by smoke, size, runtime).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Selection {
    /// Images from the catalog (default: every image this machine can build).
    pub images: Vec<String>,
    /// Platforms, comma-separated or repeated (default: the catalog's).
    #[arg(long, value_delimiter = ',')]
    pub platform: Vec<String>,
    /// The tag to check (default: the tag `image build` gives this checkout).
    #[arg(long)]
    pub tag: Option<String>,
    /// Look at the image pushed to this registry (e.g. localhost:5000).
    #[arg(long)]
    pub registry: Option<String>,
}

/// One image to check, on the platforms asked for.
#[derive(Debug, Clone)]
pub struct Target<'a> {
    pub image: &'a Image,
    pub reference: String,
    /// The tag in `reference`.
    pub tag: String,
    pub platforms: Vec<Platform>,
}

impl Selection {
    /// The images and platforms, each validated against the catalog, with
    /// the reference of the built image; no names: what `image build` builds.
    pub fn resolve<'a>(&self, catalog: &'a Catalog) -> Result<Vec<Target<'a>>> {
        let requested = Platform::parse_list(&self.platform)?;
        if let Some(tag) = &self.tag {
            tags::validate_tag(tag)?;
        }
        let tag = self.tag.clone().unwrap_or_else(|| tags::build_id(&GitInfo::discover()));
        catalog
            .select_buildable(&self.images)?
            .into_iter()
            .map(|image| {
                Ok(Target {
                    image,
                    reference: reference(image, &tag, self.registry.as_deref()),
                    tag: tag.clone(),
                    platforms: image.select_platforms(&requested)?,
                })
            })
            .collect()
    }
}

pub fn reference(image: &Image, tag: &str, registry: Option<&str>) -> String {
    match registry {
        Some(r) => format!("{}/{}:{tag}", r.trim_end_matches('/'), image.repository),
        None => format!("{}:{tag}", image.repository),
    }
}

/// The command that builds what a check needs, for error messages.
pub fn build_hint(image: &Image, platform: Option<&Platform>) -> String {
    match platform {
        Some(p) => format!("cargo xtask image build {} --platform {p}", image.name),
        None => format!("cargo xtask image build {}", image.name),
    }
}

/// Fails with the build command to run when the image is not in the local
/// engine (or, with a registry, not pushed there).
pub fn ensure_built(target: &Target, registry: Option<&str>) -> Result<()> {
    let found = match registry {
        Some(_) => docker::inspect_remote(&target.reference).is_ok(),
        None => docker::docker()
            .args(["image", "inspect", "--format", "{{.Id}}", &target.reference])
            .probe()
            .output()?
            .status
            .success(),
    };
    if !found {
        let push = if registry.is_some() {
            " --push --registry ".to_string() + registry.unwrap_or_default()
        } else {
            String::new()
        };
        bail!(
            "image `{}` is not built ({} not found): run `{}{push}`",
            target.image.name,
            target.reference,
            build_hint(target.image, None)
        );
    }
    Ok(())
}

/// Brings a pushed image's platforms into the local store, so what is
/// checked is what the registry serves (checks run containers with `--pull
/// never`). The image is removed again on drop if it wasn't there before.
pub fn pull(reference: &str, platforms: &[Platform]) -> Result<PulledImage> {
    let was_local = docker::docker()
        .args(["image", "inspect", "--format", "{{.Id}}", reference])
        .probe()
        .output()?
        .status
        .success();
    let pulled = PulledImage { reference: (!was_local).then(|| reference.to_string()) };
    for platform in platforms {
        docker::docker()
            .args(["pull", "--quiet", "--platform", &platform.to_string(), reference])
            .read()
            .with_context(|| format!("pulling {reference} for {platform}"))?;
    }
    Ok(pulled)
}

pub struct PulledImage {
    /// Set when the image wasn't in the local store before.
    reference: Option<String>,
}

impl Drop for PulledImage {
    fn drop(&mut self) {
        if let Some(reference) = &self.reference {
            let _ = docker::docker().args(["image", "rm", reference.as_str()]).probe().output();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
        assert_eq!(
            build_hint(image, Platform::parse("linux/arm64").ok().as_ref()),
            "cargo xtask image build w --platform linux/arm64"
        );
    }
}
