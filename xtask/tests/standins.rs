//! The worker images' contract, tested on the stand-ins (images.toml, kind
//! `standin`) against the real engine: lint, both architectures with the
//! real Claude Code binary, the hardened compose stack running a task end to
//! end and releasing it on `docker stop`, the Python runtime's status server
//! on a read-only root filesystem, fetch-claude's refusal of other
//! architectures and its two download paths (busybox wget, curl; against
//! a local stand-in for the npm registry, with a small tarball), the
//! Python smoke spec where Python imports from the venv's lib64 (Amazon
//! Linux), and what the multi-stage build saves. No mocks: every image is
//! built by the xtask binary and every container really runs.
//!
//! Each test builds what it needs (`image build … --report`: mostly cache
//! hits), tagged with a branch name of its own, and removes what it started
//! (containers, networks, volumes, its tags) on drop, also when it fails.
//! Run with `cargo test --test standins -- --test-threads=1`.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{http_get, repo_root, run_cmd, run_ok, temp_dir, unique_name, wait_for, CatalogBuild, Cleanup};

/// The Claude Code version the images must carry (docker/claude-code.pins).
fn pinned_claude_version() -> String {
    let pins = std::fs::read_to_string(repo_root().join("docker/claude-code.pins")).unwrap();
    pins.lines()
        .find_map(|l| l.trim().strip_prefix("CLAUDE_VERSION="))
        .expect("docker/claude-code.pins sets CLAUDE_VERSION")
        .trim()
        .to_string()
}

fn docker(args: &[&str]) -> support::Output {
    run_cmd(Command::new("docker").args(args))
}

// ---------------------------------------------------------------------------

