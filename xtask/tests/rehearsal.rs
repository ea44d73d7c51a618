//! The CI workflow executed here: `cargo xtask ci rehearse` runs
//! .github/workflows/images.yml's jobs line by line for a pull request, a
//! push to main, a push of tag v1.2.3 and the weekly schedule, on the
//! worker stand-in (both platforms), against the local registry, signed
//! with a generated key.
//! What the registry holds afterwards is checked here with other tools than
//! the xtask's: skopeo for the tags, cosign for the signatures, and
//! `docker run` of each platform's digest for the architecture it runs.

mod support;

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;
use support::{repo_root, run_cmd, Cleanup, REGISTRY};

const REGISTRY_REPOSITORIES: &str = "/var/lib/ralph-host/registry/docker/registry/v2/repositories";

fn rehearse(args: &[&str]) -> support::Output {
    let root = repo_root();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    // Relative, as a user types it from the repository's root.
    cmd.args(["--catalog", "images.toml", "ci", "rehearse"]).args(args).current_dir(&root);
    run_cmd(&mut cmd)
}

fn skopeo_tags(repository: &str) -> Vec<String> {
    let out =
        run_cmd(Command::new("skopeo").args(["list-tags", "--tls-verify=false"]).arg(format!("docker://{repository}")));
    if !out.status.success() {
        return Vec::new();
    }
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    v["Tags"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_string()).collect()
}

/// The local tags of the stand-ins' repositories (`REPOSITORY:TAG` → image
/// ID), other than the tests' own unique ones (`xtask-test-…`).
fn checkout_tags() -> Value {
    let mut tags = serde_json::Map::new();
    for (reference, id) in support::local_tags() {
        let (repository, tag) = reference.rsplit_once(':').unwrap();
        if repository.starts_with("ralph-") && !tag.starts_with("xtask-test-") {
            tags.insert(reference, Value::String(id));
        }
    }
    Value::Object(tags)
}

/// `skopeo inspect --raw` of a reference: the manifest (index) and its sha256.
fn raw_manifest(reference: &str) -> (Value, String) {
    let out = run_cmd(
        Command::new("skopeo").args(["inspect", "--raw", "--tls-verify=false"]).arg(format!("docker://{reference}")),
    );
    assert!(out.status.success(), "skopeo inspect {reference}: {}", out.stderr);
    let digest = run_cmd(
        Command::new("sh")
            .arg("-c")
            .arg(format!("skopeo inspect --raw --tls-verify=false docker://{reference} | sha256sum | cut -d' ' -f1")),
    );
    (serde_json::from_str(&out.stdout).unwrap(), format!("sha256:{}", digest.stdout.trim()))
}

