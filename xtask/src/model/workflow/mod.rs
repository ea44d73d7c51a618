//! A GitHub Actions workflow file as the rehearsal reads it: its jobs in
//! the order `needs:` gives, each job's environment, matrix, outputs and
//! steps (`run:` or `uses:`), and the rule that keeps it thin: every `run:`
//! is one `cargo xtask …` call or the one tool-install script.

pub mod expr;

use anyhow::{bail, Context, Result};
use serde_norway::Value as Yaml;

/// The script a runner installs its host tools with (the one `run:` that is
/// not an xtask call).
pub const TOOLS_SCRIPT: &str = "bash scripts/install-tools.sh";

#[derive(Debug, Clone)]
pub struct Workflow {
    /// Top-level `env:` (templates, in file order).
    pub env: Vec<(String, String)>,
    /// Jobs in an order every `needs:` allows (file order otherwise).
    pub jobs: Vec<Job>,
}

#[derive(Debug, Clone)]
pub struct Job {
    pub id: String,
    pub needs: Vec<String>,
    pub condition: Option<String>,
    pub env: Vec<(String, String)>,
    /// `strategy.matrix`: a template (`${{ fromJSON(…) }}`) or a mapping.
    pub matrix: Option<Yaml>,
    pub outputs: Vec<(String, String)>,
    pub timeout_minutes: u64,
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone)]
pub struct Step {
    pub id: Option<String>,
    pub name: Option<String>,
    pub condition: Option<String>,
    pub env: Vec<(String, String)>,
    pub action: StepAction,
}

#[derive(Debug, Clone)]
pub enum StepAction {
    Run(String),
    /// `owner/repo[/path]` (the `@ref` cut off) and its `with:`.
    Uses {
        action: String,
        with: Vec<(String, String)>,
    },
}

impl Step {
    /// Its name for reports: `name:`, else the action or the command.
    pub fn label(&self) -> String {
        if let Some(name) = &self.name {
            return name.clone();
        }
        match &self.action {
            StepAction::Run(run) => run.lines().next().unwrap_or("").to_string(),
            StepAction::Uses { action, .. } => action.clone(),
        }
    }
}

