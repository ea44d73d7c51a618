//! `cargo xtask image pin`: resolves each digest-pinned base image
//! (`NAME:TAG@sha256:…` in a Dockerfile's `FROM` or `ARG` lines) to the
//! digest its tag points at now, and rewrites the pin.
//!
//! Every tag is resolved before any file is written, so an unreachable
//! registry leaves every Dockerfile as it was.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;

use super::Command;
use crate::engine::imagetools;
use crate::model::catalog::Catalog;
use crate::output::table::Table;
use crate::output::{JsonOut, Report, Sinks};

#[derive(Debug, Clone, clap::Args)]
pub struct Pin {
    /// Dockerfiles to update (default: every Dockerfile in the catalog).
    #[arg(long = "dockerfile")]
    pub dockerfiles: Vec<PathBuf>,
    /// Only report stale pins; exit 1 if any (for CI).
    #[arg(long)]
    pub check: bool,
    #[command(flatten)]
    pub out: JsonOut,
}

/// Every pin found, and whether it was current, updated or (with --check) stale.
#[derive(Debug, Serialize)]
#[serde(transparent)]
pub struct PinReport {
    pub rows: Vec<PinRow>,
    #[serde(skip)]
    check: bool,
}

impl Command for Pin {
    type Report = PinReport;

    fn run(&self, catalog: &Catalog) -> Result<PinReport> {
        Ok(PinReport { rows: run(catalog, self)?, check: self.check })
    }

    fn sinks(&self) -> Sinks<'_> {
        self.out.sinks()
    }
}

/// A `NAME:TAG@sha256:HEX` reference found in a Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinRef {
    pub line: usize,
    /// `NAME:TAG`, what gets resolved.
    pub tagged: String,
    pub digest: String,
}

#[derive(Debug, Serialize)]
pub struct PinRow {
    pub dockerfile: String,
    pub line: usize,
    pub image: String,
    pub pinned: String,
    pub current: String,
    pub status: &'static str,
}

/// Finds pinned references on `FROM` and `ARG` lines.
pub fn find_pins(text: &str) -> Vec<PinRef> {
    let mut pins = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        let upper = trimmed.get(..5).unwrap_or("").to_ascii_uppercase();
        if !(upper.starts_with("FROM ") || upper.starts_with("ARG ")) {
            continue;
        }
        for word in trimmed.split_whitespace() {
            let word = word.split_once('=').map_or(word, |(_, v)| v).trim_matches('"');
            let Some((tagged, digest)) = word.split_once("@sha256:") else { continue };
            let is_hex = digest.len() == 64 && digest.chars().all(|c| c.is_ascii_hexdigit());
            if is_hex && tag_of(tagged).is_some() {
                pins.push(PinRef { line: n + 1, tagged: tagged.to_string(), digest: format!("sha256:{digest}") });
            }
        }
    }
    pins
}

/// The tag of `NAME:TAG` (a `:` after the last `/`, so `host:5000/x` has none).
fn tag_of(reference: &str) -> Option<&str> {
    let last = reference.rsplit('/').next()?;
    last.split_once(':').map(|(_, tag)| tag).filter(|t| !t.is_empty())
}

/// `text` with each pin's digest replaced by `new_digest(pin)`.
pub fn rewrite(text: &str, pins: &[PinRef], new_digest: impl Fn(&PinRef) -> String) -> String {
    let mut out = String::with_capacity(text.len());
    for (n, line) in text.split_inclusive('\n').enumerate() {
        let mut line = line.to_string();
        for pin in pins.iter().filter(|p| p.line == n + 1) {
            line =
                line.replace(&format!("{}@{}", pin.tagged, pin.digest), &format!("{}@{}", pin.tagged, new_digest(pin)));
        }
        out.push_str(&line);
    }
    out
}

fn run(catalog: &Catalog, args: &Pin) -> Result<Vec<PinRow>> {
    let dockerfiles = if args.dockerfiles.is_empty() {
        let mut files: Vec<PathBuf> = catalog.images.iter().map(|i| i.dockerfile.clone()).collect();
        files.sort();
        files.dedup();
        files
    } else {
        args.dockerfiles.clone()
    };

    // Resolve everything first: nothing is written unless every tag resolved.
    let mut plans = Vec::new();
    for path in &dockerfiles {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read Dockerfile {}: check --dockerfile or images.toml", path.display()))?;
        let pins = find_pins(&text);
        let mut current = Vec::new();
        for pin in &pins {
            current.push(resolve(&pin.tagged)?);
        }
        plans.push((path, text, pins, current));
    }

    let mut report = Vec::new();
    for (path, text, pins, current) in &plans {
        for (pin, now) in pins.iter().zip(current) {
            report.push(PinRow {
                dockerfile: display_path(catalog, path),
                line: pin.line,
                image: pin.tagged.clone(),
                pinned: pin.digest.clone(),
                current: now.clone(),
                status: if &pin.digest == now {
                    "current"
                } else if args.check {
                    "stale"
                } else {
                    "updated"
                },
            });
        }
        let changed = pins.iter().zip(current).any(|(p, now)| &p.digest != now);
        if changed && !args.check {
            let new_text = rewrite(text, pins, |p| current[pins.iter().position(|q| q == p).unwrap()].clone());
            write_atomically(path, &new_text)?;
        }
    }
    Ok(report)
}

