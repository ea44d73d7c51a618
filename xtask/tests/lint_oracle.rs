//! BuildKit as the lint's oracle. Every Dockerfile of the lint corpus
//! (test/lint/corpus) is built by the real BuildKit for linux/amd64, each
//! external image replaced by test/lint/oracle/base.Dockerfile, and what
//! BuildKit made is compared with what `cargo xtask image explain` (the
//! model the policy reads) says: the final image's config, the steps of the
//! stages it is built on (its history, `ONBUILD` triggers included), what
//! BuildKit recorded for each `RUN`, `ENV`, `USER` and `WORKDIR`, and the
//! files each `COPY`/`ADD` of the build context placed (read from its
//! layer). A file that says `# oracle: refused` must be refused by both;
//! `# oracle: skip=REASON` is not built (and is reported as skipped).

mod support;

use std::collections::BTreeSet;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};
use support::{repo_root, run_cmd, temp_dir, unique_name, Cleanup};

const PLATFORM: &str = "linux/amd64";
const BUSYBOX: &str = "/usr/local/share/ralph-host/busybox";

enum Expect {
    Build,
    Refused,
    Skip(String),
}

struct Case {
    rel: String,
    file: PathBuf,
    context: PathBuf,
    expect: Expect,
}

fn cases() -> Vec<Case> {
    let corpus = repo_root().join("test/lint/corpus");
    let mut cases = Vec::new();
    for entry in walkdir::WalkDir::new(&corpus).sort_by_file_name() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().to_string();
        if !(name == "Dockerfile" || name.ends_with(".Dockerfile")) {
            continue;
        }
        let text = std::fs::read_to_string(entry.path()).unwrap();
        let expect = match text.lines().find_map(|l| l.strip_prefix("# oracle:")).map(str::trim) {
            None => Expect::Build,
            Some("refused") => Expect::Refused,
            Some(other) => match other.strip_prefix("skip=") {
                Some(reason) => Expect::Skip(reason.to_string()),
                None => {
                    panic!("{}: `# oracle: {other}` is neither `refused` nor `skip=REASON`", entry.path().display())
                }
            },
        };
        cases.push(Case {
            rel: entry.path().strip_prefix(&corpus).unwrap().display().to_string(),
            file: entry.path().to_path_buf(),
            context: entry.path().parent().unwrap().to_path_buf(),
            expect,
        });
    }
    cases
}

fn docker(args: &[&str]) -> support::Output {
    run_cmd(Command::new("docker").args(args))
}

/// `image explain` of a case: the report, or the one-line error.
fn explain(case: &Case, bases: &[(String, String)], url: &str, dir: &Path) -> Result<Value, String> {
    let report = dir.join("explain.json");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    cmd.args(["--catalog"]).arg(repo_root().join("images.toml"));
    cmd.args(["image", "explain", "--platform", PLATFORM, "--file"]).arg(&case.file);
    cmd.arg("--context").arg(&case.context).arg("--report").arg(&report);
    cmd.arg("--build-arg").arg(format!("ORACLE_URL={url}"));
    for (reference, image) in bases {
        cmd.arg("--base").arg(format!("{reference}={image}"));
    }
    let out = run_cmd(&mut cmd);
    if !out.status.success() {
        return Err(out.last_line().to_string());
    }
    Ok(serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap())
}

/// An HTTP server on 127.0.0.1 for the corpus's remote `ADD`s (`ORACLE_URL`, a build argument of every
/// build): `GET /PATH` answers `stand-in for /PATH\n` (BuildKit runs in the engine, on this host's network).
fn serve_files() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = [0u8; 4096];
            let n = stream.read(&mut request).unwrap_or(0);
            let head = String::from_utf8_lossy(&request[..n]);
            let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
            let body = format!("stand-in for {path}\n");
            let reply = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = std::io::Write::write_all(&mut stream, reply.as_bytes());
        }
    });
    url
}

/// What BuildKit wrote: the image config and its layers (gzip tars), from an OCI layout.
struct Built {
    config: Value,
    layers: Vec<PathBuf>,
}

/// BuildKit's build of a file, every external image replaced by `base`.
struct Build<'a> {
    externals: &'a [String],
    base: &'a str,
    url: &'a str,
}

