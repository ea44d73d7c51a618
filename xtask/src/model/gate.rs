//! The publish gate: whether `image check` passed for an image on a
//! platform, read back from check reports (the JSON `image check --report
//! FILE` writes, or this run's), and for this checkout's build. Publishing
//! is refused for an image not checked, checked at another commit, or with
//! a failed check, naming which.

use anyhow::{bail, Context, Result};
use serde_json::Value;

use super::catalog::Platform;

/// One check report and where it came from (a file, or "this run").
#[derive(Debug, Clone)]
pub struct CheckReport {
    pub source: String,
    json: Value,
}

/// What the reports say of an image checked on a platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// The platform's manifest digest the check built, when the report has
    /// it (single-platform checks): what is published must be that image.
    pub digest: Option<String>,
    pub source: String,
}

impl CheckReport {
    /// A report from its JSON; `source` names it in errors.
    pub fn parse(source: &str, json: &str) -> Result<CheckReport> {
        let json: Value = serde_json::from_str(json).with_context(|| {
            format!("check report {source} is not JSON: pass the file `image check --report` wrote")
        })?;
        CheckReport::from_value(source, json)
    }

    pub fn from_value(source: &str, json: Value) -> Result<CheckReport> {
        if !json["rows"].is_array() || !json["images"].is_array() {
            bail!("{source} is not an `image check` report (no rows and images): pass the file `image check --report` wrote");
        }
        Ok(CheckReport { source: source.to_string(), json })
    }

    /// The rows of `image` that ran on `platform`: (check, outcome).
    fn outcomes<'a>(&'a self, image: &'a str, platform: &'a str) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        self.json["rows"].as_array().into_iter().flatten().filter(move |r| r["image"] == image).filter_map(move |r| {
            Some((r["check"].as_str().unwrap_or("?"), r["results"].get(platform)?.as_str().unwrap_or("?")))
        })
    }

    fn image(&self, image: &str) -> Option<&Value> {
        self.json["images"].as_array().into_iter().flatten().find(|i| i["image"] == image)
    }
}

