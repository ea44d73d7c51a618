//! `cargo xtask image explain`: what the lint's model of BuildKit says a
//! Dockerfile builds: the stages the target is built on, every step that
//! runs for it (`ONBUILD` triggers where they run), the image config it ends
//! with and the files each `COPY`/`ADD` of the build context places. The
//! policy reads this model; the oracle test compares it with what BuildKit
//! builds.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context as _, Result};
use serde::Serialize;

use super::Command;
use crate::checks::lint::context;
use crate::engine::docker;
use crate::model::build::{self, Action, ImageConfig, Kind, Model, Options};
use crate::model::catalog::Catalog;
use crate::model::dockerfile;
use crate::output::table::Table;
use crate::output::{JsonOut, Report, Sinks};

#[derive(Debug, Clone, clap::Args)]
pub struct Explain {
    /// The Dockerfile.
    #[arg(long = "file", value_name = "PATH")]
    pub file: PathBuf,
    /// Its build context (default: the file's directory), for the files COPY and ADD place.
    #[arg(long, value_name = "DIR")]
    pub context: Option<PathBuf>,
    /// The stage to build (default: the last).
    #[arg(long)]
    pub target: Option<String>,
    /// A build argument, NAME=VALUE (repeatable).
    #[arg(long = "build-arg", value_name = "NAME=VALUE")]
    pub build_args: Vec<String>,
    /// The platform whose automatic ARGs (TARGETARCH, …) apply.
    #[arg(long, default_value = "linux/amd64")]
    pub platform: String,
    /// Take the config of base REF from local image IMAGE, REF=IMAGE (repeatable; other bases: empty config).
    #[arg(long = "base", value_name = "REF=IMAGE")]
    pub bases: Vec<String>,
    #[command(flatten)]
    pub out: JsonOut,
}

/// One step as the report shows it.
#[derive(Debug, Clone, Serialize)]
pub struct StepOut {
    pub stage: usize,
    pub line: usize,
    pub keyword: String,
    pub trigger: bool,
    /// What BuildKit records of it in the image's history, where the model knows it.
    pub recorded: Option<String>,
    /// For COPY/ADD from the build context: the files it places (absolute); null when not known here.
    pub files: Option<Vec<String>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ExplainReport {
    pub file: String,
    /// The stages, in order: name, base, the stage it is built on.
    pub stages: Vec<StageOut>,
    pub target: usize,
    /// The target and the stages it is built on, the first base first.
    pub chain: Vec<usize>,
    /// Every step that builds the target, in order.
    pub steps: Vec<StepOut>,
    pub config: ImageConfig,
    /// The images (or named contexts) it reads: external bases, `COPY --from` and `RUN --mount from=` images.
    pub external: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StageOut {
    pub index: usize,
    pub name: Option<String>,
    pub base: String,
    pub parent: Option<usize>,
}

fn key_value(s: &str, what: &str) -> Result<(String, String)> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| anyhow!("{what} `{s}` is not NAME=VALUE: write it as NAME=VALUE"))
}

/// BuildKit's automatic platform ARGs: `TARGET*` of `platform` (`linux/arm64/v8`), `BUILD*` of this machine.
pub fn platform_args(platform: &str) -> Result<BTreeMap<String, String>> {
    let build = match std::env::consts::ARCH {
        "aarch64" => "linux/arm64",
        _ => "linux/amd64",
    };
    let mut args = BTreeMap::new();
    for (prefix, value) in [("TARGET", platform), ("BUILD", build)] {
        let parts: Vec<&str> = value.split('/').collect();
        let [os, arch, rest @ ..] = parts.as_slice() else {
            bail!("platform `{platform}` is not OS/ARCH[/VARIANT]: write it like linux/amd64");
        };
        args.insert(format!("{prefix}PLATFORM"), value.to_string());
        args.insert(format!("{prefix}OS"), os.to_string());
        args.insert(format!("{prefix}ARCH"), arch.to_string());
        args.insert(format!("{prefix}VARIANT"), rest.first().copied().unwrap_or("").to_string());
    }
    Ok(args)
}

/// What the build context sends, as the model needs it: every file and the directories above them.
fn context_kinds(dir: &std::path::Path, dockerfile: &std::path::Path) -> Result<BTreeMap<String, Kind>> {
    let ignore = context::Ignore::read(dir, Some(dockerfile))?;
    let walked = context::walk(dir, ignore.as_ref().map(|(_, ignore)| ignore))?;
    let mut kinds = BTreeMap::new();
    for f in &walked.files {
        let mut parent = f.path.as_str();
        while let Some((up, _)) = parent.rsplit_once('/') {
            kinds.insert(up.to_string(), Kind::Dir);
            parent = up;
        }
        kinds.insert(f.path.clone(), Kind::File);
    }
    Ok(kinds)
}

impl Command for Explain {
    type Report = ExplainReport;

    fn run(&self, _catalog: &Catalog) -> Result<ExplainReport> {
        let text = std::fs::read_to_string(&self.file)
            .with_context(|| format!("reading {}: pass an existing Dockerfile to --file", self.file.display()))?;
        let df = dockerfile::parse(&text).map_err(|e| anyhow!("{}: {e}", self.file.display()))?;
        let mut args = platform_args(&self.platform)?;
        for a in &self.build_args {
            let (k, v) = key_value(a, "--build-arg")?;
            args.insert(k, v);
        }
        let mut bases = BTreeMap::new();
        for b in &self.bases {
            let (reference, image) = key_value(b, "--base")?;
            bases.insert(reference, ImageConfig::from_oci(&docker::image_config(&image)?));
        }
        let lookup = |r: &str| bases.get(r).cloned();
        let options = Options { build_args: &args, target: self.target.as_deref(), base_config: &lookup };
        let model = build::evaluate(&df, &options).map_err(|e| anyhow!("{}: {e}", self.file.display()))?;
        let context_dir = match &self.context {
            Some(c) => c.clone(),
            None => self.file.parent().map(PathBuf::from).unwrap_or_default(),
        };
        let kinds = context_kinds(&context_dir, &self.file)?;
        Ok(ExplainReport::new(self.file.display().to_string(), &model, &kinds))
    }

