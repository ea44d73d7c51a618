//! Containers, networks and images the checks make. Each belongs to a
//! [`Session`]: labelled with the session's run id, its owner (host, pid
//! namespace and pid of the xtask process) and its start time, and removed
//! (containers with their anonymous volumes) when the session ends, whether
//! the checks passed, failed or hung.
//!
//! Leftovers of a run whose process died (Ctrl-C, a kill) are removed by the
//! next session: those whose owner is on this host, in this pid namespace,
//! with its pid gone, and anything older than [`STALE_AFTER`]. A run on
//! another host or in another pid namespace sharing the daemon (a CI job in
//! a container, say) is never touched while it may still be running.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, Once};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};

use super::docker;
use super::process::Cmd;
use crate::model::catalog::Platform;

/// The run id every container, network and image of a session carries.
pub const RUN_LABEL: &str = "io.ralph.xtask.run";
/// `HOST/PIDNS/PID` of the xtask process that made it.
pub const OWNER_LABEL: &str = "io.ralph.xtask.owner";
/// When it was made, Unix seconds.
pub const STARTED_LABEL: &str = "io.ralph.xtask.started";
/// Older than this, a session's leftover is removed whoever made it: no
/// check runs this long (a cold two-arch `image check` of every stand-in
/// takes about 15 minutes).
pub const STALE_AFTER: Duration = Duration::from_secs(12 * 3600);

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
    /// Capabilities given back after `--cap-drop ALL` (`--cap-add`).
    pub cap_add: Vec<String>,
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

/// Who made a container: the xtask process, named so that another host or
/// pid namespace can tell it is not theirs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub host: String,
    /// The pid namespace, as `/proc/self/ns/pid` names it (`pid:[4026531836]`).
    pub pid_ns: String,
    pub pid: u32,
}

impl Owner {
    pub fn current() -> Owner {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default().trim().to_string();
        let pid_ns = std::fs::read_link("/proc/self/ns/pid").map(|p| p.display().to_string()).unwrap_or_default();
        Owner { host, pid_ns, pid: std::process::id() }
    }

    pub fn label(&self) -> String {
        format!("{}/{}/{}", self.host, self.pid_ns, self.pid)
    }

    pub fn parse(label: &str) -> Option<Owner> {
        let (rest, pid) = label.rsplit_once('/')?;
        let (host, pid_ns) = rest.rsplit_once('/')?;
        Some(Owner { host: host.into(), pid_ns: pid_ns.into(), pid: pid.parse().ok()? })
    }
}

/// Whether a labelled object is a leftover to remove: made by a process of
/// this host and pid namespace that is gone, or older than `STALE_AFTER`.
/// Anything else (another host, another namespace, unreadable labels) is
/// left alone: its run may still be going.
pub fn is_leftover(owner: &str, started: &str, me: &Owner, now: u64, alive: impl Fn(u32) -> bool) -> bool {
    if started.parse::<u64>().is_ok_and(|t| now.saturating_sub(t) > STALE_AFTER.as_secs()) {
        return true;
    }
    match Owner::parse(owner) {
        Some(o) => {
            o.host == me.host && o.pid_ns == me.pid_ns && !o.pid_ns.is_empty() && o.pid != me.pid && !alive(o.pid)
        }
        None => false,
    }
}

fn pid_alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

fn now_unix() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

pub struct Session {
    id: String,
    labels: Vec<(String, String)>,
    containers: Mutex<Vec<String>>,
    networks: Mutex<Vec<String>>,
    /// Images committed by `run_and_commit`.
    images: Mutex<Vec<String>>,
    counter: AtomicUsize,
}

