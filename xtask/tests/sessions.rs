//! What the checks leave in the engine when a run is killed: the next run
//! removes the leftovers of dead runs of this host and pid namespace, and
//! anything older than the stated age; never what a live run elsewhere (another
//! host or pid namespace sharing the daemon) is still using.

mod support;

use std::time::{SystemTime, UNIX_EPOCH};

use support::{run_cmd, run_ok, Cleanup, Fixture};

fn exists(kind: &str, name: &str) -> bool {
    run_cmd(std::process::Command::new("docker").args([kind, "inspect", name])).status.success()
}

#[test]
fn the_next_run_removes_dead_and_stale_leftovers_and_nothing_else() {
    let _engine = support::engine();
    let fx = Fixture::with_catalog("leftovers", "busybox", |repository| {
        format!(
            "[[image]]\nname = \"fx\"\nrepository = \"{repository}\"\nkind = \"fixture\"\ndockerfile = \"ctx/Dockerfile\"\n\
             context = \"ctx\"\ncontexts = {{ busybox = \"/usr/local/share/ralph-host/busybox\" }}\nstartup_args = [\"true\"]\n"
        )
    });
    let out = fx.xtask(&["image", "build", "fx", "--platform", "linux/amd64", "--quiet"]);
    assert!(out.status.success(), "{}", out.stderr);
    let image = format!("{}:sha-0000000", fx.repository);

    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim().to_string();
    let pid_ns = std::fs::read_link("/proc/self/ns/pid").unwrap().display().to_string();
    let dead_pid =
        (1..100_000).map(|n| 4_000_000 - n).find(|p| !std::path::Path::new(&format!("/proc/{p}")).exists()).unwrap();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let name = support::unique_name("xtask-leftover");
    let labels = |owner: &str, started: u64| {
        vec![
            "--label".to_string(),
            format!("io.ralph.xtask.run=fake-{name}"),
            "--label".to_string(),
            format!("io.ralph.xtask.owner={owner}"),
            "--label".to_string(),
            format!("io.ralph.xtask.started={started}"),
        ]
    };
    let mut cleanup = Cleanup::new();
    let mut create = |suffix: &str, owner: String, started: u64| -> String {
        let container = format!("{name}-{suffix}");
        let mut args = vec!["create".to_string(), "--name".into(), container.clone()];
        args.extend(labels(&owner, started));
        args.push(image.clone());
        run_ok("docker", &args.iter().map(String::as_str).collect::<Vec<_>>());
        cleanup.on_drop("docker", &["rm", "--force", &container]);
        container
    };
    // A live run elsewhere: its pid means nothing here.
    let other_host = create("other-host", format!("ci-runner-7/{pid_ns}/{dead_pid}"), now);
    let other_ns = create("other-ns", format!("{host}/pid:[1]/{dead_pid}"), now);
    // A run of ours that was killed, and one so old that it can't be running.
    let dead = create("dead", format!("{host}/{pid_ns}/{dead_pid}"), now);
    let stale = create("stale", "ci-runner-7/pid:[1]/1".to_string(), now - 13 * 3600);
    // A network and a committed image of the killed run go too.
    let network = format!("{name}-net");
    let mut args = vec!["network".to_string(), "create".into()];
    args.extend(labels(&format!("{host}/{pid_ns}/{dead_pid}"), now));
    args.push(network.clone());
    run_ok("docker", &args.iter().map(String::as_str).collect::<Vec<_>>());
    cleanup.on_drop("docker", &["network", "rm", &network]);
    // As the xtask commits a setup command's container: with the run's labels.
    let commit = |container: &str, owner: String| -> String {
        let mut args = vec!["commit".to_string()];
        for pair in labels(&owner, now).chunks(2) {
            args.extend(["--change".to_string(), format!("LABEL {}", pair[1])]);
        }
        args.push(container.to_string());
        run_ok("docker", &args.iter().map(String::as_str).collect::<Vec<_>>()).trim().to_string()
    };
    let committed = commit(&dead, format!("{host}/{pid_ns}/{dead_pid}"));
    cleanup.on_drop("docker", &["image", "rm", "--force", &committed]);
    let kept_image = commit(&other_ns, format!("{host}/pid:[1]/{dead_pid}"));
    cleanup.on_drop("docker", &["image", "rm", "--force", &kept_image]);

    // Any command that runs containers cleans up first.
    let out = fx.xtask(&["image", "runtime", "fx", "--platform", "linux/amd64", "--runs", "1"]);
    assert!(out.status.success(), "{}", out.stderr);

    assert!(exists("container", &other_host), "a live run on another host sharing the daemon keeps its containers");
    assert!(exists("container", &other_ns), "a live run in another pid namespace keeps its containers");
    assert!(exists("image", &kept_image), "and its images");
    assert!(!exists("container", &dead), "a dead run of this host and namespace is cleaned up");
    assert!(!exists("network", &network), "with its networks");
    assert!(!exists("image", &committed), "and its committed images");
    assert!(!exists("container", &stale), "anything older than the stated age is cleaned up");

    // The tests' own tags: those of a test process that has exited (a
    // shared build's) are swept; a live one's are kept.
    let dead_tag = format!("{}:xtask-test-{dead_pid}-0-0-abc1234", fx.repository);
    let live_tag = format!("{}:xtask-test-{}-0-0", fx.repository, std::process::id());
    for tag in [&dead_tag, &live_tag] {
        run_ok("docker", &["tag", &image, tag]);
        cleanup.on_drop("docker", &["image", "rm", tag]);
    }
    assert!(support::sweep_exited_tags() >= 1);
    assert!(!exists("image", &dead_tag), "an exited test's tag is swept");
    assert!(exists("image", &live_tag), "a live test's tag is kept");
}
