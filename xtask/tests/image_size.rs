//! `cargo xtask image size` against the real engine, dive and the local
//! registry. The image is test/images/size-fixture: busybox on scratch, a
//! 5 MB file written and deleted, another written and overwritten (15 MB
//! wasted as dive counts it), and a 3 MB "tool" behind a relative symlink for
//! file budgets. Each test copies it into its own directory and repository.

mod support;

use serde_json::Value;
use support::{run_ok, Fixture, REGISTRY};

const MB: u64 = 1_000_000;
const TAG: &str = "sha-0000000";

/// The size fixture in a temporary directory with its own catalog: `fx`
/// (a file budget), and entries sharing its repository with other budgets.
struct SizeFixture(Fixture);

impl std::ops::Deref for SizeFixture {
    type Target = Fixture;

    fn deref(&self) -> &Fixture {
        &self.0
    }
}

impl SizeFixture {
    fn new(name: &str) -> SizeFixture {
        SizeFixture(Fixture::with_catalog(&format!("size-{name}"), "size-fixture", |repository| {
            let entry = |name: &str, repository: &str, budget: &str| {
                format!(
                    "[[image]]\nname = \"{name}\"\nrepository = \"{repository}\"\nkind = \"fixture\"\ndockerfile = \"ctx/Dockerfile\"\ncontext = \"ctx\"\n\
                     contexts = {{ busybox = \"/usr/local/share/ralph-host/busybox\" }}\n{budget}\n"
                )
            };
            [
                entry("fx", repository, "budget = { file = \"/usr/local/bin/tool\", extra_mb = 100 }"),
                entry("fx-tight", repository, "budget = { max_mb = 1 }"),
                entry("fx-nofile", repository, "budget = { file = \"/usr/local/bin/absent\", extra_mb = 1 }"),
                entry("never", &format!("{repository}-never"), ""),
            ]
            .join("\n")
        }))
    }

    fn build(&self, extra: &[&str]) {
        let out = self.xtask(&[&["image", "build", "fx", "--quiet"], extra].concat());
        assert!(out.status.success(), "{}", out.stderr);
    }

    fn reference(&self) -> String {
        format!("{}:{TAG}", self.repository)
    }
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a number: {v}"))
}

fn platform<'a>(report: &'a Value, name: &str) -> &'a Value {
    let platforms = report["images"][0]["platforms"].as_array().unwrap();
    platforms.iter().find(|p| p["platform"] == name).unwrap_or_else(|| panic!("no {name} in {report}"))
}

/// The layers of PLATFORM's manifest in an OCI layout, read here: (digest,
/// the blob's file size, its size gunzipped).
fn blob_layers(layout: &std::path::Path, platform: &str) -> Vec<(String, u64, u64)> {
    let blob = |digest: &str| layout.join("blobs/sha256").join(digest.trim_start_matches("sha256:"));
    let json = |digest: &str| -> Value { serde_json::from_slice(&std::fs::read(blob(digest)).unwrap()).unwrap() };
    let index: Value = serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let mut manifests: Vec<Value> = index["manifests"].as_array().unwrap().clone();
    // An index of the platforms may sit under index.json.
    while let Some(nested) = manifests.iter().find(|m| m["mediaType"].as_str().unwrap_or("").contains("index")) {
        manifests = json(nested["digest"].as_str().unwrap())["manifests"].as_array().unwrap().clone();
    }
    let (os, arch) = platform.split_once('/').unwrap();
    let m = manifests
        .iter()
        .find(|m| m["platform"]["os"] == os && m["platform"]["architecture"] == arch)
        .unwrap_or_else(|| panic!("no {platform} manifest in {}", layout.display()));
    json(m["digest"].as_str().unwrap())["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let digest = l["digest"].as_str().unwrap().to_string();
            assert!(l["mediaType"].as_str().unwrap().ends_with("tar+gzip"), "{l}");
            let file = std::fs::File::open(blob(&digest)).unwrap();
            let compressed = file.metadata().unwrap().len();
            let uncompressed = std::io::copy(&mut flate2::read::GzDecoder::new(file), &mut std::io::sink()).unwrap();
            (digest, compressed, uncompressed)
        })
        .collect()
}

