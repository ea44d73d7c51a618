//! What BuildKit builds from a parsed Dockerfile, stage by stage: the
//! instructions each stage runs, in order (a parent stage's `ONBUILD`
//! triggers first, where BuildKit runs them), their words expanded as
//! BuildKit expands them, the files `COPY` and `ADD` place, and the image
//! config each stage ends with. The policy reads this model, not the raw
//! text; `tests/lint_oracle.rs` builds the lint corpus with BuildKit and
//! compares what it produced with what this model says.
//!
//! BuildKit's rules modelled here (dockerfile2llb, each checked against
//! BuildKit's output by the oracle test):
//!
//! * `FROM` names an earlier stage only when it equals that stage's name exactly (names are lower-cased where
//!   they are declared): `FROM Base` is an image reference, which BuildKit refuses for its capital letter.
//!   `COPY --from` lower-cases, and also takes a stage's index.
//! * A stage built on another inherits its config, its ARGs and its pending `ONBUILD` triggers, which run
//!   first and are consumed. An external base's config is what `Options::base_config` says (empty when not
//!   known); BuildKit adds its default `PATH` when the base has none.
//! * Variables: the stage's ENV wins over its ARGs. An ARG is visible once declared in the stage or a stage it is
//!   built on. Its value is the build argument if one is given, else its default (expanded), else the value it
//!   already had, else, for a bare `ARG NAME`, the global ARG's. Global and automatic platform ARGs reach a
//!   stage only through such an `ARG`.
//! * `ENV` and `LABEL` keys and values are expanded with the variables as they were before the instruction
//!   (`ENV a=1 b=$a` gives `b` the old `a`), with the file's escape character.
//! * `COPY`/`ADD` sources and destination and `--from`, `USER`, `WORKDIR`, `EXPOSE`, `VOLUME` and
//!   `STOPSIGNAL` are expanded; `RUN`, `CMD`, `ENTRYPOINT` and `HEALTHCHECK` are not (their shell does it).
//! * A relative `WORKDIR` (after expansion, quotes removed) is joined to the one before; a relative `COPY`
//!   destination to the `WORKDIR`.
//! * Shell forms run under the stage's `SHELL` (default `/bin/sh -c`); an exec form whose program is a shell
//!   given `-c` runs a shell script too ([`Step::scripts`]).
//! * `ENTRYPOINT` clears the `CMD` a stage inherited unless the stage set one itself.
//! * A wildcard source copies each match as if it were named: several directories are flattened into the
//!   destination like several named directories.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

use super::dockerfile::{self, Args, Dockerfile, Heredoc, Instruction, ParseError, Stage};

/// BuildKit's default `PATH` on Linux (`system.DefaultPathEnv`).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The parts of an image config a Dockerfile sets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImageConfig {
    pub user: String,
    pub working_dir: String,
    /// In order, as `NAME=value` would be listed.
    pub env: Vec<(String, String)>,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    /// `Healthcheck.Test`: `["NONE"]`, `["CMD", …]` or `["CMD-SHELL", "…"]`.
    pub healthcheck: Option<Vec<String>>,
    pub labels: BTreeMap<String, String>,
    /// `80/tcp`, `53/udp`.
    pub exposed_ports: BTreeSet<String>,
    pub volumes: BTreeSet<String>,
    pub shell: Option<Vec<String>>,
    pub stop_signal: Option<String>,
    pub on_build: Vec<String>,
}

impl ImageConfig {
    /// The `config` object of an OCI image config (or `docker image inspect`'s `.Config`).
    pub fn from_oci(config: &Value) -> ImageConfig {
        let strings = |v: &Value| -> Option<Vec<String>> {
            v.as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect())
        };
        let keys =
            |v: &Value| -> BTreeSet<String> { v.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default() };
        ImageConfig {
            user: config["User"].as_str().unwrap_or_default().to_string(),
            working_dir: config["WorkingDir"].as_str().unwrap_or_default().to_string(),
            env: strings(&config["Env"])
                .unwrap_or_default()
                .into_iter()
                .map(|e| match e.split_once('=') {
                    Some((k, v)) => (k.to_string(), v.to_string()),
                    None => (e, String::new()),
                })
                .collect(),
            entrypoint: strings(&config["Entrypoint"]),
            cmd: strings(&config["Cmd"]),
            healthcheck: strings(&config["Healthcheck"]["Test"]),
            labels: config["Labels"]
                .as_object()
                .map(|o| o.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect())
                .unwrap_or_default(),
            exposed_ports: keys(&config["ExposedPorts"]),
            volumes: keys(&config["Volumes"]),
            shell: strings(&config["Shell"]),
            stop_signal: config["StopSignal"].as_str().map(str::to_string),
            on_build: strings(&config["OnBuild"]).unwrap_or_default(),
        }
    }

    pub fn env_value(&self, name: &str) -> Option<&str> {
        self.env.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    fn set_env(&mut self, name: String, value: String) {
        match self.env.iter_mut().find(|(k, _)| *k == name) {
            Some(entry) => entry.1 = value,
            None => self.env.push((name, value)),
        }
    }
}

/// Where a `COPY --from` or a `RUN --mount from=` takes its files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum From {
    Stage(usize),
    /// An image or a named build context.
    Image(String),
}

/// A `COPY` or `ADD`, expanded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Copy {
    pub add: bool,
    pub from: Option<From>,
    /// Sources after expansion (heredocs are in `heredocs`).
    pub sources: Vec<String>,
    #[serde(skip)]
    pub heredocs: Vec<Heredoc>,
    /// Absolute; a trailing `/` when it names a directory.
    pub dest: String,
    pub checksum: bool,
}

