//! What a GitHub Actions run is, read from its environment: the event, the
//! ref (a branch, a `v*` tag, a pull request), the default branch, and
//! what follows from them: whether the run publishes, the branch and
//! release its images are tagged for, the signer identity a keyless
//! signature must carry, and the `GITHUB_OUTPUT` lines a step writes.

use anyhow::{bail, Context, Result};
use serde_json::Value;

use super::tags::Version;

/// The run, as the `ci` commands need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// `GITHUB_EVENT_NAME`: `pull_request`, `push`, `workflow_dispatch`, …
    pub name: String,
    /// `GITHUB_REF`: `refs/heads/main`, `refs/tags/v1.2.3`, `refs/pull/7/merge`.
    pub git_ref: String,
    /// `GITHUB_HEAD_REF`: a pull request's branch.
    pub head_ref: Option<String>,
    /// `GITHUB_REPOSITORY`: `owner/repo`.
    pub repository: String,
    /// `repository.default_branch` of the event payload.
    pub default_branch: String,
    /// `GITHUB_SERVER_URL`.
    pub server_url: String,
    /// The workflow file, from `GITHUB_WORKFLOW_REF`
    /// (`owner/repo/.github/workflows/images.yml@refs/…`).
    pub workflow_path: String,
}

/// What a ref names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ref<'a> {
    Branch(&'a str),
    Tag(&'a str),
    Pull,
    Other,
}

pub fn parse_ref(git_ref: &str) -> Ref<'_> {
    if let Some(b) = git_ref.strip_prefix("refs/heads/") {
        Ref::Branch(b)
    } else if let Some(t) = git_ref.strip_prefix("refs/tags/") {
        Ref::Tag(t)
    } else if git_ref.starts_with("refs/pull/") {
        Ref::Pull
    } else {
        Ref::Other
    }
}

impl Event {
    /// From the variables GitHub sets (`get`) and the event payload.
    pub fn from_env(get: &dyn Fn(&str) -> Option<String>, payload: &Value) -> Result<Event> {
        let need = |name: &str| {
            get(name).filter(|v| !v.is_empty()).with_context(|| {
                format!("{name} is not set: run this in GitHub Actions, or in `cargo xtask ci rehearse`")
            })
        };
        let repository = need("GITHUB_REPOSITORY")?;
        let Some(default_branch) = payload["repository"]["default_branch"].as_str() else {
            bail!(
                "the event payload (GITHUB_EVENT_PATH) has no repository.default_branch: pass the event GitHub wrote"
            );
        };
        let workflow_ref = need("GITHUB_WORKFLOW_REF")?;
        let Some(workflow_path) = workflow_ref
            .split_once('@')
            .and_then(|(path, _)| path.strip_prefix(&format!("{repository}/")))
            .map(str::to_string)
        else {
            bail!("GITHUB_WORKFLOW_REF `{workflow_ref}` is not `{repository}/PATH@REF`");
        };
        Ok(Event {
            name: need("GITHUB_EVENT_NAME")?,
            git_ref: need("GITHUB_REF")?,
            head_ref: get("GITHUB_HEAD_REF").filter(|v| !v.is_empty()),
            repository,
            default_branch: default_branch.to_string(),
            server_url: get("GITHUB_SERVER_URL").unwrap_or_else(|| "https://github.com".into()),
            workflow_path,
        })
    }

    /// A push to the default branch or of a `v*` tag: the runs that push,
    /// sign and tag images.
    pub fn publishes(&self) -> bool {
        self.name == "push"
            && match parse_ref(&self.git_ref) {
                Ref::Branch(b) => b == self.default_branch,
                Ref::Tag(t) => t.starts_with('v'),
                _ => false,
            }
    }

    /// The branch the images are tagged for (`<branch>-<sha>`, `latest` on
    /// the default one): a pushed branch, or a pull request's head. A tag
    /// has none (its images get `sha-<sha>` and the version's tags).
    pub fn branch(&self) -> Option<String> {
        match parse_ref(&self.git_ref) {
            Ref::Branch(b) => Some(b.to_string()),
            Ref::Pull => self.head_ref.clone(),
            _ => None,
        }
    }

    /// The release a `vX.Y.Z` tag makes (`X.Y.Z`); none for another ref or
    /// a `v*` tag that is no version (which the build notes).
    pub fn release(&self) -> Option<String> {
        match parse_ref(&self.git_ref) {
            Ref::Tag(t) if t.starts_with('v') => Version::parse(t).ok().map(|v| v.to_string()),
            _ => None,
        }
    }

    /// The keyless signer a published image must carry: this workflow file,
    /// run for the default branch or a version tag, and nothing else.
    pub fn identity_regexp(&self) -> String {
        format!(
            "^{}@refs/(heads/{}|tags/v[0-9]+\\.[0-9]+\\.[0-9]+(-[0-9A-Za-z.-]+)?)$",
            regex::escape(&format!(
                "{}/{}/{}",
                self.server_url.trim_end_matches('/'),
                self.repository,
                self.workflow_path
            )),
            regex::escape(&self.default_branch)
        )
    }
}

