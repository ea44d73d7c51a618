//! Containers and networks the checks start. Each belongs to a [`Session`]:
//! labelled with the session's id and removed, with its anonymous volumes,
//! when the session ends, whether the checks passed, failed or hung.
//! Leftovers of a session whose process died (Ctrl-C, a kill) are removed
//! by the next session.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::catalog::Platform;
use crate::docker;
use crate::process::Cmd;

/// The label every container and network of a session carries.
pub const SESSION_LABEL: &str = "io.ralph.xtask.session";
/// The process that owns the session, to find the leftovers of dead ones.
const PID_LABEL: &str = "io.ralph.xtask.pid";

/// What to run: `docker create`/`docker run` options.
#[derive(Debug, Clone, Default)]
pub struct Spec {
    pub image: String,
    pub platform: Option<Platform>,
    /// `Some(vec![])` clears the image's entrypoint; `None` keeps it.
    pub entrypoint: Option<Vec<String>>,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub user: Option<String>,
    pub network: Option<String>,
    pub network_alias: Option<String>,
    pub read_only: bool,
    pub tmpfs: Vec<String>,
    /// `--cap-drop ALL --security-opt no-new-privileges`.
    pub unprivileged: bool,
    /// Container ports published on 127.0.0.1 (a free host port each).
    pub publish: Vec<u16>,
    pub cgroup_parent: Option<String>,
    /// Pull the image when the engine lacks it (only for third-party
    /// images such as a database); checks look at what was built, never
    /// at something pulled in its place.
    pub allow_pull: bool,
}

/// How a container run ended.
#[derive(Debug, Clone)]
pub struct Finished {
    /// `None` when it was stopped at the timeout.
    pub exit_code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

pub struct Session {
    id: String,
    containers: Mutex<Vec<String>>,
    networks: Mutex<Vec<String>>,
    /// Images committed by `run_and_commit`.
    images: Mutex<Vec<String>>,
    counter: AtomicUsize,
}

impl Session {
    pub fn new(purpose: &str) -> Session {
        remove_leftovers();
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        Session {
            id: format!("xtask-{purpose}-{}-{nanos:08x}", std::process::id()),
            containers: Mutex::new(Vec::new()),
            networks: Mutex::new(Vec::new()),
            images: Mutex::new(Vec::new()),
            counter: AtomicUsize::new(0),
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// A name no other container of this session has.
    fn next_name(&self, hint: &str) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let hint: String = hint.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).take(24).collect();
        format!("{}-{n}-{hint}", self.id)
    }

    fn labels(&self) -> [String; 4] {
        [
            "--label".into(),
            format!("{SESSION_LABEL}={}", self.id),
            "--label".into(),
            format!("{PID_LABEL}={}", std::process::id()),
        ]
    }

    /// `docker create`: a container that doesn't run, for reading its files
    /// and configuration. Returns its name.
    pub fn create(&self, spec: &Spec, hint: &str) -> Result<String> {
        let name = self.next_name(hint);
        self.containers.lock().unwrap().push(name.clone());
        let out = self.command(&["create"], spec, &name).probe().output()?;
        if !out.status.success() {
            bail!(
                "{}",
                explain_docker_error(&spec.image, spec.platform.as_ref(), &String::from_utf8_lossy(&out.stderr))
            );
        }
        Ok(name)
    }

    /// Runs a container to its end, or stops it after `timeout`; either way
    /// it is removed before this returns.
    pub fn run(&self, spec: &Spec, hint: &str, timeout: Duration) -> Result<Finished> {
        let name = self.next_name(hint);
        self.containers.lock().unwrap().push(name.clone());
        let out = self.command(&["run"], spec, &name).probe().output_timeout(timeout)?;
        self.remove(&name);
        let Some(out) = out else {
            return Ok(Finished { exit_code: None, stdout: String::new(), stderr: String::new() });
        };
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        // 125: docker itself failed (no such image, bad option), not the command.
        if out.status.code() == Some(125) {
            bail!("{}", explain_docker_error(&spec.image, spec.platform.as_ref(), &stderr));
        }
        Ok(Finished { exit_code: out.status.code(), stdout: String::from_utf8_lossy(&out.stdout).into_owned(), stderr })
    }

