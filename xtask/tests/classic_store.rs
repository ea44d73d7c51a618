//! The classic image store, where one tag holds one platform: a second,
//! throwaway Docker daemon without the containerd snapshotter, on its own
//! socket and data root, checks an image pushed to the local registry for
//! both platforms (pulling each by its digest), as a CI runner whose engine
//! is configured that way would.

mod support;

use support::{ClassicDaemon, Fixture, REGISTRY};

#[test]
fn a_pushed_image_is_checked_platform_by_platform_on_the_classic_store() {
    let _engine = support::engine();
    let fx = Fixture::with_catalog("classic", "smoke-fixture", |repository| {
        format!(
            "[[image]]\nname = \"fx\"\nrepository = \"{repository}\"\nkind = \"fixture\"\ndockerfile = \"ctx/Dockerfile\"\n\
             context = \"ctx\"\ncontexts = {{ busybox = \"/usr/local/share/ralph-host/busybox\" }}\nsmoke = \"ctx/smoke.yaml\"\n"
        )
    });
    let out = fx.xtask(&["image", "build", "fx", "--push", "--registry", REGISTRY, "--quiet"]);
    assert!(out.status.success(), "{}", out.stderr);

    let daemon = ClassicDaemon::start();
    let store = daemon.docker(&["info", "--format", "{{json .DriverStatus}}"]).stdout;
    assert!(!store.contains("io.containerd.snapshotter"), "the second daemon uses the classic store: {store}");
    let env = [("DOCKER_HOST", daemon.host())];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();

    // Smoke: each platform's commands ran on that platform's image.
    let out = fx.xtask_env(&["image", "smoke", "fx", "--registry", REGISTRY, "--report", "smoke.json"], &env);
    assert!(
        out.status.success(),
        "{}\n{}",
        out.stderr,
        daemon.log().lines().rev().take(5).collect::<Vec<_>>().join("\n")
    );
    let report = fx.report("smoke.json");
    for (platform, machine) in [("linux/amd64", "x86_64\n"), ("linux/arm64", "aarch64\n")] {
        let p =
            report["images"][0]["platforms"].as_array().unwrap().iter().find(|p| p["platform"] == platform).unwrap();
        assert_eq!(p["failed"], 0, "{p}");
        let uname = p["checks"].as_array().unwrap().iter().find(|c| c["name"] == "uname").unwrap();
        assert_eq!(uname["stdout"], machine, "{platform} ran its own image");
    }
    // Size: both platforms, measured from what the registry serves.
    let out = fx.xtask_env(&["image", "size", "fx", "--registry", REGISTRY, "--report", "size.json"], &env);
    assert!(out.status.success(), "{}", out.stderr);
    let size = fx.report("size.json");
    let platforms: Vec<&str> =
        size["images"][0]["platforms"].as_array().unwrap().iter().map(|p| p["platform"].as_str().unwrap()).collect();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64"]);
    assert!(size["images"][0]["platforms"].as_array().unwrap().iter().all(|p| p["compressed_source"] == "registry"));
    // What the checks pulled is gone again; nothing of theirs is left.
    assert_eq!(daemon.docker(&["images", "--quiet"]).stdout.trim(), "", "pulled images are removed");
    assert_eq!(daemon.docker(&["ps", "--all", "--quiet"]).stdout.trim(), "");
}
