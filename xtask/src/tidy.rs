//! Tests that keep the tree honest: who may start processes, that every
//! module says what it is, that the layers only look down and the modules
//! form no circle, that every dependency says why it is here, and that the
//! README lists every command.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use clap::CommandFactory;

/// The layers, bottom (0) up: a module may use modules of its own folder
/// and of lower layers only.
const LAYERS: &[(&str, usize)] =
    &[("model", 0), ("output", 0), ("engine", 1), ("checks", 2), ("pipeline", 3), ("commands", 4)];

/// The one module that starts processes.
const PROCESS_MODULE: &str = "engine/process.rs";

/// What starting a process looks like in source.
const SPAWNS: &[&str] = &["process::Command", "Command::new(", "duct::", "xshell::", "cmd!(", "os::unix::process"];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every source file: its path relative to src/ and its text.
fn sources() -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = walkdir::WalkDir::new(src())
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.path().extension().is_some_and(|x| x == "rs"))
        .map(|e| {
            let rel = e.path().strip_prefix(src()).unwrap().to_string_lossy().into_owned();
            (rel, std::fs::read_to_string(e.path()).unwrap())
        })
        .collect();
    files.sort();
    files
}

/// The lines that are code (comments left out), with their numbers.
fn code_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines().enumerate().map(|(i, l)| (i + 1, l)).filter(|(_, l)| !l.trim_start().starts_with("//"))
}

#[test]
fn only_the_process_module_starts_processes() {
    let mut offenders = Vec::new();
    for (path, text) in sources() {
        if path == PROCESS_MODULE || path == "tidy.rs" {
            continue;
        }
        for (n, line) in code_lines(&text) {
            if let Some(what) = SPAWNS.iter().find(|s| line.contains(*s)) {
                offenders.push(format!("src/{path}:{n}: `{what}`"));
            }
            if line.contains("std::process::{") && line.contains("Command") {
                offenders.push(format!("src/{path}:{n}: `std::process::{{Command}}`"));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "processes start only in src/{PROCESS_MODULE} (use its `Cmd`):\n{}",
        offenders.join("\n")
    );
}

#[test]
fn every_module_opens_with_a_doc_line() {
    let missing: Vec<String> = sources()
        .into_iter()
        .filter(|(_, text)| !text.starts_with("//!"))
        .map(|(path, _)| format!("src/{path}"))
        .collect();
    assert!(missing.is_empty(), "start these files with a `//!` line saying what the module is for: {missing:?}");
}

/// `checks/smoke/run.rs` → `checks::smoke::run`; `checks/mod.rs` → `checks`.
fn module_path(file: &str) -> Vec<String> {
    let mut parts: Vec<String> = file.trim_end_matches(".rs").split('/').map(str::to_string).collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "main") {
        parts.pop();
    }
    parts
}

/// The module files each file refers to through `crate::…` and `super::…` paths.
fn references() -> BTreeMap<String, BTreeSet<String>> {
    let files = sources();
    let modules: BTreeMap<Vec<String>, String> = files.iter().map(|(f, _)| (module_path(f), f.clone())).collect();
    let path_re = regex::Regex::new(r"\b(crate|super(?:::super)*)((?:::[A-Za-z_][A-Za-z0-9_]*)+)").unwrap();
    let mut refs = BTreeMap::new();
    for (file, text) in &files {
        let here = module_path(file);
        let mut found = BTreeSet::new();
        for (_, line) in code_lines(text) {
            for cap in path_re.captures_iter(line) {
                let mut base: Vec<String> = match &cap[1] {
                    "crate" => vec![],
                    supers => here[..here.len().saturating_sub(supers.matches("super").count())].to_vec(),
                };
                base.extend(cap[2].split("::").filter(|s| !s.is_empty()).map(str::to_string));
                // The longest prefix that is a module file.
                while !base.is_empty() && !modules.contains_key(&base) {
                    base.pop();
                }
                if let Some(target) = modules.get(&base) {
                    if target != file {
                        found.insert(target.clone());
                    }
                }
            }
        }
        refs.insert(file.clone(), found);
    }
    refs
}

fn layer(file: &str) -> Option<(&'static str, usize)> {
    let top = file.split('/').next()?;
    LAYERS.iter().find(|(name, _)| *name == top).copied()
}

#[test]
fn modules_only_use_their_own_folder_and_the_layers_below() {
    let mut upward = Vec::new();
    for (file, targets) in references() {
        let Some((folder, rank)) = layer(&file) else { continue };
        for target in targets {
            let Some((their_folder, their_rank)) = layer(&target) else {
                upward.push(format!("src/{file} uses src/{target}, which is above every layer"));
                continue;
            };
            if their_folder != folder && their_rank >= rank {
                upward.push(format!(
                    "src/{file} ({folder}, layer {rank}) uses src/{target} ({their_folder}, layer {their_rank})"
                ));
            }
        }
    }
    assert!(upward.is_empty(), "a module may use only its own folder and lower layers:\n{}", upward.join("\n"));
}

#[test]
fn modules_form_no_circle() {
    let refs = references();
    // Depth-first search for a back edge.
    fn visit<'a>(
        node: &'a str,
        refs: &'a BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<&'a str, bool>,
        stack: &mut Vec<&'a str>,
    ) -> Option<Vec<String>> {
        match state.get(node) {
            Some(true) => {
                let from = stack.iter().position(|n| *n == node).unwrap();
                return Some(stack[from..].iter().chain([&node]).map(|s| format!("src/{s}")).collect());
            }
            Some(false) => return None,
            None => {}
        }
        state.insert(node, true);
        stack.push(node);
        for next in refs.get(node).into_iter().flatten() {
            if let Some(circle) = visit(next, refs, state, stack) {
                return Some(circle);
            }
        }
        stack.pop();
        state.insert(node, false);
        None
    }
    let mut state = BTreeMap::new();
    for file in refs.keys() {
        if let Some(circle) = visit(file, &refs, &mut state, &mut Vec::new()) {
            panic!("modules import each other in a circle: {}", circle.join(" -> "));
        }
    }
}