/// What an instruction does, its words expanded where BuildKit expands them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Run {
        /// The shell a shell form runs under.
        shell: Vec<String>,
        /// The exec form.
        exec: Option<Vec<String>>,
        /// The shell form (without heredoc bodies).
        text: String,
        #[serde(skip)]
        heredocs: Vec<Heredoc>,
        /// `--mount` values.
        mounts: Vec<String>,
        /// The variables its shell sees: the stage's ARGs and ENV.
        #[serde(skip)]
        vars: BTreeMap<String, String>,
        /// The stage's ARGs that have a value, in the order they were declared (BuildKit records them).
        #[serde(skip)]
        args: Vec<(String, String)>,
    },
    Copy(Copy),
    Env(Vec<(String, String)>),
    /// Declared ARGs and the value each has (None: unset).
    Arg(Vec<(String, Option<String>)>),
    Label(Vec<(String, String)>),
    User(String),
    Workdir {
        /// As expanded, before it is joined to the WORKDIR before it.
        written: String,
        path: String,
    },
    Expose(Vec<String>),
    Cmd(Vec<String>),
    Entrypoint(Vec<String>),
    Healthcheck(Vec<String>),
    Shell(Vec<String>),
    Volume(Vec<String>),
    StopSignal(String),
    Onbuild(String),
    Other,
}

/// One instruction as it runs in a stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    /// The stage it runs in.
    pub stage: usize,
    /// Its line; for a trigger, the line of the `ONBUILD` (0 when it came from an external base).
    pub line: usize,
    pub keyword: String,
    /// Whether it is an `ONBUILD` trigger of the stage's base.
    pub trigger: bool,
    pub action: Action,
}

const SHELLS: &[&str] = &["sh", "bash", "ash", "dash", "zsh", "ksh", "mksh"];

impl Step {
    /// The shell scripts a `RUN` runs: its shell form and heredoc bodies, or the script an exec form hands a
    /// shell with `-c` (`["/bin/sh", "-c", "…"]`).
    pub fn scripts(&self) -> Vec<String> {
        match &self.action {
            Action::Run { exec: Some(argv), .. } => shell_c_script(argv).into_iter().collect(),
            Action::Run { text, heredocs, .. } => {
                std::iter::once(text.clone()).chain(heredocs.iter().map(|h| h.content.clone())).collect()
            }
            _ => Vec::new(),
        }
    }

    /// What BuildKit records of this step in the image's history (`created_by`), where the model knows it:
    /// `RUN` (its ARGs, then the command; flags are not recorded; a `<<-` or several heredocs not modelled),
    /// `ENV`, `LABEL`, `USER`, `WORKDIR`.
    pub fn history(&self) -> Option<String> {
        let pairs = |kv: &[(String, String)]| kv.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ");
        let run_args = |args: &[(String, String)]| {
            if args.is_empty() {
                String::new()
            } else {
                format!("|{} {} ", args.len(), pairs(args))
            }
        };
        Some(match &self.action {
            Action::Run { exec: Some(argv), args, .. } => format!("RUN {}{}", run_args(args), argv.join(" ")),
            Action::Run { shell, exec: None, text, heredocs, args, .. } => {
                let script = match heredocs.as_slice() {
                    [] => text.clone(),
                    // A lone heredoc is the script; its shebang, if any, would make it a file to execute.
                    [h] if lone_heredoc(text, &h.name) && !h.content.starts_with("#!") => h.content.clone(),
                    // Otherwise the command line and the body (as written: no `<<-`) with its delimiter.
                    [h] if !h.strip_tabs => format!("{text}\n{}{}", h.content, h.name),
                    _ => return None,
                };
                format!("RUN {}{} {script}", run_args(args), shell.join(" "))
            }
            Action::Env(kv) => format!("ENV {}", pairs(kv)),
            Action::Label(kv) => format!("LABEL {}", pairs(kv)),
            Action::User(user) => format!("USER {user}"),
            Action::Workdir { path, .. } => format!("WORKDIR {path}"),
            _ => return None,
        })
    }