fn buildkit(case_file: &Path, context: &Path, b: &Build<'_>, dir: &Path) -> Result<Built, String> {
    let (externals, base) = (b.externals, b.base);
    let out_dir = dir.join("oci");
    let mut args: Vec<String> =
        vec!["buildx".into(), "build".into(), "--quiet".into(), "--platform".into(), PLATFORM.into()];
    args.push("--build-arg".into());
    args.push(format!("ORACLE_URL={}", b.url));
    args.push("--file".into());
    args.push(case_file.display().to_string());
    for reference in externals {
        args.push("--build-context".into());
        args.push(format!("{reference}=docker-image://{base}"));
    }
    args.push("--output".into());
    args.push(format!("type=oci,dest={},tar=false", out_dir.display()));
    args.push(context.display().to_string());
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = docker(&argv);
    if !out.status.success() {
        let error = out.stderr.lines().rfind(|l| l.contains("ERROR") || l.contains("error")).unwrap_or("");
        return Err(error.to_string());
    }
    let blob = |digest: &str| out_dir.join("blobs/sha256").join(digest.trim_start_matches("sha256:"));
    let read = |p: PathBuf| -> Value { serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap() };
    let index = read(out_dir.join("index.json"));
    let manifest = read(blob(index["manifests"][0]["digest"].as_str().unwrap()));
    let config = read(blob(manifest["config"]["digest"].as_str().unwrap()));
    let layers = manifest["layers"].as_array().unwrap().iter().map(|l| blob(l["digest"].as_str().unwrap())).collect();
    Ok(Built { config, layers })
}

/// The non-directory entries of a gzip layer, as absolute paths.
fn layer_files(layer: &Path) -> BTreeSet<String> {
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(layer).unwrap()).read_to_end(&mut bytes).unwrap();
    let mut archive = tar::Archive::new(bytes.as_slice());
    archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| !e.header().entry_type().is_dir())
        .map(|e| {
            format!("/{}", e.path().unwrap().display().to_string().trim_start_matches("./").trim_start_matches('/'))
        })
        .collect()
}

/// BuildKit's image config in the shape of the model's `ImageConfig` (written here, not by the xtask).
fn config_of(oci: &Value) -> Value {
    let c = &oci["config"];
    let keys = |v: &Value| -> Vec<String> { v.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default() };
    let env: Vec<Value> = c["Env"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| {
                    let (k, v) = e.as_str().unwrap().split_once('=').unwrap();
                    json!([k, v])
                })
                .collect()
        })
        .unwrap_or_default();
    let mut ports = keys(&c["ExposedPorts"]);
    ports.sort();
    let mut volumes = keys(&c["Volumes"]);
    volumes.sort();
    json!({
        "user": c["User"].as_str().unwrap_or(""),
        "working_dir": c["WorkingDir"].as_str().unwrap_or(""),
        "env": env,
        "entrypoint": c["Entrypoint"],
        "cmd": c["Cmd"],
        "healthcheck": c["Healthcheck"]["Test"],
        "labels": c.get("Labels").filter(|l| !l.is_null()).cloned().unwrap_or(json!({})),
        "exposed_ports": ports,
        "volumes": volumes,
        "shell": c["Shell"],
        "stop_signal": c["StopSignal"],
        "on_build": c.get("OnBuild").filter(|l| !l.is_null()).cloned().unwrap_or(json!([])),
    })
}

/// The differences between the model's report and what BuildKit built.
fn compare(report: &Value, built: &Built, base_history: usize, base_layers: usize) -> Vec<String> {
    let mut wrong = Vec::new();
    let model_config = &report["config"];
    let buildkit_config = config_of(&built.config);
    for (key, theirs) in buildkit_config.as_object().unwrap() {
        let ours = &model_config[key];
        if ours != theirs {
            wrong.push(format!("config {key}: model {ours}, BuildKit {theirs}"));
        }
    }
    // The steps: BuildKit's history after the base's, against the model's steps (ONBUILD records none).
    let from_scratch = report["stages"][report["chain"][0].as_u64().unwrap() as usize]["base"] == "scratch";
    let (skip_history, mut layer) = if from_scratch { (0, 0) } else { (base_history, base_layers) };
    let history: Vec<&Value> = built.config["history"].as_array().unwrap().iter().skip(skip_history).collect();
    let steps: Vec<&Value> = report["steps"].as_array().unwrap().iter().filter(|s| s["keyword"] != "ONBUILD").collect();
    let keywords = |v: &[&Value], f: &dyn Fn(&Value) -> String| v.iter().map(|x| f(x)).collect::<Vec<_>>();
    let theirs = keywords(&history, &|h| h["created_by"].as_str().unwrap().split(' ').next().unwrap().to_string());
    let ours = keywords(&steps, &|s| s["keyword"].as_str().unwrap().to_string());
    if theirs != ours {
        wrong.push(format!("steps: model {ours:?}, BuildKit {theirs:?}"));
        return wrong;
    }
    for (step, entry) in steps.iter().zip(&history) {
        let created_by = entry["created_by"].as_str().unwrap();
        let line = &step["line"];
        if let Some(recorded) = step["recorded"].as_str() {
            if recorded != created_by.trim_end_matches(" # buildkit") {
                wrong.push(format!("line {line}: model `{recorded}`, BuildKit `{created_by}`"));
            }
        }
        if entry["empty_layer"] == true {
            continue;
        }
        if let Some(files) = step["files"].as_array() {
            let ours: BTreeSet<String> = files.iter().map(|f| f.as_str().unwrap().to_string()).collect();
            let theirs = layer_files(&built.layers[layer]);
            if ours != theirs {
                wrong.push(format!("line {line} {}: model places {ours:?}, BuildKit {theirs:?}", step["keyword"]));
            }
        }
        layer += 1;
    }
    wrong
}