#[test]
fn every_dockerfile_passes_hadolint() {
    let _time = support::Timer::start("every_dockerfile_passes_hadolint");
    let root = repo_root();
    let mut files = vec![root.join("Dockerfile.worker"), root.join("Dockerfile.worker-amazonlinux")];
    let mut fixtures: Vec<PathBuf> = std::fs::read_dir(root.join("test/images"))
        .unwrap()
        .map(|e| e.unwrap().path().join("Dockerfile"))
        .filter(|p| p.is_file())
        .collect();
    fixtures.sort();
    assert!(fixtures.len() >= 4, "test/images/*/Dockerfile: {fixtures:?}");
    files.extend(fixtures);

    let out = run_cmd(
        Command::new("hadolint")
            .current_dir(&root)
            .arg("--config")
            .arg(root.join(".hadolint.yaml"))
            .args(["--format", "json"])
            .args(&files),
    );
    let findings: serde_json::Value = serde_json::from_str(out.stdout.trim())
        .unwrap_or_else(|e| panic!("hadolint's output is not JSON ({e}): {}\n{}", out.stdout, out.stderr));
    let findings = findings.as_array().expect("hadolint --format json prints an array");
    let lines: Vec<String> = findings
        .iter()
        .map(|f| {
            format!(
                "{}:{} {} [{}] {}",
                f["file"].as_str().unwrap_or("?"),
                f["line"],
                f["code"].as_str().unwrap_or("?"),
                f["level"].as_str().unwrap_or("?"),
                f["message"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert!(
        lines.is_empty(),
        "hadolint found {} problem(s) in {} Dockerfiles:\n{}",
        lines.len(),
        files.len(),
        lines.join("\n")
    );
    assert!(out.status.success(), "hadolint failed without findings: {}", out.stderr);
    eprintln!("hadolint: no findings in {} Dockerfiles", files.len());
}

// ---------------------------------------------------------------------------

/// What the amd64-only tests run, built once for all of them
/// (`support::shared_build`).
const AMD64_STANDINS: [&str; 4] = ["worker-standin", "python-standin", "python-standin-single", "postgres-standin"];

#[test]
fn standins_build_for_both_architectures() {
    let _time = support::Timer::start("standins_build_for_both_architectures");
    let _engine = support::engine();
    // Not postgres-standin: it stands in for the official (multi-arch)
    // PostgreSQL image, and the read-only checks run it on this machine's
    // platform, also beside an emulated image: its arm64 build (PostgreSQL
    // installed under QEMU, minutes) would prove nothing of ours.
    let images = ["worker-standin", "python-standin"];
    let built = CatalogBuild::new(&images, &["--platform", "linux/amd64,linux/arm64"]);
    let version = pinned_claude_version();

    for image in images {
        let reference = built.reference(image);
        let platforms: Vec<&str> = built.image(image)["platforms"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["platform"].as_str().unwrap())
            .collect();
        assert_eq!(platforms, ["linux/amd64", "linux/arm64"], "{image}");
        for (platform, machine) in [("linux/arm64", "aarch64"), ("linux/amd64", "x86_64")] {
            let out =
                run_ok("docker", &["run", "--rm", "--platform", platform, "--entrypoint", "uname", &reference, "-m"]);
            assert_eq!(out.trim(), machine, "{image} on {platform}");
        }
    }

    // The worker stand-in carries the REAL Claude Code musl binary, run by
    // Debian's musl loader (arm64 under emulation).
    let worker = built.reference("worker-standin");
    for (platform, loader) in
        [("linux/arm64", "/lib/ld-musl-aarch64.so.1"), ("linux/amd64", "/lib/ld-musl-x86_64.so.1")]
    {
        let started = Instant::now();
        let out =
            run_ok("docker", &["run", "--rm", "--platform", platform, "--entrypoint", "claude", &worker, "--version"]);
        assert_eq!(out.trim(), format!("{version} (Claude Code)"), "{platform}");
        eprintln!("claude --version on {platform}: {:.1}s", started.elapsed().as_secs_f64());
        // The ELF interpreter (PT_INTERP sits in the first page) is musl's.
        let script = r#"bin=$(readlink -f "$(command -v claude)"); echo "$bin"; head -c 4096 "$bin" | tr '\0' '\n' | grep -a '^/lib/ld-'"#;
        let out =
            run_ok("docker", &["run", "--rm", "--platform", platform, "--entrypoint", "bash", &worker, "-c", script]);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines, [format!("/usr/local/share/claude/{version}/claude").as_str(), loader], "{platform}");
        // The Python runtime's glibc build, likewise.
        let python = built.reference("python-standin");
        let out =
            run_ok("docker", &["run", "--rm", "--platform", platform, "--entrypoint", "claude", &python, "--version"]);
        assert_eq!(out.trim(), format!("{version} (Claude Code)"), "python-standin on {platform}");
        // The base carries CA certificates, as the products' bases do: the
        // stand-ins' builds don't configure them (under QEMU, 80 CPU-seconds
        // each; scripts/setup-host.sh does it once per machine).
        let base = built.reference("debian-base");
        let query = ["dpkg-query", "-W", "-f", "${Status}", "ca-certificates"];
        let run = ["run", "--rm", "--platform", platform, "--entrypoint", query[0], base.as_str()];
        let out = run_ok("docker", &[&run[..], &query[1..]].concat());
        assert_eq!(out, "install ok installed", "ca-certificates in debian-base on {platform}");
    }
}

// ---------------------------------------------------------------------------

/// Every variable docker/compose.yaml reads (and compose's own), so the
/// caller's environment can't leak into a test.
const COMPOSE_VARS: &[&str] = &[
    "RALPH_POSTGRES_IMAGE",
    "RALPH_POSTGRES_UID",
    "RALPH_DB_PASSWORD",
    "RALPH_WORKER_IMAGE",
    "RALPH_REPO_URL",
    "ANTHROPIC_API_KEY",
    "CLAUDE_CODE_OAUTH_TOKEN",
    "RALPH_AGENT_DB_URL",
    "RALPH_AGENT_DB_PASSWORD",
    "RALPH_MODEL",
    "RALPH_AGENT_CMD",
    "RALPH_LEASE_SECONDS",
    "RALPH_MAX_ATTEMPTS",
    "RALPH_WORKERS",
    "COMPOSE_PROJECT_NAME",
    "COMPOSE_FILE",
    "COMPOSE_PROFILES",
];

fn compose_file() -> PathBuf {
    repo_root().join("docker/compose.yaml")
}

/// `docker compose -p PROJECT -f FILE… ARGS…` with exactly ENV set.
fn compose_cmd(project: &str, files: &[&Path], env: &[(&str, &str)], args: &[&str]) -> Command {
    let mut cmd = Command::new("docker");
    cmd.arg("compose").args(["-p", project]);
    for f in files {
        cmd.arg("-f").arg(f);
    }
    cmd.args(args);
    for v in COMPOSE_VARS {
        cmd.env_remove(v);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

#[test]
fn compose_file_is_valid_and_hardened() {
    let _time = support::Timer::start("compose_file_is_valid_and_hardened");
    let file = compose_file();
    let env = [("RALPH_DB_PASSWORD", "s3cret"), ("RALPH_REPO_URL", "https://example.invalid/repo.git")];
    let out = run_cmd(&mut compose_cmd("ralph-config-test", &[&file], &env, &["config", "--format", "json"]));
    assert!(out.status.success(), "docker compose config failed: {}", out.stderr);
    let config: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let services = config["services"].as_object().unwrap();
    let mut names: Vec<&str> = services.keys().map(|k| k.as_str()).collect();
    names.sort();
    assert_eq!(names, ["db", "worker"]);

    for (name, s) in services {
        assert_eq!(s["read_only"], true, "{name}: read_only");
        let caps: Vec<&str> =
            s["cap_drop"].as_array().map(|a| a.iter().filter_map(|c| c.as_str()).collect()).unwrap_or_default();
        assert!(caps.contains(&"ALL"), "{name}: cap_drop ALL, got {caps:?}");
        let opts: Vec<&str> =
            s["security_opt"].as_array().map(|a| a.iter().filter_map(|c| c.as_str()).collect()).unwrap_or_default();
        assert!(
            opts.iter().any(|o| *o == "no-new-privileges" || *o == "no-new-privileges:true"),
            "{name}: no-new-privileges, got {opts:?}"
        );
        let cpus = s["cpus"].as_f64().or_else(|| s["cpus"].as_str().and_then(|c| c.parse().ok()));
        assert!(cpus.is_some_and(|c| c > 0.0), "{name}: a cpu limit, got {}", s["cpus"]);
        let mem: Option<u64> = s["mem_limit"].as_u64().or_else(|| s["mem_limit"].as_str().and_then(|m| m.parse().ok()));
        assert!(mem.is_some_and(|m| m > 0), "{name}: a memory limit, got {}", s["mem_limit"]);
        assert!(s["pids_limit"].as_i64().is_some_and(|p| p > 0), "{name}: a pids limit, got {}", s["pids_limit"]);
        let test = s["healthcheck"]["test"]
            .as_array()
            .unwrap_or_else(|| panic!("{name}: a healthcheck, got {}", s["healthcheck"]));
        assert!(
            !test.is_empty() && test[0] != "NONE" && s["healthcheck"]["disable"] != true,
            "{name}: healthcheck {test:?}"
        );
    }

    let worker = &services["worker"];
    let tmpfs: Vec<&str> = worker["tmpfs"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
    let paths: Vec<&str> = tmpfs.iter().map(|t| t.split(':').next().unwrap()).collect();
    assert_eq!(paths, ["/workspace", "/home/ralph", "/tmp"], "worker tmpfs: {tmpfs:?}");
    for t in &tmpfs[..2] {
        assert!(t.contains("uid=1000"), "{t}: owned by the worker's uid 1000");
    }
    assert!(tmpfs[0].contains("gid=1001") && tmpfs[0].contains("mode=2775"), "{}: open to the agent's group", tmpfs[0]);
    // Privilege separation: root only to drop to the worker, and back only
    // the three capabilities it keeps.
    assert_eq!(worker["user"], "0:0");
    let mut added: Vec<&str> = worker["cap_add"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
    added.sort();
    assert_eq!(added, ["KILL", "SETGID", "SETUID"]);
    assert!(services["db"]["cap_add"].is_null(), "the database gets no capability back");
    assert_eq!(worker["depends_on"]["db"]["condition"], "service_healthy");
    // The password apart from the URL: no command line in the worker shows it.
    assert_eq!(worker["environment"]["RALPH_DB_URL"], "postgresql://ralph@db:5432/ralph");
    assert_eq!(worker["environment"]["PGPASSWORD"], "s3cret");

    let db = &services["db"];
    let volumes = db["volumes"].as_array().unwrap();
    assert!(
        volumes
            .iter()
            .any(|v| v["type"] == "volume" && v["source"] == "db-data" && v["target"] == "/var/lib/postgresql/data"),
        "db: the named volume db-data on PGDATA, got {volumes:?}"
    );
    assert!(config["volumes"]["db-data"].is_object(), "db-data is declared: {}", config["volumes"]);

    // The password is required: the message names the variable.
    let out = run_cmd(&mut compose_cmd(
        "ralph-config-test",
        &[&file],
        &[("RALPH_REPO_URL", "/x")],
        &["config", "--format", "json"],
    ));
    assert!(!out.status.success(), "config without RALPH_DB_PASSWORD must fail:\n{}", out.stdout);
    assert!(out.stderr.contains("RALPH_DB_PASSWORD"), "the error names RALPH_DB_PASSWORD: {}", out.stderr);
}

// ---------------------------------------------------------------------------

/// A compose project that is taken down (`down -v`) on drop.
struct Stack {
    project: String,
    files: Vec<PathBuf>,
    env: Vec<(String, String)>,
}

impl Stack {
    fn cmd(&self, args: &[&str]) -> Command {
        let files: Vec<&Path> = self.files.iter().map(|f| f.as_path()).collect();
        let env: Vec<(&str, &str)> = self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        compose_cmd(&self.project, &files, &env, args)
    }

    fn run(&self, args: &[&str]) -> support::Output {
        run_cmd(&mut self.cmd(args))
    }

    fn logs(&self) -> String {
        let out = self.run(&["logs", "--no-color", "--tail", "60"]);
        format!("{}{}", out.stdout, out.stderr)
    }

    /// What of the project is left in the engine: containers, networks, volumes.
    fn leftovers(&self) -> Vec<String> {
        let label = format!("label=com.docker.compose.project={}", self.project);
        let mut left = Vec::new();
        for (kind, args) in [
            ("container", vec!["ps", "-a", "-q", "--filter", &label]),
            ("network", vec!["network", "ls", "-q", "--filter", &label]),
            ("volume", vec!["volume", "ls", "-q", "--filter", &label]),
        ] {
            left.extend(run_ok("docker", &args).lines().map(|l| format!("{kind} {l}")));
        }
        let volume = format!("{}_db-data", self.project);
        if docker(&["volume", "inspect", &volume]).status.success() {
            left.push(format!("volume {volume}"));
        }
        left
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = self.cmd(&["down", "-v", "--remove-orphans", "--timeout", "5"]).output();
    }
}

/// The repository's own `task` CLI, run on the host against DB_URL (the
/// password in PGPASSWORD, as the workers get it).
fn task(db: &Db, args: &[&str]) -> support::Output {
    run_cmd(
        Command::new(repo_root().join("task"))
            .args(args)
            .env("RALPH_DB_URL", &db.url)
            .env("PGPASSWORD", &db.password)
            .env_remove("RALPH_AGENT_ID")
            .env_remove("RALPH_LEASE_SECONDS"),
    )
}

fn task_json(db_url: &Db, id: &str) -> serde_json::Value {
    let out = task(db_url, &["--json", "show", id]);
    assert!(out.status.success(), "task show {id}: {}", out.stderr);
    serde_json::from_str(&out.stdout).unwrap()
}

fn git_in(repo: &Path, args: &[&str]) -> String {
    // The bare repository belongs to the container's uid 1000.
    let mut all = vec!["-c", "safe.directory=*", "-C", repo.to_str().unwrap()];
    all.extend_from_slice(args);
    run_ok("git", &all)
}

/// psql on the host: one value.
/// The stack's database as the host reaches it: the URL without the password.
struct Db {
    url: String,
    password: String,
}

fn sql_value(db: &Db, sql: &str, vars: &[(&str, &str)]) -> String {
    use std::io::Write;
    let mut cmd = Command::new("psql");
    cmd.args([db.url.as_str(), "-XAtq", "-v", "ON_ERROR_STOP=1"]).env("PGPASSWORD", &db.password);
    for (k, v) in vars {
        cmd.arg("-v").arg(format!("{k}={v}"));
    }
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(sql.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "psql: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn compose_stack_runs_a_task_end_to_end_and_docker_stop_releases_it() {
    let _time = support::Timer::start("compose_stack_runs_a_task_end_to_end_and_docker_stop_releases_it");
    let _engine = support::engine();
    // amd64 only: what this machine runs (the arm64 builds are tested above).
    let built = support::shared_build(&AMD64_STANDINS, &["--platform", "linux/amd64"]);
    let dir = temp_dir("ralph-stack");

    // The repository the worker changes: a bare repository with one commit
    // on main, owned by the container's uid 1000 so it can push.
    let bare = dir.path().join("repo.git");
    let src = dir.path().join("src");
    run_ok("git", &["init", "-q", "--bare", "-b", "main", bare.to_str().unwrap()]);
    run_ok("git", &["init", "-q", "-b", "main", src.to_str().unwrap()]);
    std::fs::write(src.join("README"), "the repository a ralph worker changes\n").unwrap();
    let s = src.to_str().unwrap();
    run_ok("git", &["-C", s, "add", "README"]);
    run_ok(
        "git",
        &["-C", s, "-c", "user.name=test", "-c", "user.email=test@localhost", "commit", "-q", "-m", "initial"],
    );
    run_ok("git", &["-C", s, "push", "-q", bare.to_str().unwrap(), "main"]);
    let initial = git_in(&bare, &["rev-parse", "refs/heads/main"]).trim().to_string();
    run_ok("chown", &["-R", "1000:1000", bare.to_str().unwrap()]);

    // Test-only override: the repository mounted, the stand-in agent, short
    // lease and idle times, the db published on loopback for the host's `task`.
    // The agent: tasks named slow-* sleep (until stopped); others write a file.
    let override_file = dir.path().join("compose.test.yaml");
    std::fs::write(
        &override_file,
        format!(
            r#"services:
  db:
    ports: ["127.0.0.1::5432"]
  worker:
    volumes:
      - type: bind
        source: {bare}
        target: /srv/repo.git
    environment:
      RALPH_REPO_URL: /srv/repo.git
      RALPH_AGENT_CMD: 'case $$RALPH_TASK_ID in slow-*) exec sleep 600 ;; esac; echo "changed by $$RALPH_TASK_ID" > agent.txt; {{ id -u; for p in 1 $$RALPH_WORKER_PID; do if cat /proc/$$p/environ >/dev/null 2>&1; then echo "read $$p"; else echo "refused $$p"; fi; done; ls /home/ralph/workspace.git >/dev/null 2>&1 && echo "read git" || echo "refused git"; }} > privsep.txt'
      RALPH_LEASE_SECONDS: "6"
      RALPH_IDLE_MIN_SECONDS: "1"
      RALPH_IDLE_MAX_SECONDS: "1"
"#,
            bare = bare.display()
        ),
    )
    .unwrap();

    let password = unique_name("pw");
    let stack = Stack {
        project: unique_name("ralph-e2e"),
        files: vec![compose_file(), override_file],
        env: vec![
            ("RALPH_DB_PASSWORD".into(), password.clone()),
            ("RALPH_REPO_URL".into(), "overridden-by-the-test".into()),
            ("RALPH_POSTGRES_IMAGE".into(), built.reference("postgres-standin")),
            ("RALPH_POSTGRES_UID".into(), "999".into()),
            ("RALPH_WORKER_IMAGE".into(), built.reference("worker-standin")),
            ("RALPH_WORKERS".into(), "1".into()),
        ],
    };

    // Up, both services healthy.
    let started = Instant::now();
    let up = stack.run(&["up", "-d", "--wait", "--wait-timeout", "180"]);
    assert!(up.status.success(), "compose up --wait failed:\n{}\n{}", up.stderr, stack.logs());
    eprintln!("compose up --wait: {:.1}s", started.elapsed().as_secs_f64());
    let container = |service: &str| {
        let ids = stack.run(&["ps", "-q", service]).stdout;
        let ids: Vec<&str> = ids.lines().collect();
        assert_eq!(ids.len(), 1, "one {service} container: {ids:?}");
        ids[0].to_string()
    };
    let (db_id, worker_id) = (container("db"), container("worker"));
    for id in [&db_id, &worker_id] {
        let health = run_ok("docker", &["inspect", "--format", "{{.State.Health.Status}}", id]);
        assert_eq!(health.trim(), "healthy", "{id}");
    }
    let port = stack.run(&["port", "db", "5432"]).stdout.trim().to_string();
    assert!(port.starts_with("127.0.0.1:"), "db published on loopback: {port:?}");
    let db_url = Db { url: format!("postgresql://ralph@{port}/ralph"), password };

    // A task added on the host is done by the worker, its commit pushed.
    let out = task(&db_url, &["add", "edit-1", "write agent.txt"]);
    assert!(out.status.success(), "task add: {}", out.stderr);
    let done = wait_for(Duration::from_secs(90), Duration::from_millis(500), || {
        let t = task_json(&db_url, "edit-1");
        (t["status"] == "done").then_some(t)
    })
    .unwrap_or_else(|| panic!("edit-1 never became done: {}\n{}", task_json(&db_url, "edit-1"), stack.logs()));
    let result = &done["result"];
    assert_eq!(result["branch"], "ralph/edit-1", "{result}");
    assert_eq!(result["changed"], true, "{result}");
    let commit = result["commit"].as_str().unwrap_or_else(|| panic!("no commit in {result}"));
    assert_eq!(git_in(&bare, &["rev-parse", "refs/heads/ralph/edit-1"]).trim(), commit);
    assert_eq!(git_in(&bare, &["show", &format!("{commit}:agent.txt")]), "changed by edit-1\n");
    // The agent ran as ralph-agent (1001): PID 1's and the worker's
    // environments (PGPASSWORD) and the git directory were out of its reach.
    let privsep = git_in(&bare, &["show", &format!("{commit}:privsep.txt")]);
    let lines: Vec<&str> = privsep.lines().collect();
    assert_eq!(lines.len(), 4, "{privsep}");
    assert_eq!(lines[0], "1001", "{privsep}");
    assert!(lines[1..].iter().all(|l| l.starts_with("refused ")), "{privsep}");
    assert_eq!(git_in(&bare, &["rev-parse", &format!("{commit}^")]).trim(), initial, "the branch starts at main");
    let agent = result["agent"].as_str().unwrap().to_string();

    // A slow task becomes active; docker stop releases it.
    let out = task(&db_url, &["add", "slow-1", "sleep until stopped"]);
    assert!(out.status.success(), "task add: {}", out.stderr);
    let active = wait_for(Duration::from_secs(60), Duration::from_millis(500), || {
        let t = task_json(&db_url, "slow-1");
        (t["status"] == "active").then_some(t)
    })
    .unwrap_or_else(|| panic!("slow-1 never became active: {}\n{}", task_json(&db_url, "slow-1"), stack.logs()));
    assert_eq!(active["assignee"], agent.as_str(), "the same worker holds it");
    // The agent itself is running (not just the claim).
    wait_for(Duration::from_secs(30), Duration::from_millis(300), || {
        run_ok("docker", &["top", &worker_id]).contains("sleep 600").then_some(())
    })
    .unwrap_or_else(|| panic!("the agent never started on slow-1:\n{}", stack.logs()));

    // The grace period: compose's stop_grace_period, on the container.
    let config: serde_json::Value = serde_json::from_str(&stack.run(&["config", "--format", "json"]).stdout).unwrap();
    let period = config["services"]["worker"]["stop_grace_period"].as_str().unwrap_or_default().to_string();
    let grace: u64 =
        period.strip_suffix('s').and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("stop_grace_period {period:?}"));
    let timeout = run_ok("docker", &["inspect", "--format", "{{.Config.StopTimeout}}", &worker_id]);
    assert_eq!(timeout.trim(), grace.to_string(), "the container's stop timeout is compose's stop_grace_period");
    run_ok("docker", &["stop", &worker_id]);
    // Exit 0: the worker handled SIGTERM and stopped itself (one killed at
    // the end of the grace period exits 137); no wall-clock bound needed.
    let state = run_ok("docker", &["inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", &worker_id]);
    assert_eq!(state.trim(), "exited 0", "{}", stack.logs());

    let released = task_json(&db_url, "slow-1");
    assert_eq!(released["status"], "open", "{released}");
    assert!(released["assignee"].is_null(), "{released}");
    assert_eq!(sql_value(&db_url, "SELECT status FROM agents WHERE id = :'id'", &[("id", &agent)]), "stopped");

    // Down: nothing of the project is left.
    let down = stack.run(&["down", "-v"]);
    assert!(down.status.success(), "compose down -v: {}", down.stderr);
    let left = stack.leftovers();
    assert!(left.is_empty(), "left after down -v: {left:?}");
}

// ---------------------------------------------------------------------------

/// `HOST:PORT` a container port is published on.
fn published(container: &str, port: &str) -> String {
    let out = run_ok("docker", &["port", container, port]);
    out.lines()
        .find(|l| l.starts_with("127.0.0.1:"))
        .unwrap_or_else(|| panic!("{container} {port} not on 127.0.0.1: {out}"))
        .to_string()
}

#[test]
fn python_runtime_serves_healthz_read_only_and_honestly() {
    let _time = support::Timer::start("python_runtime_serves_healthz_read_only_and_honestly");
    let _engine = support::engine();
    let built = support::shared_build(&AMD64_STANDINS, &["--platform", "linux/amd64"]);
    let image = built.reference("python-standin");
    let postgres = built.reference("postgres-standin");

    // It starts as root, only to drop to ralph (privilege separation):
    // run with the three capabilities that keeps, as compose runs it.
    let user = run_ok("docker", &["image", "inspect", "--format", "{{.Config.User}}", &image]);
    assert_eq!(user.trim(), "0:0", "image User: {user:?}");
    let healthcheck: serde_json::Value = serde_json::from_str(&run_ok(
        "docker",
        &["image", "inspect", "--format", "{{json .Config.Healthcheck.Test}}", &image],
    ))
    .unwrap();
    assert_eq!(healthcheck, serde_json::json!(["CMD", "python", "-m", "ralph_status.check"]));
    let check_cmd: Vec<&str> = healthcheck.as_array().unwrap()[1..].iter().map(|v| v.as_str().unwrap()).collect();

    let mut cleanup = Cleanup::new();
    let network = unique_name("ralph-py-net");
    run_ok("docker", &["network", "create", &network]);
    cleanup.on_drop("docker", &["network", "rm", &network]);
    let db = unique_name("ralph-py-db");
    cleanup.on_drop("docker", &["rm", "-f", "-v", &db]);
    run_ok(
        "docker",
        &[
            "run",
            "-d",
            "--name",
            &db,
            "--network",
            &network,
            "--network-alias",
            "db",
            "-e",
            "POSTGRES_USER=ralph",
            "-e",
            "POSTGRES_PASSWORD=pw",
            "-e",
            "POSTGRES_DB=ralph",
            &postgres,
        ],
    );

    let run_worker = |cleanup: &mut Cleanup, name: &str, db_url: &str| {
        cleanup.on_drop("docker", &["rm", "-f", "-v", name]);
        let db_env = format!("RALPH_DB_URL={db_url}");
        run_ok(
            "docker",
            &[
                "run",
                "-d",
                "--name",
                name,
                "--network",
                &network,
                "--read-only",
                "--tmpfs",
                "/tmp",
                "--cap-drop",
                "ALL",
                "--cap-add",
                "SETUID",
                "--cap-add",
                "SETGID",
                "--cap-add",
                "KILL",
                "--security-opt",
                "no-new-privileges",
                "-p",
                "127.0.0.1::8080",
                "-e",
                "RALPH_STATUS_ADDR=0.0.0.0:8080",
                "-e",
                &db_env,
                "-e",
                "RALPH_REPO_URL=/srv/no-repo.git",
                "-e",
                "RALPH_AGENT_CMD=true",
                &image,
            ],
        );
    };
    let logs = |name: &str| {
        let out = docker(&["logs", name]);
        out.stdout + &out.stderr
    };
    let exec_check = |name: &str| {
        let mut args = vec!["exec", name];
        args.extend(&check_cmd);
        docker(&args)
    };

    // (a) The database answers: /healthz 200 within a bounded time, /status
    // with the queue, on a read-only root filesystem.
    let good = unique_name("ralph-py-ok");
    run_worker(&mut cleanup, &good, "postgresql://ralph:pw@db:5432/ralph");
    // Every process but tini (and docker's own health check) dropped to
    // ralph, once the entrypoint has run its first lines (the drop is its
    // first step; a loaded machine may not have got there when `run -d` returns).
    let dropped = |top: &str| {
        let owners: Vec<&str> = top
            .lines()
            .skip(1)
            .filter(|l| !l.contains("tini") && !l.contains("ralph_status.check"))
            .filter_map(|l| l.split_whitespace().nth(1))
            .collect();
        !owners.is_empty() && owners.iter().all(|u| *u == "1000")
    };
    let top = || run_ok("docker", &["top", &good, "-eo", "pid,uid,args"]);
    wait_for(Duration::from_secs(20), Duration::from_millis(200), || Some(top()).filter(|t| dropped(t)))
        .unwrap_or_else(|| panic!("not all dropped to uid 1000 within 20 s:\n{}", top()));
    let write = docker(&["exec", &good, "touch", "/opt/ralph/probe"]);
    assert!(
        !write.status.success() && write.stderr.contains("Read-only file system"),
        "the root filesystem is read-only: {}",
        write.stderr
    );
    let addr = published(&good, "8080/tcp");
    let started = Instant::now();
    let body = wait_for(Duration::from_secs(60), Duration::from_millis(250), || match http_get(&addr, "/healthz") {
        Ok((200, body)) => Some(body),
        _ => None,
    })
    .unwrap_or_else(|| panic!("/healthz never answered 200: {:?}\n{}", http_get(&addr, "/healthz"), logs(&good)));
    eprintln!("/healthz 200 after {:.1}s", started.elapsed().as_secs_f64());
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["status"], "ok", "{health}");

    // A task in the queue (the worker may claim it, fail to clone the
    // missing repository and hand it back: open or active, never done).
    run_ok("docker", &["exec", &good, "task", "add", "queued-1", "counted by /status"]);
    let status = wait_for(Duration::from_secs(30), Duration::from_millis(250), || match http_get(&addr, "/status") {
        Ok((200, body)) => Some(serde_json::from_str::<serde_json::Value>(&body).unwrap()),
        _ => None,
    })
    .unwrap_or_else(|| panic!("/status never answered 200: {:?}\n{}", http_get(&addr, "/status"), logs(&good)));
    let queue = &status["queue"];
    for key in ["open", "active", "done"] {
        assert!(queue[key].is_u64(), "queue.{key} is a count: {status}");
    }
    assert_eq!(queue["open"].as_u64().unwrap() + queue["active"].as_u64().unwrap(), 1, "{status}");
    assert_eq!(queue["done"], 0, "{status}");
    assert_eq!(status["database"], "ok", "{status}");
    let check = exec_check(&good);
    assert!(
        check.status.success(),
        "the HEALTHCHECK command fails with a healthy database: {}{}",
        check.stdout,
        check.stderr
    );
    let log = logs(&good);
    assert!(!log.contains("Read-only file system"), "something writes to the read-only root:\n{log}");

    // (b) The database is unreachable: /healthz says so (503, JSON reason)
    // and the container keeps waiting instead of exiting or restarting.
    let bad = unique_name("ralph-py-nodb");
    run_worker(&mut cleanup, &bad, "postgresql://ralph:pw@127.0.0.1:1/ralph");
    let addr = published(&bad, "8080/tcp");
    let (code, body) =
        wait_for(Duration::from_secs(30), Duration::from_millis(250), || http_get(&addr, "/healthz").ok())
            .unwrap_or_else(|| panic!("/healthz never answered: {}", logs(&bad)));
    assert_eq!(code, 503, "{body}");
    let health: serde_json::Value =
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("503 body is not JSON ({e}): {body}"));
    assert_eq!(health["status"], "unhealthy", "{health}");
    let reason = health["database"].as_str().unwrap_or_default();
    assert!(reason.starts_with("unreachable: ") && reason.len() > "unreachable: ".len(), "a reason: {health}");
    std::thread::sleep(Duration::from_secs(10));
    let state =
        run_ok("docker", &["inspect", "--format", "{{.State.Status}} {{.State.Restarting}} {{.RestartCount}}", &bad]);
    assert_eq!(state.trim(), "running false 0", "still running 10 s later:\n{}", logs(&bad));
    let (code, _) = http_get(&addr, "/healthz").expect("the status server still answers");
    assert_eq!(code, 503);
    let check = exec_check(&bad);
    assert_eq!(
        check.status.code(),
        Some(1),
        "the HEALTHCHECK command exits 1 without a database: {}{}",
        check.stdout,
        check.stderr
    );
    let log = logs(&bad);
    assert!(!log.contains("Read-only file system"), "{log}");
}

// ---------------------------------------------------------------------------

#[test]
fn unsupported_targetarch_fails_the_build_with_a_message() {
    let _time = support::Timer::start("unsupported_targetarch_fails_the_build_with_a_message");
    let _engine = support::engine();
    let root = repo_root();
    let dir = temp_dir("xtask-test-arch");
    let ctx = dir.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::copy(root.join("docker/fetch-claude.sh"), ctx.join("fetch-claude.sh")).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "# hadolint global ignore=DL3022\n\
         FROM scratch\n\
         ARG TARGETARCH\n\
         COPY --from=busybox ${TARGETARCH}/busybox /bin/busybox\n\
         RUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n\
         COPY fetch-claude.sh /fetch-claude.sh\n\
         ARG CLAUDE_VERSION\n\
         ARG CLAUDE_SHA512_MUSL_AMD64\n\
         ARG CLAUDE_SHA512_MUSL_ARM64\n\
         RUN sh /fetch-claude.sh musl \"$TARGETARCH\" /out\n",
    )
    .unwrap();
    // The busybox context laid out as ARCH/busybox; 386 gets the amd64
    // binary (amd64 kernels run it).
    let host = Path::new("/usr/local/share/ralph-host/busybox");
    let busybox = dir.path().join("busybox");
    for (arch, from) in [("amd64", "amd64"), ("arm64", "arm64"), ("386", "amd64")] {
        std::fs::create_dir_all(busybox.join(arch)).unwrap();
        std::fs::copy(host.join(from).join("busybox"), busybox.join(arch).join("busybox"))
            .unwrap_or_else(|e| panic!("{}: {e} (scripts/setup-host.sh provides it)", host.join(from).display()));
    }
    let repository = unique_name("xtask-test-arch");
    std::fs::write(
        dir.path().join("images.toml"),
        format!(
            r#"[[image]]
name = "claude-arch"
repository = "{repository}"
kind = "fixture"
dockerfile = "ctx/Dockerfile"
context = "ctx"
platforms = ["linux/amd64", "linux/arm64", "linux/386"]
args_file = "{pins}"
contexts = {{ busybox = "busybox" }}
"#,
            pins = root.join("docker/claude-code.pins").display()
        ),
    )
    .unwrap();

    let out = run_cmd(
        Command::new(env!("CARGO_BIN_EXE_xtask"))
            .current_dir(dir.path())
            .arg("--catalog")
            .arg(dir.path().join("images.toml"))
            .args(["image", "build", "claude-arch", "--platform", "linux/386", "--cache", "none", "--quiet"]),
    );
    // Should it build after all, its tag goes.
    let _ = docker(&["image", "rm", &format!("{repository}:sha-0000000")]);
    assert!(!out.status.success(), "a linux/386 build must fail:\n{}", out.stderr);
    assert!(
        out.stderr.contains("fetch-claude: unsupported TARGETARCH '386'"),
        "fetch-claude's message is shown:\n{}",
        out.stderr
    );
    let last = out.stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
    assert!(
        last.starts_with("error: image `claude-arch`: step `[")
            && last.contains("RUN sh /fetch-claude.sh musl")
            && last.contains("failed"),
        "the last line names the failed step: {last}\n{}",
        out.stderr
    );
}

// ---------------------------------------------------------------------------

/// A stand-in for the npm registry on 127.0.0.1 (fetch-claude's
/// CLAUDE_NPM_REGISTRY): serves `files` by path, 404 for anything else, and
/// records each request as (path, User-Agent). Its thread lives as long as
/// the test binary.
struct NpmStandIn {
    url: String,
    requests: std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>,
}

impl NpmStandIn {
    fn serve(files: std::collections::HashMap<String, Vec<u8>>) -> NpmStandIn {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let path = head.split_whitespace().nth(1).unwrap_or_default().to_string();
                let agent = head
                    .lines()
                    .filter_map(|l| l.split_once(':'))
                    .find(|(k, _)| k.eq_ignore_ascii_case("user-agent"))
                    .map(|(_, v)| v.trim().to_string())
                    .unwrap_or_default();
                log.lock().unwrap().push((path.clone(), agent));
                let (status, body) = match files.get(&path) {
                    Some(body) => ("200 OK", body.as_slice()),
                    None => ("404 Not Found", &b""[..]),
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(body);
            }
        });
        NpmStandIn { url, requests }
    }

    /// The requests since the last call.
    fn take(&self) -> Vec<(String, String)> {
        std::mem::take(&mut *self.requests.lock().unwrap())
    }
}

/// fetch-claude.sh's download paths, each run for real against a local
/// stand-in for the npm registry: busybox wget, as in Dockerfile.worker's
/// Alpine `claude` stage (Alpine's base has busybox wget and no curl; here
/// Debian's static busybox runs the script with nothing but its applets on
/// PATH, so its sh, wget, tar, sha512sum… do the work), and curl, as in the
/// glibc builders and on the host. Either way only a tarball matching the
/// pin is installed; a cached one is not fetched again; a failed download or
/// a missing download tool stops the build with a message.
#[test]
fn fetch_claude_downloads_with_busybox_wget_or_curl_and_installs_only_the_pinned_tarball() {
    use sha2::Digest;
    let _time =
        support::Timer::start("fetch_claude_downloads_with_busybox_wget_or_curl_and_installs_only_the_pinned_tarball");
    let script = repo_root().join("docker/fetch-claude.sh");
    let dir = temp_dir("xtask-test-fetch");
    let dir = dir.path();

    // An npm-style tarball (package/claude) and one with other content.
    let tarball = |name: &str, claude: &str| -> Vec<u8> {
        let pkg = dir.join(format!("pkg-{name}"));
        std::fs::create_dir_all(pkg.join("package")).unwrap();
        std::fs::write(pkg.join("package/claude"), claude).unwrap();
        let tgz = dir.join(format!("{name}.tgz"));
        run_ok("tar", &["-czf", tgz.to_str().unwrap(), "-C", pkg.to_str().unwrap(), "package"]);
        std::fs::read(tgz).unwrap()
    };
    let claude = "#!/bin/sh\necho '9.9.9 (Claude Code)'\n";
    let good = tarball("good", claude);
    let other = tarball("other", "#!/bin/sh\necho tampered\n");
    let pin = format!("{:x}", sha2::Sha512::digest(&good));
    let path = |arch: &str, version: &str| {
        format!("/@anthropic-ai/claude-code-linux-{arch}-musl/-/claude-code-linux-{arch}-musl-{version}.tgz")
    };
    let registry = NpmStandIn::serve(
        [(path("x64", "9.9.9"), good.clone()), (path("arm64", "9.9.9"), other.clone())].into_iter().collect(),
    );

    // PATH directories: every applet of Debian's static busybox (it has wget
    // and no curl), and the same without wget.
    let busybox = Path::new("/usr/local/share/ralph-host/busybox").join(match std::env::consts::ARCH {
        "aarch64" => "arm64",
        _ => "amd64",
    });
    let busybox = busybox.join("busybox");
    let list = run_ok(busybox.to_str().unwrap(), &["--list"]);
    let applets: Vec<&str> = list.lines().collect();
    assert!(applets.contains(&"wget") && !applets.contains(&"curl"), "busybox applets: {applets:?}");
    let applet_dir = |name: &str, without: &[&str]| {
        let bin = dir.join(name);
        std::fs::create_dir_all(&bin).unwrap();
        for applet in applets.iter().filter(|a| !without.contains(a)) {
            std::os::unix::fs::symlink(&busybox, bin.join(applet)).unwrap();
        }
        bin
    };
    let wget_only = applet_dir("busybox-bin", &[]);
    let no_tool = applet_dir("busybox-no-wget", &["wget"]);

    // fetch-claude.sh musl ARCH DEST under sh from PATH, with a clean
    // environment (the pin is for the good tarball whatever ARCH is).
    let fetch = |path_dir: &str, shell: &Path, arch: &str, version: &str, cache: &str, dest: &str| {
        let tmp = dir.join("tmp");
        std::fs::create_dir_all(&tmp).unwrap();
        let pin_var = format!("CLAUDE_SHA512_MUSL_{}", arch.to_uppercase());
        run_cmd(
            Command::new(shell)
                .arg(&script)
                .args(["musl", arch])
                .arg(dir.join(dest))
                .env_clear()
                .env("PATH", path_dir)
                .env("TMPDIR", &tmp)
                .env("CLAUDE_VERSION", version)
                .env(&pin_var, &pin)
                .env("CLAUDE_NPM_REGISTRY", &registry.url)
                .env("CLAUDE_CACHE_DIR", dir.join(cache)),
        )
    };
    let installed = |dest: &str, version: &str| {
        let dest = dir.join(dest);
        let binary = dest.join(format!("usr/local/share/claude/{version}/claude"));
        let link = std::fs::read_link(dest.join("usr/local/bin/claude")).unwrap_or_else(|e| panic!("the link: {e}"));
        assert_eq!(link, Path::new(&format!("/usr/local/share/claude/{version}/claude")));
        assert_eq!(std::fs::read_to_string(&binary).unwrap(), claude);
        let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&binary).unwrap().permissions());
        assert_eq!(mode & 0o777, 0o755, "{}", binary.display());
    };
    let bb_sh = wget_only.join("sh");
    let wget_path = wget_only.to_str().unwrap();

    // (a) busybox wget: downloads, verifies, installs.
    let out = fetch(wget_path, &bb_sh, "amd64", "9.9.9", "cache-wget", "out-wget");
    assert!(out.status.success(), "busybox wget path failed:\n{}", out.stderr);
    assert!(out.stderr.contains("verified and installed"), "{}", out.stderr);
    installed("out-wget", "9.9.9");
    let requests = registry.take();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0].0, path("x64", "9.9.9"));
    assert!(requests[0].1.starts_with("Wget"), "fetched by busybox wget: {requests:?}");

    // (b) Cached and still matching the pin: no second download.
    let out = fetch(wget_path, &bb_sh, "amd64", "9.9.9", "cache-wget", "out-wget-again");
    assert!(out.status.success(), "{}", out.stderr);
    installed("out-wget-again", "9.9.9");
    assert_eq!(registry.take(), [], "the cached tarball is used");

    // (c) curl, where there is one (the host's sh and PATH).
    let host_path = std::env::var("PATH").unwrap();
    let out = fetch(&host_path, Path::new("/bin/sh"), "amd64", "9.9.9", "cache-curl", "out-curl");
    assert!(out.status.success(), "curl path failed:\n{}", out.stderr);
    installed("out-curl", "9.9.9");
    let requests = registry.take();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert!(requests[0].1.starts_with("curl/"), "fetched by curl: {requests:?}");

    // (d) The registry serves other bytes than the pin: refused, nothing installed.
    let out = fetch(wget_path, &bb_sh, "arm64", "9.9.9", "cache-wget", "out-tampered");
    assert!(!out.status.success());
    assert!(
        out.stderr.contains("does not match the pinned sha512 (CLAUDE_SHA512_MUSL_ARM64): refusing to install it"),
        "{}",
        out.stderr
    );
    assert!(!dir.join("out-tampered").exists(), "nothing is installed");
    registry.take();

    // (e) The download fails (404): three wget attempts, then a message.
    let out = fetch(wget_path, &bb_sh, "amd64", "0.0.0", "cache-wget", "out-missing");
    assert!(!out.status.success());
    let last = out.stderr.lines().last().unwrap_or_default();
    assert_eq!(
        last,
        format!("fetch-claude: downloading {}{} failed", registry.url, path("x64", "0.0.0")),
        "{}",
        out.stderr
    );
    assert_eq!(registry.take().len(), 3, "three attempts");
    assert!(!dir.join("out-missing").exists());

    // (f) Neither curl nor wget: the message says what to do. (The host's
    // sh: busybox's own finds its wget applet whatever PATH says.)
    let out = fetch(no_tool.to_str().unwrap(), Path::new("/bin/sh"), "amd64", "9.9.9", "cache-none", "out-none");
    assert!(!out.status.success());
    assert!(out.stderr.contains("neither curl nor wget is installed"), "{}", out.stderr);
    assert_eq!(registry.take(), [], "nothing was fetched");

    // (g) A directory already holding the tarball (the stand-ins' hermetic
    // builds): read where it is, with nothing fetched and nothing copied to
    // the cache (a copy stayed in the build stage's layer); one that is not
    // the pinned tarball is refused there too.
    let from_dir = |content: &[u8], dest: &str| {
        let tarballs = dir.join(format!("tarballs-{dest}"));
        std::fs::create_dir_all(&tarballs).unwrap();
        std::fs::write(tarballs.join("claude-code-linux-x64-musl-9.9.9.tgz"), content).unwrap();
        run_cmd(
            Command::new("/bin/sh")
                .arg(&script)
                .args(["musl", "amd64"])
                .arg(dir.join(dest))
                .env_clear()
                .env("PATH", &host_path)
                .env("TMPDIR", dir.join("tmp"))
                .env("CLAUDE_VERSION", "9.9.9")
                .env("CLAUDE_SHA512_MUSL_AMD64", &pin)
                .env("CLAUDE_NPM_REGISTRY", &registry.url)
                .env("CLAUDE_CACHE_DIR", dir.join(format!("cache-{dest}")))
                .env("CLAUDE_TARBALL_DIR", &tarballs),
        )
    };
    let out = from_dir(&good, "out-dir");
    assert!(out.status.success(), "{}", out.stderr);
    installed("out-dir", "9.9.9");
    assert!(!dir.join("cache-out-dir").exists(), "the tarball was copied into the cache");
    let out = from_dir(&other, "out-dir-tampered");
    assert!(!out.status.success());
    assert!(out.stderr.contains("does not match the pinned sha512 (CLAUDE_SHA512_MUSL_AMD64)"), "{}", out.stderr);
    assert!(!dir.join("out-dir-tampered").exists(), "nothing is installed");
    assert_eq!(registry.take(), [], "nothing was fetched");
}

