//! Shared by the integration tests: a copy of the busybox fixture in a
//! temporary directory with its own catalog, and the xtask binary to run.

#![allow(dead_code)] // each test binary uses a different part

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

pub const REGISTRY: &str = "localhost:5000";

static ENGINE: Mutex<()> = Mutex::new(());

/// Serializes tests that build or run images: two cores don't gain from
/// parallel builds, and timings stay readable.
pub fn engine() -> MutexGuard<'static, ()> {
    ENGINE.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

pub struct Fixture {
    pub dir: PathBuf,
    pub repository: String,
    /// Removes `dir` on drop.
    _temp: tempfile::TempDir,
}

pub struct Output {
    pub status: std::process::ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// The last line on stderr: where the xtask puts its one-line error.
    pub fn last_line(&self) -> &str {
        self.stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("")
    }

    /// The `n` lines on stderr up to the first that contains `marker` (or
    /// the last `n` when none does): what a run printed before it failed.
    pub fn stderr_before(&self, marker: &str, n: usize) -> String {
        let lines: Vec<&str> = self.stderr.lines().collect();
        let end = lines.iter().position(|l| l.contains(marker)).map_or(lines.len(), |i| i + 1);
        lines[end.saturating_sub(n)..end].join("\n")
    }
}

impl Fixture {
    /// A copy of test/images/CONTEXT in a temporary directory (as `ctx/`),
    /// with the catalog `catalog(repository)` writes; `repository` is unique
    /// to this fixture and prefixes every image it builds.
    pub fn with_catalog(name: &str, context: &str, catalog: impl FnOnce(&str) -> String) -> Fixture {
        let repository = unique_name(&format!("xtask-test-{name}"));
        let temp = temp_dir(&repository);
        let dir = temp.path().to_path_buf();
        copy_dir(&repo_root().join("test/images").join(context), &dir.join("ctx"));
        std::fs::write(dir.join("images.toml"), catalog(&repository)).unwrap();
        Fixture { dir, repository, _temp: temp }
    }

    /// The busybox fixture as image `fx`, and an image whose Dockerfile is missing.
    pub fn new(name: &str) -> Fixture {
        Fixture::with_catalog(name, "busybox", |repository| {
            format!(
                r#"
[[image]]
name = "fx"
repository = "{repository}"
kind = "fixture"
dockerfile = "ctx/Dockerfile"
context = "ctx"
contexts = {{ busybox = "/usr/local/share/ralph-host/busybox" }}

[[image]]
name = "missing-dockerfile"
kind = "fixture"
dockerfile = "nowhere/Dockerfile"
platforms = ["linux/amd64"]
"#
            )
        })
    }

    pub fn xtask(&self, args: &[&str]) -> Output {
        self.xtask_env(args, &[])
    }

    pub fn xtask_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        xtask_in(&self.dir, args, env)
    }

    pub fn report(&self, name: &str) -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(self.dir.join(name)).unwrap()).unwrap()
    }

    /// NAME in the fixture's directory, as an argument.
    pub fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    pub fn remove_images(&self, refs: &[&str]) {
        let _ = Command::new("docker").args(["image", "rm", "--force"]).args(refs).output();
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        remove_images_named(&self.repository);
    }
}

/// Removes every tag whose repository contains NAME, local or pushed (a
/// push with the containerd image store tags the local engine too).
pub fn remove_images_named(name: &str) {
    if let Ok(out) = Command::new("docker").args(["images", "--format", "{{.Repository}}:{{.Tag}}"]).output() {
        let ours: Vec<String> =
            String::from_utf8_lossy(&out.stdout).lines().filter(|r| r.contains(name)).map(str::to_string).collect();
        if !ours.is_empty() {
            let _ = Command::new("docker").args(["image", "rm", "--force"]).args(&ours).output();
        }
    }
}

/// Runs the xtask in DIR with DIR/images.toml as its catalog (DIR is not a
/// git checkout, so images are tagged `sha-0000000`).
pub fn xtask_in(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    cmd.arg("--catalog").arg(dir.join("images.toml")).args(args).current_dir(dir);
    for (k, v) in env {
        cmd.env(k, v);
    }
    run_cmd(&mut cmd)
}