#[test]
fn the_workflow_runs_for_a_pull_request_a_push_and_a_release_tag() {
    let _time = support::Timer::start("the_workflow_runs_for_a_pull_request_a_push_and_a_release_tag");
    let _engine = support::engine();
    let mut cleanup = Cleanup::new();
    let ns = support::unique_name("xtask-test-rehearsal");
    let dir = PathBuf::from(REGISTRY_REPOSITORIES).join(&ns);
    cleanup.defer(move || {
        let _ = std::fs::remove_dir_all(dir);
    });
    let registry = format!("{REGISTRY}/{ns}");
    let scratch = support::temp_dir("xtask-rehearsal");
    let report_file = scratch.path().join("rehearsal.json");
    // The checkout's own tags, which the jobs' builds share: a `latest`
    // (a marker image when there is none) must name what it named before.
    if checkout_tags()["ralph-worker-standin:latest"].is_null() {
        let empty = support::temp_dir("xtask-marker");
        let marker = format!("tar -C {} -c . | docker import - ralph-worker-standin:latest", empty.path().display());
        assert!(run_cmd(Command::new("sh").args(["-c", &marker])).status.success());
        cleanup.on_drop("docker", &["image", "rm", "ralph-worker-standin:latest"]);
    }
    let tags_before = checkout_tags();
    let out = rehearse(&["--registry", &registry, "--report", report_file.to_str().unwrap()]);
    eprintln!("{}", out.stdout);
    // On a failure, what the steps printed up to the first failed step (the
    // check's table and error) goes with the message: it is on stderr.
    assert!(
        out.status.success(),
        "the rehearsal failed: {}\n{}\n--- what the steps printed up to the first failure:\n{}",
        out.last_line(),
        out.stdout,
        out.stderr_before("` failed: ", 150)
    );
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&report_file).unwrap()).unwrap();
    // The jobs tagged main-<sha>, latest, 1.2.3… here; all of it was put back.
    assert_eq!(checkout_tags(), tags_before, "the checkout's local tags changed: {}", report["tags_put_back"]);
    let put_back = report["tags_put_back"].as_array().unwrap();
    assert!(
        put_back.iter().any(|r| r["action"] == "retag" && r["reference"] == "ralph-worker-standin:latest"),
        "{put_back:?}"
    );
    assert!(put_back.iter().any(|r| r["action"] == "remove"), "{put_back:?}");
    let events = report["events"].as_array().unwrap();
    assert_eq!(events.len(), 4, "a pull request, a push, a tag and the schedule");
    let jobs = |i: usize, job: &str| -> Vec<Value> {
        events[i]["jobs"].as_array().unwrap().iter().filter(|j| j["job"] == job).cloned().collect()
    };
    // The plan's step summary reached the run's summary.
    assert!(events[0]["summary"].as_str().unwrap().contains("### Plan"), "{}", events[0]["summary"]);
    // The pull request: checks on both platforms, nothing pushed.
    assert_eq!(jobs(0, "check").len(), 2, "one check job per platform");
    assert!(jobs(0, "check").iter().all(|j| j["result"] == "success"));
    for job in ["push", "publish", "release"] {
        assert!(jobs(0, job).iter().all(|j| j["result"] == "skipped"), "{job} ran for a pull request");
    }
    // The arm64 check's read-only check ran the worker emulated, beside a
    // database on this machine's platform (built for it alone: no
    // PostgreSQL under QEMU).
    let arm64 = repo_root().join("target/rehearsal/pullrequest/artifacts/reports-worker-standin-arm64/check.json");
    let arm64: Value = serde_json::from_str(&std::fs::read_to_string(&arm64).unwrap()).unwrap();
    let checks = arm64["images"][0]["smoke"]["platforms"][0]["checks"].as_array().unwrap();
    let readonly = checks.iter().find(|c| c["kind"] == "read-only").expect("a read-only check");
    let expected = readonly["expected"].as_str().unwrap();
    assert!(
        expected.contains("(emulated)")
            && expected.contains("; beside ralph-postgres-standin:")
            && expected.ends_with(" on linux/amd64"),
        "{expected}"
    );
    // Every `run:` executed was a real step (no step failed, none unknown).
    for (i, e) in events.iter().enumerate() {
        for j in e["jobs"].as_array().unwrap() {
            assert_ne!(j["result"], "failure", "event {i}: job {} failed: {j}", j["job"]);
        }
    }
    // The push and the tag ran every job; the publish job read the real
    // artifact layout: two check reports and two push reports.
    for i in [1, 2] {
        for job in ["plan", "check", "push", "publish", "release"] {
            assert!(
                jobs(i, job).iter().all(|j| j["result"] == "success") && !jobs(i, job).is_empty(),
                "event {i}: {job}"
            );
        }
        let publish = &jobs(i, "publish")[0];
        let notes: Vec<&str> = publish["steps"].as_array().unwrap().iter().filter_map(|s| s["note"].as_str()).collect();
        assert!(
            notes.iter().any(|n| n.contains("reports-worker-standin-amd64, reports-worker-standin-arm64 into reports"))
                && notes
                    .iter()
                    .any(|n| n.contains("push-worker-standin-amd64, push-worker-standin-arm64 into reports")),
            "{notes:?}"
        );
    }

    // The schedule: checks, no publish, and the pin job re-pinned the stale
    // fixture for its pull request.
    for job in ["push", "publish", "release"] {
        assert!(jobs(3, job).iter().all(|j| j["result"] == "skipped"), "{job} ran on the schedule");
    }
    let pin = &jobs(3, "pin")[0];
    assert_eq!(pin["result"], "success", "{pin}");
    let pr = pin["steps"].as_array().unwrap().iter().find(|s| s["step"] == "The pull request").unwrap();
    assert!(pr["note"].as_str().unwrap().contains("with rehearsal/pin/Dockerfile "), "{pr}");
    for i in [0, 1, 2] {
        assert!(jobs(i, "pin").iter().all(|j| j["result"] == "skipped"), "pin ran on event {i}");
    }

    // The registry, read with skopeo: nothing from the pull request, then
    // main-<sha> and latest, then the release's tags on one index.
    let repo = format!("{registry}/ralph-worker-standin");
    let tags = skopeo_tags(&repo);
    for t in ["latest", "1.2.3", "1.2", "1"] {
        assert!(tags.iter().any(|x| x == t), "{repo} lacks {t}: {tags:?}");
    }
    assert!(tags.iter().any(|t| t.starts_with("main-")), "{tags:?}");
    let (index, digest) = raw_manifest(&format!("{repo}:1.2.3"));
    for t in ["1.2", "1"] {
        assert_eq!(raw_manifest(&format!("{repo}:{t}")).1, digest, "{t} names the release's index");
    }
    // Signed with the rehearsal's key (cosign, not the xtask, verifies).
    let public = repo_root().join("target/rehearsal/keys/cosign.pub");
    let out = run_cmd(
        Command::new("cosign")
            .args(["verify", "--insecure-ignore-tlog", "--allow-http-registry", "--key"])
            .arg(&public)
            .arg(format!("{repo}@{digest}")),
    );
    assert!(out.status.success(), "cosign verify {repo}@{digest}: {}", out.stderr);
    // `image verify`, as a deployment would run it on the release tag.
    let out = run_cmd(
        Command::new(env!("CARGO_BIN_EXE_xtask"))
            .current_dir(repo_root())
            .args(["image", "verify", &format!("{repo}:1.2.3"), "--key"])
            .arg(&public)
            .arg("--no-tlog"),
    );
    assert!(out.status.success(), "image verify {repo}:1.2.3: {}", out.stderr);
    assert_eq!(
        out.stdout.matches("ralph 0.1.0").count(),
        2,
        "each platform ran the worker's entrypoint:\n{}",
        out.stdout
    );
    // Each platform pulled by digest and run: it is the architecture it says.
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 2, "{index}");
    for m in manifests {
        let (arch, platform_digest) = (m["platform"]["architecture"].as_str().unwrap(), m["digest"].as_str().unwrap());
        support::assert_runs_as(&format!("{repo}@{platform_digest}"), arch);
    }
}

#[test]
fn a_run_line_it_cannot_execute_fails_the_rehearsal() {
    let _engine = support::engine();
    let scratch = support::temp_dir("xtask-rehearsal-broken");
    let workflow = std::fs::read_to_string(repo_root().join(".github/workflows/images.yml")).unwrap();
    let broken = workflow.replacen("run: cargo xtask ci plan", "run: cargo xtask ci plan | tee plan.txt", 1);
    assert_ne!(broken, workflow, "the workflow has no `run: cargo xtask ci plan`");
    let file = scratch.path().join("images.yml");
    std::fs::write(&file, broken).unwrap();
    let out = rehearse(&["--event", "pull-request", "--workflow", file.to_str().unwrap()]);
    assert!(!out.status.success(), "a pipe in a run: line was rehearsed:\n{}", out.stdout);
    assert!(
        out.stderr.contains("the rehearsal runs only one `cargo xtask …` call or the tool script per `run:`"),
        "{}",
        out.stderr
    );
    assert!(out.last_line().starts_with("error: the rehearsal found"), "{}", out.last_line());
}
