//! The tags of a repository in a registry, through skopeo (`skopeo
//! list-tags`), which reads the same credentials `docker login` wrote:
//! what the release step needs to move `X.Y` and `X` only to the highest
//! release of their line; and the OCI layout of a build pushed as it is.

use std::path::Path;

use anyhow::{Context, Result};

use super::docker::registry_host;
use super::process::Cmd;

/// Every tag of `repository` (`host/path`); none when it does not exist yet.
pub fn list_tags(repository: &str) -> Result<Vec<String>> {
    let host = registry_host(repository);
    let plain_http = host.starts_with("localhost") || host.starts_with("127.");
    let mut cmd = Cmd::new("skopeo").arg("list-tags").probe();
    if plain_http {
        cmd = cmd.arg("--tls-verify=false");
    }
    let out = cmd.arg(format!("docker://{repository}")).output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        // A repository nothing was pushed to yet has no tags.
        if ["NAME_UNKNOWN", "name unknown", "404 (Not Found)"].iter().any(|s| stderr.contains(s)) {
            return Ok(Vec::new());
        }
        anyhow::bail!(
            "listing the tags of {repository}: {} (is skopeo installed and the registry logged in? `bash scripts/setup-host.sh` installs it)",
            super::process::last_lines(&stderr, 1)
        );
    }
    let json: serde_json::Value =
        serde_json::from_slice(&out.stdout).with_context(|| format!("skopeo printed no JSON for {repository}"))?;
    Ok(json["Tags"].as_array().into_iter().flatten().filter_map(|t| t.as_str().map(str::to_string)).collect())
}

/// Pushes the image of the OCI layout `dir` (every manifest of it) to
/// `reference` with its blobs and manifests as they are (`--preserve-digests`):
/// the digest the registry serves is the layout's, by construction.
pub fn push_layout(dir: &Path, reference: &str) -> Result<()> {
    let host = registry_host(reference);
    let mut cmd = Cmd::new("skopeo").args(["copy", "--all", "--preserve-digests", "--quiet"]);
    if host.starts_with("localhost") || host.starts_with("127.") {
        cmd = cmd.arg("--dest-tls-verify=false");
    }
    cmd.arg(format!("oci:{}", dir.display())).arg(format!("docker://{reference}")).read().with_context(|| {
        format!(
            "pushing the layout {} to {reference} (is skopeo installed? `bash scripts/setup-host.sh` installs it)",
            dir.display()
        )
    })?;
    Ok(())
}
