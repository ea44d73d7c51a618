//! Tag strategy and OCI labels.
//!
//! - `latest` only for a build of the default branch;
//! - `MAJOR.MINOR.PATCH`, `MAJOR.MINOR` and `MAJOR` for a release version
//!   (a pre-release such as `1.2.0-rc.1` gets only its full version);
//! - `<branch>-<shortsha>` for every branch build (`-dirty` when the work tree
//!   has uncommitted changes, since the sha then doesn't describe the content);
//! - `sha-<shortsha>` for a detached HEAD, so every build has a unique tag.

use std::collections::BTreeMap;

use anyhow::{bail, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitInfo {
    /// `None` on a detached HEAD.
    pub branch: Option<String>,
    pub sha: String,
    /// Committer time, Unix seconds: the `created` label, so rebuilding the
    /// same commit gives the same image config.
    pub commit_time: Option<u64>,
    pub dirty: bool,
    pub remote_url: Option<String>,
    /// A `vX.Y.Z` tag pointing at HEAD.
    pub tag: Option<String>,
}

impl GitInfo {
    pub fn short_sha(&self) -> &str {
        &self.sha[..self.sha.len().min(7)]
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
    pub pre: Option<String>,
}

impl Version {
    /// Parses `1.2.3`, `v1.2.3` or `1.2.3-rc.1`.
    pub fn parse(s: &str) -> Result<Version> {
        let bad =
            || anyhow::anyhow!("release version `{s}` is not MAJOR.MINOR.PATCH (for example 1.4.2 or v1.4.2-rc.1)");
        let v = s.strip_prefix('v').unwrap_or(s);
        let (core, pre) = match v.split_once('-') {
            Some((core, pre)) => (core, Some(pre.to_string())),
            None => (v, None),
        };
        if pre.as_deref().is_some_and(|p| p.is_empty() || !p.chars().all(|c| c.is_ascii_alphanumeric() || c == '.')) {
            return Err(bad());
        }
        let nums: Vec<u64> = core.split('.').map(|n| n.parse::<u64>().map_err(|_| bad())).collect::<Result<_>>()?;
        let [major, minor, patch] = nums[..] else { return Err(bad()) };
        Ok(Version { major, minor, patch, pre })
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)?;
        if let Some(pre) = &self.pre {
            write!(f, "-{pre}")?;
        }
        Ok(())
    }
}

/// Of the `v*` tags at HEAD (one per line), the one that names a version,
/// else the first (which `release` then passes over with a note).
pub fn head_tag(tags: &str) -> Option<String> {
    let tags: Vec<&str> = tags.lines().map(str::trim).filter(|t| !t.is_empty()).collect();
    tags.iter().find(|t| Version::parse(t).is_ok()).or(tags.first()).map(|t| t.to_string())
}

/// The release a build is for, and a note when a tag was passed over.
///
/// `--release` is the user's word: it must be a version. Without it, a `v*`
/// tag at HEAD makes a release only when it is `vMAJOR.MINOR.PATCH[-PRE]`;
/// any other (`v2`, `very-old`) is not a release, and the note says so
/// instead of failing every build of that commit.
pub fn release(explicit: Option<&str>, head_tag: Option<&str>) -> Result<(Option<Version>, Option<String>)> {
    if let Some(version) = explicit {
        return Ok((Some(Version::parse(version)?), None));
    }
    let Some(tag) = head_tag else { return Ok((None, None)) };
    match Version::parse(tag) {
        Ok(version) if tag.starts_with('v') => Ok((Some(version), None)),
        _ => Ok((
            None,
            Some(format!(
                "the tag `{tag}` at HEAD is not vMAJOR.MINOR.PATCH, so this is not a release build \
                 (tag the commit v1.2.3 or pass --release to make one)"
            )),
        )),
    }
}

/// The tags for one build, most specific first.
pub fn compute_tags(git: &GitInfo, default_branch: &str, release: Option<&Version>) -> Vec<String> {
    let mut tags = Vec::new();
    if let Some(v) = release {
        tags.push(v.to_string());
        if v.pre.is_none() {
            tags.push(format!("{}.{}", v.major, v.minor));
            tags.push(v.major.to_string());
        }
    }
    tags.push(build_id(git));
    if git.branch.as_deref() == Some(default_branch) {
        tags.push("latest".into());
    }
    tags
}

/// Whether a tag is a floating release tag (`X.Y` or `X`), which follows
/// the highest release of its line rather than the last one published.
pub fn is_floating(tag: &str) -> bool {
    let parts: Vec<&str> = tag.split('.').collect();
    parts.len() <= 2 && parts.iter().all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
}

/// Of a repository's `tags`, the highest release (`X.Y.Z`, no pre-release)
/// of the line a floating tag names: `1.2` → the highest `1.2.*`, `1` →
/// the highest `1.*.*`. None when the line has no release yet.
pub fn highest_in_line<'t>(tags: &'t [String], floating: &str) -> Option<&'t str> {
    let line: Vec<u64> = floating.split('.').map(|p| p.parse().ok()).collect::<Option<_>>()?;
    tags.iter()
        .filter_map(|t| {
            let v = Version::parse(t).ok().filter(|v| v.pre.is_none() && !t.starts_with('v'))?;
            let key = [v.major, v.minor, v.patch];
            (key[..line.len()] == line[..]).then_some((key, t.as_str()))
        })
        .max_by_key(|(key, _)| *key)
        .map(|(_, t)| t)
}

