//! `--builder` (and `BUILDX_BUILDER`): a second, throwaway engine (the
//! classic store, as in tests/classic_store.rs) reached through a Docker
//! context of its own, which buildx lists as a builder of the `docker`
//! driver. The busybox fixture is built with it once, for one platform, and
//! lands in that engine, not in the machine's; what the `docker` driver
//! can't do on the classic store is refused before anything is built.
//! (Multi-node, remote and Kubernetes builders need images or machines this
//! host doesn't have: the README describes them; the refusal rules for them
//! are unit tests of `check_builder`.)

mod support;

use support::{run_cmd, run_ok, ClassicDaemon, Cleanup, Fixture};

#[test]
fn a_docker_context_is_a_builder_that_builds_into_its_own_engine() {
    let _engine = support::engine();
    let daemon = ClassicDaemon::start();
    let context = support::unique_name("xtask-builder");
    run_ok("docker", &["context", "create", &context, "--docker", &format!("host={}", daemon.host())]);
    // Dropped before the daemon: the context goes, then the engine.
    let mut cleanup = Cleanup::new();
    cleanup.on_drop("docker", &["context", "rm", "--force", &context]);
    let fx = Fixture::new("builder");
    let tag = format!("{}:sha-0000000", fx.repository);

    // Refused up front (no "==> building"), one line each, with the fix.
    let refused = |args: &[&str], env: &[(&str, &str)], says: &str| {
        let mut all = vec!["image", "build", "fx"];
        all.extend_from_slice(args);
        let out = fx.xtask_env(&all, env);
        assert!(!out.status.success(), "{args:?} must be refused:\n{}", out.stderr);
        assert!(out.last_line().contains(says), "{args:?}: {}", out.stderr);
        assert!(!out.stderr.contains("==> building"), "{args:?} was refused only after building: {}", out.stderr);
    };
    let builder = ["--builder", context.as_str()];
    let one = ["--platform", "linux/amd64"];
    refused(
        &[&builder[..], &one[..]].concat(),
        &[],
        &format!(
            "builder {context} (driver docker) on an engine with the classic image store can't export a build cache \
             (--cache local): use --cache none"
        ),
    );
    refused(
        &[&builder[..], &["--cache", "none", "--platform", "linux/amd64,linux/arm64"][..]].concat(),
        &[],
        "can't build a multi-platform image: build one --platform",
    );
    refused(
        &[&builder[..], &one[..], &["--cache", "none", "--provenance"][..]].concat(),
        &[],
        "can't attach provenance or SBOM attestations: drop --provenance/--sbom",
    );
    // BUILDX_BUILDER is --builder's default.
    refused(
        &[&one[..], &["--cache", "none"][..]].concat(),
        &[("BUILDX_BUILDER", "xtask-no-such-builder")],
        "builder xtask-no-such-builder does not exist",
    );
    let out =
        fx.xtask_env(&["image", "build", "fx", "--cache", "none"], &[("BUILDX_BUILDER", "xtask-no-such-builder")]);
    assert!(
        out.last_line().contains("create it with `docker buildx create --name xtask-no-such-builder"),
        "{}",
        out.stderr
    );
    // `image check` looks at the image in the current engine: a builder that
    // loads into another engine is refused for it, before lint or build.
    let out =
        fx.xtask(&["image", "check", "fx", "--platform", "linux/amd64", "--cache", "none", "--builder", &context]);
    assert!(!out.status.success());
    assert!(
        out.last_line()
            .contains(&format!("looks at the image in the current engine: run it with DOCKER_CONTEXT={context}")),
        "{}",
        out.stderr
    );

    // The one build: into the second engine, reported with its builder.
    let out = fx.xtask(&[
        "image",
        "build",
        "fx",
        "--builder",
        &context,
        "--platform",
        "linux/amd64",
        "--cache",
        "none",
        "--report",
        "report.json",
        "--quiet",
    ]);
    assert!(
        out.status.success(),
        "{}\n{}",
        out.stderr,
        daemon.log().lines().rev().take(5).collect::<Vec<_>>().join("\n")
    );
    assert!(
        out.stdout.contains(&format!("built by builder {context} (driver docker, endpoint {context})")),
        "{}",
        out.stdout
    );
    let report = fx.report("report.json");
    for builder in [&report["builder"], &report["images"][0]["builder"]] {
        assert_eq!(builder["name"], context.as_str(), "{report}");
        assert_eq!(builder["driver"], "docker", "{report}");
    }
    let id = run_ok("docker", &["--context", &context, "image", "inspect", "--format", "{{.Id}}", &tag]);
    assert_eq!(report["images"][0]["digest"], id.trim(), "the report's digest is the second engine's image");
    let arch =
        run_ok("docker", &["--context", &context, "run", "--rm", "--network", "none", &tag, "cat", "/etc/build-arch"]);
    assert_eq!(arch.trim(), "x86_64");
    let here = run_cmd(std::process::Command::new("docker").args(["image", "inspect", &tag]));
    assert!(!here.status.success(), "the image must not be in the machine's engine");
}