/// Runs a command that must succeed; its stdout.
pub fn run_ok(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(out.status.success(), "{program} {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Copies the tree at `from` to `to`.
pub fn copy_dir(from: &Path, to: &Path) {
    for entry in walkdir::WalkDir::new(from) {
        let entry = entry.unwrap();
        let target = to.join(entry.path().strip_prefix(from).unwrap());
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

// ---- Shared by the tests that build the repository's own catalog images
// and run containers (tests/standins.rs). ----

/// A name unique to this process and call, for tags, containers, networks
/// and compose projects: `PREFIX-PID-N-NANOS`.
pub fn unique_name(prefix: &str) -> String {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("{prefix}-{}-{n}-{nanos}", std::process::id())
}

/// Runs a command; its status and output (never panics on failure).
pub fn run_cmd(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    Output {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A directory under the system's temporary directory, removed on drop.
pub fn temp_dir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new().prefix(&format!("{prefix}-")).tempdir().unwrap()
}

/// What undoes a test's work (remove its containers, networks, volumes),
/// run on drop in reverse order, also when the test fails.
#[derive(Default)]
pub struct Cleanup(Vec<Box<dyn FnOnce()>>);

impl Cleanup {
    pub fn new() -> Cleanup {
        Cleanup(Vec::new())
    }

    /// Runs `program args…` on drop (its failure is ignored).
    pub fn on_drop(&mut self, program: &str, args: &[&str]) {
        let mut cmd = Command::new(program);
        cmd.args(args);
        self.defer(move || {
            let _ = cmd.output();
        });
    }

    /// Runs `f` on drop.
    pub fn defer(&mut self, f: impl FnOnce() + 'static) {
        self.0.push(Box::new(f));
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        while let Some(f) = self.0.pop() {
            f();
        }
    }
}

/// Catalog images built from the repository by the xtask binary (`image
/// build NAMES… --report`), tagged with a branch name of their own (so the
/// tags are this test's alone and never `latest`). Their tags go on drop;
/// the layers stay with the engine's other tags and the build cache. With
/// `--cache none`: the engine's own cache is shared by every test, and a
/// local cache export (tested in `image_build`) wrote every stage's layers
/// (mode=max) again: 4.2 GB of disk in one run.
pub struct CatalogBuild {
    pub report: serde_json::Value,
    /// The branch name the images were tagged and labelled with.
    pub branch: String,
    pub stderr: String,
    refs: Vec<String>,
}

impl CatalogBuild {
    pub fn new(images: &[&str], extra_args: &[&str]) -> CatalogBuild {
        CatalogBuild::on_branch(&unique_name("xtask-test"), images, extra_args)
    }

    /// Like `new`, on `branch` (another build's: images built for other
    /// platforms under the same tags).
    pub fn on_branch(branch: &str, images: &[&str], extra_args: &[&str]) -> CatalogBuild {
        sweep_exited_tags();
        let dir = temp_dir("xtask-report");
        let report_path = dir.path().join("report.json");
        let branch = branch.to_string();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
        cmd.current_dir(repo_root())
            .args(["image", "build"])
            .args(images)
            .args(["--branch", &branch, "--quiet", "--cache", "none", "--report"])
            .arg(&report_path)
            .args(extra_args);
        let started = std::time::Instant::now();
        let out = run_cmd(&mut cmd);
        assert!(out.status.success(), "building {images:?} failed:\n{}", out.stderr);
        eprintln!("built {images:?} {extra_args:?} in {:.1}s", started.elapsed().as_secs_f64());
        let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report_path).unwrap()).unwrap();
        let refs = report["images"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|i| i["refs"].as_array().unwrap().iter().map(|r| r.as_str().unwrap().to_string()))
            .collect();
        CatalogBuild { report, branch, stderr: out.stderr, refs }
    }

    /// The report's entry for IMAGE.
    pub fn image(&self, image: &str) -> &serde_json::Value {
        self.report["images"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["image"] == image)
            .unwrap_or_else(|| panic!("no image `{image}` in the report: {}", self.report))
    }

    /// IMAGE's first reference in the report (its `<branch>-<sha>` tag).
    pub fn reference(&self, image: &str) -> String {
        self.image(image)["refs"][0].as_str().expect("the report lists refs").to_string()
    }
}

/// One build of IMAGES for every test of a binary that asks for it (the
/// first builds it; the engine lock keeps the others waiting): each heavy
/// image is built and loaded once, not once per test. Its tags outlive the
/// binary; the next `CatalogBuild` removes them (`sweep_exited_tags`).
pub fn shared_build(images: &[&str], extra_args: &[&str]) -> &'static CatalogBuild {
    type Shared = Vec<(String, &'static CatalogBuild)>;
    static BUILDS: Mutex<Shared> = Mutex::new(Vec::new());
    let key = format!("{images:?} {extra_args:?}");
    let mut builds = BUILDS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some((_, built)) = builds.iter().find(|(k, _)| *k == key) {
        return built;
    }
    let mut built = CatalogBuild::new(images, extra_args);
    // Kept for the binary's life: dropping it would untag what later tests run.
    built.refs.clear();
    let built: &'static CatalogBuild = Box::leak(Box::new(built));
    builds.push((key, built));
    built
}

/// Removes the tags `xtask-test-PID-…` of test processes that have exited
/// (a shared build's, or a run cut short); returns how many.
pub fn sweep_exited_tags() -> usize {
    let stale: Vec<String> = local_tags()
        .into_iter()
        .map(|(reference, _)| reference)
        .filter(|r| tag_owner(r).is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists()))
        .collect();
    if !stale.is_empty() {
        let _ = Command::new("docker").args(["image", "rm"]).args(&stale).output();
    }
    stale.len()
}

/// Every tagged image in the engine: (`REPOSITORY:TAG`, image ID).
pub fn local_tags() -> Vec<(String, String)> {
    let format = "{{.Repository}}:{{.Tag}} {{.ID}}";
    let out = run_cmd(Command::new("docker").args(["image", "ls", "--no-trunc", "--format", format]));
    out.stdout
        .lines()
        .filter_map(|l| l.split_once(' '))
        .filter(|(reference, _)| !reference.ends_with(":<none>"))
        .map(|(reference, id)| (reference.to_string(), id.to_string()))
        .collect()
}

/// The pid in a reference's tag `xtask-test-PID-N-NANOS[-SHA]`.
fn tag_owner(reference: &str) -> Option<u32> {
    let (_, tag) = reference.rsplit_once(':')?;
    tag.strip_prefix("xtask-test-")?.split('-').next()?.parse().ok()
}

impl Drop for CatalogBuild {
    fn drop(&mut self) {
        if !self.refs.is_empty() {
            let _ = Command::new("docker").args(["image", "rm"]).args(&self.refs).output();
        }
    }
}

/// Polls F every POLL until it gives Some, for at most TIMEOUT.
pub fn wait_for<T>(timeout: Duration, poll: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if std::time::Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(poll);
    }
}

/// `GET PATH` over HTTP/1.0 from ADDR (`host:port`): status code and body.
pub fn http_get(addr: &str, path: &str) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let sock = std::net::ToSocketAddrs::to_socket_addrs(addr)?
        .next()
        .ok_or_else(|| std::io::Error::other(format!("{addr} resolves to nothing")))?;
    let mut stream = std::net::TcpStream::connect_timeout(&sock, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(20)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n")?;
    let mut text = String::new();
    stream.read_to_string(&mut text)?;
    let (head, body) =
        text.split_once("\r\n\r\n").ok_or_else(|| std::io::Error::other(format!("not an HTTP response: {text:?}")))?;
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status code in {head:?}")))?;
    Ok((code, body.to_string()))
}

/// Prints how long a test took (on drop: also when it fails), for the
/// timings `--nocapture` shows.
pub struct Timer(&'static str, std::time::Instant);

impl Timer {
    pub fn start(test: &'static str) -> Timer {
        Timer(test, std::time::Instant::now())
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        eprintln!("[time] {}: {:.1}s", self.0, self.1.elapsed().as_secs_f64());
    }
}

/// Fails unless `doc` is valid against the SARIF 2.1.0 schema
/// (xtask/test_data/README.md says where the copy comes from).
pub fn validate_sarif(doc: &serde_json::Value) {
    let path = repo_root().join("xtask/test_data/sarif-schema-2.1.0.json");
    let schema: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut schemas = boon::Schemas::new();
    let mut compiler = boon::Compiler::new();
    compiler.add_resource("urn:xtask:sarif-schema", schema).unwrap();
    let index = compiler.compile("urn:xtask:sarif-schema", &mut schemas).unwrap();
    if let Err(e) = schemas.validate(doc, index) {
        panic!("the SARIF is not valid against the SARIF 2.1.0 schema: {e:#}");
    }
}

// ---- A second engine (tests/classic_store.rs, tests/builder.rs). ----

/// A dockerd with the classic store (overlay2) on a bridge of its own and
/// without iptables, so the machine's own daemon and network are left as
/// they are. (`--bridge none` would not do: dockerd then deletes `docker0`,
/// the machine daemon's bridge.)
pub struct ClassicDaemon {
    dir: tempfile::TempDir,
    bridge: String,
    child: Child,
}

impl ClassicDaemon {
    pub fn start() -> ClassicDaemon {
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
        let up = wait_for(Duration::from_secs(30), Duration::from_millis(100), || {
            daemon.docker(&["info", "--format", "{{.Driver}}"]).status.success().then_some(())
        });
        assert!(up.is_some(), "the classic dockerd did not start: {}", daemon.log());
        daemon
    }

    pub fn host(&self) -> String {
        format!("unix://{}", self.dir.path().join("docker.sock").display())
    }

    pub fn docker(&self, args: &[&str]) -> Output {
        run_cmd(Command::new("docker").env("DOCKER_HOST", self.host()).args(args))
    }

    pub fn log(&self) -> String {
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

/// Pulls REFERENCE (a platform's digest) for linux/ARCH, runs `uname -m` in
/// it and fails unless it is that architecture; the pulled image goes again.
pub fn assert_runs_as(reference: &str, arch: &str) {
    let platform = format!("linux/{arch}");
    let out = run_cmd(Command::new("docker").args([
        "run",
        "--rm",
        "--pull",
        "always",
        "--platform",
        &platform,
        "--entrypoint",
        "uname",
        reference,
        "-m",
    ]));
    assert!(out.status.success(), "docker run {reference}: {}", out.stderr);
    let want = if arch == "arm64" { "aarch64" } else { "x86_64" };
    assert_eq!(out.stdout.trim(), want, "{reference}");
    let _ = Command::new("docker").args(["image", "rm", reference]).output();
}
