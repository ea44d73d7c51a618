//! Manifests in a registry, through `docker buildx imagetools`: an index
//! made from platform manifests and pushed by digest only (no tag), tags
//! moved onto an index already there, and the digest of what a reference
//! names. Nothing here makes a tag implicitly: a tag is only ever written by
//! [`tag`].

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

use super::docker;
use super::process::{last_lines, Cmd};

/// `sha256:<hex>` of `bytes`: the digest a registry gives a manifest.
pub fn digest_of(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    let mut out = String::with_capacity(71);
    out.push_str("sha256:");
    for b in hash {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

fn imagetools() -> Cmd {
    docker::docker().args(["buildx", "imagetools"])
}

fn run_ok(cmd: &Cmd, what: &str) -> Result<Vec<u8>> {
    let out = cmd.output()?;
    if !out.status.success() {
        bail!("{what}: {}", last_lines(&String::from_utf8_lossy(&out.stderr), 1));
    }
    Ok(out.stdout)
}

/// The exact bytes and the digest of the manifest (or index) `reference` names.
pub fn manifest(reference: &str) -> Result<(Vec<u8>, String)> {
    let raw = run_ok(&imagetools().args(["inspect", "--raw", reference]).probe(), &format!("reading {reference}"))?;
    let digest = digest_of(&raw);
    Ok((raw, digest))
}

/// The manifest (or index) `reference` names, parsed.
pub fn manifest_json(reference: &str) -> Result<serde_json::Value> {
    let (raw, _) = manifest(reference)?;
    serde_json::from_slice(&raw).with_context(|| format!("the manifest of {reference} is not JSON"))
}

/// The index `create` would push for `sources` (`REPO@DIGEST` each): its
/// bytes and digest, nothing pushed. (`--dry-run` prints it with a newline
/// after it, which is not part of the manifest.)
pub fn plan_index(repository: &str, sources: &[String]) -> Result<(Vec<u8>, String)> {
    let cmd = imagetools().args(["create", "--dry-run", "--tag"]).arg(format!("{repository}:dry-run")).args(sources);
    let mut raw = run_ok(&cmd.probe(), &format!("planning the index of {repository}"))?;
    if raw.last() == Some(&b'\n') {
        raw.pop();
    }
    let _: serde_json::Value = serde_json::from_slice(&raw).context("imagetools printed no index")?;
    let digest = digest_of(&raw);
    Ok((raw, digest))
}

/// Pushes the index of `sources` to `repository` by its digest only (the
/// platform manifests and their blobs are copied or mounted first); checks
/// the registry holds exactly that digest.
pub fn push_index(repository: &str, digest: &str, sources: &[String]) -> Result<()> {
    let target = format!("{repository}@{digest}");
    run_ok(
        &imagetools().args(["create", "--progress", "plain", "--tag"]).arg(&target).args(sources),
        &format!("pushing the index {target}"),
    )?;
    let (_, got) = manifest(&target)?;
    if got != digest {
        bail!("the registry holds {got} for {target}, not the index pushed: check the registry, then publish again");
    }
    Ok(())
}

/// Points each of `tags` of `repository` at the index `digest`, already in
/// it; then checks each tag names that digest.
pub fn tag(repository: &str, digest: &str, tags: &[String]) -> Result<()> {
    if tags.is_empty() {
        return Ok(());
    }
    let mut cmd = imagetools().args(["create", "--progress", "plain"]);
    for t in tags {
        cmd = cmd.arg("--tag").arg(format!("{repository}:{t}"));
    }
    run_ok(&cmd.arg(format!("{repository}@{digest}")), &format!("tagging {repository}@{digest}"))?;
    for t in tags {
        let (_, got) = manifest(&format!("{repository}:{t}"))?;
        if got != digest {
            bail!("{repository}:{t} names {got} after tagging, not {digest}: another publish raced this one; publish again");
        }
    }
    Ok(())
}

/// Points `tag` of `repository` at `digest` (already in it), without the
/// check [`tag`] makes: for a tag that other runs may move at the same
/// time, whose caller reads it back itself.
pub fn retag(repository: &str, digest: &str, tag: &str) -> Result<()> {
    let cmd = imagetools().args(["create", "--progress", "plain", "--tag"]).arg(format!("{repository}:{tag}"));
    run_ok(&cmd.arg(format!("{repository}@{digest}")), &format!("tagging {repository}:{tag}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_sha256_of_the_exact_bytes() {
        // sha256("") and sha256("abc"), from FIPS 180-2.
        assert_eq!(digest_of(b""), "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        assert_eq!(digest_of(b"abc"), "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