/// The lines that set output NAME to VALUE in a `GITHUB_OUTPUT` file: one
/// `NAME=VALUE` line, or GitHub's delimiter form for a value with newlines.
pub fn output_lines(name: &str, value: &str) -> String {
    if !value.contains('\n') {
        return format!("{name}={value}\n");
    }
    let mut delimiter = "ralph_EOF".to_string();
    while value.contains(&delimiter) {
        delimiter.push('_');
    }
    format!("{name}<<{delimiter}\n{value}\n{delimiter}\n")
}

/// Reads a `GITHUB_OUTPUT` file's `NAME=VALUE` and `NAME<<DELIM` entries.
pub fn parse_outputs(text: &str) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line.is_empty() {
            continue;
        }
        if let Some((name, delimiter)) = line.split_once("<<") {
            let mut value = Vec::new();
            loop {
                match lines.next() {
                    Some(l) if l == delimiter => break,
                    Some(l) => value.push(l),
                    None => bail!("output `{name}` has no closing `{delimiter}`"),
                }
            }
            out.push((name.to_string(), value.join("\n")));
        } else if let Some((name, value)) = line.split_once('=') {
            out.push((name.to_string(), value.to_string()));
        } else {
            bail!("`{line}` is neither NAME=VALUE nor NAME<<DELIMITER");
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(name: &str, git_ref: &str) -> Event {
        let vars = [
            ("GITHUB_EVENT_NAME", name),
            ("GITHUB_REF", git_ref),
            ("GITHUB_HEAD_REF", if name == "pull_request" { "feature/x" } else { "" }),
            ("GITHUB_REPOSITORY", "Acme/ralph.io"),
            ("GITHUB_WORKFLOW_REF", "Acme/ralph.io/.github/workflows/images.yml@refs/heads/main"),
        ];
        let get = |k: &str| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string());
        Event::from_env(&get, &json!({"repository": {"default_branch": "main"}})).unwrap()
    }

    #[test]
    fn which_runs_publish_and_what_they_tag() {
        let pr = event("pull_request", "refs/pull/7/merge");
        assert!(!pr.publishes());
        assert_eq!(pr.branch().as_deref(), Some("feature/x"));
        let main = event("push", "refs/heads/main");
        assert!(main.publishes());
        assert_eq!((main.branch().as_deref(), main.release()), (Some("main"), None));
        assert!(!event("push", "refs/heads/other").publishes());
        let tag = event("push", "refs/tags/v1.2.3");
        assert!(tag.publishes());
        assert_eq!((tag.branch(), tag.release().as_deref()), (None, Some("1.2.3")));
        assert_eq!(event("push", "refs/tags/v2").release(), None, "a v* tag that is no version");
        assert_eq!(event("push", "refs/tags/v1.2.3-rc.1").release().as_deref(), Some("1.2.3-rc.1"));
        assert!(!event("workflow_dispatch", "refs/heads/main").publishes());
    }

    #[test]
    fn the_identity_is_this_workflow_on_main_or_a_version_tag_escaped() {
        let id = event("push", "refs/heads/main").identity_regexp();
        assert_eq!(
            id,
            r"^https://github\.com/Acme/ralph\.io/\.github/workflows/images\.yml@refs/(heads/main|tags/v[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?)$"
        );
        let re = regex::Regex::new(&id).unwrap();
        let base = "https://github.com/Acme/ralph.io/.github/workflows/images.yml@refs/";
        assert!(re.is_match(&format!("{base}heads/main")));
        assert!(re.is_match(&format!("{base}tags/v1.2.3")));
        assert!(re.is_match(&format!("{base}tags/v1.2.3-rc.1")));
        assert!(!re.is_match(&format!("{base}heads/feature")), "another branch");
        assert!(!re.is_match(&format!("{base}tags/v1")), "a tag that is no version");
        assert!(!re.is_match("https://github.com/Acme/ralph.io/.github/workflows/other.yml@refs/heads/main"));
        assert!(!re.is_match("https://github.com/Acme/ralphxio/.github/workflows/images.yml@refs/heads/main"));
        assert!(!re.is_match(&format!("{base}heads/main/../x")), "anchored");
    }

    #[test]
    fn missing_variables_are_named() {
        let get = |_: &str| None;
        let e = Event::from_env(&get, &json!({})).unwrap_err().to_string();
        assert!(e.contains("GITHUB_REPOSITORY is not set"), "{e}");
    }

    #[test]
    fn outputs_round_trip_one_line_and_many() {
        let text = output_lines("matrix", "{\"include\":[]}") + &output_lines("notes", "a\nb ralph_EOF");
        assert!(text.starts_with("matrix={\"include\":[]}\nnotes<<ralph_EOF_\n"), "{text}");
        let parsed = parse_outputs(&text).unwrap();
        assert_eq!(parsed[0], ("matrix".into(), "{\"include\":[]}".into()));
        assert_eq!(parsed[1], ("notes".into(), "a\nb ralph_EOF".into()));
        assert!(parse_outputs("x<<END\nno end\n").is_err());
    }
}