    /// Runs a container to its end and commits what it changed as a new
    /// image (how container-structure-test applies `setup` commands; their
    /// exit codes don't matter). Returns the image id; it is removed with
    /// the session.
    pub fn run_and_commit(&self, spec: &Spec, hint: &str, timeout: Duration) -> Result<String> {
        let name = self.next_name(hint);
        self.containers.lock().unwrap().push(name.clone());
        let out = self.command(&["run"], spec, &name).probe().output_timeout(timeout)?;
        let result = match out {
            None => Err(anyhow::anyhow!("timed out after {}s", timeout.as_secs())),
            Some(out) if out.status.code() == Some(125) => Err(anyhow::anyhow!(
                "{}",
                explain_docker_error(&spec.image, spec.platform.as_ref(), &String::from_utf8_lossy(&out.stderr))
            )),
            Some(_) => {
                docker::docker().args(["commit", &name]).probe().read().context("committing the setup container")
            }
        };
        self.remove(&name);
        let image = result?;
        self.images.lock().unwrap().push(image.clone());
        Ok(image)
    }

    /// Starts a container in the background; returns its name.
    pub fn start(&self, spec: &Spec, hint: &str) -> Result<String> {
        let name = self.next_name(hint);
        self.containers.lock().unwrap().push(name.clone());
        let out = self.command(&["run", "--detach"], spec, &name).probe().output()?;
        if !out.status.success() {
            bail!(
                "{}",
                explain_docker_error(&spec.image, spec.platform.as_ref(), &String::from_utf8_lossy(&out.stderr))
            );
        }
        Ok(name)
    }

    /// A private network, removed with the session.
    pub fn network(&self) -> Result<String> {
        let name = self.next_name("net");
        docker::docker()
            .args(["network", "create"])
            .args(self.labels())
            .arg(&name)
            .probe()
            .read()
            .context("creating a docker network")?;
        self.networks.lock().unwrap().push(name.clone());
        Ok(name)
    }

    /// Removes one container of the session now (and its anonymous volumes).
    pub fn remove(&self, name: &str) {
        let _ = docker::docker().args(["rm", "--force", "--volumes", name]).probe().output();
        self.containers.lock().unwrap().retain(|n| n != name);
    }