/// The digest `NAME:TAG` points at now (the index digest for multi-arch tags).
fn resolve(tagged: &str) -> Result<String> {
    let (_, digest) = imagetools::manifest(tagged).map_err(|e| anyhow::anyhow!("cannot resolve {tagged} in its registry: {}: check the network or the registry and run `cargo xtask image pin` again (no Dockerfile was changed)", first_line(&e.to_string())))?;
    Ok(digest)
}

fn first_line(s: &str) -> &str {
    s.rsplit(" | ").next().unwrap_or(s)
}

/// Writes `text` beside `path` and renames it over: a reader sees the old
/// file or the new one, never half of one.
fn write_atomically(path: &Path, text: &str) -> Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).with_context(|| format!("writing beside {}", path.display()))?;
    std::io::Write::write_all(&mut tmp, text.as_bytes())
        .with_context(|| format!("writing beside {}", path.display()))?;
    tmp.persist(path).with_context(|| format!("replacing {}", path.display()))?;
    Ok(())
}

fn display_path(catalog: &Catalog, path: &Path) -> String {
    let root = catalog.path.parent().unwrap_or(Path::new("."));
    path.strip_prefix(root).unwrap_or(path).display().to_string()
}

impl Report for PinReport {
    fn render(&self) -> String {
        let mut table = Table::new(["DOCKERFILE", "LINE", "IMAGE", "PINNED", "CURRENT", "STATUS"]);
        for r in &self.rows {
            table.row([
                r.dockerfile.clone(),
                r.line.to_string(),
                r.image.clone(),
                short(&r.pinned),
                short(&r.current),
                r.status.to_string(),
            ]);
        }
        table.render()
    }

    /// With `--check`, stale pins fail the command.
    fn failure(&self) -> Option<String> {
        let stale: Vec<String> =
            self.rows.iter().filter(|r| r.status == "stale").map(|r| format!("{}:{}", r.dockerfile, r.line)).collect();
        (self.check && !stale.is_empty()).then(|| {
            format!("stale base image pins at {}: run `cargo xtask image pin` to update them", stale.join(", "))
        })
    }
}

fn short(digest: &str) -> String {
    digest.chars().take(19).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "48b0309ca019d89d40f670aa1bc06e426dc0931948452e8491e3d65087abc07d";
    const B: &str = "694092ae18877ed4e3cb9b643759ba95df1f12af12528fefa18f60f79d4c1568";

    #[test]
    fn finds_pins_on_arg_and_from_lines() {
        let text = format!(
            "ARG ALPINE_IMAGE=alpine:3.21@sha256:{A}\nFROM ${{ALPINE_IMAGE}} AS x\nfrom localhost:5000/base:1.0@sha256:{B} AS y\n\
             RUN echo alpine:3.21@sha256:{A}\nFROM debian-base\nFROM scratch\nARG X=\"img:tag@sha256:{B}\"\n"
        );
        let pins = find_pins(&text);
        assert_eq!(
            pins,
            vec![
                PinRef { line: 1, tagged: "alpine:3.21".into(), digest: format!("sha256:{A}") },
                PinRef { line: 3, tagged: "localhost:5000/base:1.0".into(), digest: format!("sha256:{B}") },
                PinRef { line: 7, tagged: "img:tag".into(), digest: format!("sha256:{B}") },
            ]
        );
    }

    #[test]
    fn ignores_untagged_and_malformed_digests() {
        let text = format!("FROM localhost:5000/base@sha256:{A}\nFROM alpine:3.21@sha256:abc\n");
        assert!(find_pins(&text).is_empty());
    }

    #[test]
    fn rewrite_changes_only_the_pinned_lines() {
        let text = format!("ARG I=alpine:3.21@sha256:{A}\nRUN echo alpine:3.21@sha256:{A}\n");
        let pins = find_pins(&text);
        let out = rewrite(&text, &pins, |_| format!("sha256:{B}"));
        assert_eq!(out, format!("ARG I=alpine:3.21@sha256:{B}\nRUN echo alpine:3.21@sha256:{A}\n"));
    }

    #[test]
    fn tags_after_the_last_slash_only() {
        assert_eq!(tag_of("localhost:5000/x:1"), Some("1"));
        assert_eq!(tag_of("localhost:5000/x"), None);
        assert_eq!(tag_of("alpine:3.21"), Some("3.21"));
    }
}