#[test]
fn buildkit_builds_what_the_model_says_for_every_corpus_file() {
    let _engine = support::engine();
    let mut cleanup = Cleanup::new();
    // The stand-in for every external image, and how much history and how many layers it brings.
    // A test's own tag (`xtask-test-…`): the rehearsal, beside it, leaves those out of the checkout's tags.
    let base = format!("ralph-lint-oracle:{}", unique_name("xtask-test"));
    let out = docker(&[
        "buildx",
        "build",
        "--quiet",
        "--platform",
        PLATFORM,
        "--build-context",
        &format!("busybox={BUSYBOX}"),
        "--file",
        &repo_root().join("test/lint/oracle/base.Dockerfile").display().to_string(),
        "--tag",
        &base,
        "--load",
        &repo_root().join("test/lint/oracle").display().to_string(),
    ]);
    assert!(out.status.success(), "building the oracle base: {}", out.stderr);
    cleanup.on_drop("docker", &["image", "rm", "--force", &base]);
    let scratch = temp_dir("xtask-oracle");
    std::fs::write(scratch.path().join("Dockerfile"), "FROM stand-in\n").unwrap();
    let url = serve_files();
    let stand_in = Build { externals: &["stand-in".into()], base: &base, url: &url };
    let empty = buildkit(&scratch.path().join("Dockerfile"), scratch.path(), &stand_in, scratch.path())
        .expect("building FROM the oracle base");
    let base_history = empty.config["history"].as_array().unwrap().len();
    let base_layers = empty.layers.len();

    let cases = cases();
    assert!(cases.len() >= 40, "the corpus shrank to {} files", cases.len());
    let (mut agreed, mut refused, mut skipped, mut wrong) = (0, 0, Vec::new(), Vec::new());
    for case in &cases {
        let dir = temp_dir("xtask-oracle-case");
        if let Expect::Skip(reason) = &case.expect {
            skipped.push(format!("{}: {reason}", case.rel));
            continue;
        }
        // The externals are known from a first explain; the second takes their config from the stand-in.
        let first = explain(case, &[], &url, dir.path());
        let externals: Vec<String> = first
            .as_ref()
            .map(|r| r["external"].as_array().unwrap().iter().map(|e| e.as_str().unwrap().to_string()).collect())
            .unwrap_or_default();
        let bases: Vec<(String, String)> = externals.iter().map(|e| (e.clone(), base.clone())).collect();
        let model = first.and_then(|_| explain(case, &bases, &url, dir.path()));
        let built =
            buildkit(&case.file, &case.context, &Build { externals: &externals, base: &base, url: &url }, dir.path());
        match (&case.expect, model, built) {
            (Expect::Refused, Err(_), Err(_)) => refused += 1,
            (Expect::Refused, m, b) => wrong.push(format!(
                "{}: must be refused by both; model {}, BuildKit {}",
                case.rel,
                m.map_or_else(|e| format!("refused it ({e})"), |_| "accepted it".into()),
                b.map_or_else(|e| format!("refused it ({e})"), |_| "built it".into()),
            )),
            (_, Ok(report), Ok(built)) => {
                let differences = compare(&report, &built, base_history, base_layers);
                if differences.is_empty() {
                    agreed += 1;
                } else {
                    wrong.extend(differences.into_iter().map(|d| format!("{}: {d}", case.rel)));
                }
            }
            (_, m, b) => wrong.push(format!(
                "{}: model {}, BuildKit {}",
                case.rel,
                m.map_or_else(|e| format!("refused it ({e})"), |_| "accepted it".into()),
                b.map_or_else(|e| format!("refused it ({e})"), |_| "built it".into()),
            )),
        }
    }
    eprintln!(
        "lint oracle: {} corpus files, {agreed} built by BuildKit and agreed with the model, {refused} refused by both, \
         {} skipped ({}), {} disagreements",
        cases.len(),
        skipped.len(),
        skipped.join("; "),
        wrong.len()
    );
    assert!(wrong.is_empty(), "the model and BuildKit disagree:\n{}", wrong.join("\n"));
    assert!(agreed >= 35 && refused >= 2, "too little was compared: {agreed} agreed, {refused} refused");
}
