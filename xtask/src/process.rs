//! The one place where the xtask starts processes.
//!
//! Every command line goes through [`Cmd`], which prints it (`$ docker buildx
//! build …`) before running it, so a user can see and re-run exactly what the
//! xtask did. Probes (version queries, `docker info`) are printed only with
//! `--verbose`, to keep normal output about the work itself.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

static VERBOSE: AtomicBool = AtomicBool::new(false);

pub fn set_verbose(on: bool) {
    VERBOSE.store(on, Ordering::Relaxed);
}

#[derive(Debug, Clone)]
pub struct Cmd {
    program: OsString,
    args: Vec<OsString>,
    probe: bool,
}

impl Cmd {
    pub fn new(program: impl Into<OsString>) -> Cmd {
        Cmd { program: program.into(), args: Vec::new(), probe: false }
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

    /// Marks a read-only query: logged only with `--verbose`.
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

    fn command(&self) -> Command {
        let mut command = Command::new(&self.program);
        command.args(&self.args);
        command
    }

    fn program_name(&self) -> String {
        self.program.to_string_lossy().into_owned()
    }

    /// Captures output whatever the exit status.
    pub fn output(&self) -> Result<Output> {
        self.log();
        self.command()
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("could not start `{}`: is it installed?", self.program_name()))
    }

    /// Captures output, giving up after `timeout`: then the process is killed
    /// and `None` returned (the caller cleans up what it started, e.g. the
    /// container a `docker run` client was attached to).
    pub fn output_timeout(&self, timeout: Duration) -> Result<Option<Output>> {
        self.log();
        let mut child = self
            .command()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("could not start `{}`: is it installed?", self.program_name()))?;
        let drain = |pipe: Option<Box<dyn Read + Send>>| {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                if let Some(mut p) = pipe {
                    let _ = p.read_to_end(&mut buf);
                }
                buf
            })
        };
        let stdout = drain(child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
        let stderr = drain(child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = child.try_wait().context("waiting for the process")? {
                break Some(status);
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let stdout = stdout.join().unwrap_or_default();
        let stderr = stderr.join().unwrap_or_default();
        Ok(status.map(|status| Output { status, stdout, stderr }))
    }

    /// Starts the process with stdout and stderr piped, for callers that
    /// read a stream (a tar from `docker cp`) and may stop early.
    pub fn spawn_piped(&self) -> Result<Child> {
        self.log();
        self.command()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("could not start `{}`: is it installed?", self.program_name()))
    }

    /// Captures stdout (trimmed); a non-zero exit is an error carrying stderr.
    pub fn read(&self) -> Result<String> {
        let out = self.output()?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        check_status(out.status, &self.display(), stderr.trim())?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Starts the process with stderr piped and hands each stderr line to
    /// `on_line` as it arrives (stdout is inherited). Returns the exit status.
    pub fn stream_stderr(&self, mut on_line: impl FnMut(&str)) -> Result<ExitStatus> {
        self.log();
        let mut child: Child = self
            .command()
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("could not start `{}`: is it installed?", self.program_name()))?;
        let stderr = child.stderr.take().expect("stderr is piped");
        for line in BufReader::new(stderr).lines() {
            on_line(&line.context("reading the process's output")?);
        }
        child.wait().context("waiting for the process")
    }
}

fn check_status(status: ExitStatus, display: &str, stderr: &str) -> Result<()> {
    if status.success() {
        return Ok(());
    }
    let code = status.code().map_or_else(|| "a signal".to_string(), |c| format!("exit code {c}"));
    if stderr.is_empty() {
        bail!("`{display}` failed with {code}");
    }
    bail!("`{display}` failed with {code}: {}", last_lines(stderr, 5))
}

/// The last `n` lines of `text`, joined by " | " so an error stays one line.
pub fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
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

    #[test]
    fn display_quotes_only_what_needs_it() {
        let cmd = Cmd::new("docker").args(["buildx", "build", "--label", "a=b c", "it's"]);
        assert_eq!(cmd.display(), r"docker buildx build --label 'a=b c' 'it'\''s'");
    }

    #[test]
    fn read_reports_stderr_of_failed_command() {
        let err = Cmd::new("sh").args(["-c", "echo boom >&2; exit 3"]).probe().read().unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("exit code 3"), "{msg}");
        assert!(msg.contains("boom"), "{msg}");
    }

    #[test]
    fn output_timeout_kills_what_runs_too_long() {
        let started = Instant::now();
        let out = Cmd::new("sleep").arg("5").probe().output_timeout(Duration::from_millis(200)).unwrap();
        assert!(out.is_none());
        assert!(started.elapsed() < Duration::from_secs(3));
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
    fn last_lines_keeps_the_tail() {
        assert_eq!(last_lines("a\n\nb\nc\nd", 2), "c | d");
    }
}