    fn command(&self, verb: &[&str], spec: &Spec, name: &str) -> Cmd {
        let mut cmd = docker::docker().args(verb).args(["--name", name]).args(self.labels());
        if !spec.allow_pull {
            cmd = cmd.args(["--pull", "never"]);
        }
        if let Some(p) = &spec.platform {
            cmd = cmd.arg("--platform").arg(p.to_string());
        }
        let mut args = spec.args.clone();
        if let Some(entrypoint) = &spec.entrypoint {
            let (first, rest) = entrypoint.split_first().map_or(("", &[][..]), |(f, r)| (f.as_str(), r));
            cmd = cmd.arg(format!("--entrypoint={first}"));
            args.splice(0..0, rest.iter().cloned());
        }
        for (k, v) in &spec.env {
            cmd = cmd.arg("--env").arg(format!("{k}={v}"));
        }
        if let Some(user) = &spec.user {
            cmd = cmd.args(["--user", user]);
        }
        if let Some(network) = &spec.network {
            cmd = cmd.args(["--network", network]);
        }
        if let Some(alias) = &spec.network_alias {
            cmd = cmd.args(["--network-alias", alias]);
        }
        if spec.read_only {
            cmd = cmd.arg("--read-only");
        }
        for t in &spec.tmpfs {
            cmd = cmd.args(["--tmpfs", t]);
        }
        if spec.unprivileged {
            cmd = cmd.args(["--cap-drop", "ALL", "--security-opt", "no-new-privileges"]);
        }
        for port in &spec.publish {
            cmd = cmd.arg("--publish").arg(format!("127.0.0.1::{port}"));
        }
        if let Some(parent) = &spec.cgroup_parent {
            cmd = cmd.arg(format!("--cgroup-parent={parent}"));
        }
        cmd.arg(&spec.image).args(args)
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let containers = std::mem::take(&mut *self.containers.lock().unwrap());
        if !containers.is_empty() {
            let _ = docker::docker().args(["rm", "--force", "--volumes"]).args(&containers).probe().output();
        }
        let images = std::mem::take(&mut *self.images.lock().unwrap());
        if !images.is_empty() {
            let _ = docker::docker().args(["image", "rm", "--force"]).args(&images).probe().output();
        }
        let networks = std::mem::take(&mut *self.networks.lock().unwrap());
        if !networks.is_empty() {
            let _ = docker::docker().args(["network", "rm"]).args(&networks).probe().output();
        }
    }
}

/// One path of a container's filesystem, as `docker cp` reports it (the
/// last component is not followed when it is a symlink).
#[derive(Debug, Clone, PartialEq)]
pub struct PathEntry {
    pub kind: EntryKind,
    /// Permission bits with setuid, setgid and sticky (`0o7777`).
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub link_target: Option<String>,
    /// The content of a regular file, when asked for.
    pub content: Option<Vec<u8>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
    CharDevice,
    BlockDevice,
    Fifo,
}

/// The most of a file the checks read: file content tests look at text.
const MAX_CONTENT: u64 = 64 << 20;

/// Reads `path` from a (created, not necessarily started) container through
/// `docker cp CONTAINER:PATH -`: only the first tar entry, the path itself,
/// so a large directory costs nothing. `None` when the path doesn't exist.
pub fn read_path(container: &str, path: &str, with_content: bool) -> Result<Option<PathEntry>> {
    use std::io::Read;
    let mut child = docker::docker().args(["cp", &format!("{container}:{path}"), "-"]).probe().spawn_piped()?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut stderr = child.stderr.take().expect("stderr is piped");
    let mut archive = tar::Archive::new(stdout);
    let first = archive.entries().ok().and_then(|mut entries| entries.next()).and_then(|e| e.ok()).map(|mut entry| {
        let header = entry.header();
        let kind = match header.entry_type() {
            tar::EntryType::Directory => EntryKind::Dir,
            tar::EntryType::Symlink => EntryKind::Symlink,
            tar::EntryType::Char => EntryKind::CharDevice,
            tar::EntryType::Block => EntryKind::BlockDevice,
            tar::EntryType::Fifo => EntryKind::Fifo,
            _ => EntryKind::File,
        };
        let mut found = PathEntry {
            kind,
            mode: header.mode().unwrap_or(0) & 0o7777,
            uid: header.uid().unwrap_or(0),
            gid: header.gid().unwrap_or(0),
            link_target: entry.link_name().ok().flatten().map(|p| p.to_string_lossy().into_owned()),
            content: None,
        };
        if with_content && kind == EntryKind::File {
            let mut buf = Vec::new();
            let _ = entry.by_ref().take(MAX_CONTENT).read_to_end(&mut buf);
            found.content = Some(buf);
        }
        found
    });
    // What is left of a directory's stream is not needed.
    let _ = child.kill();
    let mut err = String::new();
    let _ = stderr.read_to_string(&mut err);
    let status = child.wait().context("waiting for docker cp")?;
    match first {
        Some(entry) => Ok(Some(entry)),
        None if err.contains("Could not find the file") || err.contains("No such file") => Ok(None),
        None if status.success() => Ok(None),
        None => bail!("reading {path} from the container: {}", crate::process::last_lines(&err, 1)),
    }
}

/// Go's `os.FileMode.String()` for a tar entry, as container-structure-test
/// compares `permissions`: type letters (`d`, `L`, `D`, `p`, then `u`, `g`,
/// `c`, `t`) or `-`, then `rwxrwxrwx`.
pub fn mode_string(kind: EntryKind, mode: u32) -> String {
    let mut out = String::new();
    let types = [
        ('d', kind == EntryKind::Dir),
        ('L', kind == EntryKind::Symlink),
        ('D', matches!(kind, EntryKind::CharDevice | EntryKind::BlockDevice)),
        ('p', kind == EntryKind::Fifo),
        ('u', mode & 0o4000 != 0),
        ('g', mode & 0o2000 != 0),
        ('c', kind == EntryKind::CharDevice),
        ('t', mode & 0o1000 != 0),
    ];
    for (letter, set) in types {
        if set {
            out.push(letter);
        }
    }
    if out.is_empty() {
        out.push('-');
    }
    for (i, c) in "rwxrwxrwx".chars().enumerate() {
        out.push(if mode & (1 << (8 - i)) != 0 { c } else { '-' });
    }
    out
}

/// The host port a published container port was given.
pub fn host_port(container: &str, port: u16) -> Result<u16> {
    let out = docker::docker().args(["port", container, &format!("{port}/tcp")]).probe().read()?;
    out.lines()
        .filter_map(|l| l.rsplit_once(':'))
        .find_map(|(_, p)| p.trim().parse().ok())
        .with_context(|| format!("container port {port} of {container} is not published: `docker port` said `{out}`"))
}

/// Whether a container is still running, and its exit code when not.
pub fn state(container: &str) -> Result<(bool, i32)> {
    let out = docker::docker()
        .args(["inspect", "--format", "{{.State.Running}} {{.State.ExitCode}}", container])
        .probe()
        .read()?;
    let (running, code) = out.split_once(' ').context("docker inspect printed no state")?;
    Ok((running == "true", code.trim().parse().unwrap_or(-1)))
}

/// A container's log (stdout and stderr together).
pub fn logs(container: &str) -> String {
    docker::docker()
        .args(["logs", container])
        .probe()
        .output()
        .map(|o| format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)))
        .unwrap_or_default()
}

