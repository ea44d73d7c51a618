//! `cargo xtask image smoke` against the real engine: a fixture image that
//! passes every kind of check on both architectures, variants that must
//! each fail one kind, a check that hangs, bad specs, an image never built,
//! the same spec under container-structure-test itself, and the worker
//! stand-ins' real contract.

mod support;

use std::path::Path;
use std::process::Command;

use support::{run_cmd, run_ok, Fixture};

const VARIANTS: &[(&str, &str)] = &[
    ("root", "{ FLAW = \"root\", USER_ID = \"0\" }"),
    ("missing-file", "{ FLAW = \"missing-file\" }"),
    ("wrong-output", "{ FLAW = \"wrong-output\" }"),
    ("writes-root", "{ FLAW = \"writes-root\" }"),
    // Root images that declare a privileged start: one drops (httpd -u app),
    // one doesn't.
    ("root-drops", "{ FLAW = \"root-drops\", USER_ID = \"0\" }"),
    ("root-stays", "{ FLAW = \"root\", USER_ID = \"0\" }"),
];

/// The smoke fixture (test/images/smoke-fixture) with a catalog of its
/// variants, each under its own repository (`<fixture repository>-<variant>`).
fn smoke_fixture(name: &str) -> Fixture {
    let fx = Fixture::with_catalog(name, "smoke-fixture", |prefix| {
        let entry = |name: &str, repository: &str, platforms: &str, args: &str, smoke: &str, readonly: bool| {
            // A few MB of busybox: 20 MB is a budget it meets, 0.5 MB one it can't.
            let budget = if name == "tight" { "0.5" } else { "20" };
            let mut e = format!(
                "[[image]]\nname = \"{name}\"\nrepository = \"{repository}\"\nkind = \"fixture\"\ndockerfile = \"ctx/Dockerfile\"\ncontext = \"ctx\"\n\
                 contexts = {{ busybox = \"/usr/local/share/ralph-host/busybox\" }}\nplatforms = {platforms}\nargs = {args}\nsmoke = \"{smoke}\"\n\
                 budget = {{ max_mb = {budget} }}\n"
            );
            if readonly {
                e += "[image.readonly]\nhealth = { port = 8080, path = \"/healthz\" }\nready_seconds = 30\nstay_up_seconds = 1\n";
                if name.starts_with("root-") {
                    e += "privileged_start = { cap_add = [\"SETUID\", \"SETGID\"], drops_to = 1000 }\n";
                }
            }
            e + "\n"
        };
        let mut catalog = entry(
            "good",
            &format!("{prefix}-good"),
            "[\"linux/amd64\", \"linux/arm64\"]",
            "{}",
            "ctx/smoke.yaml",
            true,
        );
        for (variant, args) in VARIANTS {
            catalog +=
                &entry(variant, &format!("{prefix}-{variant}"), "[\"linux/amd64\"]", args, "ctx/smoke.yaml", true);
        }
        // Checks of the good image that can't pass, or can't even be read.
        catalog += &entry("hang", &format!("{prefix}-good"), "[\"linux/amd64\"]", "{}", "hang.yaml", false);
        catalog += &entry("typo", &format!("{prefix}-good"), "[\"linux/amd64\"]", "{}", "typo.yaml", false);
        catalog +=
            &entry("never-built", &format!("{prefix}-never-built"), "[\"linux/amd64\"]", "{}", "ctx/smoke.yaml", false);
        catalog += &entry("tight", &format!("{prefix}-good"), "[\"linux/amd64\"]", "{}", "ctx/smoke.yaml", false);
        catalog += &entry("expand", &format!("{prefix}-good"), "[\"linux/amd64\"]", "{}", "expand.yaml", false);
        catalog
    });
    let dir = &fx.dir;
    std::fs::write(
        dir.join("hang.yaml"),
        "schemaVersion: \"2.0.0\"\ncommandTests:\n  - name: hangs\n    command: sleep\n    args: [\"600\"]\n  - name: quick\n    command: \"true\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("typo.yaml"),
        "schemaVersion: \"2.0.0\"\ncommandTests:\n  - name: typo\n    comand: \"true\"\n",
    )
    .unwrap();
    // `$VAR` everywhere a spec names something in the image: setup and test
    // commands, their environment values, file existence and content paths.
    std::fs::write(
        dir.join("expand.yaml"),
        r#"schemaVersion: "2.0.0"
globalEnvVars:
  - key: APP
    value: /app
containerRunOptions:
  user: "0"
commandTests:
  - name: setup commands expand
    setup: [["cp", "$APP/hello.txt", "/tmp/copied"]]
    command: cat
    args: ["/tmp/copied"]
    expectedOutput: ['^hello from the fixture\n$']
  - name: test env values expand
    envVars: [{key: WHERE, value: "${APP}/hello.txt"}]
    command: env
    expectedOutput: ['(?m)^WHERE=/app/hello\.txt$']
fileExistenceTests:
  - name: existence paths expand
    path: $APP/hello.txt
fileContentTests:
  - name: content paths expand
    path: ${APP}/hello.txt
    expectedContents: ['^hello from the fixture']
"#,
    )
    .unwrap();
    fx
}

