//! The classic image store, where one tag holds one platform: a second,
//! throwaway Docker daemon without the containerd snapshotter, on its own
//! socket and data root, checks an image pushed to the local registry for
//! both platforms (pulling each by its digest), as a CI runner whose engine
//! is configured that way would.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::{run_ok, Fixture, REGISTRY};

/// A dockerd with the classic store (overlay2) on a bridge of its own and
/// without iptables, so the machine's own daemon and network are left as
/// they are. (`--bridge none` would not do: dockerd then deletes `docker0`,
/// the machine daemon's bridge.)
struct ClassicDaemon {
    dir: tempfile::TempDir,
    bridge: String,
    child: Child,
}

impl ClassicDaemon {
    fn start() -> ClassicDaemon {
        // Short: containerd's socket path below it must fit in sun_path.
        let dir = tempfile::Builder::new().prefix("xd").tempdir_in("/tmp").unwrap();
        let d = dir.path();
        std::fs::write(d.join("daemon.json"), "{}").unwrap();
        let log = std::fs::File::create(d.join("dockerd.log")).unwrap();
        let bridge = format!("xd{}", std::process::id() % 100_000);
        let ip = |args: &[&str]| run_ok("ip", args);
        ip(&["link", "add", "name", &bridge, "type", "bridge"]);
        ip(&["addr", "add", "10.213.77.1/24", "dev", &bridge]);
        ip(&["link", "set", &bridge, "up"]);
        let child = Command::new("dockerd")
            .arg("--config-file")
            .arg(d.join("daemon.json"))
            .arg("--host")
            .arg(format!("unix://{}", d.join("docker.sock").display()))
            .arg("--data-root")
            .arg(d.join("data"))
            .arg("--exec-root")
            .arg(d.join("exec"))
            .arg("--pidfile")
            .arg(d.join("docker.pid"))
            .args(["--storage-driver", "overlay2", "--bridge", &bridge, "--iptables=false", "--ip6tables=false"])
            .arg("--ip-masq=false")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting a second dockerd (scripts/setup-host.sh installs it)");
        let daemon = ClassicDaemon { dir, bridge, child };
        let up = support::wait_for(Duration::from_secs(30), Duration::from_millis(100), || {
            daemon.docker(&["info", "--format", "{{.Driver}}"]).status.success().then_some(())
        });
        assert!(up.is_some(), "the classic dockerd did not start: {}", daemon.log());
        daemon
    }

    fn host(&self) -> String {
        format!("unix://{}", self.dir.path().join("docker.sock").display())
    }

    fn docker(&self, args: &[&str]) -> support::Output {
        support::run_cmd(Command::new("docker").env("DOCKER_HOST", self.host()).args(args))
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dockerd.log")).unwrap_or_default()
    }
}

impl Drop for ClassicDaemon {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.child.id().to_string()).status();
        let _ = self.child.wait();
        // What the daemon mounted below its directory (a host-network
        // container's netns, say) would keep the directory from going.
        let root: PathBuf = self.dir.path().to_path_buf();
        let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
        let mut below: Vec<&str> = mounts
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1))
            .filter(|m| Path::new(m).starts_with(&root))
            .collect();
        below.sort_by(|a, b| b.cmp(a));
        for m in below {
            let _ = Command::new("umount").arg(m).status();
        }
        let _ = Command::new("ip").args(["link", "delete", &self.bridge]).status();
    }
}

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