/// `<branch>-<shortsha>[-dirty]`, or `sha-<shortsha>[-dirty]` when detached.
pub fn build_id(git: &GitInfo) -> String {
    let dirty = if git.dirty { "-dirty" } else { "" };
    match &git.branch {
        Some(branch) => format!("{}-{}{dirty}", sanitize_tag(branch, 128 - 8 - dirty.len() - 1), git.short_sha()),
        None => format!("sha-{}{dirty}", git.short_sha()),
    }
}

/// A branch name made into a valid tag component: `[a-z0-9_.-]`, not starting
/// with `.` or `-`, at most `max` characters.
pub fn sanitize_tag(s: &str, max: usize) -> String {
    let mut out: String = s
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-' { c } else { '-' })
        .collect();
    out = out.trim_start_matches(['.', '-']).to_string();
    out.truncate(max);
    if out.is_empty() {
        out.push_str("branch");
    }
    out
}

/// Validates a tag a user typed (`--tag`).
pub fn validate_tag(tag: &str) -> Result<()> {
    let ok = !tag.is_empty()
        && tag.len() <= 128
        && tag.chars().next().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && tag.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if !ok {
        bail!("tag `{tag}` is invalid: use up to 128 of [A-Za-z0-9_.-], not starting with . or -");
    }
    Ok(())
}

/// The OCI labels every image gets.
pub fn oci_labels(
    title: &str,
    description: &str,
    git: &GitInfo,
    release: Option<&Version>,
    source: Option<&str>,
    created: &str,
) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut put = |k: &str, v: String| {
        labels.insert(format!("org.opencontainers.image.{k}"), v);
    };
    put("title", title.to_string());
    if !description.is_empty() {
        put("description", description.to_string());
    }
    put("version", release.map_or_else(|| build_id(git), |v| v.to_string()));
    put("revision", git.sha.clone());
    if let Some(src) = source.map(str::to_string).or_else(|| git.remote_url.clone()) {
        put("source", src);
    }
    put("created", created.to_string());
    labels
}

