//! The read-only check (part of `image smoke` for images that declare
//! `[image.readonly]`): the image runs as its own non-root user with a
//! read-only root filesystem, only its tmpfs writable, every capability
//! dropped and no-new-privileges. It must start, answer its health check
//! within a bounded time, stay up, and log no "Read-only file system". An
//! image that starts as root to drop privileges (`privileged_start`) gets
//! the capabilities it declares back, and once up no process but its init
//! may run as another uid than the one it drops to (`docker top`).

use std::time::{Duration, Instant};

use anyhow::Result;

use super::{CheckKind, CheckResult};
use crate::engine::container::{self, Session};
use crate::engine::image::BuiltImage;
use crate::engine::{docker, http, process};
use crate::model::catalog::{Platform, ReadOnlyCheck};

/// What a read-only failure looks like in a log.
const READ_ONLY_ERROR: &str = "Read-only file system";

/// How many times `ready_seconds` a platform emulated under QEMU gets to
/// answer its health check. The bound is the image's on its own
/// architecture; emulation is about 5 times slower on an idle machine and
/// 10 times or more on a busy one (CI's arm64 command checks under load:
/// 1.5 s idle, up to 15 s).
pub const EMULATION_FACTOR: u64 = 5;

/// How long the image on `platform` has to answer its health check.
pub fn ready_within(spec: &ReadOnlyCheck, platform: &Platform) -> Duration {
    let factor = if platform.is_emulated() { EMULATION_FACTOR } else { 1 };
    Duration::from_secs(spec.ready_seconds * factor)
}

/// The database a read-only check runs beside: an image reference, and the
/// platform it runs on (`None`: the checked image's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Database {
    pub reference: String,
    pub platform: Option<Platform>,
}

/// The read-only check of `built` on one platform, beside `database` when
/// the check declares one. Whatever goes wrong is the check's failure, with
/// what it saw.
pub fn run(
    session: &Session,
    built: &BuiltImage<'_>,
    platform: &Platform,
    spec: &ReadOnlyCheck,
    database: Option<&Database>,
) -> CheckResult {
    let started = Instant::now();
    let mut actual = String::new();
    let errors = match run_container(session, built.runnable(platform), platform, spec, database, &mut actual) {
        Ok(()) => vec![],
        Err(e) => vec![format!("{e:#}")],
    };
    let result = CheckResult {
        kind: CheckKind::ReadOnly,
        name: "read-only root filesystem".into(),
        passed: errors.is_empty(),
        expected: describe(spec, platform, database),
        actual,
        errors,
        seconds: started.elapsed().as_secs_f64(),
        stdout: String::new(),
        stderr: String::new(),
    };
    result.print_progress();
    result
}

fn describe(spec: &ReadOnlyCheck, platform: &Platform, database: Option<&Database>) -> String {
    let health = match (&spec.health.exec, spec.health.port, &spec.health.path) {
        (Some(cmd), _, _) => format!("`{}` exits 0", cmd.join(" ")),
        (None, Some(port), Some(path)) => format!("GET :{port}{path} answers {}", spec.health.status),
        _ => "healthy".into(),
    };
    let user = match &spec.privileged_start {
        Some(p) => format!("starts as root with --cap-add {} and drops to uid {}", p.cap_add.join(","), p.drops_to),
        None => "runs as non-root".into(),
    };
    let beside = match database {
        Some(db) => format!("; beside {} on {}", db.reference, db.platform.as_ref().unwrap_or(platform)),
        None => String::new(),
    };
    format!(
        "{user} with --read-only --tmpfs {} --cap-drop ALL no-new-privileges; {health} within {}s{}; still up {}s later; no \"{READ_ONLY_ERROR}\" logged{beside}",
        spec.tmpfs.join(","),
        ready_within(spec, platform).as_secs(),
        if platform.is_emulated() { " (emulated)" } else { "" },
        spec.stay_up_seconds
    )
}

fn run_container(
    session: &Session,
    reference: &str,
    platform: &Platform,
    spec: &ReadOnlyCheck,
    database: Option<&Database>,
    actual: &mut String,
) -> Result<()> {
    let ready = ready_within(spec, platform);
    let mut env: Vec<(String, String)> = spec.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let mut network = None;
    let mut database_container = None;
    if let Some(db) = database {
        let net = session.network()?;
        // Where it runs, its own bound: emulated, the emulated one (CI's
        // arm64 check under load: a PostgreSQL that had printed nothing
        // after 60 s).
        let db_platform = db.platform.as_ref().unwrap_or(platform);
        let db_ready = ready_within(spec, db_platform);
        let (name, url) = start_database(session, &db.reference, db_platform, &net, db_ready)?;
        env.push(("RALPH_DB_URL".into(), url));
        network = Some(net);
        database_container = Some(name);
    }
    let port = spec.health.port;
    let run_spec = container::Spec {
        image: reference.to_string(),
        platform: Some(platform.clone()),
        args: spec.args.clone().unwrap_or_default(),
        env,
        network,
        read_only: true,
        tmpfs: spec.tmpfs.clone(),
        unprivileged: true,
        cap_add: spec.privileged_start.as_ref().map(|p| p.cap_add.clone()).unwrap_or_default(),
        publish: port.into_iter().collect(),
        ..Default::default()
    };
    let name = session.start(&run_spec, "readonly")?;
    let result = watch(&name, spec, ready, actual);
    session.remove(&name);
    if let Some(db) = database_container {
        session.remove(&db);
    }
    result
}