impl Session {
    pub fn new(purpose: &str) -> Session {
        static LEFTOVERS: Once = Once::new();
        LEFTOVERS.call_once(remove_leftovers);
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        let id = format!("xtask-{purpose}-{}-{nanos:08x}", std::process::id());
        let labels = vec![
            (RUN_LABEL.to_string(), id.clone()),
            (OWNER_LABEL.to_string(), Owner::current().label()),
            (STARTED_LABEL.to_string(), now_unix().to_string()),
        ];
        Session {
            id,
            labels,
            containers: Mutex::default(),
            networks: Mutex::default(),
            images: Mutex::default(),
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

    fn label_args(&self) -> Vec<String> {
        self.labels.iter().flat_map(|(k, v)| ["--label".to_string(), format!("{k}={v}")]).collect()
    }

    /// `docker create`: a container that doesn't run, for reading its files
    /// and configuration. Returns its name.
    pub fn create(&self, spec: &Spec, hint: &str) -> Result<String> {
        let name = self.track(hint);
        let out = self.command(&["create"], spec, &name).probe().output()?;
        if !out.status.success() {
            bail!(
                "{}",
                explain_docker_error(&spec.image, spec.platform.as_ref(), &String::from_utf8_lossy(&out.stderr))
            );
        }
        Ok(name)
    }

    fn track(&self, hint: &str) -> String {
        let name = self.next_name(hint);
        self.containers.lock().unwrap().push(name.clone());
        name
    }

    /// Runs a container to its end, or stops it after `timeout`; either way
    /// it is removed before this returns.
    pub fn run(&self, spec: &Spec, hint: &str, timeout: Duration) -> Result<Finished> {
        let name = self.track(hint);
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
    /// exit codes don't matter). Returns the image id; it carries the
    /// session's labels and is removed with the session.
    pub fn run_and_commit(&self, spec: &Spec, hint: &str, timeout: Duration) -> Result<String> {
        let name = self.track(hint);
        let out = self.command(&["run"], spec, &name).probe().output_timeout(timeout)?;
        let result = match out {
            None => Err(anyhow::anyhow!("timed out after {}s", timeout.as_secs())),
            Some(out) if out.status.code() == Some(125) => Err(anyhow::anyhow!(
                "{}",
                explain_docker_error(&spec.image, spec.platform.as_ref(), &String::from_utf8_lossy(&out.stderr))
            )),
            Some(_) => {
                let changes = self.labels.iter().flat_map(|(k, v)| ["--change".to_string(), format!("LABEL {k}={v}")]);
                docker::docker()
                    .args(["commit"])
                    .args(changes)
                    .arg(&name)
                    .probe()
                    .read()
                    .context("committing the setup container")
            }
        };
        self.remove(&name);
        let image = result?;
        self.images.lock().unwrap().push(image.clone());
        Ok(image)
    }

    /// Starts a container in the background; returns its name.
    pub fn start(&self, spec: &Spec, hint: &str) -> Result<String> {
        let name = self.track(hint);
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
            .args(self.label_args())
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
        let mut cmd = docker::docker().args(verb).args(["--name", name]).args(self.label_args());
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
        for cap in &spec.cap_add {
            cmd = cmd.args(["--cap-add", cap]);
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

/// Removes the containers, networks and images of dead or stale sessions.
fn remove_leftovers() {
    let me = Owner::current();
    let now = now_unix();
    let leftover = |line: &str| -> Option<String> {
        let mut fields = line.split('\t');
        let (id, owner, started) = (fields.next()?, fields.next().unwrap_or(""), fields.next().unwrap_or(""));
        is_leftover(owner, started, &me, now, pid_alive).then(|| id.to_string())
    };
    let filter = format!("label={RUN_LABEL}");
    let labels = format!("{{{{.Label \"{OWNER_LABEL}\"}}}}\t{{{{.Label \"{STARTED_LABEL}\"}}}}");
    let list = |args: &[&str], format: String| -> Vec<String> {
        docker::docker()
            .args(args)
            .args(["--filter", &filter, "--format", &format])
            .probe()
            .read()
            .map(|out| out.lines().filter_map(leftover).collect())
            .unwrap_or_default()
    };
    let containers = list(&["ps", "--all"], format!("{{{{.ID}}}}\t{labels}"));
    if !containers.is_empty() {
        let _ = docker::docker().args(["rm", "--force", "--volumes"]).args(&containers).probe().output();
    }
    let networks = list(&["network", "ls"], format!("{{{{.ID}}}}\t{labels}"));
    if !networks.is_empty() {
        let _ = docker::docker().args(["network", "rm"]).args(&networks).probe().output();
    }
    // `docker image ls` can't print labels: inspect what carries ours.
    let ids = docker::docker()
        .args(["image", "ls", "--quiet", "--no-trunc", "--filter", &filter])
        .probe()
        .read()
        .unwrap_or_default();
    let ids: Vec<&str> = ids.lines().collect();
    if !ids.is_empty() {
        let format = format!(
            "{{{{.Id}}}}\t{{{{index .Config.Labels \"{OWNER_LABEL}\"}}}}\t{{{{index .Config.Labels \"{STARTED_LABEL}\"}}}}"
        );
        let images: Vec<String> = docker::docker()
            .args(["image", "inspect", "--format", &format])
            .args(&ids)
            .probe()
            .read()
            .map(|out| out.lines().filter_map(leftover).collect())
            .unwrap_or_default();
        if !images.is_empty() {
            let _ = docker::docker().args(["image", "rm", "--force"]).args(&images).probe().output();
        }
    }
}

/// docker's own failure (exit 125) as one line with the fix.
pub fn explain_docker_error(image: &str, platform: Option<&Platform>, stderr: &str) -> String {
    let last = super::process::last_lines(stderr, 1);
    let missing = stderr.contains("No such image")
        || stderr.contains("Unable to find image")
        || stderr.contains("failed to resolve");
    // Checks confirm the image exists before they run it: a platform that
    // can't be found is a variant that was not built.
    if let (Some(p), true) = (platform, missing || stderr.contains("does not match the specified platform")) {
        return format!(
            "{image} has no {p} variant in the local engine: build it for {p} (cargo xtask image build NAME --platform {p})"
        );
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

    fn session() -> Session {
        Session {
            id: "xtask-t".into(),
            labels: vec![(RUN_LABEL.into(), "xtask-t".into())],
            containers: Mutex::default(),
            networks: Mutex::default(),
            images: Mutex::default(),
            counter: AtomicUsize::new(0),
        }
    }

    #[test]
    fn entrypoint_lists_become_entrypoint_and_leading_args() {
        let s = session();
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
        assert!(line.contains("--label io.ralph.xtask.run=xtask-t"), "{line}");
        let cleared = Spec { entrypoint: Some(vec![]), args: vec!["ls".into()], ..spec };
        assert!(s.command(&["run"], &cleared, "n").display().contains("--entrypoint= "));
        assert!(line.contains("--pull never"), "checks never pull: {line}");
        std::mem::forget(s); // nothing to clean up, and no engine needed
    }

    #[test]
    fn docker_failures_name_the_fix() {
        let arm = Platform::parse("linux/arm64").unwrap();
        let msg = explain_docker_error("x:1", Some(&arm), "Error response from daemon: No such image: x:1");
        assert!(msg.contains("has no linux/arm64 variant") && msg.contains("--platform linux/arm64"), "{msg}");
        assert!(explain_docker_error("x:1", None, "Error response from daemon: No such image: x:1")
            .contains("not in the local engine"));
    }

    #[test]
    fn owners_round_trip_through_their_label() {
        let me = Owner { host: "ci-7".into(), pid_ns: "pid:[4026531836]".into(), pid: 42 };
        assert_eq!(me.label(), "ci-7/pid:[4026531836]/42");
        assert_eq!(Owner::parse(&me.label()), Some(me));
        assert_eq!(Owner::parse("garbage"), None);
        assert_eq!(Owner::current().pid, std::process::id());
    }

    #[test]
    fn only_dead_runs_of_this_namespace_and_stale_ones_are_leftovers() {
        let me = Owner { host: "h".into(), pid_ns: "pid:[1]".into(), pid: 10 };
        let now = 1_000_000;
        let fresh = (now - 60).to_string();
        let dead = |_: u32| false;
        let alive = |_: u32| true;
        // Before: any session label whose pid wasn't in our /proc was removed,
        // including a live run in another pid namespace or on another host.
        assert!(!is_leftover("h/pid:[2]/77", &fresh, &me, now, dead), "another pid namespace");
        assert!(!is_leftover("other/pid:[1]/77", &fresh, &me, now, dead), "another host");
        assert!(is_leftover("h/pid:[1]/77", &fresh, &me, now, dead), "a dead run of ours");
        assert!(!is_leftover("h/pid:[1]/77", &fresh, &me, now, alive), "a live run of ours");
        assert!(!is_leftover("h/pid:[1]/10", &fresh, &me, now, dead), "this very process");
        assert!(!is_leftover("", "", &me, now, dead), "unlabelled");
        let stale = (now - STALE_AFTER.as_secs() - 1).to_string();
        assert!(is_leftover("other/pid:[9]/77", &stale, &me, now, alive), "older than STALE_AFTER");
    }
}