#[test]
fn sizes_add_up_per_platform_and_waste_matches_dive() {
    let _engine = support::engine();
    let fx = SizeFixture::new("dive");
    fx.build(&[]);
    let out = fx.xtask(&["image", "size", "fx", "--report", "size.json", "--top", "3"]);
    assert!(out.status.success(), "{}", out.stderr);
    assert!(out.stdout.contains("wasted: 15.0 MB"), "{}", out.stdout);
    let report = fx.report("size.json");
    assert_eq!(report["mb_bytes"], MB);
    assert_eq!(report["images"][0]["reference"], fx.reference().as_str());

    // Both platforms, each layer's sizes and the totals measured here from
    // the layout `image build` wrote (not a `docker save`), by this test:
    // the platform's manifest lists its layers; a layer's compressed size
    // is its blob's file size, its uncompressed size what gunzip gives.
    assert_eq!(report["images"][0]["platforms"].as_array().unwrap().len(), 2, "{report}");
    let layout = fx.dir.join("target/oci/fx");
    assert_eq!(report["images"][0]["layout"].as_str(), Some(layout.to_str().unwrap()));
    for name in ["linux/amd64", "linux/arm64"] {
        let p = platform(&report, name);
        let layers = p["layers"].as_array().unwrap();
        assert_eq!(p["compressed_source"], "local-blobs");
        let measured = blob_layers(&layout, name);
        let digests: Vec<&str> = layers.iter().map(|l| l["digest"].as_str().unwrap()).collect();
        assert_eq!(digests, measured.iter().map(|(d, _, _)| d.as_str()).collect::<Vec<_>>(), "the manifest's layers");
        for (l, (_, compressed, uncompressed)) in layers.iter().zip(&measured) {
            assert_eq!(u(&l["compressed_bytes"]), *compressed, "{l}");
            assert_eq!(u(&l["uncompressed_bytes"]), *uncompressed, "{l}");
        }
        assert_eq!(u(&p["compressed_bytes"]), measured.iter().map(|(_, c, _)| c).sum::<u64>());
        assert_eq!(u(&p["uncompressed_bytes"]), measured.iter().map(|(_, _, x)| x).sum::<u64>());
        // The instruction that made each layer, from the config's history.
        assert!(layers[0]["created_by"].as_str().unwrap().starts_with("COPY"), "{}", layers[0]);
        let overwrite =
            layers.iter().position(|l| l["created_by"].as_str().unwrap().contains("rm /data/deleted.bin")).unwrap();
        assert!(u(&layers[overwrite]["uncompressed_bytes"]) > 5 * MB);
        // A layer tar is whole 512-byte records.
        assert!(layers.iter().all(|l| u(&l["uncompressed_bytes"]).is_multiple_of(512)));

        let largest = p["largest_files"].as_array().unwrap();
        assert_eq!(largest.len(), 3);
        assert_eq!(largest[0]["path"], "/data/overwritten.bin");
        assert_eq!(u(&largest[0]["bytes"]), 5 * MB);
        assert_eq!(u(&largest[0]["layer"]), overwrite as u64);
        assert_eq!(largest[1]["path"], "/usr/local/lib/tool/tool-1.0");

        assert_eq!(u(&p["wasted_bytes"]), 15 * MB);
        assert_eq!(p["inefficiencies"][0]["path"], "/data/overwritten.bin");

        // The file budget follows /usr/local/bin/tool -> ../lib/tool/tool-1.0.
        let budget = &p["budget"];
        assert_eq!(budget["status"], "within", "{budget}");
        assert_eq!(budget["resolved_file"], "/usr/local/lib/tool/tool-1.0");
        assert_eq!(u(&budget["file_bytes"]), 3 * MB);
        assert_eq!(u(&budget["limit_bytes"]), 103 * MB);
        let summary = budget["summary"].as_str().unwrap();
        assert!(summary.starts_with("/usr/local/bin/tool 3.0 MB + at most 100 MB = 103.0 MB; image "), "{summary}");
        assert!(summary.contains(": within budget ("), "{summary}");
    }

    // dive reads the host's platform from the engine: the same figures.
    let dive_json = fx.dir.join("dive.json");
    run_ok("dive", &[&fx.reference(), "--ci", "--json", dive_json.to_str().unwrap()]);
    let dive: Value = serde_json::from_str(&std::fs::read_to_string(&dive_json).unwrap()).unwrap();
    let ours = platform(&report, "linux/amd64");
    assert_eq!(ours["wasted_bytes"], dive["image"]["inefficientBytes"], "dive: {}", dive["image"]);
    let (our_score, dive_score) =
        (ours["efficiency"].as_f64().unwrap(), dive["image"]["efficiencyScore"].as_f64().unwrap());
    assert!((our_score - dive_score).abs() < 1e-12, "ours {our_score}, dive {dive_score}");
    assert_eq!(ours["files_bytes"], dive["image"]["sizeBytes"]);
    let dive_layers: Vec<u64> = dive["layer"].as_array().unwrap().iter().map(|l| u(&l["sizeBytes"])).collect();
    let our_layers: Vec<u64> = ours["layers"].as_array().unwrap().iter().map(|l| u(&l["files_bytes"])).collect();
    assert_eq!(our_layers, dive_layers);

    // `docker image inspect` is comparable where the engine says what it
    // measures: the containerd store reports the host platform's content
    // (compressed layers plus config, manifest and index), the classic
    // store the unpacked layers.
    let inspected: u64 =
        run_ok("docker", &["image", "inspect", "--format", "{{.Size}}", &fx.reference()]).trim().parse().unwrap();
    let containerd =
        run_ok("docker", &["info", "--format", "{{json .DriverStatus}}"]).contains("io.containerd.snapshotter");
    if containerd {
        let compressed = u(&ours["compressed_bytes"]);
        assert!(
            inspected >= compressed && inspected - compressed < 64_000,
            "inspect {inspected}, compressed {compressed}"
        );
    } else {
        let files = u(&ours["files_bytes"]);
        assert!(inspected.abs_diff(files) < files / 50, "inspect {inspected}, files {files}");
    }
}

