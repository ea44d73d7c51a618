//! Tag strategy and OCI labels.
//!
//! - `latest` only for a build of the default branch;
//! - `MAJOR.MINOR.PATCH`, `MAJOR.MINOR` and `MAJOR` for a release version, by
//!   the SemVer rules (`v01.2.3` is no version); a pre-release such as
//!   `1.2.0-rc.1` or `1.2.0-rc-1` gets only its full version, and moves no
//!   floating tag (`latest` included);
//! - `<branch>-<shortsha>` for every branch build (`-dirty` when the work tree
//!   has uncommitted changes, since the sha then doesn't describe the content);
//! - `sha-<shortsha>` for a detached HEAD, so every build has a unique tag.

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use jiff::Timestamp;

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

/// A release version by the SemVer 2.0.0 rules (the `semver` crate): no
/// leading zeros, pre-releases such as `1.2.3-rc-1` or `2.0.0-rc.1`, and no
/// build metadata (`+…`), which an image tag can't hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version(semver::Version);

impl Version {
    /// Parses `1.2.3`, `v1.2.3` or `1.2.3-rc.1`.
    pub fn parse(s: &str) -> Result<Version> {
        let v = s.strip_prefix('v').unwrap_or(s);
        let version = semver::Version::parse(v).map_err(|e| {
            anyhow::anyhow!(
                "release version `{s}` is not MAJOR.MINOR.PATCH by the SemVer rules ({e}): write it as 1.4.2, \
                 v1.4.2 or v1.4.2-rc.1"
            )
        })?;
        if !version.build.is_empty() {
            bail!(
                "release version `{s}` has build metadata `+{}`, which an image tag can't hold: leave it out",
                version.build
            );
        }
        if version.to_string().len() > 128 {
            bail!("release version `{s}` is longer than an image tag's 128 characters: shorten its pre-release");
        }
        Ok(Version(version))
    }

    /// A pre-release (`1.2.3-rc.1`): tagged with its full version only.
    pub fn is_prerelease(&self) -> bool {
        !self.0.pre.is_empty()
    }

    /// `[MAJOR, MINOR, PATCH]`.
    fn core(&self) -> [u64; 3] {
        [self.0.major, self.0.minor, self.0.patch]
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
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
    let prerelease = release.is_some_and(Version::is_prerelease);
    if let Some(v) = release {
        tags.push(v.to_string());
        if !prerelease {
            let [major, minor, _] = v.core();
            tags.push(format!("{major}.{minor}"));
            tags.push(major.to_string());
        }
    }
    tags.push(build_id(git));
    // A pre-release moves no floating tag, `latest` included.
    if git.branch.as_deref() == Some(default_branch) && !prerelease {
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
            let v = Version::parse(t).ok().filter(|v| !v.is_prerelease() && !t.starts_with('v'))?;
            let key = v.core();
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

/// RFC 3339 UTC time for a Unix timestamp (to the second).
pub fn rfc3339_utc(unix: u64) -> Result<String> {
    let time = i64::try_from(unix).ok().and_then(|s| Timestamp::from_second(s).ok()).ok_or_else(|| {
        anyhow::anyhow!(
            "the time {unix} (Unix seconds) is past the year 9999: set SOURCE_DATE_EPOCH (or the commit's date) \
             to a real date"
        )
    })?;
    Ok(time.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
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
        for bad in ["1.2", "1.2.3.4", "x.2.3", "1.2.3-", "1.2.3-rc/1", "", "1.2.3+b1"] {
            assert!(Version::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_leading_zero_is_no_release() {
        // Before: `v01.2.3` was read as 1.2.3, and published as such.
        for bad in ["v01.2.3", "1.02.3", "1.2.03", "00.1.0", "1.2.3-rc.01"] {
            assert!(Version::parse(bad).is_err(), "{bad} is not SemVer");
        }
        let (version, note) = release(None, Some("v01.2.3")).unwrap();
        assert_eq!(version, None);
        assert!(note.is_some_and(|n| n.contains("v01.2.3")));
        assert!(Version::parse("0.1.0").is_ok() && Version::parse("10.20.30").is_ok());
    }

    #[test]
    fn prereleases_with_hyphens_are_valid_and_move_no_floating_tag() {
        // Before: `1.2.3-rc-1` (valid SemVer) was refused.
        for good in ["1.2.3-rc-1", "v1.2.3-rc-1", "1.0.0-alpha-a.b-c-somethinglong", "1.2.3--", "1.2.3-0.a-b"] {
            let v = Version::parse(good).unwrap_or_else(|e| panic!("{good}: {e:#}"));
            assert_eq!(v.to_string(), good.trim_start_matches('v'));
        }
        let v = Version::parse("v1.2.3-rc-1").unwrap();
        // A pre-release built on the default branch moves none of `latest`, `1.2` and `1`.
        assert_eq!(compute_tags(&git(Some("main")), "main", Some(&v)), vec!["1.2.3-rc-1", "main-0123456"]);
        assert_eq!(compute_tags(&git(None), "main", Some(&v)), vec!["1.2.3-rc-1", "sha-0123456"]);
        let tags: Vec<String> = ["1.2.2", "1.2.3-rc-1"].map(String::from).to_vec();
        assert_eq!(highest_in_line(&tags, "1.2"), Some("1.2.2"));
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
        assert_eq!(rfc3339_utc(0).unwrap(), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_utc(951_782_400).unwrap(), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339_utc(1_795_435_200).unwrap(), "2026-11-23T12:00:00Z");
        assert_eq!(rfc3339_utc(253_402_128_000).unwrap(), "9999-12-30T00:00:00Z");
    }

    #[test]
    fn a_time_past_the_year_9999_is_refused() {
        // Before: the hand-written calendar wrote `10000-01-01T00:00:00Z`, which is no RFC 3339 time.
        let err = rfc3339_utc(253_402_300_800).unwrap_err().to_string();
        assert!(
            err.starts_with("the time 253402300800 (Unix seconds) is past the year 9999: set SOURCE_DATE_EPOCH"),
            "{err}"
        );
        assert!(rfc3339_utc(u64::MAX).is_err());
    }
}