/// Health within `ready`, then still up and healthy after `stay_up_seconds`,
/// and a clean log.
fn watch(name: &str, spec: &ReadOnlyCheck, ready: Duration, actual: &mut String) -> Result<()> {
    let user = docker::docker().args(["container", "inspect", "--format", "{{.Config.User}}", name]).probe().read()?;
    if is_root(&user) && spec.privileged_start.is_none() {
        *actual = format!("runs as `{}`", if user.is_empty() { "root (no USER)" } else { &user });
        anyhow::bail!("the image runs as root by default: set USER to a non-root user (for example USER 1000:1000) in its Dockerfile, or declare [image.readonly.privileged_start] if it drops privileges itself");
    }
    let started = Instant::now();
    let mut last;
    loop {
        let (running, code) = container::state(name)?;
        if !running {
            *actual = format!("exited with code {code} after {:.1}s", started.elapsed().as_secs_f64());
            anyhow::bail!("it exited with code {code} instead of staying up: {}", log_tail(name));
        }
        match probe(name, spec) {
            Ok(()) => break,
            Err(why) => last = why,
        }
        if started.elapsed() >= ready {
            *actual = format!("not healthy after {}s: {last}", ready.as_secs());
            anyhow::bail!("no healthy answer within {}s ({last}): {}", ready.as_secs(), log_tail(name));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let healthy_after = started.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_secs(spec.stay_up_seconds));
    let (running, code) = container::state(name)?;
    *actual = format!("healthy after {healthy_after:.1}s");
    if !running {
        *actual += &format!(", then exited with code {code}");
        anyhow::bail!("it was healthy, then exited with code {code}: {}", log_tail(name));
    }
    if let Some(start) = spec.privileged_start.as_ref().filter(|_| is_root(&user)) {
        let init = docker::docker().args(["inspect", "--format", "{{.State.Pid}}", name]).probe().read()?;
        let top = docker::docker().args(["top", name, "-eo", "pid,uid,args"]).probe().read()?;
        let (dropped, not) = processes_dropped(&top, init.trim(), start.drops_to);
        if dropped == 0 {
            *actual += &format!(", no process runs as uid {}", start.drops_to);
            anyhow::bail!(
                "it started as root and no process runs as uid {} once it is up: drop privileges in the entrypoint (only the init may stay root)",
                start.drops_to
            );
        }
        if !not.is_empty() {
            *actual += &format!(", not running as uid {}: {}", start.drops_to, not.join("; "));
            anyhow::bail!(
                "it started as root and these still run as another uid than {}: {}: drop privileges in the entrypoint (only the init may stay root)",
                start.drops_to,
                not.join("; ")
            );
        }
        *actual += &format!(", dropped to uid {} ({dropped} process(es))", start.drops_to);
    }
    if let Err(why) = probe(name, spec) {
        *actual += &format!(", then unhealthy: {why}");
        anyhow::bail!("it was healthy, then not ({why})");
    }
    *actual += &format!(", up {}s later", spec.stay_up_seconds);
    let log = container::logs(name);
    if let Some(line) = log.lines().find(|l| l.contains(READ_ONLY_ERROR)) {
        *actual += &format!(", logged `{}`", line.trim());
        anyhow::bail!(
            "it tried to write outside its tmpfs: `{}`: make that path a tmpfs or stop writing it",
            line.trim()
        );
    }
    Ok(())
}

/// `docker top … -eo pid,uid,args` output: how many processes run as
/// `uid`, and those other than the init (host pid `init`, which may stay
/// root: tini) that run as another (`PID uid UID: ARGS`).
fn processes_dropped(top: &str, init: &str, uid: u32) -> (usize, Vec<String>) {
    let mut dropped = 0;
    let mut not = Vec::new();
    for line in top.lines() {
        let mut fields = line.split_whitespace();
        let (Some(pid), Some(owner)) = (fields.next(), fields.next()) else { continue };
        let Ok(owner) = owner.parse::<u32>() else { continue }; // the header
        if owner == uid {
            dropped += 1;
        } else if pid != init {
            not.push(format!("{pid} uid {owner}: {}", fields.collect::<Vec<_>>().join(" ")));
        }
    }
    (dropped, not)
}

fn is_root(user: &str) -> bool {
    let name = user.split(':').next().unwrap_or("");
    name.is_empty() || name == "root" || name == "0"
}

/// One health probe: `Err` says what was wrong.
fn probe(name: &str, spec: &ReadOnlyCheck) -> Result<(), String> {
    if let Some(cmd) = &spec.health.exec {
        let out = docker::docker().args(["exec", name]).args(cmd).probe().output().map_err(|e| e.to_string())?;
        return if out.status.success() {
            Ok(())
        } else {
            Err(format!("`{}` exited {}", cmd.join(" "), out.status.code().unwrap_or(-1)))
        };
    }
    let (Some(port), Some(path)) = (spec.health.port, &spec.health.path) else {
        return Err("no health check declared".into());
    };
    let host_port = container::host_port(name, port).map_err(|e| e.to_string())?;
    match http::get_status(([127, 0, 0, 1], host_port).into(), "127.0.0.1", path) {
        Ok(code) if code == spec.health.status => Ok(()),
        Ok(code) => Err(format!("GET {path} answered {code}")),
        Err(e) => Err(format!("GET {path}: {e}")),
    }
}

/// A throwaway PostgreSQL on `platform` on `network` as `db`; returns its
/// container and the URL the image reaches it by. The password is per run.
fn start_database(
    session: &Session,
    reference: &str,
    platform: &Platform,
    network: &str,
    ready: Duration,
) -> Result<(String, String)> {
    let password = format!(
        "ro{:x}",
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos())
    );
    let spec = container::Spec {
        image: reference.to_string(),
        platform: Some(platform.clone()),
        env: vec![
            ("POSTGRES_USER".into(), "ralph".into()),
            ("POSTGRES_PASSWORD".into(), password.clone()),
            ("POSTGRES_DB".into(), "ralph".into()),
        ],
        network: Some(network.to_string()),
        network_alias: Some("db".into()),
        allow_pull: true,
        ..Default::default()
    };
    let name = session.start(&spec, "database")?;
    let started = Instant::now();
    loop {
        let out = docker::docker()
            .args(["exec", &name, "pg_isready", "-q", "-h", "127.0.0.1", "-U", "ralph", "-d", "ralph"])
            .probe()
            .output()?;
        if out.status.success() {
            break;
        }
        let (running, code) = container::state(&name)?;
        if !running || started.elapsed() >= ready {
            anyhow::bail!(
                "the database {reference} did not become ready (running: {running}, exit code {code}): {}",
                log_tail(&name)
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    Ok((name, format!("postgresql://ralph:{password}@db:5432/ralph")))
}

fn log_tail(name: &str) -> String {
    let log = container::logs(name);
    let tail = process::last_lines(&log, 3);
    if tail.is_empty() {
        "its log is empty".into()
    } else {
        format!("its log ends: {tail}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_emulated_platform_gets_five_times_the_ready_time() {
        let spec: ReadOnlyCheck =
            toml::from_str("health = { port = 8080, path = \"/healthz\" }\nready_seconds = 60\n").unwrap();
        let native = Platform::parse(&format!("linux/{}", Platform::native_arch())).unwrap();
        let other = Platform::parse(if native.arch == "amd64" { "linux/arm64" } else { "linux/amd64" }).unwrap();
        assert!(!native.is_emulated() && other.is_emulated());
        assert_eq!(ready_within(&spec, &native), Duration::from_secs(60));
        assert_eq!(ready_within(&spec, &other), Duration::from_secs(300));
        assert!(
            describe(&spec, &native, None).contains("answers 200 within 60s; still up 3s later"),
            "{}",
            describe(&spec, &native, None)
        );
        assert!(describe(&spec, &other, None).contains("answers 200 within 300s (emulated); still up"));
        // The database says where it runs: its own platform, else the image's.
        let db = |platform: Option<Platform>| Database { reference: "pg:1".into(), platform };
        assert!(
            describe(&spec, &other, Some(&db(Some(native.clone())))).ends_with(&format!("; beside pg:1 on {native}"))
        );
        assert!(describe(&spec, &other, Some(&db(None))).ends_with(&format!("; beside pg:1 on {other}")));
    }

    #[test]
    fn a_privileged_start_counts_every_process_but_the_init() {
        let top = "PID UID COMMAND\n100 0 tini -- /opt/ralph/docker/entrypoint.sh build\n\
                   120 1000 bash /opt/ralph/ralph.sh build\n130 1000 sleep 1.5\n";
        assert_eq!(processes_dropped(top, "100", 1000), (2, vec![]));
        // The entrypoint still root: named, with its command line.
        let top = "PID UID COMMAND\n100 0 tini -- x\n120 0 bash /opt/ralph/docker/entrypoint.sh build\n";
        assert_eq!(
            processes_dropped(top, "100", 1000),
            (0, vec!["120 uid 0: bash /opt/ralph/docker/entrypoint.sh build".to_string()])
        );
        // Nothing but the init, as root: nothing dropped.
        assert_eq!(processes_dropped("PID UID COMMAND\n100 0 tini\n", "100", 1000), (0, vec![]));
        // The init itself dropped (a service that drops after binding).
        assert_eq!(processes_dropped("PID UID COMMAND\n100 1000 httpd -u app\n", "100", 1000), (1, vec![]));
    }

    #[test]
    fn root_is_the_empty_user_root_or_uid_0() {
        for u in ["", "root", "0", "0:0", "root:ralph"] {
            assert!(is_root(u), "{u}");
        }
        for u in ["1000", "1000:1000", "ralph", "postgres:postgres"] {
            assert!(!is_root(u), "{u}");
        }
    }
}
