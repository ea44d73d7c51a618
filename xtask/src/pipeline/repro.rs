//! Is a build reproducible? An image built twice without cache into OCI
//! layouts (`SOURCE_DATE_EPOCH` the commit's time, the files' times clamped to it),
//! compared per platform: `image repro` and `image check --repro`.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};

use super::build::Plan;
use crate::engine::{clamp, oci};
use crate::model::catalog::join;
use crate::model::repro::{self, ImageRepro};

/// Builds `p` twice without cache into OCI layouts and compares them per
/// platform. When the layout `image build` wrote for this commit was built
/// with no step cached (`Memo::cold`: a fresh machine's first build), that
/// build is the first of the two, so a CI run builds the image cold once
/// more, not twice. `keep`: keep the layouts as KEEP/IMAGE/build-N.
pub fn image(p: &Plan<'_>, epoch: u64, keep: Option<&Path>, quiet: bool) -> Result<ImageRepro> {
    let started = Instant::now();
    let temp = tempfile::Builder::new().prefix("xtask-repro-").tempdir().context("creating a temporary directory")?;
    let root = keep.map_or_else(|| temp.path().to_path_buf(), |dir| dir.join(&p.image.name));
    // Held while the image's own build is read, so no build rewrites it meanwhile.
    let _lock = oci::lock(p.layout_dir())?;
    let reused = oci::Memo::cold(p.layout_dir(), epoch, &p.invocation().fingerprint())?;
    let reused_build = reused.as_ref().map(|l| l.dir.clone());
    let mut layouts = Vec::new();
    let mut dirs = Vec::new();
    if let Some(layout) = reused {
        if !quiet {
            eprintln!(
                "==> {}: build 1 of 2 is `image build`'s, which cached no step at this commit ({})",
                p.image.name,
                layout.dir.display()
            );
        }
        dirs.push(layout.dir.clone());
        layouts.push(layout);
    }
    for n in layouts.len() + 1..=2 {
        let dest = root.join(format!("build-{n}"));
        if dest.exists() {
            std::fs::remove_dir_all(&dest).with_context(|| format!("removing the old {}", dest.display()))?;
        }
        if !quiet {
            eprintln!("==> building {} for {} (build {n} of 2, no cache)", p.image.name, join(&p.platforms));
        }
        let layout = oci::build(&p.image.name, p.invocation(), &dest, epoch, quiet)?;
        clamp::layout(&layout, epoch, p.layout_dir(), &[])?;
        layout.collect_garbage()?;
        layouts.push(layout);
        dirs.push(dest);
    }
    let (a, b) = (layouts[0].platforms()?, layouts[1].platforms()?);
    let mut platforms = Vec::new();
    for platform in &p.platforms {
        let key = platform.to_string();
        let missing = || format!("image `{}`: the build has no {key} manifest in its layout", p.image.name);
        let (ia, ib) = (a.get(&key).with_context(missing)?, b.get(&key).with_context(missing)?);
        platforms
            .push(repro::compare(&key, ia, ib, |index| oci::layer_files((&layouts[0], ia), (&layouts[1], ib), index))?);
    }
    Ok(ImageRepro {
        image: p.image.name.clone(),
        reused_build,
        layouts: keep.map(|_| [dirs[0].clone(), dirs[1].clone()]),
        platforms,
        seconds: started.elapsed().as_secs_f64(),
    })
}