    /// The stages a `COPY --from` or a `RUN --mount=from=` of this step reads.
    pub fn reads_stages(&self, stages: &[StageModel]) -> Vec<usize> {
        match &self.action {
            Action::Copy(Copy { from: Some(From::Stage(i)), .. }) => vec![*i],
            Action::Run { mounts, .. } => mounts
                .iter()
                .filter_map(|m| m.split(',').find_map(|kv| kv.trim().strip_prefix("from=")))
                .filter_map(|name| stage_by_ref(stages, self.stage, name))
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// Whether a RUN's command line is only the heredoc `name` (`<<EOF`, `<<-"EOF"`).
fn lone_heredoc(text: &str, name: &str) -> bool {
    let Some(word) = text.trim().strip_prefix("<<") else { return false };
    let word = word.strip_prefix('-').unwrap_or(word);
    word.trim_matches(|c| c == '"' || c == '\'') == name
}

/// The script of `[shell, options…, -c, script, …]`.
pub fn shell_c_script(argv: &[String]) -> Option<String> {
    let program = argv.first()?;
    let name = program.rsplit('/').next().unwrap_or(program);
    if !SHELLS.contains(&name) {
        return None;
    }
    let mut i = 1;
    while let Some(arg) = argv.get(i) {
        if arg == "-o" || arg == "+o" {
            i += 2;
            continue;
        }
        if !arg.starts_with('-') || arg == "--" {
            return None;
        }
        if !arg.starts_with("--") && arg.contains('c') {
            return argv.get(i + 1).cloned();
        }
        i += 1;
    }
    None
}

/// A stage as BuildKit builds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StageModel {
    #[serde(skip)]
    pub stage: Stage,
    pub name: Option<String>,
    pub base: String,
    /// The earlier stage it is built on.
    pub parent: Option<usize>,
    pub steps: Vec<Step>,
    pub config: ImageConfig,
}

/// The whole file as BuildKit builds one target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Model {
    /// The ARGs before the first `FROM`.
    pub globals: Vec<Step>,
    pub stages: Vec<StageModel>,
    /// The stage that is built.
    pub target: usize,
}

/// What the model needs besides the file.
pub struct Options<'a> {
    /// Build arguments, the platform's automatic ARGs (`TARGETARCH`, …) among them.
    pub build_args: &'a BTreeMap<String, String>,
    /// The stage to build (the last when `None`).
    pub target: Option<&'a str>,
    /// The config of an external base image, when known.
    pub base_config: &'a dyn Fn(&str) -> Option<ImageConfig>,
}

impl Model {
    /// The target and the stages it is built on, the first base first.
    pub fn chain(&self) -> Vec<usize> {
        let mut chain = vec![self.target];
        while let Some(parent) = self.stages[*chain.last().unwrap_or(&self.target)].parent {
            chain.push(parent);
        }
        chain.reverse();
        chain
    }

    /// Every step that builds the target, in order.
    pub fn final_steps(&self) -> impl Iterator<Item = &Step> {
        self.chain().into_iter().flat_map(move |i| self.stages[i].steps.iter())
    }

    /// The target's image config.
    pub fn config(&self) -> &ImageConfig {
        &self.stages[self.target].config
    }

