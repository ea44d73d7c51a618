//! The one place where the xtask starts processes.
//!
//! Every command is a [`Cmd`]: built by the caller, printed before it runs
//! (`$ docker buildx build …`, shell-quoted, so a user can see and re-run
//! exactly what the xtask did) and run here in one of two ways:
//!
//! - short commands whose output we read ([`Cmd::read`], [`Cmd::output`])
//!   run through xshell's `cmd!`;
//! - commands that stream or must be bounded ([`Cmd::stream_stderr`],
//!   [`Cmd::output_timeout`], [`Cmd::reader`]) run through duct, in a process
//!   group of their own, so a timeout kills the whole tree, not just the
//!   direct child.
//!
//! Probes (version queries, `docker info`, inspections) are printed only with
//! `--verbose`. A failed command is one line: the command, its exit status
//! and the tail of its stderr.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt as _;
use std::process::{ExitStatus, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{bail, Context, Result};

static VERBOSE: AtomicBool = AtomicBool::new(false);

/// Prints probes too (`--verbose`).
pub fn set_verbose(on: bool) {
    VERBOSE.store(on, Ordering::Relaxed);
}

/// A command line to run: program, arguments, and variables set for it.
#[derive(Debug, Clone)]
pub struct Cmd {
    program: OsString,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    dir: Option<std::path::PathBuf>,
    probe: bool,
}

impl Cmd {
    pub fn new(program: impl Into<OsString>) -> Cmd {
        Cmd { program: program.into(), args: Vec::new(), env: Vec::new(), dir: None, probe: false }
    }

    pub fn arg(mut self, arg: impl Into<OsString>) -> Cmd {
        self.args.push(arg.into());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Cmd
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets a variable in the command's environment (`TMPDIR`, say).
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Cmd {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Runs it in `dir` instead of the current directory.
    pub fn current_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Cmd {
        self.dir = Some(dir.into());
        self
    }

    /// Marks a read-only query: printed only with `--verbose`.
    pub fn probe(mut self) -> Cmd {
        self.probe = true;
        self
    }

    /// The command line as a user would type it.
    pub fn display(&self) -> String {
        std::iter::once(&self.program)
            .chain(&self.args)
            .map(|a| shell_quote(&a.to_string_lossy()))
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn log(&self) {
        if !self.probe || VERBOSE.load(Ordering::Relaxed) {
            eprintln!("$ {}", self.display());
        }
    }

    fn not_started(&self) -> String {
        format!("could not start `{}`: is it installed?", self.program.to_string_lossy())
    }

    /// Runs to the end and captures stdout and stderr, whatever the exit
    /// status (xshell).
    pub fn output(&self) -> Result<Output> {
        self.log();
        let sh = xshell::Shell::new().context("reading the current directory")?;
        if let Some(dir) = &self.dir {
            sh.change_dir(dir);
        }
        let (program, args) = (&self.program, &self.args);
        let mut cmd = xshell::cmd!(sh, "{program} {args...}").quiet().ignore_status();
        for (k, v) in &self.env {
            cmd = cmd.env(k, v);
        }
        cmd.output().with_context(|| self.not_started())
    }

    /// Captures stdout (trimmed); a non-zero exit is an error carrying the
    /// tail of stderr.
    pub fn read(&self) -> Result<String> {
        let out = self.output()?;
        check_status(out.status, &self.display(), &String::from_utf8_lossy(&out.stderr))?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    fn expression(&self) -> duct::Expression {
        self.expression_reading_stdin().stdin_null()
    }

    fn expression_reading_stdin(&self) -> duct::Expression {
        let mut expr = duct::cmd(&self.program, &self.args).unchecked();
        for (k, v) in &self.env {
            expr = expr.env(k, v);
        }
        if let Some(dir) = &self.dir {
            expr = expr.dir(dir);
        }
        // Its own process group: a timeout kills everything it started.
        expr.before_spawn(|command| {
            command.process_group(0);
            Ok(())
        })
    }

    /// Runs to the end with `feed` writing its stdin (the tar stream `docker
    /// load` reads, say); captures stdout (trimmed). A non-zero exit is an
    /// error carrying the tail of stderr.
    pub fn read_fed(&self, feed: impl FnOnce(&mut std::io::PipeWriter) -> Result<()> + Send) -> Result<String> {
        self.log();
        let (reader, mut writer) = std::io::pipe().context("creating a pipe")?;
        let handle = self
            .expression_reading_stdin()
            .stdin_file(reader)
            .stdout_capture()
            .stderr_capture()
            .start()
            .with_context(|| self.not_started())?;
        let fed = std::thread::scope(|s| {
            s.spawn(move || {
                let fed = feed(&mut writer);
                drop(writer);
                fed
            })
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("writing the input of `{}` panicked", self.display())))
        });
        let out = handle.wait().context("waiting for the process")?;
        // The command's own failure says more than the broken pipe it left.
        check_status(out.status, &self.display(), &String::from_utf8_lossy(&out.stderr))?;
        fed?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Captures output, giving up after `timeout`: then the command's whole
    /// process group is killed and `None` returned (the caller cleans up what
    /// it started, e.g. the container a `docker run` client was attached to).
    pub fn output_timeout(&self, timeout: Duration) -> Result<Option<Output>> {
        self.log();
        let handle = self.expression().stdout_capture().stderr_capture().start().with_context(|| self.not_started())?;
        if let Some(out) = handle.wait_timeout(timeout).context("waiting for the process")? {
            return Ok(Some(out.clone()));
        }
        kill_groups(&handle.pids());
        handle.wait().context("waiting for the killed process")?;
        Ok(None)
    }

    /// Runs with its stdout and stderr both on our stderr (a workflow step
    /// the user watches), giving up after `timeout`: then its whole process
    /// group is killed and `None` returned.
    pub fn run_to_stderr(&self, timeout: Duration) -> Result<Option<ExitStatus>> {
        self.log();
        let handle = self.expression().stdout_to_stderr().start().with_context(|| self.not_started())?;
        if let Some(out) = handle.wait_timeout(timeout).context("waiting for the process")? {
            return Ok(Some(out.status));
        }
        kill_groups(&handle.pids());
        handle.wait().context("waiting for the killed process")?;
        Ok(None)
    }

    /// Starts the command and hands each stderr line to `on_line` as it
    /// arrives; its stdout goes to our stderr (stdout is for reports).
    /// Returns the exit status.
    pub fn stream_stderr(&self, mut on_line: impl FnMut(&str)) -> Result<ExitStatus> {
        self.log();
        // The reader reads the expression's stdout: swapped, that is the command's stderr.
        let reader = self.expression().stdout_stderr_swap().reader().with_context(|| self.not_started())?;
        for line in BufReader::new(&reader).lines() {
            on_line(&line.context("reading the process's output")?);
        }
        let out = reader.try_wait().context("waiting for the process")?.context("the process did not end")?;
        Ok(out.status)
    }

    /// Starts the command with its stdout as a stream (a tar from `docker
    /// cp`, say), for callers that may stop reading early.
    pub fn reader(&self) -> Result<Reader> {
        self.log();
        let handle = self.expression().stderr_capture().reader().with_context(|| self.not_started())?;
        Ok(Reader { handle, finished: false })
    }
}

/// A command running in the background (a server), its stdout and stderr
/// appended to a file. Dropping it kills its process group.
pub struct Background {
    handle: duct::Handle,
}

impl Cmd {
    /// Starts the command in the background, its output to `log`.
    pub fn spawn_logged(&self, log: &std::path::Path) -> Result<Background> {
        self.log();
        // duct applies the outer redirection first: stdout to the file, then
        // stderr to where stdout now goes.
        let handle =
            self.expression().stderr_to_stdout().stdout_path(log).start().with_context(|| self.not_started())?;
        Ok(Background { handle })
    }
}

impl Background {
    /// Whether it is still running.
    pub fn running(&self) -> bool {
        matches!(self.handle.try_wait(), Ok(None))
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if self.running() {
            kill_groups(&self.handle.pids());
        }
        let _ = self.handle.wait();
    }
}

/// A running command's stdout. Dropping it before the end kills the command.
pub struct Reader {
    handle: duct::ReaderHandle,
    finished: bool,
}

impl Read for Reader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        (&self.handle).read(buf)
    }
}

impl Reader {
    /// Stops the command if it is still running; its stderr.
    pub fn finish(mut self) -> String {
        self.stop();
        // Reading to the end waits for the (killed) process and its stderr.
        let mut rest = Vec::new();
        let _ = (&self.handle).read_to_end(&mut rest);
        self.finished = true;
        match self.handle.try_wait() {
            Ok(Some(out)) => String::from_utf8_lossy(&out.stderr).into_owned(),
            _ => String::new(),
        }
    }

    fn stop(&self) {
        if !matches!(self.handle.try_wait(), Ok(Some(_))) {
            kill_groups(&self.handle.pids());
        }
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        if !self.finished {
            self.stop();
        }
    }
}

/// SIGKILL to the process groups led by `pids` (each command is the leader
/// of its own group).
fn kill_groups(pids: &[u32]) {
    for &pid in pids {
        let Ok(pid) = libc::pid_t::try_from(pid) else { continue };
        // SAFETY: kill(2) takes no pointers; a negative pid names the process
        // group this module created for the command (`process_group(0)`).
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
}

fn check_status(status: ExitStatus, display: &str, stderr: &str) -> Result<()> {
    if status.success() {
        return Ok(());
    }
    let code = status.code().map_or_else(|| "a signal".to_string(), |c| format!("exit code {c}"));
    let tail = last_lines(stderr, 5);
    if tail.is_empty() {
        bail!("`{display}` failed with {code}");
    }
    bail!("`{display}` failed with {code}: {tail}")
}

/// The last `n` non-blank lines of `text`, joined by " | " so an error stays one line.
pub fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().map(str::trim_end).filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}

fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,@+%".contains(c));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn display_quotes_only_what_needs_it() {
        let cmd = Cmd::new("docker").args(["buildx", "build", "--label", "a=b c", "it's"]);
        assert_eq!(cmd.display(), r"docker buildx build --label 'a=b c' 'it'\''s'");
    }

    #[test]
    fn read_reports_the_tail_of_stderr_of_a_failed_command() {
        let err = Cmd::new("sh").args(["-c", "echo one >&2; echo boom >&2; exit 3"]).probe().read().unwrap_err();
        assert_eq!(
            err.to_string(),
            "`sh -c 'echo one >&2; echo boom >&2; exit 3'` failed with exit code 3: one | boom"
        );
        let err = Cmd::new("no-such-program-xtask").probe().read().unwrap_err();
        assert_eq!(err.to_string(), "could not start `no-such-program-xtask`: is it installed?");
    }

    #[test]
    fn arguments_and_variables_reach_the_command_unchanged() {
        let cmd = Cmd::new("sh").args(["-c", "printf '%s|' \"$@\" \"$XTASK_T\"", "sh", "a b", "$HOME", "", "it's"]);
        let cmd = cmd.env("XTASK_T", "v w").probe();
        assert_eq!(cmd.read().unwrap(), "a b|$HOME||it's|v w|");
        let out = cmd.output_timeout(Duration::from_secs(5)).unwrap().unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "a b|$HOME||it's|v w|");
    }

    #[test]
    fn a_timeout_kills_the_whole_process_tree() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("grandchild");
        // The child starts a grandchild that would outlive a plain kill of the child.
        let script = format!("sleep 30 & echo $! > {}; wait", pidfile.display());
        let out = Cmd::new("sh").args(["-c", &script]).probe().output_timeout(Duration::from_millis(300)).unwrap();
        assert!(out.is_none(), "the script ended by itself: the timeout did not fire");
        let grandchild = std::fs::read_to_string(&pidfile).unwrap().trim().to_string();
        let alive = || {
            std::fs::read_to_string(format!("/proc/{grandchild}/stat"))
                .is_ok_and(|stat| !stat.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'))
        };
        let deadline = Instant::now() + Duration::from_secs(3);
        while alive() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(!alive(), "the grandchild {grandchild} survived the timeout");
    }

    #[test]
    fn output_within_the_timeout_is_all_there() {
        let out = Cmd::new("sh")
            .args(["-c", "echo out; echo err >&2; exit 4"])
            .probe()
            .output_timeout(Duration::from_secs(5))
            .unwrap()
            .unwrap();
        assert_eq!(
            (out.status.code(), out.stdout.as_slice(), out.stderr.as_slice()),
            (Some(4), &b"out\n"[..], &b"err\n"[..])
        );
    }

    #[test]
    fn stderr_streams_line_by_line() {
        let mut lines = Vec::new();
        let status = Cmd::new("sh")
            .args(["-c", "echo a >&2; echo b >&2; exit 2"])
            .probe()
            .stream_stderr(|l| lines.push(l.to_string()));
        assert_eq!(status.unwrap().code(), Some(2));
        assert_eq!(lines, ["a", "b"]);
    }

    #[test]
    fn a_reader_stopped_early_kills_its_command_and_keeps_stderr() {
        let mut reader = Cmd::new("sh").args(["-c", "echo warn >&2; yes"]).probe().reader().unwrap();
        let mut buf = [0u8; 4];
        reader.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"y\ny\n");
        assert_eq!(reader.finish().trim(), "warn");
    }

    #[test]
    fn last_lines_keeps_the_tail() {
        assert_eq!(last_lines("a\n\nb\nc\nd", 2), "c | d");
    }
}