// ---------------------------------------------------------------------------

/// The Python runtime's smoke spec (docker/structure/worker-amazonlinux.yaml)
/// where Python imports ralph_status through the venv's lib64, as Amazon
/// Linux's does: its Python is Fedora's (sys.platlibdir = "lib64"), which
/// puts venv/lib64 (uv's link to lib) before venv/lib on sys.path. Here the
/// stand-in gets the same order from PYTHONPATH; every check must still
/// pass. And the spec's build-tools check, run as uid 1000 like the rest,
/// must fail on the single-stage image, which keeps uv and its cache: a
/// check that can fail (/root, where caches used to be looked for, is
/// closed to that user).
#[test]
fn python_smoke_spec_holds_where_python_imports_from_lib64_and_catches_build_tools() {
    let _time =
        support::Timer::start("python_smoke_spec_holds_where_python_imports_from_lib64_and_catches_build_tools");
    let _engine = support::engine();
    let built = support::shared_build(&AMD64_STANDINS, &["--platform", "linux/amd64"]);
    let runtime = built.reference("python-standin");
    let single = built.reference("python-standin-single");
    let in_runtime = |script: &str| {
        run_ok("docker", &["run", "--rm", "--platform", "linux/amd64", "--entrypoint", "sh", &runtime, "-c", script])
    };
    // uv made the link, on Debian as on Amazon Linux; Debian's Python
    // doesn't put it on sys.path.
    assert_eq!(in_runtime("readlink /opt/ralph-status/venv/lib64").trim(), "lib");
    let site = in_runtime(
        "python -c 'import ralph_status, os; print(os.path.dirname(os.path.dirname(ralph_status.__file__)))'",
    );
    let site = site.trim();
    assert!(site.starts_with("/opt/ralph-status/venv/lib/python3."), "{site}");
    let site64 = site.replacen("/venv/lib/", "/venv/lib64/", 1);

    let dir = temp_dir("xtask-test-lib64");
    let ctx = dir.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("lib64.Dockerfile"),
        "# hadolint global ignore=DL3006\nARG BASE\nFROM ${BASE}\nARG SITE\nENV PYTHONPATH=${SITE}\n",
    )
    .unwrap();
    std::fs::write(ctx.join("as-is.Dockerfile"), "# hadolint global ignore=DL3006\nARG BASE\nFROM ${BASE}\n").unwrap();
    let prefix = unique_name("xtask-test-lib64");
    let mut cleanup = Cleanup::new();
    let named = prefix.clone();
    cleanup.defer(move || support::remove_images_named(&named));
    let spec = repo_root().join("docker/structure/worker-amazonlinux.yaml");
    let entry = |name: &str, dockerfile: &str, args: &str| {
        format!(
            "[[image]]\nname = \"{name}\"\nrepository = \"{prefix}-{name}\"\nkind = \"fixture\"\n\
             dockerfile = \"ctx/{dockerfile}\"\ncontext = \"ctx\"\nplatforms = [\"linux/amd64\"]\n\
             args = {args}\nsmoke = \"{}\"\n\n",
            spec.display()
        )
    };
    std::fs::write(
        dir.path().join("images.toml"),
        entry("lib64", "lib64.Dockerfile", &format!("{{ BASE = \"{runtime}\", SITE = \"{site64}\" }}"))
            + &entry("single", "as-is.Dockerfile", &format!("{{ BASE = \"{single}\" }}")),
    )
    .unwrap();
    let out = support::xtask_in(dir.path(), &["image", "build", "lib64", "single", "--quiet"], &[]);
    assert!(out.status.success(), "{}", out.stderr);

    // The lib64 image imports ralph_status from venv/lib64: the spec's
    // unresolved path would not have matched.
    let lib64 = format!("{prefix}-lib64:sha-0000000");
    let file = run_ok(
        "docker",
        &["run", "--rm", "--entrypoint", "python", &lib64, "-c", "import ralph_status; print(ralph_status.__file__)"],
    );
    assert_eq!(file.trim(), format!("{site64}/ralph_status/__init__.py"));

    let report = dir.path().join("smoke.json");
    let out = support::xtask_in(
        dir.path(),
        &["image", "smoke", "lib64", "single", "--no-readonly", "--report", report.to_str().unwrap()],
        &[],
    );
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&report).unwrap_or_else(|e| panic!("{e}:\n{}\n{}", out.stdout, out.stderr)),
    )
    .unwrap();
    let results = |image: &str| -> Vec<(String, bool)> {
        let entry = json["images"].as_array().unwrap().iter().find(|i| i["image"] == image).unwrap();
        entry["platforms"][0]["checks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["name"].as_str().unwrap().to_string(), c["passed"] == true))
            .collect()
    };
    let lib64_results = results("lib64");
    assert!(lib64_results.len() > 20, "{lib64_results:?}");
    let failed = |rs: &[(String, bool)]| rs.iter().filter(|(_, ok)| !ok).map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(failed(&lib64_results), Vec::<String>::new(), "{}\n{}", out.stdout, out.stderr);
    assert!(
        lib64_results.iter().any(|(n, _)| n == "python is the venv's, and ralph_status imports from it"),
        "{lib64_results:?}"
    );
    assert_eq!(failed(&results("single")), ["no uv, no pip and no build caches in the runtime"]);
    assert!(!out.status.success(), "the single-stage image fails its smoke run");
}

