//! What the build needs to know about the git checkout it runs in: branch,
//! commit, its time, whether the work tree is dirty, the remote, and a
//! `v*` tag at HEAD.

use super::process::Cmd;
use crate::model::tags::{self, GitInfo};

/// Reads the repository the xtask runs in. CI checkouts are often detached,
/// so `GITHUB_REF_NAME`-style overrides come from the caller (`--branch`).
pub fn discover() -> GitInfo {
    let git = |args: &[&str]| Cmd::new("git").args(args).probe().read().ok().filter(|s| !s.is_empty());
    GitInfo {
        branch: git(&["symbolic-ref", "--short", "-q", "HEAD"]),
        sha: git(&["rev-parse", "HEAD"]).unwrap_or_else(|| "0000000".into()),
        commit_time: git(&["log", "-1", "--format=%ct"]).and_then(|t| t.parse().ok()),
        dirty: git(&["status", "--porcelain", "--untracked-files=no"]).is_some(),
        remote_url: git(&["remote", "get-url", "origin"]),
        tag: git(&["tag", "--points-at", "HEAD", "--list", "v[0-9]*"]).and_then(|tags| tags::head_tag(&tags)),
    }
}