#[test]
fn a_tight_budget_fails_naming_the_image_and_the_overage() {
    let _engine = support::engine();
    let fx = SizeFixture::new("budget");
    fx.build(&["--platform", "linux/amd64"]);
    let out = fx.xtask(&["image", "size", "fx-tight", "--platform", "linux/amd64", "--report", "tight.json"]);
    assert!(!out.status.success(), "{}", out.stdout);
    // The report comes first, on stdout and in the file.
    let report = fx.report("tight.json");
    let p = platform(&report, "linux/amd64");
    assert_eq!(p["budget"]["status"], "over");
    let size = u(&p["uncompressed_bytes"]);
    let over = format!("{:.1} MB", (size - MB) as f64 / MB as f64);
    assert!(
        out.stdout
            .contains(&format!("budget: at most 1 MB; image {:.1} MB: over budget by {over}", size as f64 / MB as f64)),
        "{}",
        out.stdout
    );
    assert_eq!(
        out.last_line(),
        format!(
            "error: image `fx-tight` on linux/amd64 is over its budget by {over} ({:.1} MB > 1.0 MB)",
            size as f64 / MB as f64
        )
    );

    // A budget file the image lacks fails too, saying which.
    let out = fx.xtask(&["image", "size", "fx-nofile", "--platform", "linux/amd64"]);
    assert!(!out.status.success());
    assert!(
        out.last_line().contains("image `fx-nofile` on linux/amd64: budget file /usr/local/bin/absent not found"),
        "{}",
        out.stderr
    );
}

#[test]
fn an_image_never_built_names_the_build_command() {
    let _engine = support::engine();
    let fx = SizeFixture::new("never");
    let out = fx.xtask(&["image", "size", "never"]);
    assert!(!out.status.success());
    let last = out.last_line();
    assert!(
        last.contains("image `never` is not built") && last.contains("run `cargo xtask image build never`"),
        "{last}"
    );
}

#[test]
fn a_missing_platform_names_the_build_command_for_it() {
    let _engine = support::engine();
    let fx = SizeFixture::new("platform");
    fx.build(&["--platform", "linux/amd64"]);
    let out = fx.xtask(&["image", "size", "fx", "--platform", "linux/arm64"]);
    assert!(!out.status.success());
    assert_eq!(
        out.last_line(),
        format!("error: image `fx` has no linux/arm64 ({} has linux/amd64): run `cargo xtask image build fx --platform linux/arm64`", fx.reference())
    );
}

#[test]
fn pushed_images_take_compressed_sizes_from_the_registry() {
    let _engine = support::engine();
    let fx = SizeFixture::new("push");
    fx.build(&["--push", "--registry", REGISTRY]);
    let out = fx.xtask(&["image", "size", "fx", "--registry", REGISTRY, "--report", "pushed.json"]);
    assert!(out.status.success(), "{}", out.stderr);
    let report = fx.report("pushed.json");
    let reference = format!("{REGISTRY}/{}", fx.reference());
    assert_eq!(report["images"][0]["reference"], reference.as_str());

    let index: Value =
        serde_json::from_str(&run_ok("docker", &["buildx", "imagetools", "inspect", "--raw", &reference])).unwrap();
    for name in ["linux/amd64", "linux/arm64"] {
        let arch = name.trim_start_matches("linux/");
        let digest =
            index["manifests"].as_array().unwrap().iter().find(|m| m["platform"]["architecture"] == arch).unwrap()
                ["digest"]
                .as_str()
                .unwrap();
        let manifest: Value = serde_json::from_str(&run_ok(
            "docker",
            &["buildx", "imagetools", "inspect", "--raw", &format!("{REGISTRY}/{}@{digest}", fx.repository)],
        ))
        .unwrap();
        let in_registry: Vec<(String, u64)> = manifest["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| (l["digest"].as_str().unwrap().to_string(), u(&l["size"])))
            .collect();

        let p = platform(&report, name);
        assert_eq!(p["compressed_source"], "registry");
        let in_report: Vec<(String, u64)> = p["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| (l["digest"].as_str().unwrap().to_string(), u(&l["compressed_bytes"])))
            .collect();
        assert_eq!(in_report, in_registry, "{name}");
        assert_eq!(u(&p["compressed_bytes"]), in_registry.iter().map(|(_, s)| s).sum::<u64>());
        assert_eq!(u(&p["wasted_bytes"]), 15 * MB);
    }
}