#[test]
fn the_layer_check_sees_an_upward_import() {
    // The checks above are only as good as the reference finder.
    let refs = references();
    assert!(refs["checks/smoke/mod.rs"].contains("engine/image.rs"), "{:?}", refs["checks/smoke/mod.rs"]);
    assert!(refs["checks/smoke/mod.rs"].contains("checks/mod.rs"), "super:: resolves to the parent module");
    assert!(refs["commands/bench/smoke.rs"].contains("commands/mod.rs"), "super::super:: resolves");
    assert_eq!(module_path("checks/smoke/run.rs"), ["checks", "smoke", "run"]);
    assert_eq!(module_path("checks/mod.rs"), ["checks"]);
}

#[test]
fn every_dependency_says_why_it_is_here() {
    let manifest = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml")).unwrap();
    let mut section = "";
    let mut silent = Vec::new();
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            section = line;
            continue;
        }
        let is_dependency = section.ends_with("dependencies]") && !line.is_empty() && !line.starts_with('#');
        if is_dependency && !line.contains(" # ") {
            silent.push(line.to_string());
        }
    }
    assert!(silent.is_empty(), "give each dependency in xtask/Cargo.toml a `# reason` on its line: {silent:?}");
}

/// Every leaf subcommand, as typed: `doctor`, `image build`, …
fn subcommands(cmd: &clap::Command, prefix: &str, out: &mut Vec<String>) {
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        let name = format!("{prefix}{}", sub.get_name());
        if sub.has_subcommands() {
            subcommands(sub, &format!("{name} "), out);
        } else {
            out.push(name);
        }
    }
}

#[test]
fn the_readme_lists_every_command() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md")).unwrap();
    let mut all = Vec::new();
    subcommands(&crate::Cli::command(), "", &mut all);
    assert!(all.len() >= 11, "{all:?}");
    let missing: Vec<&String> =
        all.iter().filter(|c| !readme.lines().any(|l| l.starts_with(&format!("| `cargo xtask {c}")))).collect();
    assert!(missing.is_empty(), "README.md's command table lacks a `| `cargo xtask …` row for {missing:?}");
}

#[test]
fn the_command_line_is_consistent() {
    crate::Cli::command().debug_assert();
}
