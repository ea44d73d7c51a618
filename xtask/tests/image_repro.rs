//! `cargo xtask image repro` against the real engine and buildx: the
//! busybox fixture builds twice to the same digest, and a fixture that
//! writes the build's time into a file is caught, naming that layer and
//! that file. One platform (linux/amd64) each, to stay fast.

mod support;

use support::{Fixture, Timer};

/// The busybox fixture as `fx` (its random benchmark work turned off:
/// WORK_MB=0), and `stamped`: the same base plus a step that writes the
/// build's stamp: the time in seconds (busybox's `date` has no `%N`, so the
/// time alone is the same for two builds within one second) and a random id.
fn fixture(name: &str) -> Fixture {
    let fx = Fixture::with_catalog(name, "busybox", |repository| {
        format!(
            r#"
[[image]]
name = "fx"
repository = "{repository}"
kind = "fixture"
dockerfile = "ctx/Dockerfile"
context = "ctx"
contexts = {{ busybox = "/usr/local/share/ralph-host/busybox" }}
args = {{ WORK_MB = "0" }}
platforms = ["linux/amd64"]

[[image]]
name = "stamped"
repository = "{repository}-stamped"
kind = "fixture"
dockerfile = "ctx/Dockerfile.stamped"
context = "ctx"
contexts = {{ busybox = "/usr/local/share/ralph-host/busybox" }}
platforms = ["linux/amd64"]
"#
        )
    });
    std::fs::write(
        fx.dir.join("ctx/Dockerfile.stamped"),
        "FROM scratch\nARG TARGETARCH\nCOPY --from=busybox ${TARGETARCH}/busybox /bin/busybox\n\
         RUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n\
         RUN mkdir -p /etc && date +%s > /etc/built-at && cat /proc/sys/kernel/random/uuid >> /etc/built-at\n\
         COPY late.txt /etc/late.txt\n",
    )
    .unwrap();
    fx
}

/// The per-platform manifest digest in a layout, read from its index.json.
fn layout_digest(dir: &std::path::Path) -> String {
    let index: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 1, "one platform, one manifest: {index}");
    assert_eq!(manifests[0]["platform"]["architecture"], "amd64", "{index}");
    manifests[0]["digest"].as_str().unwrap().to_string()
}

#[test]
fn the_busybox_fixture_builds_twice_to_the_same_digest() {
    let _engine = support::engine();
    let _t = Timer::start("the_busybox_fixture_builds_twice_to_the_same_digest");
    let fx = fixture("repro-same");
    let out = fx.xtask(&["image", "repro", "fx", "--quiet", "--layouts", "layouts", "--report", "report.json"]);
    assert!(out.status.success(), "{}", out.stderr);
    let report = fx.report("report.json");
    let p = &report["images"][0]["platforms"][0];
    assert_eq!(p["platform"], "linux/amd64");
    assert_eq!(p["same"], true, "{report}");

    // Our own reading of the two layouts agrees with the report.
    let (one, two) =
        (layout_digest(&fx.dir.join("layouts/fx/build-1")), layout_digest(&fx.dir.join("layouts/fx/build-2")));
    eprintln!("busybox fixture digests: {one} {two}");
    assert_eq!(one, two, "the two builds differ");
    assert_eq!(p["digest_1"], one.as_str());
    assert_eq!(p["digest_2"], two.as_str());
    assert!(out.stdout.contains(&format!("{one}  {two}  reproducible")), "{}", out.stdout);
}