/// RFC 3339 UTC time for a Unix timestamp (civil-from-days, Howard Hinnant).
pub fn rfc3339_utc(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", secs / 3600, secs % 3600 / 60, secs % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn git(branch: Option<&str>) -> GitInfo {
        GitInfo {
            branch: branch.map(str::to_string),
            sha: "0123456789abcdef0123456789abcdef01234567".into(),
            commit_time: Some(1_795_435_200),
            dirty: false,
            remote_url: Some("https://example.com/ralph.git".into()),
            tag: None,
        }
    }

    #[test]
    fn default_branch_gets_latest_and_branch_sha() {
        assert_eq!(compute_tags(&git(Some("main")), "main", None), vec!["main-0123456", "latest"]);
    }

    #[test]
    fn feature_branch_never_gets_latest() {
        assert_eq!(compute_tags(&git(Some("Feature/Claim-Order")), "main", None), vec!["feature-claim-order-0123456"]);
    }

    #[test]
    fn release_gets_semver_tags() {
        let v = Version::parse("v1.4.2").unwrap();
        assert_eq!(
            compute_tags(&git(Some("main")), "main", Some(&v)),
            vec!["1.4.2", "1.4", "1", "main-0123456", "latest"]
        );
        // A release built from a tag checkout (detached) is not `latest`.
        assert_eq!(compute_tags(&git(None), "main", Some(&v)), vec!["1.4.2", "1.4", "1", "sha-0123456"]);
    }

    #[test]
    fn a_v_tag_that_is_not_a_version_is_no_release_and_no_error() {
        // Before: `Version::parse` of any `v*` tag at HEAD, so `v2` failed every build.
        let (version, note) = release(None, Some("v2")).unwrap();
        assert_eq!(version, None);
        assert!(note.unwrap().starts_with("the tag `v2` at HEAD is not vMAJOR.MINOR.PATCH"));
        let (version, note) = release(None, Some("v1.4.2-rc.1")).unwrap();
        assert_eq!((version.unwrap().to_string(), note), ("1.4.2-rc.1".to_string(), None));
        assert_eq!(release(None, None).unwrap(), (None, None));
        // What the user typed must be right.
        assert!(release(Some("v2"), None).unwrap_err().to_string().contains("is not MAJOR.MINOR.PATCH"));
        assert_eq!(release(Some("1.2.3"), Some("v2")).unwrap().0.unwrap().to_string(), "1.2.3");
        assert_eq!(head_tag("v2\nv2.0.1\n").as_deref(), Some("v2.0.1"), "a version among the tags at HEAD wins");
        assert_eq!(head_tag("v2\n").as_deref(), Some("v2"));
        assert_eq!(head_tag(""), None);
    }

    #[test]
    fn floating_tags_follow_the_highest_release_of_their_line() {
        let tags: Vec<String> =
            ["1.3.0", "1.2.4", "1.10.1", "1.2.10", "2.0.0-rc.1", "latest", "1", "1.2", "v1.9.9", "main-abc1234"]
                .map(String::from)
                .to_vec();
        assert_eq!(highest_in_line(&tags, "1"), Some("1.10.1"), "numeric, not text order");
        assert_eq!(highest_in_line(&tags, "1.2"), Some("1.2.10"));
        assert_eq!(highest_in_line(&tags, "1.3"), Some("1.3.0"));
        assert_eq!(highest_in_line(&tags, "2"), None, "a pre-release is no release of its line");
        assert_eq!(highest_in_line(&tags, "3"), None);
        assert!(is_floating("1") && is_floating("1.2"));
        assert!(!is_floating("1.2.3") && !is_floating("latest") && !is_floating("1.") && !is_floating("main-1"));
    }

    #[test]
    fn prerelease_gets_only_its_full_version() {
        let v = Version::parse("2.0.0-rc.1").unwrap();
        assert_eq!(compute_tags(&git(Some("release")), "main", Some(&v)), vec!["2.0.0-rc.1", "release-0123456"]);
    }

    #[test]
    fn detached_head_gets_sha_tag() {
        assert_eq!(compute_tags(&git(None), "main", None), vec!["sha-0123456"]);
        let mut dirty = git(None);
        dirty.dirty = true;
        assert_eq!(compute_tags(&dirty, "main", None), vec!["sha-0123456-dirty"]);
    }

    #[test]
    fn version_parsing_rejects_non_semver() {
        assert_eq!(Version::parse("1.2.3").unwrap().to_string(), "1.2.3");
        for bad in ["1.2", "1.2.3.4", "x.2.3", "1.2.3-", "1.2.3-rc/1", ""] {
            assert!(Version::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sanitized_tags_are_valid_and_bounded() {
        assert_eq!(sanitize_tag("--Fix/ÜBER_x.y", 128), "fix--ber_x.y");
        assert_eq!(sanitize_tag("///", 128), "branch");
        let long = "a".repeat(300);
        let tag = build_id(&git(Some(&long)));
        assert!(tag.len() <= 128, "{}", tag.len());
        validate_tag(&tag).unwrap();
        assert!(validate_tag("-bad").is_err());
        assert!(validate_tag("a:b").is_err());
    }

    #[test]
    fn labels_carry_version_revision_source_and_created() {
        let labels = oci_labels("ralph-worker", "", &git(Some("main")), None, None, "2026-11-22T10:00:00Z");
        assert_eq!(labels["org.opencontainers.image.title"], "ralph-worker");
        assert_eq!(labels["org.opencontainers.image.version"], "main-0123456");
        assert_eq!(labels["org.opencontainers.image.revision"], git(None).sha);
        assert_eq!(labels["org.opencontainers.image.source"], "https://example.com/ralph.git");
        assert_eq!(labels["org.opencontainers.image.created"], "2026-11-22T10:00:00Z");
        assert!(!labels.contains_key("org.opencontainers.image.description"));
    }

    #[test]
    fn rfc3339_known_dates() {
        assert_eq!(rfc3339_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339_utc(1_795_435_200), "2026-11-23T12:00:00Z");
    }
}