    /// The images (or named build contexts) the file reads: external bases (not `scratch`), `COPY --from` and
    /// `RUN --mount from=` images.
    pub fn external(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for (i, s) in self.stages.iter().enumerate() {
            if s.parent.is_none() && s.base != "scratch" {
                out.insert(s.base.clone());
            }
            for step in &s.steps {
                match &step.action {
                    Action::Copy(Copy { from: Some(From::Image(image)), .. }) => {
                        out.insert(image.clone());
                    }
                    Action::Run { mounts, .. } => {
                        for from in
                            mounts.iter().filter_map(|m| m.split(',').find_map(|kv| kv.trim().strip_prefix("from=")))
                        {
                            if stage_by_ref(&self.stages, i, from).is_none() {
                                out.insert(from.to_string());
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        out
    }

    /// The stages whose work reaches the target: its chain, and what a `COPY --from` or a `RUN --mount
    /// from=` of a reaching stage reads, with their chains.
    pub fn reaching(&self) -> BTreeSet<usize> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![self.target];
        while let Some(i) = todo.pop() {
            if !seen.insert(i) {
                continue;
            }
            todo.extend(self.stages[i].parent);
            for step in &self.stages[i].steps {
                todo.extend(step.reads_stages(&self.stages));
            }
        }
        seen
    }
}

/// A stage named by `COPY --from`/`--mount from=`: its name (any case) or index, before `before`.
fn stage_by_ref(stages: &[StageModel], before: usize, name: &str) -> Option<usize> {
    let lower = name.to_lowercase();
    if let Some(i) = stages[..before.min(stages.len())].iter().position(|s| s.name.as_deref() == Some(lower.as_str())) {
        return Some(i);
    }
    name.parse::<usize>().ok().filter(|&i| i < before)
}

/// The variables one stage has while it runs.
#[derive(Clone, Default)]
struct State {
    config: ImageConfig,
    args: BTreeMap<String, String>,
    /// `args` in the order they were declared.
    declared: Vec<(String, String)>,
    cmd_set: bool,
    /// Instructions behind `config.on_build`, in the same order.
    triggers: Vec<Instruction>,
}

impl State {
    fn lookup(&self, name: &str) -> Option<String> {
        self.config.env_value(name).map(str::to_string).or_else(|| self.args.get(name).cloned())
    }
}

/// Builds the model of `df`.
pub fn evaluate(df: &Dockerfile, opts: &Options<'_>) -> Result<Model, ParseError> {
    let escape = df.directives.escape;
    let stages = df.stages(opts.build_args)?;
    let first_from = stages.first().map_or(df.instructions.len(), |s| s.instructions.start - 1);

    // Global ARGs, as `Dockerfile::stages` reads them.
    let mut global: BTreeMap<String, String> = BTreeMap::new();
    let mut globals = Vec::new();
    for ins in df.instructions[..first_from].iter().filter(|i| i.keyword == "ARG") {
        let mut declared = Vec::new();
        for (key, default) in dockerfile::key_values_raw("ARG", text(ins), escape) {
            let value = match (opts.build_args.get(&key), default) {
                (Some(v), _) => Some(v.clone()),
                (None, Some(raw)) => Some(expand(&raw, &|k| global.get(k).cloned(), escape, ins.line)?),
                (None, None) => None,
            };
            if let Some(v) = &value {
                global.insert(key.clone(), v.clone());
            }
            declared.push((key, value));
        }
        globals.push(Step {
            stage: usize::MAX,
            line: ins.line,
            keyword: "ARG".into(),
            trigger: false,
            action: Action::Arg(declared),
        });
    }

    let mut models: Vec<StageModel> = Vec::new();
    let mut finals: Vec<State> = Vec::new();
    for stage in &stages {
        let parent = stages[..stage.index].iter().rposition(|s| s.name.as_deref() == Some(stage.base.as_str()));
        let mut state = match parent {
            Some(p) => {
                let mut s = finals[p].clone();
                s.config.on_build.clear();
                s.triggers.clear();
                s
            }
            None => {
                if stage.base != "scratch" && !valid_reference(&stage.base) {
                    return Err(ParseError {
                        line: stage.line,
                        message: format!(
                            "failed to parse stage name \"{}\": invalid reference format: repository name must be lowercase",
                            stage.base
                        ),
                    });
                }
                let config = if stage.base == "scratch" { None } else { (opts.base_config)(&stage.base) };
                let mut config = config.unwrap_or_default();
                let triggers =
                    config.on_build.iter().map(|t| trigger_instruction(t, &[], 0)).collect::<Result<Vec<_>, _>>()?;
                if config.env_value("PATH").is_none() {
                    config.env.insert(0, ("PATH".into(), DEFAULT_PATH.into()));
                }
                State { config, args: BTreeMap::new(), declared: Vec::new(), cmd_set: false, triggers }
            }
        };
        let inherited = match parent {
            Some(p) => finals[p].triggers.clone(),
            None => std::mem::take(&mut state.triggers),
        };
        state.config.on_build.clear();
        let mut steps = Vec::new();
        for ins in &inherited {
            steps.push(dispatch(ins, true, stage.index, &mut state, &global, &models, opts, escape)?);
        }
        for ins in &df.instructions[stage.instructions.clone()] {
            steps.push(dispatch(ins, false, stage.index, &mut state, &global, &models, opts, escape)?);
        }
        models.push(StageModel {
            stage: stage.clone(),
            name: stage.name.clone(),
            base: stage.base.clone(),
            parent,
            steps,
            config: state.config.clone(),
        });
        finals.push(state);
    }

    let target = match opts.target {
        Some(name) => {
            let lower = name.to_lowercase();
            models
                .iter()
                .position(|s| s.name.as_deref() == Some(lower.as_str()))
                .ok_or_else(|| ParseError { line: 1, message: format!("target stage \"{name}\" could not be found") })?
        }
        None => models.len().saturating_sub(1),
    };
    Ok(Model { globals, stages: models, target })
}

/// A reference BuildKit's `FROM` accepts: its repository part (before a tag or digest) in lower case.
fn valid_reference(reference: &str) -> bool {
    let name = reference.split('@').next().unwrap_or(reference);
    // A tag follows the last ':' after the last '/' (a ':' before it is a registry's port).
    let last_slash = name.rfind('/').map_or(0, |i| i + 1);
    let repository = match name[last_slash..].rfind(':') {
        Some(colon) => &name[..last_slash + colon],
        None => name,
    };
    // The registry host (first part, with a dot, a colon or `localhost`) may have capitals.
    let path = match repository.split_once('/') {
        Some((host, rest)) if host.contains('.') || host.contains(':') || host == "localhost" => rest,
        _ => repository,
    };
    !path.is_empty() && !path.chars().any(|c| c.is_ascii_uppercase())
}

fn text(ins: &Instruction) -> &str {
    match &ins.args {
        Args::Shell(s) => s,
        Args::Exec(_) => "",
    }
}

fn expand(word: &str, vars: &dyn Fn(&str) -> Option<String>, escape: char, line: usize) -> Result<String, ParseError> {
    dockerfile::expand(word, vars, escape).map_err(|message| ParseError { line, message })
}

/// The instruction an `ONBUILD` trigger text stands for.
fn trigger_instruction(trigger: &str, heredocs: &[Heredoc], line: usize) -> Result<Instruction, ParseError> {
    let mut source = format!("FROM scratch\n{trigger}\n");
    for h in heredocs {
        source.push_str(&h.content);
        if !h.content.is_empty() && !h.content.ends_with('\n') {
            source.push('\n');
        }
        source.push_str(&h.name);
        source.push('\n');
    }
    let parsed = dockerfile::parse(&source).map_err(|e| ParseError { line, message: e.message })?;
    let mut ins = parsed
        .instructions
        .into_iter()
        .nth(1)
        .ok_or_else(|| ParseError { line, message: format!("ONBUILD trigger `{trigger}` is empty") })?;
    ins.line = line;
    ins.end_line = line;
    Ok(ins)
}

/// Runs one instruction on `state`: the step it is.
#[allow(clippy::too_many_arguments)] // the dispatcher's whole context, in one place
fn dispatch(
    ins: &Instruction,
    trigger: bool,
    stage: usize,
    state: &mut State,
    global: &BTreeMap<String, String>,
    done: &[StageModel],
    opts: &Options<'_>,
    escape: char,
) -> Result<Step, ParseError> {
    let line = ins.line;
    let snapshot = state.clone();
    let vars = |k: &str| snapshot.lookup(k);
    let exp = |w: &str| expand(w, &vars, escape, line);
    let shell_or_exec = |args: &Args, shell: &[String]| -> Vec<String> {
        match args {
            Args::Exec(v) => v.clone(),
            Args::Shell(s) => shell.iter().cloned().chain(std::iter::once(s.clone())).collect(),
        }
    };
    let default_shell = || vec!["/bin/sh".to_string(), "-c".to_string()];
    let shell = state.config.shell.clone().unwrap_or_else(default_shell);
    let action = match ins.keyword.as_str() {
        "RUN" => Action::Run {
            shell,
            exec: match &ins.args {
                Args::Exec(v) => Some(v.clone()),
                Args::Shell(_) => None,
            },
            text: text(ins).to_string(),
            heredocs: ins.heredocs.clone(),
            mounts: ins.flags.iter().filter(|f| f.name == "mount").filter_map(|f| f.value.clone()).collect(),
            vars: state.args.clone().into_iter().chain(state.config.env.iter().cloned()).collect(),
            args: state.declared.clone(),
        },
        "COPY" | "ADD" => {
            let words = match &ins.args {
                Args::Exec(v) => v.clone(),
                Args::Shell(s) => dockerfile::split_words(s),
            };
            let is_heredoc = |w: &str| w.starts_with("<<") && !ins.heredocs.is_empty();
            let mut paths: Vec<String> =
                words.iter().filter(|w| !is_heredoc(w)).map(|w| exp(w)).collect::<Result<_, _>>()?;
            let dest = paths.pop().unwrap_or_default();
            let from = match ins.flag("from").and_then(|f| f.value.as_deref()) {
                Some(raw) => {
                    let name = exp(raw)?;
                    Some(match stage_by_ref(done, stage, &name) {
                        Some(i) => From::Stage(i),
                        None => From::Image(name),
                    })
                }
                None => None,
            };
            Action::Copy(Copy {
                add: ins.keyword == "ADD",
                from,
                sources: paths,
                heredocs: ins.heredocs.clone(),
                dest: absolute_dest(&dest, &state.config.working_dir),
                checksum: ins.flag("checksum").is_some(),
            })
        }
        "ENV" | "LABEL" => {
            let mut pairs = Vec::new();
            for (k, v) in dockerfile::key_values_raw(&ins.keyword, text(ins), escape) {
                pairs.push((exp(&k)?, exp(v.as_deref().unwrap_or(""))?));
            }
            for (k, v) in &pairs {
                if ins.keyword == "ENV" {
                    state.config.set_env(k.clone(), v.clone());
                } else {
                    state.config.labels.insert(k.clone(), v.clone());
                }
            }
            if ins.keyword == "ENV" {
                Action::Env(pairs)
            } else {
                Action::Label(pairs)
            }
        }
        "ARG" => {
            let mut declared = Vec::new();
            for (key, default) in dockerfile::key_values_raw("ARG", text(ins), escape) {
                let value = match (opts.build_args.get(&key), default) {
                    (Some(v), _) => Some(v.clone()),
                    (None, Some(raw)) => Some(expand(&raw, &|k| state.lookup(k), escape, line)?),
                    (None, None) => state.args.get(&key).or_else(|| global.get(&key)).cloned(),
                };
                if let Some(v) = &value {
                    state.args.insert(key.clone(), v.clone());
                    state.declared.retain(|(k, _)| *k != key);
                    state.declared.push((key.clone(), v.clone()));
                }
                declared.push((key, value));
            }
            Action::Arg(declared)
        }
        "USER" => {
            let user = exp(text(ins).trim())?;
            state.config.user = user.clone();
            Action::User(user)
        }
        "WORKDIR" => {
            let written = exp(text(ins).trim())?;
            let path = if written.starts_with('/') {
                written.clone()
            } else {
                clean_path(&format!("/{}/{written}", state.config.working_dir))
            };
            state.config.working_dir = path.clone();
            Action::Workdir { written, path }
        }
        "EXPOSE" => {
            let mut ports = Vec::new();
            for w in dockerfile::split_words(text(ins)) {
                ports.extend(port_specs(&exp(&w)?));
            }
            state.config.exposed_ports.extend(ports.iter().cloned());
            Action::Expose(ports)
        }
        "VOLUME" => {
            let words = match &ins.args {
                Args::Exec(v) => v.clone(),
                Args::Shell(s) => dockerfile::split_words(s),
            };
            let volumes: Vec<String> = words.iter().map(|w| exp(w)).collect::<Result<_, _>>()?;
            state.config.volumes.extend(volumes.iter().cloned());
            Action::Volume(volumes)
        }
        "STOPSIGNAL" => {
            let signal = exp(text(ins).trim())?;
            state.config.stop_signal = Some(signal.clone());
            Action::StopSignal(signal)
        }
        "SHELL" => {
            let v = shell_or_exec(&ins.args, &[]);
            state.config.shell = Some(v.clone());
            Action::Shell(v)
        }
        "CMD" => {
            let v = shell_or_exec(&ins.args, &shell);
            state.config.cmd = Some(v.clone());
            state.cmd_set = true;
            Action::Cmd(v)
        }
        "ENTRYPOINT" => {
            let v = shell_or_exec(&ins.args, &shell);
            state.config.entrypoint = Some(v.clone());
            if !state.cmd_set {
                state.config.cmd = None;
            }
            Action::Entrypoint(v)
        }
        "HEALTHCHECK" => {
            let test = healthcheck_test(text(ins));
            state.config.healthcheck = Some(test.clone());
            Action::Healthcheck(test)
        }
        "ONBUILD" => {
            let trigger = text(ins).trim().to_string();
            state.triggers.push(trigger_instruction(&trigger, &ins.heredocs, line)?);
            state.config.on_build.push(trigger.clone());
            Action::Onbuild(trigger)
        }
        _ => Action::Other,
    };
    Ok(Step { stage, line, keyword: ins.keyword.clone(), trigger, action })
}

/// `Healthcheck.Test` of `HEALTHCHECK` arguments (`NONE`, `CMD ["a", "b"]`, `CMD a b`).
fn healthcheck_test(args: &str) -> Vec<String> {
    let args = args.trim();
    let (word, rest) = args.split_once(char::is_whitespace).unwrap_or((args, ""));
    if word.eq_ignore_ascii_case("NONE") {
        return vec!["NONE".into()];
    }
    let rest = rest.trim();
    if let Ok(Value::Array(items)) = serde_json::from_str::<Value>(rest) {
        if items.iter().all(Value::is_string) {
            return std::iter::once("CMD".to_string())
                .chain(items.iter().filter_map(|v| v.as_str().map(str::to_string)))
                .collect();
        }
    }
    vec!["CMD-SHELL".into(), rest.to_string()]
}

/// `80` → `80/tcp`; `53/UDP` → `53/udp`; `8000-8001` → both.
fn port_specs(word: &str) -> Vec<String> {
    let (ports, proto) = word.split_once('/').unwrap_or((word, "tcp"));
    let proto = proto.to_ascii_lowercase();
    match ports.split_once('-') {
        Some((a, b)) => match (a.parse::<u32>(), b.parse::<u32>()) {
            (Ok(a), Ok(b)) if a <= b => (a..=b).map(|p| format!("{p}/{proto}")).collect(),
            _ => vec![format!("{ports}/{proto}")],
        },
        None => vec![format!("{ports}/{proto}")],
    }
}

/// Go's `path.Clean` for an absolute path.
pub fn clean_path(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    format!("/{}", parts.join("/"))
}

/// A COPY destination made absolute against the WORKDIR, a trailing `/` kept (`.` names the WORKDIR itself, a
/// directory).
fn absolute_dest(dest: &str, workdir: &str) -> String {
    let is_dir = dest.ends_with('/') || dest == "." || dest.ends_with("/.");
    let joined = if dest.starts_with('/') { dest.to_string() } else { format!("/{workdir}/{dest}") };
    let clean = clean_path(&joined);
    if is_dir && clean != "/" {
        format!("{clean}/")
    } else {
        clean
    }
}

/// What a build context holds at a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
}

/// The files (not directories) a `COPY`/`ADD` from the build context places, absolute, sorted; `context`
/// maps every path the context sends (after `.dockerignore`), relative and `/`-separated, to its kind.
/// `None` for what can't be known here: another stage's or image's files, a git URL, a missing source, an
/// `ADD` of a local archive (which it unpacks).
pub fn placed_files(copy: &Copy, context: &BTreeMap<String, Kind>) -> Option<Vec<String>> {
    if copy.from.is_some() {
        return None;
    }
    let mut matches: Vec<String> = Vec::new();
    let mut fetched: Vec<String> = Vec::new();
    for source in &copy.sources {
        let lower = source.to_ascii_lowercase();
        if copy.add && (lower.starts_with("http://") || lower.starts_with("https://")) {
            // A remote file keeps the last part of its path as its name (and is never unpacked).
            let path = source.split(['?', '#']).next().unwrap_or(source);
            let name = path.splitn(4, '/').nth(3).and_then(|p| p.rsplit('/').next()).filter(|n| !n.is_empty())?;
            fetched.push(name.to_string());
            continue;
        }
        if lower.contains("://") || lower.starts_with("git@") {
            return None;
        }
        let rel = clean_path(source).trim_start_matches('/').to_string();
        if rel.contains(['*', '?', '[']) {
            let found: Vec<String> = context.keys().filter(|p| glob_path(&rel, p)).cloned().collect();
            if found.is_empty() {
                return None;
            }
            matches.extend(found);
        } else if rel.is_empty() || context.contains_key(&rel) {
            matches.push(rel);
        } else {
            return None;
        }
    }
    let into_dir = copy.dest.ends_with('/') || matches.len() + fetched.len() + copy.heredocs.len() > 1;
    let dest = copy.dest.trim_end_matches('/');
    let under = |name: &str| if dest.is_empty() { format!("/{name}") } else { format!("{dest}/{name}") };
    let mut out = BTreeSet::new();
    for m in &matches {
        let is_dir = m.is_empty() || context.get(m) == Some(&Kind::Dir);
        if is_dir {
            let prefix = if m.is_empty() { String::new() } else { format!("{m}/") };
            for (path, kind) in context.range(prefix.clone()..) {
                if !path.starts_with(&prefix) {
                    break;
                }
                if *kind == Kind::File {
                    out.insert(under(&path[prefix.len()..]));
                }
            }
        } else {
            if copy.add && is_archive(m) {
                return None;
            }
            let base = m.rsplit('/').next().unwrap_or(m);
            out.insert(if into_dir { under(base) } else { dest.to_string() });
        }
    }
    for name in fetched.iter().chain(copy.heredocs.iter().map(|h| &h.name)) {
        out.insert(if into_dir { under(name) } else { dest.to_string() });
    }
    Some(out.into_iter().collect())
}

fn is_archive(name: &str) -> bool {
    [".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz", ".tar.zst"].iter().any(|s| name.ends_with(s))
}

/// Go's `filepath.Match`, component by component: `*` and `?` never match `/`.
pub fn glob_path(pattern: &str, path: &str) -> bool {
    let pats: Vec<&str> = pattern.split('/').collect();
    let parts: Vec<&str> = path.split('/').collect();
    pats.len() == parts.len() && pats.iter().zip(&parts).all(|(p, s)| glob_component(p, s))
}

fn glob_component(pattern: &str, s: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let s: Vec<char> = s.chars().collect();
    fn go(p: &[char], s: &[char]) -> bool {
        match p.first() {
            None => s.is_empty(),
            Some('*') => (0..=s.len()).any(|k| go(&p[1..], &s[k..])),
            Some('?') => !s.is_empty() && go(&p[1..], &s[1..]),
            Some('[') => {
                let Some(close) = p.iter().skip(2).position(|&c| c == ']').map(|i| i + 2) else {
                    return !s.is_empty() && s[0] == '[' && go(&p[1..], &s[1..]);
                };
                let Some(&c) = s.first() else { return false };
                let class = &p[1..close];
                let (negate, class) = match class.first() {
                    Some('^') | Some('!') => (true, &class[1..]),
                    _ => (false, class),
                };
                let mut hit = false;
                let mut i = 0;
                while i < class.len() {
                    if i + 2 < class.len() && class[i + 1] == '-' {
                        hit |= class[i] <= c && c <= class[i + 2];
                        i += 3;
                    } else {
                        hit |= class[i] == c;
                        i += 1;
                    }
                }
                hit != negate && go(&p[close + 1..], &s[1..])
            }
            Some('\\') if p.len() > 1 => !s.is_empty() && s[0] == p[1] && go(&p[2..], &s[1..]),
            Some(&c) => !s.is_empty() && s[0] == c && go(&p[1..], &s[1..]),
        }
    }
    go(&p, &s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(text: &str) -> Model {
        model_with(text, &BTreeMap::new())
    }

    fn model_with(text: &str, args: &BTreeMap<String, String>) -> Model {
        let df = dockerfile::parse(text).unwrap();
        evaluate(&df, &Options { build_args: args, target: None, base_config: &|_| None }).unwrap()
    }

    fn env(m: &Model) -> Vec<String> {
        m.config().env.iter().map(|(k, v)| format!("{k}={v}")).collect()
    }

    #[test]
    fn onbuild_triggers_of_a_parent_stage_run_first_in_the_child() {
        let m = model("FROM a AS p\nARG X=x\nONBUILD USER 0\nONBUILD ENV T=$X\nUSER 1000\nFROM p\nRUN true\n");
        assert_eq!(m.config().user, "0");
        assert_eq!(env(&m), ["PATH=".to_string() + DEFAULT_PATH, "T=x".into()]);
        let kinds: Vec<(&str, bool)> = m.final_steps().map(|s| (s.keyword.as_str(), s.trigger)).collect();
        assert_eq!(
            kinds,
            [
                ("ARG", false),
                ("ONBUILD", false),
                ("ONBUILD", false),
                ("USER", false),
                ("USER", true),
                ("ENV", true),
                ("RUN", false)
            ]
        );
        assert!(m.config().on_build.is_empty(), "the triggers are consumed");
    }

    #[test]
    fn from_matches_stage_names_exactly_and_refuses_capitals() {
        let df = dockerfile::parse("FROM a AS Base\nFROM Base\n").unwrap();
        let err =
            evaluate(&df, &Options { build_args: &BTreeMap::new(), target: None, base_config: &|_| None }).unwrap_err();
        assert_eq!((err.line, err.message.starts_with("failed to parse stage name \"Base\"")), (2, true), "{err}");
        let m = model("FROM a AS Base\nFROM base\n");
        assert_eq!(m.stages[1].parent, Some(0));
        assert!(valid_reference("Registry.Example.com:5000/team/app:V1"));
        assert!(!valid_reference("team/App:1"));
    }

    #[test]
    fn copy_from_lowercases_and_takes_an_index() {
        let m = model("FROM a AS Build\nFROM b\nCOPY --from=BUILD /x /y\nCOPY --from=0 /x /z\nCOPY --from=img /x /w\n");
        let froms: Vec<Option<From>> = m.stages[1]
            .steps
            .iter()
            .map(|s| match &s.action {
                Action::Copy(c) => c.from.clone(),
                _ => None,
            })
            .collect();
        assert_eq!(froms, [Some(From::Stage(0)), Some(From::Stage(0)), Some(From::Image("img".into()))]);
        assert_eq!(m.reaching(), BTreeSet::from([0, 1]));
    }

    #[test]
    fn variables_follow_buildkit_scoping() {
        let text = "ARG G=g\nFROM a AS p\nARG X=xv\nFROM p\nENV E1=$X E2=$G\nARG G\nARG Y=argy\nENV Y=envy E3=$G\n\
                    ENV E4=$Y\nARG TARGETARCH\nUSER ${TARGETARCH}\n";
        let args = BTreeMap::from([("TARGETARCH".to_string(), "arm64".to_string())]);
        let m = model_with(text, &args);
        assert_eq!(env(&m)[1..], ["E1=xv", "E2=", "Y=envy", "E3=g", "E4=envy"]);
        assert_eq!(m.config().user, "arm64");
        // ENV a=1 b=$a: b sees the a from before.
        assert_eq!(env(&model("FROM a\nENV A=1 B=$A\n"))[1..], ["A=1", "B="]);
    }

    #[test]
    fn escape_directive_applies_to_env_words() {
        let m = model("# escape=`\nFROM a\nENV A=x`\"y B=c\\d\n");
        assert_eq!(env(&m)[1..], ["A=x\"y", "B=c\\d"]);
    }

    #[test]
    fn workdir_quotes_removed_and_relative_joined() {
        let m = model("FROM a\nWORKDIR \"/app\"\nWORKDIR 'sub'\nWORKDIR ../x/./y\n");
        let dirs: Vec<(String, String)> = m.stages[0]
            .steps
            .iter()
            .filter_map(|s| match &s.action {
                Action::Workdir { written, path } => Some((written.clone(), path.clone())),
                _ => None,
            })
            .collect();
        assert_eq!(
            dirs,
            [("/app".into(), "/app".into()), ("sub".into(), "/app/sub".into()), ("../x/./y".into(), "/app/x/y".into())]
        );
    }

    #[test]
    fn config_forms() {
        let m = model(
            "FROM a\nCMD [\"c\"]\nSHELL [\"/bin/bash\", \"-c\"]\nENTRYPOINT run me\nHEALTHCHECK --interval=5s CMD [\"h\", \"1\"]\n\
             EXPOSE 80 53/UDP 8000-8001\nVOLUME [\"/v\"]\nSTOPSIGNAL SIGINT\nONBUILD RUN x\n",
        );
        let c = m.config();
        assert_eq!(c.cmd, Some(vec!["c".to_string()]), "CMD set in this stage survives ENTRYPOINT");
        assert_eq!(c.entrypoint, Some(vec!["/bin/bash".into(), "-c".into(), "run me".into()]));
        assert_eq!(c.healthcheck, Some(vec!["CMD".into(), "h".into(), "1".into()]));
        assert_eq!(c.exposed_ports, BTreeSet::from(["80/tcp", "53/udp", "8000/tcp", "8001/tcp"].map(String::from)));
        assert_eq!(c.on_build, ["RUN x"]);
        let inherited = model("FROM a AS p\nCMD [\"c\"]\nFROM p\nENTRYPOINT [\"e\"]\n");
        assert_eq!(inherited.config().cmd, Some(vec!["c".to_string()]), "cmd_set is inherited from the stage");
        let base = ImageConfig { cmd: Some(vec!["sh".into()]), ..Default::default() };
        let df = dockerfile::parse("FROM img\nENTRYPOINT [\"e\"]\n").unwrap();
        let m = evaluate(
            &df,
            &Options { build_args: &BTreeMap::new(), target: None, base_config: &|_| Some(base.clone()) },
        )
        .unwrap();
        assert_eq!(m.config().cmd, None, "ENTRYPOINT clears the base image's CMD");
    }

    #[test]
    fn exec_form_shell_scripts() {
        let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(shell_c_script(&v(&["/bin/sh", "-c", "curl x | sh"])), Some("curl x | sh".into()));
        assert_eq!(shell_c_script(&v(&["bash", "-o", "pipefail", "-euxc", "s"])), Some("s".into()));
        assert_eq!(shell_c_script(&v(&["/bin/busybox", "-c", "s"])), None);
        assert_eq!(shell_c_script(&v(&["sh", "script.sh"])), None);
        let m = model("FROM a\nRUN [\"/bin/sh\", \"-c\", \"make\"]\n");
        assert_eq!(m.stages[0].steps[0].scripts(), ["make"]);
    }

    #[test]
    fn placed_files_follow_copy_semantics() {
        let ctx: BTreeMap<String, Kind> = [
            ("a.txt", Kind::File),
            ("d1", Kind::Dir),
            ("d1/f1", Kind::File),
            ("d1/sub", Kind::Dir),
            ("d1/sub/g", Kind::File),
            ("d2", Kind::Dir),
            ("d2/f2", Kind::File),
        ]
        .into_iter()
        .map(|(p, k)| (p.to_string(), k))
        .collect();
        let copy = |sources: &[&str], dest: &str| Copy {
            add: false,
            from: None,
            sources: sources.iter().map(|s| s.to_string()).collect(),
            heredocs: Vec::new(),
            dest: dest.into(),
            checksum: false,
        };
        assert_eq!(placed_files(&copy(&["a.txt"], "/x"), &ctx).unwrap(), ["/x"]);
        assert_eq!(placed_files(&copy(&["a.txt"], "/x/"), &ctx).unwrap(), ["/x/a.txt"]);
        assert_eq!(placed_files(&copy(&["d*"], "/flat/"), &ctx).unwrap(), ["/flat/f1", "/flat/f2", "/flat/sub/g"]);
        assert_eq!(placed_files(&copy(&["d1", "a.txt"], "/m/"), &ctx).unwrap(), ["/m/a.txt", "/m/f1", "/m/sub/g"]);
        assert_eq!(placed_files(&copy(&["/d2/"], "/"), &ctx).unwrap(), ["/f2"]);
        assert_eq!(placed_files(&copy(&["missing"], "/"), &ctx), None);
        let add = |sources: &[&str], dest: &str| Copy { add: true, ..copy(sources, dest) };
        assert_eq!(
            placed_files(&add(&["https://h.example/d/t.tar.gz?x=1"], "/opt/"), &ctx).unwrap(),
            ["/opt/t.tar.gz"]
        );
        assert_eq!(placed_files(&add(&["http://h.example/tini"], "/tini"), &ctx).unwrap(), ["/tini"]);
        assert_eq!(placed_files(&copy(&["https://h.example/x"], "/"), &ctx), None, "COPY fetches no URL");
        assert!(glob_path("d[0-9]/*", "d1/f1") && !glob_path("d*", "d1/f1") && glob_path("a.tx?", "a.txt"));
    }
}
