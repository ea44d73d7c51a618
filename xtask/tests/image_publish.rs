//! `cargo xtask image publish` and `image verify` against the real local
//! registry, the real cosign and the real engine, on the busybox fixture:
//! the whole publish, the CI split (`--push-only` per platform, then
//! `--digests`), two releases at once (the floating tags end on the highest
//! release), and the refusals: a failed check, a bad key, and a registry
//! that refuses a push halfway, which must leave no tag behind. (The worker
//! stand-in is published for both platforms, verified, pulled back by digest
//! and run by tests/rehearsal.rs, through the CI workflow.)
//!
//! The registry's refusals are real: the registry (scripts/setup-host.sh,
//! storage under /var/lib/ralph-host/registry) can't write a tag or a
//! repository whose path in its storage is taken by a file.

mod support;

use std::path::{Path, PathBuf};

use serde_json::Value;
use support::{run_ok, Cleanup, Fixture, Output, REGISTRY};

/// The busybox fixture as image `fx` (its own repository), answering its
/// startup check with `true`.
fn fixture(name: &str) -> Fixture {
    Fixture::with_catalog(name, "busybox", |repository| {
        format!(
            "[[image]]\nname = \"fx\"\nrepository = \"{repository}\"\nkind = \"fixture\"\ndockerfile = \"ctx/Dockerfile\"\n\
             context = \"ctx\"\ncontexts = {{ busybox = \"/usr/local/share/ralph-host/busybox\" }}\nstartup_args = [\"true\"]\n"
        )
    })
}

/// Where the local registry keeps its repositories (scripts/setup-host.sh).
const REGISTRY_REPOSITORIES: &str = "/var/lib/ralph-host/registry/docker/registry/v2/repositories";
const PASSWORD: &str = "correct horse";

/// A cosign key pair in `dir` (password PASSWORD): (private, public).
fn key_pair(dir: &Path) -> (String, String) {
    let out = support::run_cmd(
        std::process::Command::new("cosign").arg("generate-key-pair").current_dir(dir).env("COSIGN_PASSWORD", PASSWORD),
    );
    assert!(out.status.success(), "cosign generate-key-pair: {}", out.stderr);
    (dir.join("cosign.key").display().to_string(), dir.join("cosign.pub").display().to_string())
}

/// A registry namespace of this test's, its storage removed on drop.
fn namespace(cleanup: &mut Cleanup, name: &str) -> String {
    let ns = support::unique_name(&format!("xtask-test-{name}"));
    let dir = PathBuf::from(REGISTRY_REPOSITORIES).join(&ns);
    cleanup.defer(move || {
        let _ = std::fs::remove_dir_all(dir);
    });
    ns
}

/// The tags of REPOSITORY (`NS/NAME`) in the local registry (none when it
/// doesn't exist), cosign's signature and attestation tags left out.
fn tags(repository: &str) -> Vec<String> {
    let (_, body) = support::http_get(REGISTRY, &format!("/v2/{repository}/tags/list")).unwrap();
    let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let mut tags: Vec<String> = v["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t.as_str().map(str::to_string))
        .filter(|t| !(t.starts_with("sha256-") && (t.ends_with(".sig") || t.ends_with(".att"))))
        .collect();
    tags.sort();
    tags
}

/// The fixture is no git checkout: its images' `created` label comes from
/// here, so a rebuild has the same digest (as the commit time gives a checkout).
const EPOCH: (&str, &str) = ("SOURCE_DATE_EPOCH", "1700000000");

/// A path in the registry's storage taken by a file: the registry can't
/// write there (a tag, or a whole repository).
fn block(path: &str) {
    let p = PathBuf::from(REGISTRY_REPOSITORIES).join(path);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, "blocked by the test").unwrap();
}

fn one_line_error(out: &Output, what: &str) -> String {
    assert!(!out.status.success(), "{what} must fail:\n{}", out.stderr);
    let line = out.last_line().to_string();
    assert!(line.starts_with("error: "), "{what}: the error is one line: {}", out.stderr);
    line
}

fn publish(fx: &Fixture, ns: &str, extra: &[&str], password: &str) -> Output {
    let registry = format!("{REGISTRY}/{ns}");
    let mut args = vec!["image", "publish", "fx", "--registry", &registry, "--no-tlog", "--quiet"];
    args.extend_from_slice(extra);
    fx.xtask_env(&args, &[("COSIGN_PASSWORD", password), EPOCH])
}