/// The verdict of `reports` on `image` for `platform`, for the build tagged
/// `build_id` (this checkout): the reports that ran it must all pass (a
/// check not run, "skipped", is no failure), at least one must have built
/// it, and a report that says which commit it built must name this one.
pub fn verdict(reports: &[CheckReport], image: &str, platform: &Platform, build_id: &str) -> Result<Checked> {
    let key = platform.to_string();
    let mut covered: Option<Checked> = None;
    let mut other_builds = Vec::new();
    for report in reports {
        let outcomes: Vec<(&str, &str)> = report.outcomes(image, &key).collect();
        if outcomes.is_empty() {
            continue;
        }
        let build = report.image(image).map(|i| &i["build"]).filter(|b| b.is_object());
        if let Some(tags) = build.and_then(|b| b["tags"].as_array()) {
            if !tags.iter().any(|t| t == build_id) {
                let tags: Vec<&str> = tags.iter().filter_map(Value::as_str).collect();
                other_builds.push(format!("{} ({})", report.source, tags.join(", ")));
                continue;
            }
        }
        let failed: Vec<&str> = outcomes.iter().filter(|(_, o)| *o == "fail").map(|(c, _)| *c).collect();
        if !failed.is_empty() {
            bail!(
                "`image check` failed for {image} on {platform} ({}): {}: fix {}, check again, then publish",
                report.source,
                failed.join(", "),
                if failed.len() == 1 { "it" } else { "them" }
            );
        }
        if !outcomes.iter().any(|(c, o)| *c == "build" && *o == "pass") && build.is_some() {
            bail!("{} has no passed build of {image} on {platform}: check it again, then publish", report.source);
        }
        let digest = build
            .and_then(|b| b["platforms"].as_array())
            .and_then(|ps| ps.iter().find(|p| p["platform"] == key.as_str()))
            .and_then(|p| p["digest"].as_str())
            .map(str::to_string);
        covered = Some(Checked { digest: digest.or(covered.and_then(|c| c.digest)), source: report.source.clone() });
    }
    if let Some(checked) = covered {
        return Ok(checked);
    }
    if !other_builds.is_empty() {
        bail!(
            "the check of {image} on {platform} is of another build, not this checkout's {build_id}: {}: check this checkout, then publish",
            other_builds.join("; ")
        );
    }
    bail!(
        "{image} has not been checked on {platform}: run `cargo xtask image check {image} --platform {platform} --report FILE` and pass --check-report FILE (or publish without --check-report to check in this run)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn amd64() -> Platform {
        Platform::parse("linux/amd64").unwrap()
    }

    fn report(results: &[(&str, &str)], tags: &[&str], digest: Option<&str>) -> CheckReport {
        let rows: Vec<Value> = results
            .iter()
            .map(|(check, outcome)| json!({"image": "w", "check": check, "results": {"linux/amd64": outcome}, "figure": ""}))
            .collect();
        let build = json!({"tags": tags, "platforms": [{"platform": "linux/amd64", "digest": digest}]});
        CheckReport::from_value("r.json", json!({"ok": true, "rows": rows, "images": [{"image": "w", "build": build}]}))
            .unwrap()
    }

    #[test]
    fn a_passed_check_of_this_build_lets_it_through_with_its_digest() {
        let r =
            report(&[("build", "pass"), ("smoke", "pass"), ("scan", "skipped")], &["main-abc1234"], Some("sha256:1"));
        let checked = verdict(&[r], "w", &amd64(), "main-abc1234").unwrap();
        assert_eq!(checked.digest.as_deref(), Some("sha256:1"));
    }

    #[test]
    fn a_failed_check_is_named() {
        let r = report(&[("build", "pass"), ("smoke", "fail"), ("scan", "fail")], &["main-abc1234"], None);
        let e = verdict(&[r], "w", &amd64(), "main-abc1234").unwrap_err().to_string();
        assert_eq!(
            e,
            "`image check` failed for w on linux/amd64 (r.json): smoke, scan: fix them, check again, then publish"
        );
    }

    #[test]
    fn a_check_of_another_commit_does_not_count() {
        let r = report(&[("build", "pass")], &["main-0000000"], None);
        let e = verdict(&[r], "w", &amd64(), "main-abc1234").unwrap_err().to_string();
        assert_eq!(
            e,
            "the check of w on linux/amd64 is of another build, not this checkout's main-abc1234: r.json (main-0000000): check this checkout, then publish"
        );
    }

    #[test]
    fn an_image_or_platform_not_in_any_report_is_refused() {
        let r = report(&[("build", "pass")], &["main-abc1234"], None);
        let arm = Platform::parse("linux/arm64").unwrap();
        let not_checked = |image: &str, platform: &str| {
            format!(
                "{image} has not been checked on {platform}: run `cargo xtask image check {image} --platform {platform} --report FILE` and pass --check-report FILE (or publish without --check-report to check in this run)"
            )
        };
        let e = verdict(std::slice::from_ref(&r), "w", &arm, "main-abc1234").unwrap_err().to_string();
        assert_eq!(e, not_checked("w", "linux/arm64"));
        let e = verdict(&[r], "other", &amd64(), "main-abc1234").unwrap_err().to_string();
        assert_eq!(e, not_checked("other", "linux/amd64"));
        let e = verdict(&[], "w", &amd64(), "main-abc1234").unwrap_err().to_string();
        assert_eq!(e, not_checked("w", "linux/amd64"));
    }

    #[test]
    fn one_failing_report_among_passing_ones_refuses() {
        let good = report(&[("build", "pass")], &["main-abc1234"], None);
        let bad = report(&[("build", "pass"), ("read-only", "fail")], &["main-abc1234"], None);
        let e = verdict(&[good, bad], "w", &amd64(), "main-abc1234").unwrap_err().to_string();
        assert_eq!(
            e,
            "`image check` failed for w on linux/amd64 (r.json): read-only: fix it, check again, then publish"
        );
    }

    #[test]
    fn not_a_check_report_is_said_so() {
        let e = CheckReport::parse("x.json", r#"{"images": []}"#).unwrap_err().to_string();
        assert_eq!(
            e,
            "x.json is not an `image check` report (no rows and images): pass the file `image check --report` wrote"
        );
        let e = CheckReport::parse("y.json", "not json").unwrap_err().to_string();
        assert_eq!(e, "check report y.json is not JSON: pass the file `image check --report` wrote");
    }
}