#[test]
fn a_planted_timestamp_is_named_by_layer_and_file() {
    let _engine = support::engine();
    let _t = Timer::start("a_planted_timestamp_is_named_by_layer_and_file");
    let fx = fixture("repro-stamp");
    let out = fx.xtask(&["image", "repro", "stamped", "--quiet", "--layouts", "layouts", "--report", "report.json"]);
    assert!(!out.status.success(), "a timestamp in a file must fail the check:\n{}", out.stdout);
    let line = out.last_line();
    assert!(
        line.starts_with(
            "error: image `stamped` on linux/amd64 is not reproducible: layer 2 (`RUN mkdir -p /etc && date +%s > /etc/built-at"
        ),
        "{line}"
    );

    // The layouts really differ, as the report says.
    let (one, two) = (
        layout_digest(&fx.dir.join("layouts/stamped/build-1")),
        layout_digest(&fx.dir.join("layouts/stamped/build-2")),
    );
    assert_ne!(one, two);
    let report = fx.report("report.json");
    let p = &report["images"][0]["platforms"][0];
    assert_eq!(
        (p["same"].clone(), p["digest_1"].clone(), p["digest_2"].clone()),
        (false.into(), one.into(), two.into())
    );

    // Only the stamping layer differs, and in it only etc/built-at's content.
    let layers = p["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 4, "{report}");
    let differing: Vec<&serde_json::Value> = layers.iter().filter(|l| l["same"] == false).collect();
    assert_eq!(differing.len(), 1, "{report}");
    let layer = differing[0];
    assert_eq!(layer["index"], 2);
    assert!(layer["created_by"].as_str().unwrap().contains("date +%s > /etc/built-at"), "{layer}");
    let files: Vec<(&str, &str)> = layer["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["path"].as_str().unwrap(), f["change"].as_str().unwrap()))
        .collect();
    assert_eq!(files, vec![("etc/built-at", "content")], "{layer}");
    assert!(layers.iter().filter(|l| l["same"] == true).all(|l| l["files"].as_array().unwrap().is_empty()));
    assert_eq!(p["config"], serde_json::json!([]), "the config is the same: {report}");

    // The readable list says the same.
    for expected in [
        "layer 0 same: COPY",
        "layer 1 same: RUN",
        "layer 2 DIFFERS: RUN mkdir -p /etc && date +%s > /etc/built-at",
        "    etc/built-at: content differs",
        "layer 3 same: COPY late.txt",
    ] {
        assert!(out.stdout.contains(expected), "no `{expected}` in:\n{}", out.stdout);
    }
}

/// Each platform's manifest digest in a two-platform layout, read from its
/// index.json and the index it points to.
fn platform_digests(dir: &std::path::Path) -> std::collections::BTreeMap<String, String> {
    let read =
        |p: std::path::PathBuf| -> serde_json::Value { serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap() };
    let top = read(dir.join("index.json"));
    let index_digest = top["manifests"][0]["digest"].as_str().unwrap();
    let index = read(dir.join("blobs/sha256").join(index_digest.trim_start_matches("sha256:")));
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                format!("linux/{}", m["platform"]["architecture"].as_str().unwrap()),
                m["digest"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The worker stand-in, both platforms, bit for bit, from the repository's
/// catalog. Its build here is build 1 when it cached no step (a fresh
/// machine's first build, as in CI: the heavy image is built cold once, and
/// once more without cache); otherwise both builds are `image repro`'s.
#[test]
fn the_worker_standin_is_reproducible_on_both_platforms() {
    let _engine = support::engine();
    let _t = Timer::start("the_worker_standin_is_reproducible_on_both_platforms");
    let built = support::CatalogBuild::new(&["worker-standin"], &["--platform", "linux/amd64,linux/arm64"]);
    let dir = support::temp_dir("xtask-repro-worker");
    let report = dir.path().join("repro.json");
    let layouts = dir.path().join("layouts");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_xtask"));
    cmd.current_dir(support::repo_root())
        .args(["image", "repro", "worker-standin", "--quiet", "--branch", &built.branch, "--report"])
        .arg(&report)
        .arg("--layouts")
        .arg(&layouts);
    let out = support::run_cmd(&mut cmd);
    eprintln!("{}", out.stdout);
    assert!(out.status.success(), "the worker stand-in is not reproducible:\n{}\n{}", out.stdout, out.stderr);
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let image = &report["images"][0];
    let verdicts = image["platforms"].as_array().unwrap();
    assert_eq!(verdicts.len(), 2, "{report}");
    // The two layouts, read here: the same manifest per platform, as the report says.
    let kept: Vec<std::path::PathBuf> =
        image["layouts"].as_array().unwrap().iter().map(|p| p.as_str().unwrap().into()).collect();
    let (one, two) = (platform_digests(&kept[0]), platform_digests(&kept[1]));
    assert_eq!(one.keys().collect::<Vec<_>>(), ["linux/amd64", "linux/arm64"]);
    assert_eq!(one, two, "the two builds' manifests");
    for v in verdicts {
        assert_eq!(v["same"], true, "{v}");
        assert_eq!(v["digest_1"].as_str(), Some(one[v["platform"].as_str().unwrap()].as_str()), "{v}");
        eprintln!("worker-standin {}: {} twice", v["platform"], v["digest_1"]);
    }
    // Build 1 is the catalog build's layout exactly when that build cached no step.
    let cached: u64 = built.image("worker-standin")["platforms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["steps_cached"].as_u64().unwrap())
        .sum();
    assert_eq!(image["reused_build"].is_string(), cached == 0, "{image}");
}