// ---------------------------------------------------------------------------

/// `cargo xtask image size` of one built image on linux/amd64: its report.
fn image_size(image: &str, reference: &str, scratch: &Path) -> serde_json::Value {
    let tag = reference.rsplit_once(':').unwrap().1;
    let report = scratch.join(format!("{image}.json"));
    let out = run_cmd(
        Command::new(env!("CARGO_BIN_EXE_xtask"))
            .current_dir(repo_root())
            .args(["image", "size", image, "--platform", "linux/amd64", "--tag", tag, "--report"])
            .arg(&report),
    );
    // Over its budget the command fails, after writing the report.
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap_or_else(|e| panic!("{e}: {}", out.stderr)))
            .unwrap();
    json["images"][0]["platforms"][0].clone()
}

#[test]
fn size_of_multi_stage_vs_single_stage() {
    let _time = support::Timer::start("size_of_multi_stage_vs_single_stage");
    let _engine = support::engine();
    let built = support::shared_build(&AMD64_STANDINS, &["--platform", "linux/amd64"]);
    let scratch = temp_dir("xtask-test-size");
    let multi_ref = built.reference("python-standin");
    let single_ref = built.reference("python-standin-single");
    let multi = image_size("python-standin", &multi_ref, scratch.path());
    let single = image_size("python-standin-single", &single_ref, scratch.path());
    let bytes = |v: &serde_json::Value, k: &str| v[k].as_u64().unwrap();
    let (m, s) = (bytes(&multi, "uncompressed_bytes"), bytes(&single, "uncompressed_bytes"));
    let saving = 1.0 - m as f64 / s as f64;
    eprintln!(
        "python-standin (multi-stage): {:.1} MB uncompressed, {:.1} MB compressed\n\
         python-standin-single:        {:.1} MB uncompressed, {:.1} MB compressed\n\
         saving: {:.1} MB ({:.1}%)",
        m as f64 / 1e6,
        bytes(&multi, "compressed_bytes") as f64 / 1e6,
        s as f64 / 1e6,
        bytes(&single, "compressed_bytes") as f64 / 1e6,
        s.saturating_sub(m) as f64 / 1e6,
        saving * 100.0
    );
    assert!(saving >= 0.30, "the multi-stage image must be at least 30% smaller: it saves {:.1}%", saving * 100.0);

    // The runtime has no uv and no pip or uv cache; the single stage still
    // has uv (so the probe finds what it looks for).
    let probe = r#"test -e /opt/uv && echo "/opt/uv exists"
command -v uv >/dev/null && echo "uv on PATH: $(command -v uv)"
find / -xdev -type d \( -path '*/.cache/pip' -o -path '*/.cache/uv' -o -path /var/cache/pip -o -path /var/cache/uv \) -print 2>/dev/null
true"#;
    let runtime = run_ok(
        "docker",
        &["run", "--rm", "--platform", "linux/amd64", "--entrypoint", "bash", &multi_ref, "-c", probe],
    );
    assert_eq!(runtime.trim(), "", "the runtime image carries build tools or caches");
    let single_out = run_ok(
        "docker",
        &["run", "--rm", "--platform", "linux/amd64", "--entrypoint", "bash", &single_ref, "-c", probe],
    );
    assert!(single_out.contains("/opt/uv exists"), "the single-stage image keeps uv: {single_out}");
}
