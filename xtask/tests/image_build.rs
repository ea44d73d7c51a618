//! `cargo xtask image build` against the real engine, buildx and the local
//! registry (scripts/setup-host.sh provides them). The image is the busybox
//! fixture, copied into a temporary directory per test so tests can change
//! its files and each gets its own repository name and cache.

mod support;

use support::{run_ok, Fixture, REGISTRY};

#[test]
fn multi_arch_push_matches_the_registry_index() {
    let _engine = support::engine();
    let fx = Fixture::new("push");
    let out = fx.xtask(&[
        "image",
        "build",
        "fx",
        "--push",
        "--registry",
        REGISTRY,
        "--provenance",
        "--report",
        "report.json",
        "--quiet",
    ]);
    assert!(out.status.success(), "{}", out.stderr);
    let report = fx.report("report.json");
    let image = &report["images"][0];
    let reference = format!("{REGISTRY}/{}:sha-0000000", fx.repository);
    assert_eq!(image["refs"][0], reference.as_str());
    assert_eq!(image["pushed"], true);

    // The tag in the registry resolves to the index the report names…
    let inspect = run_ok("docker", &["buildx", "imagetools", "inspect", &reference]);
    let index_digest = inspect.lines().find_map(|l| l.strip_prefix("Digest:")).unwrap().trim().to_string();
    assert_eq!(image["digest"], index_digest.as_str());
    // …pushed from the build's OCI layout, as it is there.
    let layout = std::path::PathBuf::from(image["layout"].as_str().expect("a push from the layout names it"));
    let index: serde_json::Value = serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"][0]["digest"], index_digest.as_str(), "{index}");

    // …which lists both platforms with the report's per-platform digests.
    let raw: serde_json::Value =
        serde_json::from_str(&run_ok("docker", &["buildx", "imagetools", "inspect", "--raw", &reference])).unwrap();
    let manifests = raw["manifests"].as_array().unwrap();
    // --provenance adds an attestation manifest per platform; the report leaves them out.
    let attestations =
        manifests.iter().filter(|m| m["annotations"]["vnd.docker.reference.type"] == "attestation-manifest").count();
    assert_eq!(attestations, 2, "{raw}");
    let in_registry: Vec<(String, String)> = manifests
        .iter()
        .filter(|m| m["platform"]["os"] == "linux")
        .map(|m| {
            (
                format!(
                    "{}/{}",
                    m["platform"]["os"].as_str().unwrap(),
                    m["platform"]["architecture"].as_str().unwrap()
                ),
                m["digest"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let in_report: Vec<(String, String)> = image["platforms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["platform"].as_str().unwrap().to_string(),
                p["digest"].as_str().expect("pushed images report platform digests").to_string(),
            )
        })
        .collect();
    assert_eq!(in_registry.len(), 2, "{raw}");
    assert_eq!(in_report.len(), 2);
    for entry in &in_report {
        assert!(in_registry.contains(entry), "{entry:?} not in {in_registry:?}");
    }

    // The arm64 manifest runs under emulation.
    let arm = &in_report.iter().find(|(p, _)| p == "linux/arm64").unwrap().1;
    let arch = run_ok(
        "docker",
        &["run", "--rm", "--platform", "linux/arm64", &format!("{REGISTRY}/{}@{arm}", fx.repository), "uname", "-m"],
    );
    assert_eq!(arch.trim(), "aarch64");
    fx.remove_images(&[&format!("{REGISTRY}/{}@{arm}", fx.repository)]);
}

#[test]
fn loaded_multi_arch_image_runs_both_architectures() {
    let _engine = support::engine();
    let fx = Fixture::new("load");
    let out = fx.xtask(&["image", "build", "fx", "--platform", "linux/amd64,linux/arm64", "--quiet"]);
    assert!(out.status.success(), "{}", out.stderr);
    let tag = format!("{}:sha-0000000", fx.repository);
    for (platform, uname) in [("linux/arm64", "aarch64"), ("linux/amd64", "x86_64")] {
        // `build-arch` was written by a RUN step, so the build itself ran on that arch.
        let out = run_ok(
            "docker",
            &["run", "--rm", "--platform", platform, &tag, "sh", "-c", "uname -m; cat /etc/build-arch"],
        );
        assert_eq!(out.lines().collect::<Vec<_>>(), vec![uname, uname], "{platform}");
    }
    let labels = run_ok("docker", &["image", "inspect", &tag, "--format", "{{json .Config.Labels}}"]);
    let labels: serde_json::Value = serde_json::from_str(&labels).unwrap();
    assert_eq!(labels["org.opencontainers.image.title"], fx.repository.as_str());
    assert_eq!(labels["org.opencontainers.image.version"], "sha-0000000");
    for key in ["revision", "created"] {
        assert!(labels[format!("org.opencontainers.image.{key}")].is_string(), "{labels}");
    }
    fx.remove_images(&[&tag]);
}

#[test]
fn rebuilds_hit_the_cache_up_to_the_changed_step() {
    let _engine = support::engine();
    let fx = Fixture::new("cache");
    let tag = format!("{}:sha-0000000", fx.repository);
    let build = |report: &str| {
        // A second tag: `docker load` moves the first, `docker tag` the rest.
        let out = fx.xtask(&["image", "build", "fx", "--tag", "also", "--report", report, "--quiet"]);
        assert!(out.status.success(), "{}", out.stderr);
        fx.report(report)["images"][0]["platforms"].as_array().unwrap().clone()
    };
    build("first.json");
    let first = run_ok("docker", &["image", "inspect", "--format", "{{.Id}}", &tag]).trim().to_string();

    let noop = build("noop.json");
    assert_eq!(noop.len(), 2);
    for p in &noop {
        assert!(p["steps_total"].as_u64().unwrap() >= 5, "{p}");
        assert_eq!(p["steps_cached"], p["steps_total"], "no-op rebuild must be fully cached: {p}");
        assert_eq!(p["cache_hit_rate"], 1.0);
    }

    // Unique content: the engine caches by content, across test runs too.
    std::fs::write(fx.dir.join("ctx/late.txt"), format!("changed by {}\n", fx.repository)).unwrap();
    let touched = build("touched.json");
    for p in &touched {
        let total = p["steps_total"].as_u64().unwrap();
        assert_eq!(p["steps_cached"].as_u64().unwrap(), total - 1, "only the COPY of late.txt may rebuild: {p}");
    }

    // Three builds left one image: none unnamed (Docker keeps an image a
    // tag moved off, and a build's digest-only run once stored one).
    let now = run_ok("docker", &["image", "inspect", "--format", "{{.Id}}", &tag]).trim().to_string();
    assert_ne!(now, first, "the change made a new image");
    let gone = std::process::Command::new("docker").args(["image", "inspect", &first]).output().unwrap();
    assert!(!gone.status.success(), "the image the tag moved off ({first}) is still in the engine");
    let label = format!("label=org.opencontainers.image.title={}", fx.repository);
    let unnamed = run_ok("docker", &["images", "--all", "--filter", "dangling=true", "--filter", &label, "--quiet"]);
    assert_eq!(unnamed.trim(), "", "unnamed images of this fixture are left in the engine");

    // The local cache holds what its index reaches, not the first build's COPY of late.txt.
    let cache = fx.dir.join("target/buildx-cache/fx");
    let read =
        |p: std::path::PathBuf| -> serde_json::Value { serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap() };
    let hex = |d: &serde_json::Value| d["digest"].as_str().unwrap().trim_start_matches("sha256:").to_string();
    let top = &read(cache.join("index.json"))["manifests"][0];
    let mut reached: Vec<String> = read(cache.join("blobs/sha256").join(hex(top)))["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(hex)
        .chain([hex(top)])
        .collect();
    reached.sort();
    reached.dedup();
    let mut held: Vec<String> = std::fs::read_dir(cache.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    held.sort();
    assert_eq!(held, reached, "the cache keeps blobs its index no longer reaches");
    fx.remove_images(&[&tag, &format!("{}:also", fx.repository)]);
}

/// A rebuild removes the image its tag moved off, but never one a
/// container still uses: that one stays, under no name, until the
/// container goes.
#[test]
fn a_rebuild_keeps_the_image_a_container_still_uses() {
    let _engine = support::engine();
    let fx = Fixture::new("in-use");
    let tag = format!("{}:sha-0000000", fx.repository);
    let build = || {
        let out = fx.xtask(&["image", "build", "fx", "--platform", "linux/amd64", "--tag", "also", "--quiet"]);
        assert!(out.status.success(), "{}", out.stderr);
        run_ok("docker", &["image", "inspect", "--format", "{{.Id}}", &tag]).trim().to_string()
    };
    let first = build();
    let container = support::unique_name("xtask-test-in-use");
    run_ok("docker", &["create", "--name", &container, &first]);
    let mut cleanup = support::Cleanup::new();
    cleanup.on_drop("docker", &["rm", "--force", &container]);
    std::fs::write(fx.dir.join("ctx/late.txt"), format!("changed by {}\n", fx.repository)).unwrap();
    let second = build();
    assert_ne!(second, first, "the change made a new image");
    run_ok("docker", &["image", "inspect", &first]);
    run_ok("docker", &["rm", &container]);
    fx.remove_images(&[&tag, &format!("{}:also", fx.repository), &first]);
}

#[test]
fn failing_run_step_names_the_step_and_shows_its_output() {
    let _engine = support::engine();
    let fx = Fixture::new("fail");
    let dockerfile = std::fs::read_to_string(fx.dir.join("ctx/Dockerfile")).unwrap();
    let broken = dockerfile
        .replace("RUN uname -m > /etc/build-arch", "RUN echo compiling; echo 'boom: linker broke' >&2; exit 3");
    std::fs::write(fx.dir.join("ctx/Dockerfile"), broken).unwrap();
    let out = fx.xtask(&["image", "build", "fx", "--platform", "linux/amd64", "--quiet"]);
    assert!(!out.status.success());
    let err = out.last_line();
    assert!(err.starts_with("error: image `fx`: step `[") && err.contains("RUN echo compiling"), "{err}");
    assert!(err.contains("exit code: 3"), "{err}");
    assert!(out.stderr.contains("  | boom: linker broke"), "the step's output tail is shown:\n{}", out.stderr);
}

#[test]
fn bad_input_gets_one_line_with_the_fix() {
    let fx = Fixture::new("bad");
    let cases: &[(&[&str], &str)] = &[
        (&["image", "build", "nope"], "unknown image `nope`: the catalog"),
        (&["image", "build", "fx", "--platform", "linux-amd64"], "platform `linux-amd64` is malformed: write OS/ARCH"),
        (
            &["image", "build", "fx", "--platform", "linux/s390x"],
            "platform linux/s390x is not in the catalog for image `fx`",
        ),
        (&["image", "build", "fx", "--build-arg", "NOVALUE"], "build arg `NOVALUE` is not KEY=VALUE"),
        (&["image", "build", "fx", "--push"], "--push needs --registry"),
        (&["image", "build", "fx", "--push", "--registry", "127.0.0.1:9"], "registry 127.0.0.1:9 is unreachable"),
        (&["image", "build", "missing-dockerfile"], "Dockerfile"),
        (&["image", "matrix", "nope"], "unknown image `nope`"),
    ];
    for (args, want) in cases {
        let out = fx.xtask(args);
        assert!(!out.status.success(), "{args:?} should fail");
        let line = out.last_line();
        assert!(line.starts_with("error: ") && line.contains(want), "{args:?}: {line}");
        assert!(!out.stderr.contains("docker buildx build"), "{args:?} must fail before building:\n{}", out.stderr);
    }
    let out = fx.xtask(&["image", "build", "missing-dockerfile"]);
    assert!(out.last_line().contains("does not exist: fix its path in images.toml"), "{}", out.stderr);
}

#[test]
fn docker_daemon_down_is_reported_before_any_build() {
    let fx = Fixture::new("down");
    let out = fx.xtask_env(&["image", "build", "fx"], &[("DOCKER_HOST", "unix:///nonexistent/docker.sock")]);
    assert!(!out.status.success());
    assert!(out.last_line().contains("the docker daemon is not running"), "{}", out.stderr);
}

#[test]
fn buildx_missing_is_reported_before_any_build() {
    // The real docker client without its plugins: a private mount namespace
    // with an empty directory over the one Debian's docker-buildx installs into.
    let fx = Fixture::new("nobuildx");
    let script = format!(
        "mount -t tmpfs none /usr/libexec/docker/cli-plugins && exec {} --catalog {} image build fx",
        env!("CARGO_BIN_EXE_xtask"),
        fx.dir.join("images.toml").display()
    );
    let out = std::process::Command::new("unshare").args(["--mount", "sh", "-c", &script]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    let last = stderr.lines().last().unwrap_or("");
    assert!(last.starts_with("error: docker buildx is missing: install the buildx plugin"), "{stderr}");
}

#[test]
fn matrix_lists_every_image_and_platform() {
    let fx = Fixture::new("matrix");
    let out = fx.xtask(&["image", "matrix"]);
    assert!(out.status.success(), "{}", out.stderr);
    let m: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let entries: Vec<(String, String)> = m["include"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["image"].as_str().unwrap().to_string(), e["platform"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(
        entries,
        vec![
            ("fx".to_string(), "linux/amd64".to_string()),
            ("fx".to_string(), "linux/arm64".to_string()),
            ("missing-dockerfile".to_string(), "linux/amd64".to_string()),
        ]
    );
}

#[test]
fn a_v_tag_at_head_that_is_not_a_version_is_no_release_and_no_failure() {
    let _engine = support::engine();
    let fx = Fixture::new("vtag");
    // The fixture's directory as a checkout whose HEAD is tagged `v2`.
    let git = |args: &[&str]| {
        let mut all = vec!["-C", fx.dir.to_str().unwrap(), "-c", "user.name=t", "-c", "user.email=t@example.org"];
        all.extend(args);
        run_ok("git", &all)
    };
    git(&["init", "-q", "-b", "feature"]);
    git(&["add", "."]);
    git(&["commit", "-q", "-m", "fixture"]);
    git(&["tag", "v2"]);
    let sha = git(&["rev-parse", "--short=7", "HEAD"]).trim().to_string();
    let out = fx.xtask(&["image", "build", "fx", "--platform", "linux/amd64", "--quiet", "--report", "r.json"]);
    assert!(out.status.success(), "a `v2` tag must not fail the build: {}", out.stderr);
    assert!(out.stderr.contains("note: the tag `v2` at HEAD is not vMAJOR.MINOR.PATCH"), "{}", out.stderr);
    assert_eq!(fx.report("r.json")["images"][0]["tags"], serde_json::json!([format!("feature-{sha}")]));
    // A real version tag still makes a release.
    git(&["tag", "v1.4.2"]);
    let out = fx.xtask(&["image", "build", "fx", "--platform", "linux/amd64", "--quiet", "--report", "r.json"]);
    assert!(out.status.success(), "{}", out.stderr);
    let tags = &fx.report("r.json")["images"][0]["tags"];
    assert_eq!(tags[0], "1.4.2", "{tags}");
}

/// Every blob `index.json` of the layout at `dir` reaches, read here with
/// serde_json alone (not the xtask's reader).
fn reachable_blobs(dir: &std::path::Path) -> std::collections::BTreeSet<String> {
    let read = |digest: &str| -> serde_json::Value {
        let hex = digest.trim_start_matches("sha256:");
        serde_json::from_slice(&std::fs::read(dir.join("blobs/sha256").join(hex)).unwrap()).unwrap()
    };
    let mut seen = std::collections::BTreeSet::new();
    let mut todo: Vec<serde_json::Value> =
        vec![serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap()];
    while let Some(node) = todo.pop() {
        for d in node["manifests"].as_array().into_iter().flatten() {
            let digest = d["digest"].as_str().unwrap().to_string();
            if seen.insert(digest.clone()) {
                todo.push(read(&digest));
            }
        }
        for d in node["layers"].as_array().into_iter().flatten().chain(node.get("config")) {
            seen.insert(d["digest"].as_str().unwrap().to_string());
        }
    }
    seen
}

/// Every layer of every image in the layout `dir`, read here with flate2,
/// tar and `sha256sum`: no file time past `epoch`, some file at exactly
/// `epoch` (the layers this build wrote, clamped), and each config's diff
/// IDs the sha256 of its layers' tar streams.
fn assert_clamped(dir: &std::path::Path, epoch: u64) {
    use std::io::Read as _;
    let blob = |digest: &str| dir.join("blobs/sha256").join(digest.trim_start_matches("sha256:"));
    let json =
        |digest: &str| -> serde_json::Value { serde_json::from_slice(&std::fs::read(blob(digest)).unwrap()).unwrap() };
    let index: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let nested = json(index["manifests"][0]["digest"].as_str().unwrap());
    let scratch = support::temp_dir("xtask-clamped");
    let mut at_epoch = 0;
    for m in nested["manifests"].as_array().unwrap() {
        let manifest = json(m["digest"].as_str().unwrap());
        let config = json(manifest["config"]["digest"].as_str().unwrap());
        for (i, layer) in manifest["layers"].as_array().unwrap().iter().enumerate() {
            let mut tar = Vec::new();
            flate2::read::GzDecoder::new(std::fs::File::open(blob(layer["digest"].as_str().unwrap())).unwrap())
                .read_to_end(&mut tar)
                .unwrap();
            for entry in tar::Archive::new(tar.as_slice()).entries().unwrap() {
                let entry = entry.unwrap();
                let (path, mtime) = (entry.path().unwrap().display().to_string(), entry.header().mtime().unwrap());
                assert!(mtime <= epoch, "{path} in layer {i} has mtime {mtime}, past the epoch {epoch}");
                at_epoch += usize::from(mtime == epoch);
            }
            let file = scratch.path().join("layer.tar");
            std::fs::write(&file, &tar).unwrap();
            let sum = run_ok("sha256sum", &[file.to_str().unwrap()]);
            let diff_id = format!("sha256:{}", sum.split_whitespace().next().unwrap());
            assert_eq!(config["rootfs"]["diff_ids"][i], diff_id.as_str(), "layer {i} of {}", m["digest"]);
        }
    }
    assert!(at_epoch > 0, "no file was clamped to the epoch: the build's own layers were not rewritten");
}

/// `image build` writes the image once, all its platforms, as an OCI layout
/// under target/oci and loads the engine from it: the report, the layout
/// and the engine name one digest; its files' times are clamped to the
/// epoch. Built again unchanged, the layout is not
/// written again; changed, the old build's blobs leave the layout.
#[test]
fn the_build_is_one_oci_layout_the_engine_is_loaded_from() {
    let _engine = support::engine();
    let fx = Fixture::new("layout");
    let epoch = [("SOURCE_DATE_EPOCH", "1700000000")];
    let build = |report: &str| {
        let out = fx.xtask_env(&["image", "build", "fx", "--report", report], &epoch);
        assert!(out.status.success(), "{}", out.stderr);
        (fx.report(report)["images"][0].clone(), out.stderr)
    };
    let (first, _) = build("first.json");
    let dir = fx.dir.join("target/oci/fx");
    assert_eq!(first["layout"].as_str(), Some(dir.to_str().unwrap()), "{first}");
    let index: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let digest = index["manifests"][0]["digest"].as_str().unwrap().to_string();
    assert_eq!(first["digest"], digest.as_str());
    let tag = format!("{}:sha-0000000", fx.repository);
    assert_eq!(run_ok("docker", &["image", "inspect", "--format", "{{.Id}}", &tag]).trim(), digest);
    // Each platform's digest in the report is its manifest in the layout.
    let nested: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.join("blobs/sha256").join(digest.trim_start_matches("sha256:"))).unwrap(),
    )
    .unwrap();
    for p in first["platforms"].as_array().unwrap() {
        let arch = p["platform"].as_str().unwrap().rsplit('/').next().unwrap();
        let want = nested["manifests"].as_array().unwrap().iter().find(|m| m["platform"]["architecture"] == arch);
        assert_eq!(p["digest"], want.unwrap()["digest"], "{p}");
    }

    assert_clamped(&dir, 1700000000);

    let (again, stderr) = build("again.json");
    assert!(stderr.contains("unchanged since its layout was written"), "{stderr}");
    assert_eq!(again["digest"], digest.as_str());

    std::fs::write(fx.dir.join("ctx/late.txt"), format!("changed by {}\n", fx.repository)).unwrap();
    let (changed, stderr) = build("changed.json");
    assert!(!stderr.contains("unchanged since"), "{stderr}");
    assert_ne!(changed["digest"], digest.as_str());
    let on_disk: std::collections::BTreeSet<String> = std::fs::read_dir(dir.join("blobs/sha256"))
        .unwrap()
        .map(|e| format!("sha256:{}", e.unwrap().file_name().to_string_lossy()))
        .collect();
    assert_eq!(on_disk, reachable_blobs(&dir), "the layout keeps only the last build's blobs");
    assert_eq!(
        run_ok("docker", &["image", "inspect", "--format", "{{.Id}}", &tag]).trim(),
        changed["digest"].as_str().unwrap()
    );
    fx.remove_images(&[&tag]);
}