/// `cosign verify` of REPOSITORY@INDEX and of each platform's digest,
/// `cosign verify-attestation` (CycloneDX) of each platform, and `docker
/// run … uname -m` of each platform's digest, pulled from the registry.
fn independently_signed_attested_and_runnable(repository: &str, index: &str, public: &str) {
    let cosign = |args: &[&str], reference: &str| {
        let out = support::run_cmd(
            std::process::Command::new("cosign")
                .args(args)
                .args(["--key", public, "--insecure-ignore-tlog", "--allow-http-registry"])
                .arg(reference),
        );
        assert!(out.status.success(), "cosign {args:?} {reference}: {}", out.stderr);
    };
    cosign(&["verify"], &format!("{repository}@{index}"));
    let raw = run_ok("docker", &["buildx", "imagetools", "inspect", "--raw", &format!("{repository}@{index}")]);
    let manifests: Value = serde_json::from_str(&raw).unwrap();
    let platforms: Vec<(String, String)> = manifests["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["platform"]["os"] == "linux")
        .map(|m| (m["platform"]["architecture"].as_str().unwrap().into(), m["digest"].as_str().unwrap().into()))
        .collect();
    let mut arches: Vec<&str> = platforms.iter().map(|(a, _)| a.as_str()).collect();
    arches.sort_unstable();
    assert_eq!(arches, ["amd64", "arm64"], "{raw}");
    for (arch, digest) in &platforms {
        let reference = format!("{repository}@{digest}");
        cosign(&["verify"], &reference);
        cosign(&["verify-attestation", "--type", "cyclonedx"], &reference);
        support::assert_runs_as(&reference, arch);
    }
}

#[test]
fn publish_refuses_bad_input_and_a_registry_refusing_halfway_leaves_no_tag() {
    let _time = support::Timer::start("publish_refuses_bad_input_and_a_registry_refusing_halfway_leaves_no_tag");
    let _engine = support::engine();
    let mut cleanup = Cleanup::new();
    let fx = fixture("publish");
    let (key, public) = key_pair(&fx.dir);
    let out = fx.xtask_env(&["image", "check", "fx", "--quiet", "--report", "check.json"], &[EPOCH]);
    assert!(out.status.success(), "image check fx:\n{}{}", out.stdout, out.stderr);
    let check = fx.path("check.json");
    let repo = fx.repository.clone();
    let with_check = |extra: &[&str]| -> Vec<String> {
        let mut v = vec!["--check-report".to_string(), check.clone(), "--key".into(), key.clone()];
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    fn args(v: &[String]) -> Vec<&str> {
        v.iter().map(String::as_str).collect()
    }

    // The whole publish works: index and platforms signed, SBOMs attested, tagged.
    let ns0 = namespace(&mut cleanup, "pub-ok");
    let out = publish(&fx, &ns0, &args(&with_check(&["--report", "publish.json"])), PASSWORD);
    assert!(out.status.success(), "publish:\n{}", out.stderr);
    let report = fx.report("publish.json");
    let index = report["images"][0]["index_digest"].as_str().unwrap().to_string();
    assert_eq!(tags(&format!("{ns0}/{repo}")), ["sha-0000000"], "the strategy's tag, moved last");
    assert_eq!(report["images"][0]["verified_signatures"], 3, "index + 2 platforms: {report}");
    assert_eq!(report["images"][0]["verified_attestations"], 2, "an SBOM per platform: {report}");
    // The same, proven by other tools than the xtask: cosign verifies the
    // index's signature, and each platform's signature and SBOM
    // attestation; each platform's digest, pulled and run, is the
    // architecture the index says.
    let published = format!("{REGISTRY}/{ns0}/{repo}");
    independently_signed_attested_and_runnable(&published, &index, &public);

    // A failed check: refused before anything is pushed, naming the check.
    let mut failed: Value = serde_json::from_str(&std::fs::read_to_string(&check).unwrap()).unwrap();
    for row in failed["rows"].as_array_mut().unwrap() {
        if row["check"] == "scan" {
            row["results"]["linux/arm64"] = "fail".into();
        }
    }
    std::fs::write(fx.dir.join("failed.json"), failed.to_string()).unwrap();
    let ns = namespace(&mut cleanup, "pub-failed");
    let out = publish(&fx, &ns, &["--check-report", &fx.path("failed.json"), "--key", &key], PASSWORD);
    let line = one_line_error(&out, "publishing a failed check");
    assert!(line.contains("`image check` failed for fx on linux/arm64") && line.contains(": scan:"), "{line}");
    assert!(tags(&format!("{ns}/{repo}-staging")).is_empty(), "nothing pushed");

    // A wrong password, a missing key: one line, nothing pushed.
    let out = publish(&fx, &ns, &args(&with_check(&[])), "wrong");
    assert!(one_line_error(&out, "a wrong password").contains("can't be decrypted: set COSIGN_PASSWORD"));
    let out = publish(&fx, &ns, &["--check-report", &check, "--key", &fx.path("nope.key")], PASSWORD);
    assert!(one_line_error(&out, "a missing key").contains("does not exist"));
    assert!(tags(&format!("{ns}/{repo}-staging")).is_empty(), "nothing pushed");

    // The registry refuses the second platform's push: no tag anywhere.
    let ns = namespace(&mut cleanup, "pub-refuse-push");
    block(&format!("{ns}/{repo}-staging/_manifests/tags/sha-0000000-linux-arm64"));
    let out = publish(&fx, &ns, &args(&with_check(&[])), PASSWORD);
    let line = one_line_error(&out, "a refused arm64 push");
    assert!(line.contains("image `fx`"), "{line}");
    // (The blocking file is listed as a tag; amd64 was pushed for real.)
    run_ok(
        "docker",
        &[
            "buildx",
            "imagetools",
            "inspect",
            "--raw",
            &format!("{REGISTRY}/{ns}/{repo}-staging:sha-0000000-linux-amd64"),
        ],
    );
    assert!(tags(&format!("{ns}/{repo}")).is_empty(), "no tag in the repository");

    // The registry refuses the index (the repository can't be written).
    let ns = namespace(&mut cleanup, "pub-refuse-index");
    block(&format!("{ns}/{repo}"));
    let out = publish(&fx, &ns, &args(&with_check(&[])), PASSWORD);
    assert!(one_line_error(&out, "a refused index").contains("pushing the index"), "{}", out.stderr);
    assert_eq!(tags(&format!("{ns}/{repo}-staging")).len(), 2, "both platforms staged");

    // The registry refuses the signature: the index is there by digest, untagged.
    let ns = namespace(&mut cleanup, "pub-refuse-sign");
    let hex = index.strip_prefix("sha256:").unwrap();
    block(&format!("{ns}/{repo}/_manifests/tags/sha256-{hex}.sig"));
    let out = publish(&fx, &ns, &args(&with_check(&[])), PASSWORD);
    assert!(one_line_error(&out, "a refused signature").contains("signing"), "{}", out.stderr);
    let left = tags(&format!("{ns}/{repo}"));
    assert!(!left.contains(&"sha-0000000".to_string()), "no strategy tag after a failed signature: {left:?}");
    run_ok("docker", &["buildx", "imagetools", "inspect", "--raw", &format!("{REGISTRY}/{ns}/{repo}@{index}")]);

    // Verification: the right key passes, another key fails, and a tag moved
    // onto an unsigned image fails.
    let reference = format!("{REGISTRY}/{ns0}/{repo}:sha-0000000");
    let out = fx.xtask(&["image", "verify", &reference, "--key", &public, "--no-tlog", "--report", "verify.json"]);
    assert!(out.status.success(), "verify:\n{}", out.stderr);
    let verified = fx.report("verify.json");
    assert_eq!(verified["index_digest"], index.as_str());
    assert_eq!(verified["platforms"].as_array().unwrap().len(), 2);
    let other = fx.dir.join("other");
    std::fs::create_dir(&other).unwrap();
    let (_, other_public) = key_pair(&other);
    let out = fx.xtask(&["image", "verify", &reference, "--key", &other_public, "--no-tlog"]);
    assert!(one_line_error(&out, "another key").contains("no matching signatures"), "{}", out.stderr);
    let staged: Vec<String> = report["images"][0]["platforms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| format!("{REGISTRY}/{ns0}/{repo}-staging@{}", p["digest"].as_str().unwrap()))
        .collect();
    // An index of the same platforms without the amd64 one: not what was signed.
    run_ok("docker", &["buildx", "imagetools", "create", "--tag", &reference, &staged[1]]);
    let out = fx.xtask(&["image", "verify", &reference, "--key", &public, "--no-tlog"]);
    assert!(
        one_line_error(&out, "a tag moved to an unsigned image").contains("verifying the signature"),
        "{}",
        out.stderr
    );
}

#[test]
fn the_ci_split_push_only_per_platform_then_publish_the_digests() {
    let _time = support::Timer::start("the_ci_split_push_only_per_platform_then_publish_the_digests");
    let _engine = support::engine();
    let mut cleanup = Cleanup::new();
    let fx = fixture("publish-split");
    let (key, public) = key_pair(&fx.dir);
    let ns = namespace(&mut cleanup, "pub-split");
    let repo = fx.repository.clone();
    // Each matrix job: check its platform, push it by digest.
    for arch in ["amd64", "arm64"] {
        let platform = format!("linux/{arch}");
        let out = fx.xtask_env(
            &["image", "check", "fx", "--platform", &platform, "--quiet", "--report", &format!("check-{arch}.json")],
            &[EPOCH],
        );
        assert!(out.status.success(), "check {arch}:\n{}", out.stderr);
        let out = publish(
            &fx,
            &ns,
            &[
                "--platform",
                &platform,
                "--push-only",
                "--check-report",
                &fx.path(&format!("check-{arch}.json")),
                "--report",
                &format!("push-{arch}.json"),
            ],
            "",
        );
        assert!(out.status.success(), "push-only {arch}:\n{}", out.stderr);
        let checked = fx.report(&format!("check-{arch}.json"));
        let pushed = fx.report(&format!("push-{arch}.json"));
        assert_eq!(pushed["push_only"], true);
        assert_eq!(
            pushed["images"][0]["platforms"][0]["digest"], checked["images"][0]["build"]["platforms"][0]["digest"],
            "the digest pushed is the digest checked"
        );
    }
    assert!(tags(&format!("{ns}/{repo}")).is_empty(), "the matrix jobs tag nothing");
    // A platform without its push report, or without its check: refused.
    let both_checks = ["--check-report", &fx.path("check-amd64.json"), "--check-report", &fx.path("check-arm64.json")];
    let (amd_push, arm_push, key_arg) = (fx.path("push-amd64.json"), fx.path("push-arm64.json"), key.clone());
    let mut args = vec!["--digests", &amd_push];
    args.extend_from_slice(&both_checks);
    args.extend_from_slice(&["--key", &key_arg]);
    let out = publish(&fx, &ns, &args, PASSWORD);
    assert!(
        one_line_error(&out, "a platform not staged").contains("no --digests report stages fx on linux/arm64"),
        "{}",
        out.stderr
    );
    let arm_check = fx.path("check-arm64.json");
    let out = publish(
        &fx,
        &ns,
        &["--digests", &amd_push, &arm_push, "--check-report", &arm_check, "--key", &key_arg],
        PASSWORD,
    );
    assert!(
        one_line_error(&out, "a platform not checked").contains("fx has not been checked on linux/amd64"),
        "{}",
        out.stderr
    );
    assert!(tags(&format!("{ns}/{repo}")).is_empty(), "refusals tag nothing");
    // The merge job.
    let out = publish(
        &fx,
        &ns,
        &[
            "--digests",
            &fx.path("push-amd64.json"),
            &fx.path("push-arm64.json"),
            "--check-report",
            &fx.path("check-amd64.json"),
            "--check-report",
            &fx.path("check-arm64.json"),
            "--key",
            &key,
            "--report",
            "publish.json",
        ],
        PASSWORD,
    );
    assert!(out.status.success(), "publish --digests:\n{}", out.stderr);
    assert_eq!(
        tags(&format!("{ns}/{repo}")).iter().filter(|t| !t.ends_with(".sig") && !t.ends_with(".att")).count(),
        1
    );
    let reference = fx.report("publish.json")["images"][0]["reference"].as_str().unwrap().to_string();
    let out = fx.xtask(&["image", "verify", &reference, "--key", &public, "--no-tlog"]);
    assert!(out.status.success(), "verify:\n{}", out.stderr);
}

/// The issue's acceptance run: a stand-in of the worker (the real Claude
/// Code binary on musl) checked in this run, published for both platforms
/// with a generated key, verified; pulled back by digest, both platforms
/// run (`--version` through the worker's entrypoint).
/// The digest `REPO:TAG` names in the local registry (none when missing).
fn digest_of(reference: &str) -> Option<String> {
    let out = std::process::Command::new("docker")
        .args(["buildx", "imagetools", "inspect", "--format", "{{json .Manifest}}", reference])
        .output()
        .unwrap();
    if !out.status.success() {
        return None;
    }
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["digest"].as_str().map(str::to_string)
}

#[test]
fn two_releases_at_once_leave_the_floating_tags_on_the_highest() {
    let _time = support::Timer::start("two_releases_at_once_leave_the_floating_tags_on_the_highest");
    let _engine = support::engine();
    let mut cleanup = Cleanup::new();
    let fx = fixture("publish-race");
    let (key, _) = key_pair(&fx.dir);
    let ns = namespace(&mut cleanup, "pub-race");
    let repo = format!("{REGISTRY}/{ns}/{}", fx.repository);
    // 1.2.3 first: the line's only release.
    let out = publish(&fx, &ns, &["--key", &key, "--release", "1.2.3"], PASSWORD);
    assert!(out.status.success(), "publish 1.2.3:\n{}", out.stderr);
    let first = digest_of(&format!("{repo}:1.2.3")).expect("1.2.3 is tagged");
    assert_eq!(digest_of(&format!("{repo}:1")).as_deref(), Some(first.as_str()));
    // Then 1.3.0 and 1.2.4, from two checkouts (two commits, as two CI runs
    // of two tags): each published and verified without tags (`--no-tags`,
    // the publish job), then both release jobs (`ci tag`) at once.
    let second = support::temp_dir("xtask-publish-race-2");
    support::copy_dir(&fx.dir, second.path());
    std::fs::write(second.path().join("ctx/late.txt"), "release 1.2.4\n").unwrap();
    let releases = [("1.3.0", fx.dir.clone()), ("1.2.4", second.path().to_path_buf())];
    for (v, dir) in &releases {
        for args in [
            &["init", "-q"][..],
            &["add", "ctx", "images.toml"],
            &["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", v],
        ] {
            assert!(std::process::Command::new("git").args(args).current_dir(dir).status().unwrap().success());
        }
        std::fs::create_dir_all(dir.join("published")).unwrap();
        let report = dir.join("published/publish.json").display().to_string();
        let registry = format!("{REGISTRY}/{ns}");
        let args =
            ["image", "publish", "fx", "--registry", &registry, "--no-tlog", "--quiet", "--key", &key, "--release", v];
        let out = support::xtask_in(
            dir,
            &[&args[..], &["--no-tags", "--report", &report]].concat(),
            &[("COSIGN_PASSWORD", PASSWORD), EPOCH],
        );
        assert!(out.status.success(), "publish {v} --no-tags:\n{}", out.stderr);
        assert!(digest_of(&format!("{repo}:{v}")).is_none(), "--no-tags tagged {v}");
    }
    let payload = fx.dir.join("event.json");
    std::fs::write(&payload, r#"{"repository": {"default_branch": "main"}}"#).unwrap();
    let releases: Vec<_> = releases
        .into_iter()
        .map(|(v, dir)| {
            let (ns, payload) = (ns.clone(), payload.clone());
            std::thread::spawn(move || {
                let git_ref = format!("refs/tags/v{v}");
                let env = [
                    ("GITHUB_EVENT_NAME", "push"),
                    ("GITHUB_REF", git_ref.as_str()),
                    ("GITHUB_REPOSITORY", "acme/ralph"),
                    ("GITHUB_WORKFLOW_REF", "acme/ralph/.github/workflows/images.yml@refs/heads/main"),
                    ("GITHUB_EVENT_PATH", payload.to_str().unwrap()),
                    ("RALPH_REGISTRY", &format!("{REGISTRY}/{ns}")),
                    ("PRODUCTS", "[\"fx\"]"),
                ];
                (v, support::xtask_in(&dir, &["ci", "tag"], &env))
            })
        })
        .collect();
    for r in releases {
        let (v, out) = r.join().unwrap();
        assert!(out.status.success(), "ci tag for {v}:\n{}", out.stderr);
    }
    let d = |t: &str| digest_of(&format!("{repo}:{t}")).unwrap_or_else(|| panic!("{repo}:{t} is not tagged"));
    let (v130, v124) = (d("1.3.0"), d("1.2.4"));
    assert_ne!(v130, v124, "two releases, two indexes (their version labels differ)");
    assert_eq!(d("1"), v130, "`1` names the highest release, 1.3.0, whichever finished last");
    assert_eq!(d("1.3"), v130);
    assert_eq!(d("1.2"), v124, "`1.2` moved on from 1.2.3 to 1.2.4");
    // And a later, older patch moves nothing floating backwards.
    let out = publish(&fx, &ns, &["--key", &key, "--release", "1.2.2"], PASSWORD);
    assert!(out.status.success(), "publish 1.2.2:\n{}", out.stderr);
    assert_eq!((d("1"), d("1.2")), (v130, v124), "1.2.2 after 1.3.0 and 1.2.4");
    assert!(
        out.stdout.contains(&format!("{repo}:1.2.2")) && !out.stdout.contains(&format!("tag {repo}:1.2\n")),
        "{}",
        out.stdout
    );
}
