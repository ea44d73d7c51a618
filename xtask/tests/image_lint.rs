//! `cargo xtask image lint` with the real hadolint and Trivy: the corpus in
//! test/lint/corpus (for each policy rule a Dockerfile that must fail with
//! its id and a near miss that must pass, heredocs, continuations, the
//! escape directive, build contexts with and without a .dockerignore or a
//! secret), Dockerfiles in the styles of well-known projects and every
//! heredoc form (test/lint/real: read by our parser and checked by hadolint,
//! through a rewrite where its parser can't read them), the repository's own
//! Dockerfiles lint clean, SARIF valid against the SARIF 2.1.0 schema, and
//! bad input.

mod support;

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;
use support::{repo_root, temp_dir, xtask_in, Output};

/// The corpus copied to a temporary directory, with the secrets git never
/// keeps planted where the corpus says.
fn corpus() -> tempfile::TempDir {
    let dir = temp_dir("xtask-lint-corpus");
    support::copy_dir(&repo_root().join("test/lint/corpus"), dir.path());
    for secret in ["secret-context/.env", "ignored-secret/.env"] {
        std::fs::write(dir.path().join(secret), "API_KEY=planted-by-the-test\n").unwrap();
    }
    dir
}

fn dockerfiles(dir: &Path) -> Vec<String> {
    let mut files: Vec<String> = walkdir::WalkDir::new(dir)
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| {
            let name = e.file_name().to_string_lossy();
            name == "Dockerfile" || name.ends_with(".Dockerfile")
        })
        .map(|e| e.path().strip_prefix(dir).unwrap().display().to_string())
        .collect();
    files.sort();
    files
}

/// `# expect: RLP001 RLP004` or `# expect: none`.
fn expected(file: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(file).unwrap();
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("# expect:"))
        .unwrap_or_else(|| panic!("{} says no `# expect:`", file.display()));
    line.split_whitespace().filter(|r| *r != "none").map(str::to_string).collect()
}

fn lint(dir: &Path, args: &[&str]) -> Output {
    // Outside the catalog: the catalog flag points at the repository's, unused with --file.
    let mut all = vec!["image", "lint"];
    all.extend(args);
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_xtask"));
    cmd.arg("--catalog").arg(repo_root().join("images.toml")).args(&all).current_dir(dir);
    support::run_cmd(&mut cmd)
}

fn report(dir: &Path, name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join(name)).unwrap()).unwrap()
}