/// Removes containers and networks of sessions whose process is gone.
fn remove_leftovers() {
    let format = format!("{{{{.Names}}}} {{{{.Label \"{PID_LABEL}\"}}}}");
    let Ok(out) = docker::docker()
        .args(["ps", "--all", "--filter", &format!("label={SESSION_LABEL}"), "--format", &format])
        .probe()
        .read()
    else {
        return;
    };
    let dead: Vec<&str> = out
        .lines()
        .filter_map(|l| l.split_once(' '))
        .filter(|(_, pid)| pid.parse::<u32>().is_ok_and(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists()))
        .map(|(name, _)| name)
        .collect();
    if !dead.is_empty() {
        let _ = docker::docker().args(["rm", "--force", "--volumes"]).args(&dead).probe().output();
    }
    if let Ok(nets) = docker::docker()
        .args(["network", "ls", "--filter", &format!("label={SESSION_LABEL}"), "--format", &format])
        .probe()
        .read()
    {
        for (name, pid) in nets.lines().filter_map(|l| l.split_once(' ')) {
            if pid.parse::<u32>().is_ok_and(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists()) {
                let _ = docker::docker().args(["network", "rm", name]).probe().output();
            }
        }
    }
}

/// docker's own failure (exit 125) as one line with the fix.
pub fn explain_docker_error(image: &str, platform: Option<&Platform>, stderr: &str) -> String {
    let last = crate::process::last_lines(stderr, 1);
    let missing = stderr.contains("No such image")
        || stderr.contains("Unable to find image")
        || stderr.contains("failed to resolve");
    // Checks confirm the image exists before they run it: a platform that
    // can't be found is a variant that was not built.
    if let (Some(p), true) = (platform, missing || stderr.contains("does not match the specified platform")) {
        return format!("{image} has no {p} variant in the local engine: build it for {p} (cargo xtask image build NAME --platform {p})");
    }
    if missing || stderr.contains("pull access denied") {
        return format!("{image} is not in the local engine: build it with cargo xtask image build, or pull it");
    }
    if stderr.contains("Cannot connect to the Docker daemon")
        || stderr.contains("docker daemon") && stderr.contains("running")
    {
        return format!("the docker daemon is not running: start dockerd or {}", docker::SETUP_HINT);
    }
    format!("docker could not run {image}: {last}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entrypoint_lists_become_entrypoint_and_leading_args() {
        let s = Session {
            id: "xtask-t".into(),
            containers: Mutex::default(),
            networks: Mutex::default(),
            images: Mutex::default(),
            counter: AtomicUsize::new(0),
        };
        let spec = Spec {
            image: "img:1".into(),
            entrypoint: Some(vec!["tini".into(), "--".into()]),
            args: vec!["true".into()],
            env: vec![("A".into(), "b c".into())],
            read_only: true,
            unprivileged: true,
            ..Spec::default()
        };
        let line = s.command(&["run"], &spec, "n").display();
        assert!(
            line.ends_with("--env 'A=b c' --read-only --cap-drop ALL --security-opt no-new-privileges img:1 -- true"),
            "{line}"
        );
        assert!(line.contains("--entrypoint=tini"), "{line}");
        let cleared = Spec { entrypoint: Some(vec![]), args: vec!["ls".into()], ..spec };
        assert!(s.command(&["run"], &cleared, "n").display().contains("--entrypoint= "));
        assert!(line.contains("--pull never"), "checks never pull: {line}");
        std::mem::forget(s); // nothing to clean up, and no engine needed
    }

    #[test]
    fn modes_print_like_go_file_modes() {
        assert_eq!(mode_string(EntryKind::File, 0o755), "-rwxr-xr-x");
        assert_eq!(mode_string(EntryKind::Dir, 0o755), "drwxr-xr-x");
        assert_eq!(mode_string(EntryKind::Symlink, 0o777), "Lrwxrwxrwx");
        assert_eq!(mode_string(EntryKind::Dir, 0o1777), "dtrwxrwxrwx");
        assert_eq!(mode_string(EntryKind::File, 0o4755), "urwxr-xr-x");
        assert_eq!(mode_string(EntryKind::CharDevice, 0o666), "Dcrw-rw-rw-");
        assert_eq!(mode_string(EntryKind::File, 0o640), "-rw-r-----");
    }

    #[test]
    fn docker_failures_name_the_fix() {
        let amd = Platform::parse("linux/arm64").unwrap();
        let msg = explain_docker_error("x:1", Some(&amd), "Error response from daemon: No such image: x:1");
        assert!(msg.contains("has no linux/arm64 variant") && msg.contains("--platform linux/arm64"), "{msg}");
        assert!(explain_docker_error("x:1", None, "Error response from daemon: No such image: x:1")
            .contains("not in the local engine"));
    }
}