/// Builds fixture images (the engine's cache still applies).
fn build(fx: &Fixture, images: &[&str]) {
    let mut args = vec!["image", "build", "--quiet", "--cache", "none"];
    args.extend(images);
    let out = fx.xtask(&args);
    assert!(out.status.success(), "{}", out.stderr);
}

/// Containers the smoke runs left behind: they carry the session label, and
/// the xtask that made them (`HOST/PIDNS/PID` in the owner label) has
/// exited. Another run's containers, still in use beside this test (the
/// rehearsal's, in `scripts/test.sh`'s other lane), are not leftovers.
fn leftover_containers() -> String {
    let listed = run_ok(
        "docker",
        &[
            "ps",
            "--all",
            "--filter",
            "label=io.ralph.xtask.run",
            "--format",
            "{{.ID}} {{.Label \"io.ralph.xtask.owner\"}}",
        ],
    );
    listed
        .lines()
        .filter(|line| {
            let pid = line.rsplit('/').next().unwrap_or("");
            pid.is_empty() || !Path::new(&format!("/proc/{pid}")).exists()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Volumes no container uses: a leaked anonymous volume is one of them (a
/// volume another run's container still uses is not).
fn volumes() -> Vec<String> {
    run_ok("docker", &["volume", "ls", "--quiet", "--filter", "dangling=true"]).lines().map(str::to_string).collect()
}

/// The checks of one image and platform in a JSON report: (title, passed).
fn checks<'a>(report: &'a serde_json::Value, image: &str, platform: &str) -> Vec<&'a serde_json::Value> {
    report["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["image"] == image)
        .unwrap_or_else(|| panic!("no {image} in {report}"))["platforms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["platform"] == platform)
        .unwrap_or_else(|| panic!("no {platform} for {image}"))["checks"]
        .as_array()
        .unwrap()
        .iter()
        .collect()
}

/// Every failed check in the report, with what it expected and what it got.
fn failures(report: &serde_json::Value) -> String {
    let mut out = String::new();
    for image in report["images"].as_array().unwrap() {
        for platform in image["platforms"].as_array().unwrap() {
            for c in platform["checks"].as_array().unwrap().iter().filter(|c| c["passed"] == false) {
                out += &format!("FAILED {} {} {c}\n", image["image"], platform["platform"]);
            }
        }
    }
    out
}

fn failed_names(report: &serde_json::Value, image: &str) -> Vec<String> {
    checks(report, image, "linux/amd64")
        .iter()
        .filter(|c| c["passed"] == false)
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_good_image_passes_every_check_on_both_architectures() {
    let _engine = support::engine();
    let fx = smoke_fixture("good");
    build(&fx, &["good"]);
    let volumes_before = volumes();
    let out =
        fx.xtask(&["image", "smoke", "good", "--report", &fx.path("smoke.json"), "--junit", &fx.path("smoke.xml")]);
    assert!(out.status.success(), "{}\n{}", out.stdout, out.stderr);
    let report = fx.report("smoke.json");
    assert_eq!(report["failed"], 0);
    for platform in ["linux/amd64", "linux/arm64"] {
        let cs = checks(&report, "good", platform);
        // 3 commands + 2 file existence + 1 file content + metadata + read-only.
        assert_eq!(cs.len(), 8, "{platform}: {cs:?}");
        assert!(cs.iter().all(|c| c["passed"] == true), "{cs:?}");
        let uname = cs.iter().find(|c| c["name"] == "uname").unwrap();
        let machine = if platform == "linux/arm64" { "aarch64\n" } else { "x86_64\n" };
        assert_eq!(uname["stdout"], machine, "the command ran on {platform}");
        let readonly = cs.iter().find(|c| c["kind"] == "read-only").unwrap();
        assert!(readonly["actual"].as_str().unwrap().starts_with("healthy after"), "{readonly}");
    }
    // The JUnit XML: a suite per platform, a case per check, no failures.
    let xml = std::fs::read_to_string(fx.dir.join("smoke.xml")).unwrap();
    assert!(xml.starts_with("<?xml"));
    assert_eq!(xml.matches("<testsuite ").count(), 2, "{xml}");
    assert_eq!(xml.matches("<testcase ").count(), 16, "{xml}");
    assert!(xml.contains("<testsuites name=\"xtask image smoke\" tests=\"16\" failures=\"0\""), "{xml}");
    assert!(!xml.contains("<failure"));
    assert!(xml.contains("name=\"Command Test: uname\""));
    // The table.
    assert!(out.stdout.lines().next().unwrap().starts_with("IMAGE"), "{}", out.stdout);
    assert!(out.stdout.contains("linux/arm64  8"), "{}", out.stdout);
    assert_eq!(leftover_containers(), "");
    assert!(volumes().iter().all(|v| volumes_before.contains(v)), "the image's anonymous /data volumes are removed");
}

#[test]
fn each_flawed_variant_fails_its_check_with_expected_and_actual() {
    let _engine = support::engine();
    let fx = smoke_fixture("flaws");
    let names: Vec<&str> = VARIANTS.iter().map(|(v, _)| *v).collect();
    build(&fx, &names);
    let volumes_before = volumes();
    let mut args = vec!["image", "smoke"];
    args.extend(&names);
    args.extend(["--report", "flaws.json", "--junit", "flaws.xml"]);
    let out = fx.xtask(&args);
    assert!(!out.status.success());
    let last = out.stderr.lines().last().unwrap();
    assert!(last.starts_with("error: ") && last.contains("smoke checks failed"), "{last}");
    let report = fx.report("flaws.json");

    assert_eq!(failed_names(&report, "root"), vec!["runs as app", "metadata", "read-only root filesystem"]);
    let root = checks(&report, "root", "linux/amd64");
    let meta = root.iter().find(|c| c["kind"] == "metadata").unwrap();
    assert!(
        meta["errors"].as_array().unwrap().iter().any(|e| e == "Image user 0:0 does not match config user: 1000:1000"),
        "{meta}"
    );
    let ro = root.iter().find(|c| c["kind"] == "read-only").unwrap();
    assert!(ro["errors"][0].as_str().unwrap().contains("runs as root by default"), "{ro}");

    assert_eq!(failed_names(&report, "missing-file"), vec!["hello", "hello file"]);
    let missing = checks(&report, "missing-file", "linux/amd64");
    let file = missing.iter().find(|c| c["name"] == "hello file").unwrap();
    assert_eq!(file["errors"][0], "File /app/hello.txt not found in image");
    assert_eq!(file["actual"], "absent");

    assert_eq!(failed_names(&report, "wrong-output"), vec!["hello"]);
    let wrong = checks(&report, "wrong-output", "linux/amd64");
    let hello = wrong.iter().find(|c| c["name"] == "hello").unwrap();
    assert_eq!(hello["expected"], "exit 0, stdout ~ /^hello from the fixture\\n$/");
    assert_eq!(hello["actual"], "exit 0, stdout 'goodbye', stderr ''");

    assert_eq!(failed_names(&report, "writes-root"), vec!["read-only root filesystem"]);
    let writes = checks(&report, "writes-root", "linux/amd64");
    let ro = writes.iter().find(|c| c["kind"] == "read-only").unwrap();
    assert!(ro["errors"][0].as_str().unwrap().contains("Read-only file system"), "{ro}");

    // A privileged start: root with the capabilities it declares, then
    // every process but the init as uid 1000 (`docker top`), or a failure
    // that names what still runs as root.
    let drops = checks(&report, "root-drops", "linux/amd64");
    let ro = drops.iter().find(|c| c["kind"] == "read-only").unwrap();
    assert_eq!(failed_names(&report, "root-drops"), vec!["runs as app", "metadata"], "{ro}");
    assert!(ro["actual"].as_str().unwrap().contains("dropped to uid 1000 (1 process(es))"), "{ro}");
    assert!(ro["expected"].as_str().unwrap().starts_with("starts as root with --cap-add SETUID,SETGID"), "{ro}");
    assert_eq!(failed_names(&report, "root-stays"), vec!["runs as app", "metadata", "read-only root filesystem"]);
    let stays = checks(&report, "root-stays", "linux/amd64");
    let ro = stays.iter().find(|c| c["kind"] == "read-only").unwrap();
    let error = ro["errors"][0].as_str().unwrap();
    assert!(error.contains("it started as root and no process runs as uid 1000 once it is up"), "{ro}");

    // JUnit carries the same failures.
    let xml = std::fs::read_to_string(fx.dir.join("flaws.xml")).unwrap();
    let failed = report["failed"].as_u64().unwrap();
    assert_eq!(failed, 12);
    assert_eq!(xml.matches("<failure ").count() as u64, failed);
    assert_eq!(leftover_containers(), "");
    assert!(volumes().iter().all(|v| volumes_before.contains(v)));
}

#[test]
fn dollar_variables_expand_wherever_a_spec_names_something() {
    let _engine = support::engine();
    let fx = smoke_fixture("expand");
    build(&fx, &["expand"]);
    let out = fx.xtask(&["image", "smoke", "expand", "--report", "expand.json"]);
    let report = fx.report("expand.json");
    let cs = checks(&report, "expand", "linux/amd64");
    let failed: Vec<&serde_json::Value> = cs.iter().copied().filter(|c| c["passed"] != true).collect();
    assert!(failed.is_empty(), "{failed:#?}");
    assert_eq!(cs.len(), 4, "{cs:?}");
    assert!(out.status.success(), "{}", out.stderr);
    assert_eq!(leftover_containers(), "");
}

#[test]
fn a_hanging_check_fails_at_the_timeout_and_its_container_is_removed() {
    let _engine = support::engine();
    let fx = smoke_fixture("hang");
    build(&fx, &["good"]);
    let out = fx.xtask(&["image", "smoke", "hang", "--timeout", "3", "--report", "hang.json"]);
    assert!(!out.status.success());
    let report = fx.report("hang.json");
    let cs = checks(&report, "hang", "linux/amd64");
    assert_eq!(cs[0]["errors"][0], "`hangs` timed out after 3s: the container was stopped and removed");
    assert_eq!(cs[1]["passed"], true, "the other check still ran");
    assert_eq!(leftover_containers(), "");
    assert_eq!(
        run_ok("docker", &["ps", "--quiet", "--filter", &format!("ancestor={}-good:sha-0000000", fx.repository)]),
        ""
    );
}

#[test]
fn bad_input_gets_one_line_with_the_fix() {
    let fx = smoke_fixture("bad");
    let typo = fx.xtask(&["image", "smoke", "typo"]);
    assert!(!typo.status.success());
    let line = typo.stderr.lines().last().unwrap();
    let spec = fx.dir.join("typo.yaml");
    assert!(
        line.starts_with(&format!("error: {}: line 4: commandTests[0]: unknown field `comand`", spec.display())),
        "{line}"
    );

    let never = fx.xtask(&["image", "smoke", "never-built"]);
    assert!(!never.status.success());
    let line = never.stderr.lines().last().unwrap();
    assert!(
        line.contains("image `never-built` is not built") && line.contains("run `cargo xtask image build never-built`"),
        "{line}"
    );

    let down = fx.xtask_env(&["image", "smoke", "good"], &[("DOCKER_HOST", "unix:///nonexistent/docker.sock")]);
    assert!(!down.status.success());
    assert!(down.stderr.lines().last().unwrap().contains("the docker daemon is not running"), "{}", down.stderr);

    let platform = fx.xtask(&["image", "smoke", "root", "--platform", "linux/arm64"]);
    assert!(platform
        .stderr
        .lines()
        .last()
        .unwrap()
        .contains("platform linux/arm64 is not in the catalog for image `root`"));
}

#[test]
fn a_pushed_image_is_checked_as_the_registry_serves_it() {
    let _engine = support::engine();
    let fx = smoke_fixture("pushed");
    let out = fx.xtask(&["image", "build", "good", "--push", "--registry", support::REGISTRY, "--quiet"]);
    assert!(out.status.success(), "{}", out.stderr);
    // A push with the containerd store also tags the local engine: that
    // copy goes first, so only a pull can give the smoke its image.
    let pushed = format!("{}/{}-good:sha-0000000", support::REGISTRY, fx.repository);
    let in_engine = || run_cmd(Command::new("docker").args(["image", "inspect", &pushed])).status.success();
    fx.remove_images(&[&pushed]);
    assert!(!in_engine(), "{pushed} is still in the engine");
    let out = fx.xtask(&[
        "image",
        "smoke",
        "good",
        "--registry",
        support::REGISTRY,
        "--platform",
        "linux/arm64",
        "--report",
        "pushed.json",
    ]);
    assert!(out.status.success(), "{}", out.stderr);
    let report = fx.report("pushed.json");
    assert_eq!(report["images"][0]["reference"], pushed.as_str());
    assert!(checks(&report, "good", "linux/arm64").iter().all(|c| c["passed"] == true));
    // What the smoke pulled, it removed.
    assert!(!in_engine(), "the pulled {pushed} was left in the engine");
    assert_eq!(leftover_containers(), "");
}

#[test]
fn an_image_built_for_one_platform_names_the_build_for_the_other() {
    let _engine = support::engine();
    let fx = smoke_fixture("oneplatform");
    let out = fx.xtask(&["image", "build", "good", "--platform", "linux/amd64", "--quiet"]);
    assert!(out.status.success(), "{}", out.stderr);
    let out = fx.xtask(&["image", "smoke", "good", "--platform", "linux/arm64"]);
    assert!(!out.status.success());
    let line = out.stderr.lines().last().unwrap();
    assert!(line.contains("has no linux/arm64 variant") && line.contains("--platform linux/arm64"), "{line}");
    assert_eq!(leftover_containers(), "");
}

#[test]
fn the_same_spec_runs_under_container_structure_test() {
    let _engine = support::engine();
    let fx = smoke_fixture("cst");
    build(&fx, &["good", "wrong-output"]);
    // container-structure-test removes its containers but not their anonymous
    // volumes (the fixture declares VOLUME /data): those go when it is done.
    let volumes_before = volumes();
    let mut cleanup = support::Cleanup::new();
    cleanup.defer(move || {
        let leaked: Vec<String> = volumes().into_iter().filter(|v| !volumes_before.contains(v)).collect();
        if !leaked.is_empty() {
            let _ = Command::new("docker").args(["volume", "rm"]).args(&leaked).output();
        }
    });
    // container-structure-test's verdict: its exit status, its totals and
    // each check's (name, pass), sorted.
    let cst = |variant: &str| {
        let out = Command::new("container-structure-test")
            .args(["test", "--image", &format!("{}-{variant}:sha-0000000", fx.repository), "--config"])
            .arg(fx.dir.join("ctx/smoke.yaml"))
            .args(["--platform", "linux/amd64", "--output", "json"])
            .output()
            .unwrap();
        let json = String::from_utf8_lossy(&out.stdout);
        let report: serde_json::Value =
            serde_json::from_str(json.lines().last().unwrap()).unwrap_or_else(|e| panic!("{e}: {json}"));
        let mut results: Vec<(String, bool)> = report["Results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["Name"].as_str().unwrap().to_string(), r["Pass"].as_bool().unwrap()))
            .collect();
        results.sort();
        (out.status.success(), report, results)
    };
    // Ours on the same image and file, named as CST names its checks.
    let ours = |variant: &str| {
        let file = format!("ours-{variant}.json");
        let out =
            fx.xtask(&["image", "smoke", variant, "--no-readonly", "--platform", "linux/amd64", "--report", &file]);
        let report = fx.report(&file);
        let mut results: Vec<(String, bool)> = checks(&report, variant, "linux/amd64")
            .iter()
            .map(|c| {
                let name = c["name"].as_str().unwrap();
                let title = match c["kind"].as_str().unwrap() {
                    "command" => format!("Command Test: {name}"),
                    "file-existence" => format!("File Existence Test: {name}"),
                    "file-content" => format!("File Content Test: {name}"),
                    "metadata" => "Metadata Test".to_string(),
                    other => panic!("a check of kind {other} in {report}"),
                };
                (title, c["passed"].as_bool().unwrap())
            })
            .collect();
        results.sort();
        // Our failed checks in full (what ran, what it printed, the errors):
        // what a disagreement with CST is read from.
        let failed: Vec<&serde_json::Value> =
            checks(&report, variant, "linux/amd64").into_iter().filter(|c| c["passed"] != true).collect();
        (out.status.success(), results, format!("{failed:#?}"))
    };
    // The spec's checks: 3 commands, 2 files, 1 content, the metadata.
    for (variant, passes, failing) in [("good", true, vec![]), ("wrong-output", false, vec!["Command Test: hello"])] {
        let (cst_ok, report, cst_results) = cst(variant);
        assert_eq!(cst_ok, passes, "container-structure-test's exit status on {variant}: {report}");
        assert_eq!(report["Total"], 7, "{report}");
        assert_eq!(report["Fail"], failing.len(), "{report}");
        assert_eq!(report["Pass"], 7 - failing.len(), "{report}");
        let cst_failed: Vec<&str> = cst_results.iter().filter(|(_, p)| !p).map(|(n, _)| n.as_str()).collect();
        assert_eq!(cst_failed, failing, "{report}");
        let (ours_ok, our_results, our_failures) = ours(variant);
        assert_eq!(
            our_results, cst_results,
            "ours and container-structure-test's, check by check, on {variant}; ours failed: {our_failures}"
        );
        assert_eq!(ours_ok, passes, "our exit status on {variant}; ours failed: {our_failures}");
    }
}

#[test]
fn image_check_runs_everything_and_sums_it_up_in_one_table() {
    let _engine = support::engine();
    let fx = smoke_fixture("check");
    let out = fx.xtask(&[
        "image",
        "check",
        "good",
        "--quiet",
        "--runs",
        "2",
        "--report",
        "check.json",
        "--junit",
        "check.xml",
    ]);
    assert!(out.status.success(), "{}\n{}", out.stdout, out.stderr);
    let report = fx.report("check.json");
    assert_eq!(report["ok"], true);
    let rows = report["rows"].as_array().unwrap();
    let checks: Vec<&str> = rows.iter().map(|r| r["check"].as_str().unwrap()).collect();
    assert_eq!(checks, vec!["lint", "build", "smoke", "read-only", "size", "startup, peak memory", "scan", "vulns"]);
    for r in rows {
        // No vulnerability DB here: the vulnerability scan is skipped, never a pass.
        let expected = if r["check"] == "vulns" { "skipped" } else { "pass" };
        assert_eq!(r["results"]["linux/amd64"], expected, "{r}");
        assert_eq!(r["results"]["linux/arm64"], expected, "{r}");
    }
    let startup = &report["images"][0]["runtime"];
    assert_eq!(startup.as_array().unwrap().len(), 2);
    assert!(startup[0]["startup_ms_median"].as_f64().unwrap() > 0.0);
    assert!(startup[0]["peak_memory_bytes"].as_u64().unwrap() > 0, "{startup}");
    let size = &report["images"][0]["size"]["platforms"][0];
    assert!(size["uncompressed_bytes"].as_u64().unwrap() > 1_000_000, "{size}");
    // The table: one line per check, a column per architecture, the figure.
    let table: Vec<&str> = out.stdout.lines().collect();
    assert!(
        table[0].starts_with("IMAGE")
            && table[0].contains("amd64")
            && table[0].contains("arm64")
            && table[0].ends_with("FIGURE"),
        "{}",
        out.stdout
    );
    assert_eq!(table.len(), 9, "{}", out.stdout);
    // JUnit: 16 smoke and read-only cases, the lint, per platform a secret scan and a (skipped) vulnerability scan.
    let xml = std::fs::read_to_string(fx.dir.join("check.xml")).unwrap();
    assert!(xml.contains("tests=\"21\" failures=\"0\" skipped=\"2\""), "{xml}");
    assert!(xml.contains("name=\"good lint\"") && xml.contains("name=\"Scan secrets: linux/arm64\""), "{xml}");

    // An image over its budget fails the run, and says which check.
    let out = fx.xtask(&["image", "check", "tight", "--no-build", "--report", "tight.json"]);
    assert!(!out.status.success());
    let last = out.stderr.lines().last().unwrap();
    assert_eq!(last, "error: image check failed: tight size (details above)");
    let tight = fx.report("tight.json");
    let size_row = tight["rows"].as_array().unwrap().iter().find(|r| r["check"] == "size").unwrap();
    assert_eq!(size_row["results"]["linux/amd64"], "fail");
    assert!(size_row["figure"].as_str().unwrap().contains("over budget by"), "{size_row}");
    assert_eq!(leftover_containers(), "");
}

/// The worker stand-ins' real contract: Claude Code on musl, the tools,
/// the user, the entrypoint, /opt/ralph, and the read-only start, on both
/// architectures (arm64 under emulation).
#[test]
fn the_worker_standins_keep_the_workers_contract() {
    let _engine = support::engine();
    let root = support::repo_root();
    let xtask = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_xtask")).args(args).current_dir(&root).output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // Tagged with a branch of the test's own, never the checkout's
    // `main-<sha>` or `latest` (see `support::CatalogBuild`).
    let built = support::CatalogBuild::new(&["worker-standin", "python-standin"], &[]);
    // Their read-only checks' database, for this machine's platform alone:
    // where it runs beside either platform (an arm64 PostgreSQL is not built).
    let native = format!("linux/{}", if cfg!(target_arch = "aarch64") { "arm64" } else { "amd64" });
    let _database = support::CatalogBuild::on_branch(&built.branch, &["postgres-standin"], &["--platform", &native]);
    let reference = built.reference("worker-standin");
    let tag = reference.rsplit_once(':').unwrap().1;
    let dir = support::temp_dir("xtask-standin-smoke");
    let report = dir.path().join("smoke.json");
    let (ok, stdout, stderr) = xtask(&[
        "image",
        "smoke",
        "worker-standin",
        "python-standin",
        "--tag",
        tag,
        "--report",
        report.to_str().unwrap(),
    ]);
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    // The failing checks in full first: CI shows a long message's ends only.
    assert!(ok, "{}\n{stderr}\n{stdout}", failures(&json));
    for image in ["worker-standin", "python-standin"] {
        for platform in ["linux/amd64", "linux/arm64"] {
            let cs = checks(&json, image, platform);
            assert!(cs.len() > 20, "{image} {platform}");
            assert!(cs.iter().any(|c| c["kind"] == "read-only" && c["passed"] == true), "{image} {platform}");
            let claude = cs.iter().find(|c| c["name"] == "claude --version prints the pinned version").unwrap();
            assert!(
                claude["stdout"].as_str().unwrap().starts_with(&format!("{} (Claude Code)", claude_version())),
                "{claude}"
            );
        }
    }
    assert_eq!(leftover_containers(), "");
}

fn claude_version() -> String {
    let pins = std::fs::read_to_string(support::repo_root().join("docker/claude-code.pins")).unwrap();
    pins.lines().find_map(|l| l.strip_prefix("CLAUDE_VERSION=")).unwrap().to_string()
}

/// The specs pin the Claude Code version in their regexes; they must say
/// what docker/claude-code.pins installs.
#[test]
fn smoke_specs_expect_the_pinned_claude_version() {
    let escaped = claude_version().replace('.', "\\.");
    for spec in ["docker/structure/worker.yaml", "docker/structure/worker-amazonlinux.yaml"] {
        let text = std::fs::read_to_string(Path::new(&support::repo_root()).join(spec)).unwrap();
        let pinned: Vec<&str> =
            text.lines().filter(|l| l.contains("(Claude Code)") || l.contains("/usr/local/share/claude/")).collect();
        assert!(!pinned.is_empty(), "{spec}");
        for line in pinned.iter().filter(|l| l.contains("expectedOutput")) {
            assert!(line.contains(&escaped), "{spec}: `{line}` does not expect Claude Code {}", claude_version());
        }
    }
}