fn ralph_rules(report: &Value, file: &str) -> BTreeSet<String> {
    let entry = report["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["file"] == file)
        .unwrap_or_else(|| panic!("no {file} in the report"));
    entry["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["source"] == "ralph")
        .map(|f| f["rule"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn every_policy_rule_fails_its_corpus_file_and_passes_its_near_miss() {
    let dir = corpus();
    let files = dockerfiles(dir.path());
    assert!(files.len() >= 30, "{files:?}");
    let mut args: Vec<&str> = vec!["--report", "lint.json", "--sarif", "lint.sarif", "--file"];
    args.extend(files.iter().map(String::as_str));
    let out = lint(dir.path(), &args);
    assert!(!out.status.success(), "the corpus has errors");
    assert!(
        out.last_line().starts_with("error: ") && out.last_line().contains("error-level findings"),
        "{}",
        out.stderr
    );
    let report = report(dir.path(), "lint.json");
    let mut wrong = Vec::new();
    for file in &files {
        let want = expected(&dir.path().join(file));
        let got = ralph_rules(&report, file);
        if want != got {
            wrong.push(format!("{file}: expected {want:?}, found {got:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // Each rule has a failing file and a near miss: a file named for the
    // rule (`rlpNNN-…`, or a context directory for the context rules) that
    // must pass it.
    let covered: BTreeSet<String> = files.iter().flat_map(|f| expected(&dir.path().join(f))).collect();
    let near_miss = |id: &str, files: &[String]| {
        files
            .iter()
            .any(|f| f.starts_with(&format!("{}-", id.to_lowercase())) && !expected(&dir.path().join(f)).contains(id))
    };
    for id in
        ["RLP000", "RLP001", "RLP002", "RLP003", "RLP004", "RLP005", "RLP006", "RLP007", "RLP009", "RLP012", "RLP013"]
    {
        assert!(covered.contains(id), "no corpus file fails {id}");
        assert!(
            near_miss(id, &files),
            "no corpus file rlp{}-… is a near miss of {id} (`# expect:` without it)",
            &id[3..]
        );
    }
    // The context rules: a context without a .dockerignore or with a weak
    // one fails RLP010, a secret in it RLP011; ignored-secret has both a
    // secret and the .dockerignore that keeps it out, and passes.
    for id in ["RLP010", "RLP011"] {
        assert!(covered.contains(id), "no corpus file fails {id}");
    }
    assert!(files.contains(&"ignored-secret/Dockerfile".to_string()), "{files:?}");
    assert!(expected(&dir.path().join("ignored-secret/Dockerfile")).is_empty());
    // The malformed file names its line and what is wrong; the others were still linted.
    let malformed =
        report["files"].as_array().unwrap().iter().find(|f| f["file"] == "rlp000-malformed.Dockerfile").unwrap();
    assert_eq!(malformed["findings"][0]["line"], 4, "{malformed}");
    assert!(malformed["findings"][0]["message"].as_str().unwrap().starts_with("COPY requires at least two arguments"));
    // The exception in force is listed, the one without a reason is a finding.
    let with_reason = report["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["file"] == "rlp012-exception-with-reason.Dockerfile")
        .unwrap();
    assert_eq!(with_reason["exceptions"][0]["reason"], "a test of an exception in force");
    // Every tool ran, and found something in the corpus: the SARIF has a run each, valid against the schema.
    let tools: Vec<&str> = report["tools"].as_array().unwrap().iter().map(|t| t["tool"].as_str().unwrap()).collect();
    assert_eq!(tools, ["hadolint", "trivy"]);
    assert!(report["tools"].as_array().unwrap().iter().all(|t| t["error"].is_null()), "{}", report["tools"]);
    let sarif: Value = serde_json::from_str(&std::fs::read_to_string(dir.path().join("lint.sarif")).unwrap()).unwrap();
    support::validate_sarif(&sarif);
    let runs: Vec<(&str, usize)> = sarif["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["tool"]["driver"]["name"].as_str().unwrap(), r["results"].as_array().unwrap().len()))
        .collect();
    assert_eq!(runs.iter().map(|r| r.0).collect::<Vec<_>>(), ["ralph", "hadolint", "trivy"]);
    assert!(runs.iter().all(|r| r.1 > 0), "every tool has results in the merged SARIF: {runs:?}");
}

/// test/lint/real: BuildKit reads every file, so no parse error; hadolint
/// checked every one (as it is, or rewritten where its parser can't read
/// BuildKit's syntax) and reports no DL1000; the policy finds what each
/// file's `# expect:` line says.
#[test]
fn real_world_dockerfiles_and_every_heredoc_form_are_read_and_checked_by_hadolint() {
    let dir = temp_dir("xtask-lint-real");
    support::copy_dir(&repo_root().join("test/lint/real"), dir.path());
    let files = dockerfiles(dir.path());
    let forms = files.iter().filter(|f| f.starts_with("heredoc-forms/")).count();
    assert!(files.len() - forms >= 12 && forms >= 20, "{files:?}");
    let mut args: Vec<&str> = vec!["--report", "lint.json", "--file"];
    args.extend(files.iter().map(String::as_str));
    let out = lint(dir.path(), &args);
    let report = report(dir.path(), "lint.json");
    assert!(report["tools"].as_array().unwrap().iter().all(|t| t["error"].is_null()), "{}", report["tools"]);
    let mut wrong = Vec::new();
    let mut rewritten = 0;
    for file in &files {
        let entry = report["files"].as_array().unwrap().iter().find(|f| f["file"] == file.as_str()).unwrap();
        for f in entry["findings"].as_array().unwrap() {
            if ["RLP000", "DL1000", "hadolint-parser"].contains(&f["rule"].as_str().unwrap()) {
                wrong.push(format!("{file}:{} {}: {}", f["line"], f["rule"], f["message"]));
            }
        }
        match entry["hadolint"]["read"].as_str() {
            Some("file") => {}
            Some("rewrite") => rewritten += 1,
            read => wrong.push(format!("{file}: hadolint read {read:?}, not the file or its rewrite")),
        }
        let (want, got) = (expected(&dir.path().join(file)), ralph_rules(&report, file));
        if want != got {
            wrong.push(format!("{file}: expected {want:?}, found {got:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // hadolint 2.15.1 can't parse many of them as they are: they were read rewritten, and the report says where.
    assert!(rewritten >= 10, "{rewritten} files read rewritten");
    let entry = |name: &str| report["files"].as_array().unwrap().iter().find(|f| f["file"] == name).unwrap().clone();
    let chomp = entry("heredoc-forms/09-run-chomp.Dockerfile");
    assert_eq!(chomp["hadolint"]["rewritten"][0]["line"], 5, "{chomp}");
    assert_eq!(chomp["hadolint"]["rewritten"][0]["end_line"], 8, "{chomp}");
    assert!(chomp["hadolint"]["rewritten"][0]["why"].as_str().unwrap().contains("<<-"), "{chomp}");
    assert!(out.stdout.contains("hadolint read these lines rewritten"), "{}", out.stdout);
    assert!(out.stdout.contains("heredoc-forms/09-run-chomp.Dockerfile:5-8 <<- heredoc"), "{}", out.stdout);
    // Its findings on the rewrite name the original lines: the COPY to a relative path is line 34 of the
    // file (the rewritten heredocs above it take more lines).
    let docs = entry("docker-docs-heredocs.Dockerfile");
    let dl3045: Vec<&Value> = docs["findings"].as_array().unwrap().iter().filter(|f| f["rule"] == "DL3045").collect();
    assert_eq!(dl3045.len(), 1, "{docs}");
    assert_eq!(dl3045[0]["line"], 34, "{docs}");
}

#[test]
fn the_repositorys_dockerfiles_lint_clean() {
    let dir = temp_dir("xtask-lint-repo");
    let out = xtask_in(
        &repo_root(),
        &[
            "image",
            "lint",
            "--report",
            dir.path().join("lint.json").to_str().unwrap(),
            "--sarif",
            dir.path().join("lint.sarif").to_str().unwrap(),
        ],
        &[],
    );
    assert!(out.status.success(), "{}\n{}", out.stdout, out.stderr);
    let report = report(dir.path(), "lint.json");
    assert_eq!(report["errors"], 0, "{}", out.stdout);
    // Both products and every stand-in were linted, with their build contexts.
    let images: BTreeSet<String> = report["files"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|f| f["images"].as_array().unwrap().iter().map(|i| i.as_str().unwrap().to_string()))
        .collect();
    for image in ["worker", "worker-amazonlinux", "worker-standin", "python-standin", "postgres-standin", "debian-base"]
    {
        assert!(images.contains(image), "{image} not linted: {images:?}");
    }
    let root_context = report["files"].as_array().unwrap().iter().find(|f| f["file"] == "Dockerfile.worker").unwrap()
        ["contexts"][0]
        .clone();
    assert_eq!(root_context["dir"], ".");
    assert_eq!(root_context["dockerignore"], ".dockerignore");
    assert!(root_context["files"].as_u64().unwrap() > 10, "{root_context}");
    // The exceptions in force are the ones the Dockerfiles declare (counted
    // in the files themselves), each with its reason.
    let files = report["files"].as_array().unwrap();
    let exceptions: usize = files.iter().map(|f| f["exceptions"].as_array().unwrap().len()).sum();
    let declared: usize = files
        .iter()
        .map(|f| {
            let text = std::fs::read_to_string(repo_root().join(f["file"].as_str().unwrap())).unwrap();
            text.lines().filter(|l| l.starts_with("# ralph-lint ignore=")).count()
        })
        .sum();
    assert!(declared >= 4, "the repository's Dockerfiles declare exceptions: {declared}");
    assert_eq!(exceptions, declared, "{}", out.stdout);
    for e in files.iter().flat_map(|f| f["exceptions"].as_array().unwrap()) {
        assert!(e["reason"].as_str().is_some_and(|r| r.len() > 20), "an exception with its reason: {e}");
    }
    assert!(out.stdout.contains("exceptions in force:"));
    support::validate_sarif(
        &serde_json::from_str(&std::fs::read_to_string(dir.path().join("lint.sarif")).unwrap()).unwrap(),
    );
}

#[test]
fn a_service_without_healthcheck_fails_and_with_one_passes() {
    let dir = temp_dir("xtask-lint-service");
    let pinned = "alpine:3.21@sha256:48b0309ca019d89d40f670aa1bc06e426dc0931948452e8491e3d65087abc07d";
    std::fs::write(dir.path().join(".dockerignore"), ".git\n.env\nnode_modules\ntest/\ntarget/\n").unwrap();
    std::fs::write(dir.path().join("svc.Dockerfile"), format!("FROM {pinned}\nUSER 1000:1000\n")).unwrap();
    std::fs::write(
        dir.path().join("svc-ok.Dockerfile"),
        format!("FROM {pinned}\nHEALTHCHECK CMD [\"wget\", \"-q\", \"-O-\", \"http://127.0.0.1:8080/healthz\"]\nUSER 1000:1000\n"),
    )
    .unwrap();
    let entry =
        |name: &str| format!("[[image]]\nname = \"{name}\"\ndockerfile = \"{name}.Dockerfile\"\nservice = true\n\n");
    std::fs::write(dir.path().join("images.toml"), entry("svc") + &entry("svc-ok")).unwrap();
    let out = xtask_in(dir.path(), &["image", "lint", "--report", "lint.json"], &[]);
    assert!(!out.status.success());
    let report = report(dir.path(), "lint.json");
    assert_eq!(ralph_rules(&report, "svc.Dockerfile"), BTreeSet::from(["RLP008".to_string()]));
    assert!(ralph_rules(&report, "svc-ok.Dockerfile").is_empty());
}

#[test]
fn bad_input_gets_one_line_with_the_fix() {
    let dir = corpus();
    let d = dir.path();
    // A missing Dockerfile is a finding; the other file is still linted.
    let out = lint(d, &["--report", "missing.json", "--file", "nowhere/Dockerfile", "rlp004-root.Dockerfile"]);
    assert!(!out.status.success());
    let missing_report = report(d, "missing.json");
    let missing = &missing_report["files"][0]["findings"][0];
    assert_eq!((missing["rule"].as_str(), missing["line"].as_u64()), (Some("RLP000"), Some(0)), "{missing_report}");
    assert!(missing["message"].as_str().unwrap().starts_with("cannot read"), "{missing}");
    assert_eq!(ralph_rules(&missing_report, "rlp004-root.Dockerfile"), BTreeSet::from(["RLP004".to_string()]));

    // A tool that is not installed: the fix from the setup script.
    let out = support::run_cmd(
        std::process::Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args([
                "--catalog",
                repo_root().join("images.toml").to_str().unwrap(),
                "image",
                "lint",
                "--file",
                "rlp004-root.Dockerfile",
            ])
            .env("PATH", "/usr/bin:/bin")
            .current_dir(d),
    );
    assert!(!out.status.success());
    assert!(
        out.last_line().starts_with("error: hadolint is not installed: run `sudo bash scripts/setup-host.sh`"),
        "{}",
        out.stderr
    );

    // A tool that hangs is stopped at the timeout (0 s: at once) and says so.
    let out = lint(d, &["--timeout", "0", "--file", "rlp004-root.Dockerfile"]);
    assert!(!out.status.success());
    assert!(out.last_line().contains("did not finish within 0s and was stopped: raise --timeout"), "{}", out.stderr);

    // A tool that fails: hadolint handed a configuration that is a directory.
    let cfg = temp_dir("xtask-lint-badcfg");
    std::fs::copy(d.join("rlp004-root.Dockerfile"), cfg.path().join("Dockerfile")).unwrap();
    std::fs::create_dir(cfg.path().join(".hadolint.yaml")).unwrap();
    let out = lint(cfg.path(), &["--file", "Dockerfile"]);
    assert!(!out.status.success());
    assert!(out.last_line().starts_with("error: hadolint failed with exit code 1:"), "{}", out.stderr);

    // A malformed .hadolint.yaml (hadolint alone would lint with its defaults) and .trivyignore.yaml.
    std::fs::remove_dir(cfg.path().join(".hadolint.yaml")).unwrap();
    std::fs::write(cfg.path().join(".hadolint.yaml"), "ignored: [\n").unwrap();
    let out = lint(cfg.path(), &["--file", "Dockerfile"]);
    assert!(out.last_line().starts_with("error: .hadolint.yaml is not valid YAML at line"), "{}", out.stderr);
    std::fs::write(cfg.path().join(".hadolint.yaml"), "ignored:\n  - DL3008\n").unwrap();
    let out = lint(cfg.path(), &["--file", "Dockerfile", "--report", "r.json"]);
    let config_report = report(cfg.path(), "r.json");
    let message = config_report["config"][0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("ignores DL3008 without saying why"), "{config_report}");
    assert!(!out.status.success());
    std::fs::remove_file(cfg.path().join(".hadolint.yaml")).unwrap();
    std::fs::write(
        cfg.path().join(".trivyignore.yaml"),
        "misconfigurations:\n  - id: DS-0002\n    statement: no expiry\n",
    )
    .unwrap();
    let out = lint(cfg.path(), &["--file", "Dockerfile"]);
    assert!(!out.status.success());
    assert!(
        out.last_line().contains(".trivyignore.yaml: line 2:")
            && out.last_line().contains("missing field `expired_at`"),
        "{}",
        out.stderr
    );
}