    fn sinks(&self) -> Sinks<'_> {
        self.out.sinks()
    }
}

impl ExplainReport {
    pub fn new(file: String, model: &Model, kinds: &BTreeMap<String, Kind>) -> ExplainReport {
        let steps = model
            .final_steps()
            .map(|s| StepOut {
                stage: s.stage,
                line: s.line,
                keyword: s.keyword.clone(),
                trigger: s.trigger,
                recorded: s.history(),
                files: match &s.action {
                    Action::Copy(c) => build::placed_files(c, kinds),
                    _ => None,
                },
            })
            .collect();
        ExplainReport {
            file,
            stages: model
                .stages
                .iter()
                .enumerate()
                .map(|(index, s)| StageOut { index, name: s.name.clone(), base: s.base.clone(), parent: s.parent })
                .collect(),
            target: model.target,
            chain: model.chain(),
            steps,
            config: model.config().clone(),
            external: model.external().into_iter().collect(),
        }
    }
}

impl Report for ExplainReport {
    fn render(&self) -> String {
        let mut out = String::new();
        let stage_name = |i: usize| self.stages[i].name.clone().unwrap_or_else(|| format!("#{i}"));
        let chain: Vec<String> = self.chain.iter().map(|&i| stage_name(i)).collect();
        let first = &self.stages[self.chain[0]].base;
        let _ = writeln!(out, "{}: {} on {first}", self.file, chain.join(" → "));
        let mut steps = Table::new(["LINE", "STAGE", "STEP", "FILES"]);
        for s in &self.steps {
            let keyword = if s.trigger { format!("{} (ONBUILD trigger)", s.keyword) } else { s.keyword.clone() };
            let files = match &s.files {
                Some(f) if f.len() > 3 => format!("{}, … ({} files)", f[..3].join(", "), f.len()),
                Some(f) => f.join(", "),
                None => "-".into(),
            };
            steps.row([s.line.to_string(), stage_name(s.stage), keyword, files]);
        }
        out += &steps.render();
        let c = &self.config;
        let list = |v: &Option<Vec<String>>| v.as_ref().map_or("-".to_string(), |v| format!("{v:?}"));
        let or_dash = |s: String| if s.is_empty() { "-".to_string() } else { s };
        let mut config = Table::new(["CONFIG", "VALUE"]);
        config.row(["User".to_string(), if c.user.is_empty() { "(root)".into() } else { c.user.clone() }]);
        config
            .row(["WorkingDir".to_string(), if c.working_dir.is_empty() { "/".into() } else { c.working_dir.clone() }]);
        config.row([
            "Env".to_string(),
            or_dash(c.env.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ")),
        ]);
        config.row(["Entrypoint".to_string(), list(&c.entrypoint)]);
        config.row(["Cmd".to_string(), list(&c.cmd)]);
        config.row(["Healthcheck".to_string(), list(&c.healthcheck)]);
        config.row([
            "Labels".to_string(),
            or_dash(c.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ")),
        ]);
        config
            .row(["ExposedPorts".to_string(), or_dash(c.exposed_ports.iter().cloned().collect::<Vec<_>>().join(" "))]);
        out.push('\n');
        out += &config.render();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_explain_table() {
        let text = "ARG UID=1000\nFROM alpine:3.21 AS base\nONBUILD USER root\nENV A=1\nFROM base\nARG UID\n\
                    COPY d* /flat/\nUSER ${UID}\nWORKDIR \"app\"\nHEALTHCHECK CMD [\"true\"]\nCMD [\"serve\"]\n";
        let df = dockerfile::parse(text).unwrap();
        let args = platform_args("linux/amd64").unwrap();
        let model = build::evaluate(&df, &Options { build_args: &args, target: None, base_config: &|_| None }).unwrap();
        let kinds: BTreeMap<String, Kind> =
            [("d1", Kind::Dir), ("d1/f", Kind::File), ("d2", Kind::Dir), ("d2/g", Kind::File), ("x", Kind::File)]
                .into_iter()
                .map(|(p, k)| (p.to_string(), k))
                .collect();
        let report = ExplainReport::new("Dockerfile".into(), &model, &kinds);
        assert_eq!(report.config.user, "1000", "the USER after the trigger's");
        crate::output::golden::check("explain-table.txt", &report.render());
    }

    #[test]
    fn platform_args_and_key_values() {
        let args = platform_args("linux/arm64/v8").unwrap();
        assert_eq!(args["TARGETARCH"], "arm64");
        assert_eq!(args["TARGETVARIANT"], "v8");
        assert_eq!(
            platform_args("amd64").unwrap_err().to_string(),
            "platform `amd64` is not OS/ARCH[/VARIANT]: write it like linux/amd64"
        );
        assert_eq!(key_value("A=b=c", "--build-arg").unwrap(), ("A".into(), "b=c".into()));
        assert_eq!(
            key_value("=x", "--base").unwrap_err().to_string(),
            "--base `=x` is not NAME=VALUE: write it as NAME=VALUE"
        );
    }
}