fn text(v: &Yaml) -> Option<String> {
    match v {
        Yaml::String(s) => Some(s.clone()),
        Yaml::Bool(b) => Some(b.to_string()),
        Yaml::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn pairs(v: &Yaml, what: &str) -> Result<Vec<(String, String)>> {
    let Some(map) = v.as_mapping() else {
        if v.is_null() {
            return Ok(Vec::new());
        }
        bail!("{what} is not a mapping");
    };
    map.iter()
        .map(|(k, v)| {
            let k = text(k).with_context(|| format!("{what}: a key that is not text"))?;
            let v = text(v).with_context(|| format!("{what}.{k} is not text"))?;
            Ok((k, v))
        })
        .collect()
}

impl Workflow {
    pub fn parse(source: &str) -> Result<Workflow> {
        let doc: Yaml = serde_norway::from_str(source).context("the workflow is not valid YAML")?;
        let env = pairs(&doc["env"], "env")?;
        let Some(jobs) = doc["jobs"].as_mapping() else { bail!("the workflow has no jobs") };
        let mut parsed = Vec::new();
        for (id, job) in jobs {
            let id = text(id).context("a job id that is not text")?;
            parsed.push(parse_job(&id, job).with_context(|| format!("job `{id}`"))?);
        }
        Ok(Workflow { env, jobs: order(parsed)? })
    }

    #[cfg(test)]
    pub fn job(&self, id: &str) -> Option<&Job> {
        self.jobs.iter().find(|j| j.id == id)
    }
}

fn parse_job(id: &str, job: &Yaml) -> Result<Job> {
    let needs = match &job["needs"] {
        Yaml::Null => Vec::new(),
        Yaml::String(s) => vec![s.clone()],
        Yaml::Sequence(items) => items.iter().filter_map(text).collect(),
        _ => bail!("`needs` is neither a job nor a list of jobs"),
    };
    let steps = job["steps"]
        .as_sequence()
        .context("no steps")?
        .iter()
        .enumerate()
        .map(|(n, s)| parse_step(s).with_context(|| format!("step {}", n + 1)))
        .collect::<Result<Vec<_>>>()?;
    let matrix = match &job["strategy"]["matrix"] {
        Yaml::Null => None,
        m => Some(m.clone()),
    };
    Ok(Job {
        id: id.to_string(),
        needs,
        condition: text(&job["if"]),
        env: pairs(&job["env"], "env")?,
        matrix,
        outputs: pairs(&job["outputs"], "outputs")?,
        timeout_minutes: job["timeout-minutes"].as_u64().unwrap_or(360),
        steps,
    })
}

fn parse_step(step: &Yaml) -> Result<Step> {
    let action = match (text(&step["run"]), text(&step["uses"])) {
        (Some(run), None) => StepAction::Run(run),
        (None, Some(uses)) => {
            let action = uses.split('@').next().unwrap_or("").to_string();
            StepAction::Uses { action, with: pairs(&step["with"], "with")? }
        }
        _ => bail!("a step needs exactly one of `run` and `uses`"),
    };
    Ok(Step {
        id: text(&step["id"]),
        name: text(&step["name"]),
        condition: text(&step["if"]),
        env: pairs(&step["env"], "env")?,
        action,
    })
}

/// Jobs sorted so that each comes after what it needs (file order kept
/// otherwise); a need that is not a job, or a circle, is an error.
fn order(jobs: Vec<Job>) -> Result<Vec<Job>> {
    for job in &jobs {
        for need in &job.needs {
            if !jobs.iter().any(|j| &j.id == need) {
                bail!("job `{}` needs `{need}`, which is not a job", job.id);
            }
        }
    }
    let mut done: Vec<Job> = Vec::new();
    let mut left = jobs;
    while !left.is_empty() {
        let Some(i) = left.iter().position(|j| j.needs.iter().all(|n| done.iter().any(|d| &d.id == n))) else {
            bail!(
                "the jobs' needs form a circle: {}",
                left.iter().map(|j| j.id.as_str()).collect::<Vec<_>>().join(", ")
            );
        };
        done.push(left.remove(i));
    }
    Ok(done)
}

/// Whether a `run:` is one the workflow may have: a single `cargo xtask …`
/// call whose words are plain (arguments come from `env:`), or the
/// tool-install script. The reason when it is not.
pub fn thin_run(run: &str) -> std::result::Result<(), String> {
    let line = run.trim();
    if line.contains('\n') {
        return Err("more than one line".into());
    }
    if line == TOOLS_SCRIPT {
        return Ok(());
    }
    let words: Vec<&str> = line.split_whitespace().collect();
    if words.len() < 3 || words[..2] != ["cargo", "xtask"] {
        return Err(format!("not `cargo xtask …` nor `{TOOLS_SCRIPT}`"));
    }
    if let Some(w) = words[2..].iter().find(|w| !w.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')) {
        return Err(format!("`{w}` is not a plain word: pass values through `env:`"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const WORKFLOW: &str = r#"
env:
  A: "1"
jobs:
  tag:
    needs: [plan, publish]
    steps: [{run: cargo xtask ci tag}]
  publish:
    needs: plan
    if: github.event_name == 'push'
    strategy:
      matrix:
        image: ${{ fromJSON(needs.plan.outputs.products) }}
    steps:
      - uses: actions/checkout@08c6903cd8c0fde910a37f88322edcfb5dd907a8 # v5.0.0
        with: {persist-credentials: false}
      - id: p
        run: cargo xtask ci publish
        env: {IMAGE: "${{ matrix.image }}"}
  plan:
    timeout-minutes: 15
    outputs: {products: "${{ steps.plan.outputs.products }}"}
    steps: [{id: plan, run: cargo xtask ci plan}]
"#;

    #[test]
    fn jobs_come_after_what_they_need() {
        let w = Workflow::parse(WORKFLOW).unwrap();
        let ids: Vec<&str> = w.jobs.iter().map(|j| j.id.as_str()).collect();
        assert_eq!(ids, ["plan", "publish", "tag"]);
        let publish = w.job("publish").unwrap();
        assert_eq!(publish.needs, ["plan"]);
        assert_eq!(publish.timeout_minutes, 360, "GitHub's default");
        assert!(matches!(&publish.steps[0].action, StepAction::Uses { action, with }
            if action == "actions/checkout" && with == &[("persist-credentials".to_string(), "false".to_string())]));
        assert_eq!(publish.steps[1].env, [("IMAGE".to_string(), "${{ matrix.image }}".to_string())]);
        assert_eq!(w.env, [("A".to_string(), "1".to_string())]);
    }

    #[test]
    fn unknown_needs_and_circles_are_refused() {
        let e = Workflow::parse("jobs:\n  a:\n    needs: b\n    steps: [{run: x}]\n").unwrap_err();
        assert!(format!("{e:#}").contains("needs `b`, which is not a job"), "{e:#}");
        let e = Workflow::parse(
            "jobs:\n  a:\n    needs: b\n    steps: [{run: x}]\n  b:\n    needs: a\n    steps: [{run: x}]\n",
        )
        .unwrap_err();
        assert!(format!("{e:#}").contains("circle"), "{e:#}");
        let e = Workflow::parse("jobs:\n  a:\n    steps: [{run: x, uses: y}]\n").unwrap_err();
        assert!(format!("{e:#}").contains("exactly one of `run` and `uses`"), "{e:#}");
    }

    #[test]
    fn a_thin_run_is_one_xtask_call_or_the_tools_script() {
        assert_eq!(thin_run("cargo xtask ci check\n"), Ok(()));
        assert_eq!(thin_run(TOOLS_SCRIPT), Ok(()));
        assert!(thin_run("cargo xtask ci check\ncargo xtask ci push").unwrap_err().contains("more than one line"));
        assert!(thin_run("cargo xtask image check \"$IMAGE\"").unwrap_err().contains("plain word"));
        assert!(thin_run("cargo xtask ci check | tee x").unwrap_err().contains("plain word"));
        assert!(thin_run("echo hi").unwrap_err().contains("not `cargo xtask"));
        assert!(thin_run("cargo xtask").is_err());
    }
}
