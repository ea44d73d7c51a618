//! `.dockerignore` semantics as BuildKit applies them when it sends a build context, and a fast walk
//! of a build context that honours them (what `COPY . /dst` in the Dockerfile sees).
//!
//! # Sources followed
//!
//! - **Reading** the file: `ignorefile.ReadAll` in `moby/patternmatcher` (the same code as
//!   `buildkit/frontend/dockerfile/dockerignore.ReadAll`), which `frontend/dockerui` runs on the
//!   context's `.dockerignore`. Lines are split as Go's `bufio.ScanLines` does (`\n`, one trailing
//!   `\r` dropped); a UTF-8 BOM is stripped from the first line; a line whose *first* character is
//!   `#` is a comment (` #x`, with a leading blank, is the pattern `#x`); the rest is trimmed of
//!   whitespace and blank lines are skipped; a leading `!` marks an exception and the text after
//!   it is trimmed again; the pattern goes through `filepath.Clean` (`./x` → `x`, `test/` → `test`,
//!   `a//b/../c` → `a/c`) and one leading `/` is dropped (`/x` → `x`).
//! - **Compiling**: `patternmatcher.New` (trim and `Clean` again; `!` alone is an error;
//!   `filepath.Match(pattern, ".")` must not report a syntax error, so an unclosed or empty `[`
//!   class, `[a-b-c]` or a trailing `\` are errors) and `Pattern.compile`, which makes each
//!   pattern an exact string, a prefix (`dir/**`), a suffix (`**/name`, also `**name`) or an
//!   anchored Go regexp: `*` → `[^/]*`, `?` → `[^/]`, `**` plus an optional `/` → `(.*/)?`, a
//!   trailing `**` → `.*`, the characters `.+()|{}$` escaped, `\c` handed to the regexp as `\c`,
//!   `[` and `]` passed through. The regexp is Go RE2 syntax, so it is compiled by the checks'
//!   one RE2 module ([`crate::checks::re2`], the smoke specs' too), and inherits Docker's quirks: `[!a]` is the class `!` or `a` (RE2
//!   negates with `^`), `\d \w \s \b` are regexp escapes (`n\d` matches `n5`, not `nd`), `a**b`
//!   matches `ab` and `a/x/b` but not `axb`, `**foo` matches `xfoo`, and a wildcard inside a class
//!   is expanded there (`[*]` becomes `[[^/]*]`: it matches `]`, not `*`).
//! - **Applying** them: `tonistiigi/fsutil`'s filtered walk (`filter.go`, formerly `walker.go`),
//!   which asks `PatternMatcher.MatchesUsingParentResults` for each path with the per-pattern
//!   results of its parent directory. Patterns are evaluated in order and the last one that
//!   matches wins (`!` re-includes, a later plain pattern excludes again); an exclusion is only
//!   tried while the path is excluded and a plain pattern only while it is included. A pattern
//!   that matched a directory counts as matching everything below it, which is how `dir`, `dir/*`
//!   and `**/test/` exclude `dir/a/b`. BuildKit prunes an excluded directory unless some
//!   exception could re-include something below it, in which case it walks in and sends only
//!   the re-included paths (plus their parent directories).
//!
//! One consequence differs from `MatchesOrParentMatches`, which re-tests every parent for each
//! pattern: a pattern that was skipped for the parent directory is not inherited. With `a`,
//! `!a/b`, `a` the path `a/b` *is* sent (the second `a` was never tried on `a`, which was already
//! excluded, and does not match `a/b` itself). [`Ignore::excludes`] follows the walk, not
//! `MatchesOrParentMatches`, so it agrees with what BuildKit sends.
//!
//! # What is (not) in the context
//!
//! - BuildKit reads `.dockerignore` through its own small transfer and the Dockerfile through the
//!   separate `dockerfile` source; the `context` source carries only the exclude patterns. So
//!   `.dockerignore` and the Dockerfile are in the context (and copied by `COPY .`) exactly when
//!   the patterns leave them in, like any other file. (The legacy builder always sends both and
//!   the daemon removes them afterwards when excluded; `COPY .` sees the same.)
//! - [`walk`] lists regular files and symlinks (not followed: a symlink to a directory is one
//!   entry, and its size is that of the link). BuildKit also sends directories, including empty
//!   ones and excluded parents of re-included paths; those are not listed. Nor are FIFOs and other
//!   special files, although BuildKit sends them too (`COPY .` recreates a FIFO).
//! - A `<Dockerfile>.dockerignore` next to the Dockerfile replaces `.dockerignore` in BuildKit,
//!   with exactly the same syntax; [`Ignore::read`] picks the file in force and reads either one
//!   the same way. An ignore file that is a directory is treated as absent, as BuildKit ignores
//!   the read error.
//!
//! All of the above was checked against Docker Engine 26.1 with buildx 0.13.1: `FROM scratch`,
//! `COPY . /ctx/`, `--output type=local`, on trees with tricky `.dockerignore` files.
//!
//! # Known differences from Docker
//!
//! - A pattern whose regexp does not compile (`[z-a]`, an unknown escape such as `\e`) is an
//!   error from [`Ignore::parse`]; BuildKit fails the build only when its walk first evaluates
//!   that pattern (a plain pattern is tried only while a path is included, an exception only
//!   while it is excluded), which may never happen. `!` alone, an unclosed `[` and a trailing
//!   `\` fail the build up front, as here.
//! - The regexp is RE2 as [`crate::checks::re2`] keeps it (Unicode classes such as `\pL` work,
//!   as in Go; its module docs list what still differs from Go's `regexp`).
//! - Names that are not valid UTF-8 are matched and reported lossily.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context as _, Result};
use regex::bytes::Regex;
use walkdir::WalkDir;

use crate::checks::re2;

/// The parsed .dockerignore.
#[derive(Debug, Clone)]
pub struct Ignore {
    patterns: Vec<Pattern>,
    /// Whether any pattern is an exception (`!`), moby's `Exclusions()`.
    exceptions: bool,
}

/// A regular file or symlink that enters the build context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextFile {
    /// Context-relative path with forward slashes.
    pub path: String,
    /// Size in bytes (of the link itself for a symlink).
    pub size: u64,
}

/// What `docker build` sends of a context directory, as `COPY . /dst` sees it.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// Regular files and symlinks that enter the context, sorted by path.
    pub files: Vec<ContextFile>,
    /// Sum of the sizes in `files`.
    pub bytes: u64,
}

impl Ignore {
    /// Parses the text of a `.dockerignore`. A malformed pattern (e.g. a bad `[` class) is an
    /// error naming its 1-based line and the pattern.
    pub fn parse(text: &str) -> Result<Ignore> {
        let mut patterns = Vec::new();
        for (index, line) in scan_lines(text).enumerate() {
            let line = if index == 0 { line.strip_prefix('\u{feff}').unwrap_or(line) } else { line };
            let Some(entry) = read_all_entry(line) else { continue };
            let pattern = Pattern::new(&entry)
                .map_err(|why| anyhow!("line {}: invalid pattern `{}`: {why}", index + 1, line.trim()))?;
            patterns.extend(pattern);
        }
        let exceptions = patterns.iter().any(|p| p.exception);
        Ok(Ignore { patterns, exceptions })
    }

    /// The ignore file BuildKit applies to `context` when it builds `dockerfile`, and its
    /// patterns: `<Dockerfile>.dockerignore` next to the Dockerfile when there is one, else
    /// `CONTEXT/.dockerignore`; `None` when neither is there. Both are read the same way.
    pub fn read(context: &Path, dockerfile: Option<&Path>) -> Result<Option<(PathBuf, Ignore)>> {
        let own = dockerfile.map(|path| {
            let mut name = path.as_os_str().to_owned();
            name.push(".dockerignore");
            PathBuf::from(name)
        });
        for path in own.into_iter().chain([context.join(".dockerignore")]) {
            if let Some(ignore) = Ignore::read_file(&path)? {
                return Ok(Some((path, ignore)));
            }
        }
        Ok(None)
    }

    /// Reads and parses one ignore file (lossily, as bytes that are not UTF-8 may be there);
    /// `None` when it is absent or a directory. Errors name the file.
    fn read_file(path: &Path) -> Result<Option<Ignore>> {
        let bytes = match fs::read(path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(_) if path.is_dir() => return Ok(None),
            Err(err) => return Err(err).with_context(|| format!("reading {}", path.display())),
        };
        let text = String::from_utf8_lossy(&bytes);
        Ignore::parse(&text).with_context(|| format!("parsing {}", path.display())).map(Some)
    }

    /// Whether the context-relative path (forward slashes, no leading ./) is left out of the context.
    pub fn excludes(&self, rel_path: &str) -> bool {
        let path = clean(rel_path.trim_start_matches('/'));
        if path == "." {
            return false;
        }
        let mut parent: Option<Vec<bool>> = None;
        let mut excluded = false;
        let ends = path.match_indices('/').map(|(i, _)| i).chain(std::iter::once(path.len()));
        for end in ends {
            let (m, info) = self.evaluate(&path[..end], parent.as_deref());
            excluded = m;
            parent = Some(info);
        }
        excluded
    }

    /// moby's `MatchesUsingParentResults`: whether `path` is excluded, given the per-pattern
    /// results of its parent directory (`None` at the top level), and this path's results.
    fn evaluate(&self, path: &str, parent: Option<&[bool]>) -> (bool, Vec<bool>) {
        let mut matched = false;
        let mut info = vec![false; self.patterns.len()];
        for (i, pattern) in self.patterns.iter().enumerate() {
            let mut m = parent.is_some_and(|p| p[i]);
            if !m {
                if pattern.exception != matched {
                    continue;
                }
                m = pattern.matches(path);
                if !m && parent.is_none() {
                    // Without parent results moby falls back to testing every parent directory.
                    m = path.match_indices('/').any(|(end, _)| pattern.matches(&path[..end]));
                }
            }
            info[i] = m;
            if m {
                matched = !pattern.exception;
            }
        }
        (matched, info)
    }

    /// Whether some exception could re-include a path below the excluded directory `dir`. For a
    /// path under an excluded directory to be included an exception has to match it directly,
    /// and every path an exception can match starts with the pattern's literal directory prefix.
    /// (fsutil's own test is coarser: it walks in whenever an exception has a wildcard.)
    fn may_include_below(&self, dir: &str) -> bool {
        if !self.exceptions {
            return false;
        }
        let dir_slash = format!("{dir}/");
        let compatible = |prefix: &str| prefix.starts_with(&dir_slash) || dir_slash.starts_with(prefix);
        self.patterns.iter().filter(|p| p.exception).any(|p| match &p.kind {
            Kind::Exact => p.cleaned.starts_with(&dir_slash),
            Kind::Prefix(prefix) => compatible(prefix),
            Kind::Suffix(_) => true,
            Kind::Never => false,
            Kind::Regex(_) => {
                if p.cleaned.starts_with('\u{feff}') {
                    return true;
                }
                let literal_end = p.cleaned.find(['*', '?', '[', ']', '\\', '^']).unwrap_or(p.cleaned.len());
                let literal = &p.cleaned[..literal_end];
                compatible(literal.rfind('/').map_or("", |slash| &literal[..=slash]))
            }
        })
    }
}

/// Walks `root` (walkdir, not following symlinks) and returns what `docker build` would send,
/// pruning directories that can't contain an included path.
pub fn walk(root: &Path, ignore: Option<&Ignore>) -> Result<Context> {
    let meta = fs::metadata(root).with_context(|| format!("build context {}", root.display()))?;
    if !meta.is_dir() {
        bail!("build context {} is not a directory", root.display());
    }
    let mut files = Vec::new();
    // Per-pattern results of the directories from depth 1 down to the current entry's parent.
    let mut parents: Vec<Vec<bool>> = Vec::new();
    let mut entries = WalkDir::new(root).follow_links(false).into_iter();
    while let Some(next) = entries.next() {
        let entry = match next {
            Ok(entry) => entry,
            Err(err) => {
                // fsutil skips paths that vanished and permission errors on excluded paths.
                let benign = match err.io_error().map(io::Error::kind) {
                    Some(io::ErrorKind::NotFound) => true,
                    Some(io::ErrorKind::PermissionDenied) => ignore.is_some_and(|ig| {
                        err.path().and_then(|p| relative(root, p)).is_some_and(|rel| ig.excludes(&rel))
                    }),
                    _ => false,
                };
                if benign {
                    continue;
                }
                return Err(anyhow::Error::new(err).context(format!("walking build context {}", root.display())));
            }
        };
        if entry.depth() == 0 {
            continue;
        }
        let Some(rel) = relative(root, entry.path()) else { continue };
        let file_type = entry.file_type();
        let excluded = match ignore {
            Some(ignore) => {
                parents.truncate(entry.depth() - 1);
                let (excluded, info) = ignore.evaluate(&rel, parents.last().map(Vec::as_slice));
                if file_type.is_dir() {
                    if excluded && !ignore.may_include_below(&rel) {
                        entries.skip_current_dir();
                        continue;
                    }
                    parents.push(info);
                }
                excluded
            }
            None => false,
        };
        if excluded || !(file_type.is_file() || file_type.is_symlink()) {
            continue;
        }
        let size = match entry.metadata() {
            Ok(meta) => meta.len(),
            Err(err) if err.io_error().is_some_and(|e| e.kind() == io::ErrorKind::NotFound) => continue,
            Err(err) => return Err(anyhow::Error::new(err).context(format!("reading {}", entry.path().display()))),
        };
        files.push(ContextFile { path: rel, size });
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    let bytes = files.iter().map(|f| f.size).sum();
    Ok(Context { files, bytes })
}

/// `path` relative to `root`, with forward slashes.
fn relative(root: &Path, path: &Path) -> Option<String> {
    let rel = path.strip_prefix(root).ok()?;
    let parts: Vec<_> = rel.components().map(|c| c.as_os_str().to_string_lossy()).collect();
    (!parts.is_empty()).then(|| parts.join("/"))
}

// ---------------------------------------------------------------------------------------------
// Reading (ignorefile.ReadAll) and compiling (patternmatcher.New, Pattern.compile).

/// The lines of `text` as Go's `bufio.ScanLines` yields them.
fn scan_lines(text: &str) -> impl Iterator<Item = &str> {
    let body = text.strip_suffix('\n').unwrap_or(text);
    (!text.is_empty()).then(|| body.split('\n')).into_iter().flatten().map(|l| l.strip_suffix('\r').unwrap_or(l))
}

/// One line through `ReadAll`: `None` for comments and blank lines.
fn read_all_entry(line: &str) -> Option<String> {
    if line.starts_with('#') {
        return None;
    }
    let pattern = line.trim();
    if pattern.is_empty() {
        return None;
    }
    let (invert, rest) = match pattern.strip_prefix('!') {
        Some(rest) => (true, rest.trim()),
        None => (false, pattern),
    };
    let mut cleaned = String::new();
    if !rest.is_empty() {
        cleaned = clean(rest);
        if cleaned.len() > 1 && cleaned.starts_with('/') {
            cleaned.remove(0);
        }
    }
    Some(if invert { format!("!{cleaned}") } else { cleaned })
}

/// Go's `filepath.Clean` for slash-separated paths.
fn clean(path: &str) -> String {
    if path.is_empty() {
        return ".".to_string();
    }
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|last| *last != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            part => parts.push(part),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

#[derive(Debug, Clone)]
struct Pattern {
    /// The cleaned pattern without its `!` (moby's `cleanedPattern`).
    cleaned: String,
    exception: bool,
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    /// The path equals the pattern.
    Exact,
    /// The path starts with this (the pattern without its trailing `**`).
    Prefix(String),
    /// The path ends with this (the pattern without its leading `**`), or equals it minus a `/`.
    Suffix(String),
    /// Never matches a valid UTF-8 path (a suffix pattern that starts with a BOM).
    Never,
    /// An anchored Go regexp, compiled by the checks' one RE2 module.
    Regex(Regex),
}

impl Pattern {
    /// moby's `patternmatcher.New` for one pattern, plus the compile it does on first use.
    fn new(raw: &str) -> Result<Option<Pattern>, String> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Ok(None);
        }
        let mut cleaned = clean(trimmed);
        let exception = cleaned.starts_with('!');
        if exception {
            if cleaned.len() == 1 {
                return Err("illegal exclusion pattern: \"!\"".to_string());
            }
            cleaned.remove(0);
        }
        if glob_match(cleaned.as_bytes(), b".").is_err() {
            return Err("syntax error in pattern".to_string());
        }
        let kind = compile(&cleaned).map_err(|why| format!("syntax error in pattern (regexp: {why})"))?;
        Ok(Some(Pattern { cleaned, exception, kind }))
    }

    fn matches(&self, path: &str) -> bool {
        match &self.kind {
            Kind::Exact => path == self.cleaned,
            Kind::Prefix(prefix) => path.starts_with(prefix.as_str()),
            Kind::Suffix(suffix) => {
                path.ends_with(suffix.as_str()) || suffix.strip_prefix('/').is_some_and(|rest| path == rest)
            }
            Kind::Never => false,
            Kind::Regex(re) => re.is_match(path.as_bytes()),
        }
    }
}

/// moby's `Pattern.compile` with `/` as the separator.
fn compile(pattern: &str) -> Result<Kind, String> {
    #[derive(PartialEq)]
    enum Detected {
        Exact,
        Prefix,
        Suffix,
        Regexp,
    }
    let chars: Vec<char> = pattern.chars().collect();
    // Go's text/scanner skips a BOM at the very start.
    let mut pos = usize::from(chars.first() == Some(&'\u{feff}'));
    let mut regex = String::from("^");
    let mut detected = Detected::Exact;
    let mut iteration = 0;
    while pos < chars.len() {
        let ch = chars[pos];
        pos += 1;
        if ch == '*' {
            if chars.get(pos) == Some(&'*') {
                pos += 1;
                if chars.get(pos) == Some(&'/') {
                    pos += 1;
                }
                if pos >= chars.len() {
                    if detected == Detected::Exact {
                        detected = Detected::Prefix;
                    } else {
                        regex.push_str(".*");
                        detected = Detected::Regexp;
                    }
                } else {
                    regex.push_str("(.*/)?");
                    detected = Detected::Regexp;
                }
                if iteration == 0 {
                    detected = Detected::Suffix;
                }
            } else {
                regex.push_str("[^/]*");
                detected = Detected::Regexp;
            }
        } else if ch == '?' {
            regex.push_str("[^/]");
            detected = Detected::Regexp;
        } else if ".+()|{}$".contains(ch) {
            regex.push('\\');
            regex.push(ch);
        } else if ch == '\\' {
            if let Some(&next) = chars.get(pos) {
                pos += 1;
                regex.push('\\');
                regex.push(next);
                detected = Detected::Regexp;
            } else {
                regex.push('\\');
            }
        } else if ch == '[' || ch == ']' {
            regex.push(ch);
            detected = Detected::Regexp;
        } else {
            regex.push(ch);
        }
        iteration += 1;
    }
    Ok(match detected {
        Detected::Exact => Kind::Exact,
        Detected::Prefix => Kind::Prefix(pattern[..pattern.len() - 2].to_string()),
        Detected::Suffix => match pattern.strip_prefix("**") {
            Some(suffix) => Kind::Suffix(suffix.to_string()),
            None => Kind::Never,
        },
        Detected::Regexp => {
            regex.push('$');
            Kind::Regex(re2::build(&regex)?)
        }
    })
}

// ---------------------------------------------------------------------------------------------
// Go's filepath.Match (Unix), used only for its syntax check as patternmatcher.New does.

struct BadPattern;

fn glob_match(mut pattern: &[u8], mut name: &[u8]) -> Result<bool, BadPattern> {
    'pattern: while !pattern.is_empty() {
        let (star, chunk, rest) = scan_chunk(pattern);
        pattern = rest;
        if star && chunk.is_empty() {
            return Ok(!name.contains(&b'/'));
        }
        let first = match_chunk(chunk, name);
        if let Ok(Some(t)) = first {
            if t.is_empty() || !pattern.is_empty() {
                name = t;
                continue;
            }
        }
        first?;
        if star {
            let mut i = 0;
            while i < name.len() && name[i] != b'/' {
                if let Some(t) = match_chunk(chunk, &name[i + 1..])? {
                    if !pattern.is_empty() || t.is_empty() {
                        name = t;
                        continue 'pattern;
                    }
                }
                i += 1;
            }
        }
        // Before returning false, check that the rest of the pattern is well-formed.
        while !pattern.is_empty() {
            let (_, chunk, rest) = scan_chunk(pattern);
            pattern = rest;
            match_chunk(chunk, b"")?;
        }
        return Ok(false);
    }
    Ok(name.is_empty())
}

fn scan_chunk(mut pattern: &[u8]) -> (bool, &[u8], &[u8]) {
    let mut star = false;
    while pattern.first() == Some(&b'*') {
        pattern = &pattern[1..];
        star = true;
    }
    let mut in_range = false;
    let mut i = 0;
    while i < pattern.len() {
        match pattern[i] {
            b'\\' if i + 1 < pattern.len() => i += 1,
            b'[' => in_range = true,
            b']' => in_range = false,
            b'*' if !in_range => break,
            _ => {}
        }
        i += 1;
    }
    (star, &pattern[..i], &pattern[i..])
}

fn match_chunk<'a>(mut chunk: &[u8], mut s: &'a [u8]) -> Result<Option<&'a [u8]>, BadPattern> {
    let mut failed = false;
    while !chunk.is_empty() {
        if !failed && s.is_empty() {
            failed = true;
        }
        match chunk[0] {
            b'[' => {
                let mut r = 0;
                if !failed {
                    let (c, n) = decode_rune(s);
                    r = c;
                    s = &s[n..];
                }
                chunk = &chunk[1..];
                let negated = chunk.first() == Some(&b'^');
                if negated {
                    chunk = &chunk[1..];
                }
                let mut matched = false;
                let mut ranges = 0;
                loop {
                    if chunk.first() == Some(&b']') && ranges > 0 {
                        chunk = &chunk[1..];
                        break;
                    }
                    let (lo, rest) = get_esc(chunk)?;
                    chunk = rest;
                    let mut hi = lo;
                    if chunk[0] == b'-' {
                        let (h, rest) = get_esc(&chunk[1..])?;
                        hi = h;
                        chunk = rest;
                    }
                    if lo <= r && r <= hi {
                        matched = true;
                    }
                    ranges += 1;
                }
                if matched == negated {
                    failed = true;
                }
            }
            b'?' => {
                if !failed {
                    if s[0] == b'/' {
                        failed = true;
                    }
                    s = &s[decode_rune(s).1..];
                }
                chunk = &chunk[1..];
            }
            c => {
                if c == b'\\' {
                    chunk = &chunk[1..];
                    if chunk.is_empty() {
                        return Err(BadPattern);
                    }
                }
                if !failed {
                    if chunk[0] != s[0] {
                        failed = true;
                    }
                    s = &s[1..];
                }
                chunk = &chunk[1..];
            }
        }
    }
    Ok(if failed { None } else { Some(s) })
}

fn get_esc(chunk: &[u8]) -> Result<(u32, &[u8]), BadPattern> {
    let mut chunk = chunk;
    if chunk.is_empty() || chunk[0] == b'-' || chunk[0] == b']' {
        return Err(BadPattern);
    }
    if chunk[0] == b'\\' {
        chunk = &chunk[1..];
        if chunk.is_empty() {
            return Err(BadPattern);
        }
    }
    let (r, n) = decode_rune(chunk);
    if (r == 0xfffd && n == 1) || chunk.len() == n {
        return Err(BadPattern);
    }
    Ok((r, &chunk[n..]))
}

/// Go's `utf8.DecodeRune`: the code point and its length, or U+FFFD and 1 for a bad byte.
fn decode_rune(bytes: &[u8]) -> (u32, usize) {
    let len = match bytes.first() {
        None => return (0xfffd, 0),
        Some(0x00..=0x7f) => 1,
        Some(0xc2..=0xdf) => 2,
        Some(0xe0..=0xef) => 3,
        Some(0xf0..=0xf4) => 4,
        Some(_) => return (0xfffd, 1),
    };
    match bytes.get(..len).and_then(|b| std::str::from_utf8(b).ok()).and_then(|s| s.chars().next()) {
        Some(c) => (u32::from(c), len),
        None => (0xfffd, 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scratch directory (removed on drop) with helpers to fill it.
    struct TempDir(tempfile::TempDir);

    impl TempDir {
        fn new(tag: &str) -> TempDir {
            TempDir(tempfile::Builder::new().prefix(&format!("dockerignore-{tag}-")).tempdir().unwrap())
        }

        fn path(&self) -> &Path {
            self.0.path()
        }

        fn file(&self, rel: &str, content: &str) {
            let path = self.path().join(rel);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, content).unwrap();
        }

        fn files(&self, rels: &[&str]) {
            for rel in rels {
                self.file(rel, rel);
            }
        }
    }

    /// What `docker buildx build` sends for a `COPY . /ctx/` of `context`,
    /// exported with the local exporter: the files and symlinks under /ctx.
    fn docker_context(context: &Path) -> Vec<String> {
        let scratch = TempDir::new("docker-out");
        let dockerfile = scratch.path().join("Dockerfile");
        fs::write(&dockerfile, "FROM scratch\nCOPY . /ctx/\n").unwrap();
        let out = scratch.path().join("out");
        crate::engine::process::Cmd::new("docker")
            .args(["buildx", "build", "--quiet", "--provenance=false", "--file"])
            .arg(&dockerfile)
            .arg("--output")
            .arg(format!("type=local,dest={}", out.display()))
            .arg(context)
            .probe()
            .read()
            .unwrap();
        let root = out.join("ctx");
        let mut files: Vec<String> = WalkDir::new(&root)
            .into_iter()
            .map(|e| e.unwrap())
            .filter(|e| !e.file_type().is_dir())
            .map(|e| e.path().strip_prefix(&root).unwrap().display().to_string())
            .collect();
        files.sort();
        files
    }

    #[test]
    fn the_walk_lists_what_docker_build_sends() {
        let ctx = TempDir::new("docker-walk");
        ctx.files(&[
            "app.py",
            "keep.log",
            "debug.log",
            "notes/a.log",
            "docs/x.tmp",
            "docs/deep/y.tmp",
            "docs/readme.md",
            "root-only.txt",
            "sub/root-only.txt",
            "build/out.bin",
            "build/keep/k.txt",
            "cache/c",
            "src/cache/c2",
            "src/main.rs",
            ".env",
            "lib/.env",
            "target/t",
            "a b/space.txt",
            "ünï.txt",
        ]);
        std::os::unix::fs::symlink("app.py", ctx.path().join("link-to-app")).unwrap();
        ctx.file(
            ".dockerignore",
            "# comments and blank lines\n\n*.log\n!keep.log\n**/cache\ndocs/**/*.tmp\n/root-only.txt\nbuild/\n!build/keep/\n.env\ntarget\n",
        );
        let ours: Vec<String> = walk(ctx.path(), Ignore::read(ctx.path(), None).unwrap().map(|(_, ig)| ig).as_ref())
            .unwrap()
            .files
            .into_iter()
            .map(|f| f.path)
            .collect();
        assert_eq!(ours, docker_context(ctx.path()));
        assert!(ours.contains(&"keep.log".to_string()) && !ours.contains(&"debug.log".to_string()));
        assert!(ours.contains(&"lib/.env".to_string()) && !ours.contains(&".env".to_string()));
    }

    fn ignore(text: &str) -> Ignore {
        Ignore::parse(text).unwrap_or_else(|e| panic!("{text:?}: {e:#}"))
    }

    fn paths(context: &Context) -> Vec<&str> {
        context.files.iter().map(|f| f.path.as_str()).collect()
    }

    #[test]
    fn pattern_semantics_table() {
        // (.dockerignore text, path, excluded)
        let table: &[(&str, &str, bool)] = &[
            ("*", "a", true),
            ("*", "a/b/c", true),
            ("*.md", "README.md", true),
            ("*.md", "docs/x.md", false), // `*` does not cross `/`
            ("*/x", "a/x", true),
            ("*/x", "a/b/x", false),
            ("**/foo", "foo", true),
            ("**/foo", "a/foo", true),
            ("**/foo", "a/b/foo", true),
            ("**/foo", "a/foo/inner", true),
            ("**/foo", "afoo", false),
            ("**/foo", "foo2", false),
            ("foo/**", "foo", false),
            ("foo/**", "foo/x", true),
            ("foo/**", "foo/x/y", true),
            ("**/*.pyc", "x.pyc", true),
            ("**/*.pyc", "a/b/x.pyc", true),
            ("**/*.pyc", "a/b/x.py", false),
            ("a/**/b", "a/b", true),
            ("a/**/b", "a/x/b", true),
            ("a/**/b", "a/x/y/b", true),
            ("a/**/b", "a/xb", false),
            ("a/**/b", "b", false),
            ("**", "a/b", true),
            ("**foo", "xfoo", true), // a leading `**` is a plain suffix test
            ("a**b", "ab", true),    // `**` inside a name is `(.*/)?`
            ("a**b", "ax/b", true),
            ("a**b", "axb", false),
            // `!` re-includes; last match wins.
            ("*.md\n!README.md", "README.md", false),
            ("*.md\n!README.md", "x.md", true),
            ("*.md\n!README.md\nREADME.md", "README.md", true),
            ("!README.md\n*.md", "README.md", true),
            ("docs\n!docs/README.md", "docs/README.md", false),
            ("docs\n!docs/README.md", "docs/other", true),
            ("*\n!*.go", "a.go", false),
            ("*\n!*.go", "dir/a.go", true), // the exception does not reach below `dir`
            ("*\n!**/*.go", "dir/a.go", false),
            // A later plain pattern not tried on the (already excluded) parent is not inherited.
            ("a\n!a/b\na", "a/b", false),
            ("a\n!a/b\na", "a/c", true),
            ("*\n!**/*.go\n**/vendor", "vendor/x.go", false),
            ("*\n!**/*.go\n**/vendor", "src/vendor/x.go", false),
            // Cleaning.
            ("/abs", "abs", true),
            ("/abs", "x/abs", false),
            ("./x", "x", true),
            ("a//b/../c", "a/c", true),
            ("test/", "test", true),
            ("test/", "test/a", true),
            ("test/", "a/test", false),
            ("**/test/", "lib/test/y", true),
            ("  spaced  \t", "spaced", true),
            ("!  spaced-exception \n*", "spaced-exception", true),
            ("*\n!  spaced-exception ", "spaced-exception", false),
            // `?` and classes.
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("a?c", "a/c", false),
            ("[a-c]x", "bx", true),
            ("[a-c]x", "dx", false),
            ("[^a-c]x", "dx", true),
            ("[^a-c]x", "ax", false),
            ("[!a]x", "!x", true), // RE2 negates with `^` only
            ("[!a]x", "bx", false),
            ("[[:digit:]]", "7", true),
            ("[*]", "]", true), // `[*]` becomes `[[^/]*]`
            ("[*]", "*", false),
            // Escapes.
            ("a\\*b", "a*b", true),
            ("a\\*b", "axb", false),
            ("n\\d", "n5", true), // `\d` reaches the regexp
            ("n\\d", "nd", false),
            ("\\#x", "#x", true),
            ("a.b", "a.b", true),
            ("a.b", "axb", false),
            ("a+(b)", "a+(b)", true),
            ("*\n!\\Qa\\.b\\E", "a\\.b", false), // `\Q..\E` quotes the regexp text `a\.b`
            ("b\\\\c", "b\\c", true),
            // Comments and blank lines.
            ("#x", "#x", false),
            (" #x", "#x", true),
            ("# c\n\n\t\nfoo\n", "foo", true),
            ("\u{feff}foo", "foo", true),
            ("foo\r\nbar\r\n", "bar", true),
            // A pattern matching a parent directory excludes what is below it.
            ("dir", "dir/a/b", true),
            ("dir/*", "dir/a/b", true),
            ("dir/a", "dir/a/b/c", true),
            ("dir", "dirx/a", false),
        ];
        let mut failures = Vec::new();
        for &(text, path, want) in table {
            if ignore(text).excludes(path) != want {
                failures.push(format!("{text:?} on {path:?}: want excluded={want}"));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    /// The patterns' regexps are Go RE2, as in the smoke specs: Unicode classes work as in Go.
    #[test]
    fn unicode_classes_work_as_in_go() {
        // Before: a private regexp engine here refused `\p` and `\P` ("not supported").
        let table: &[(&str, &str, bool)] = &[
            ("n\\pL", "nx", true),
            ("n\\pL", "n5", false),
            ("n\\pL", "nä", true),
            ("[\\pN]*", "7abc", true),
            ("[\\pN]*", "a7", false),
            ("\\PN", "7", false),
            ("\\PN", "y", true),
            ("*\n!\\pLu", "äu", false),
        ];
        let mut failures = Vec::new();
        for &(text, path, want) in table {
            if ignore(text).excludes(path) != want {
                failures.push(format!("{text:?} on {path:?}: want excluded={want}"));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
        // Docker escapes `{` and `}` before the regexp sees them, so the braced form is an error there.
        let err = format!("{:#}", Ignore::parse("\\p{Greek}").unwrap_err());
        assert!(err.starts_with("line 1: invalid pattern `\\p{Greek}`: syntax error in pattern (regexp: "), "{err}");
    }

    #[test]
    fn malformed_patterns_name_line_and_pattern() {
        let cases: &[(&str, &str)] = &[
            ("ok\n# comment\n  [  ", "line 3: invalid pattern `[`"),
            ("a\n!", "line 2: invalid pattern `!`: illegal exclusion pattern"),
            ("! /", "line 1: invalid pattern `! /`: illegal exclusion pattern"),
            ("x\\", "line 1: invalid pattern `x\\`: syntax error"),
            ("[a-b-c]", "line 1: invalid pattern `[a-b-c]`: syntax error"),
            ("[]a]", "line 1: invalid pattern `[]a]`"),
            ("[z-a]", "line 1: invalid pattern `[z-a]`: syntax error in pattern (regexp"),
            ("\\e", "line 1: invalid pattern `\\e`: syntax error in pattern (regexp: invalid escape"),
        ];
        for &(text, want) in cases {
            let err = format!("{:#}", Ignore::parse(text).unwrap_err());
            assert!(err.starts_with(want), "{text:?}: got {err:?}, want it to start with {want:?}");
        }
        // Valid oddities.
        assert!(Ignore::parse("[\\]a]\n[\\-x]\n*\n**/\n/\n.\n../x").is_ok());
    }

    #[test]
    fn read_absent_empty_and_present() {
        let dir = TempDir::new("read");
        let read = || Ignore::read(dir.path(), None).map(|found| found.map(|(_, ig)| ig));
        assert!(read().unwrap().is_none());
        dir.file(".dockerignore", "");
        assert!(!read().unwrap().unwrap().excludes("x"));
        dir.file(".dockerignore", "x\n");
        assert!(read().unwrap().unwrap().excludes("x"));
        dir.file(".dockerignore", "ok\n[\n");
        let err = format!("{:#}", read().unwrap_err());
        assert!(err.contains(".dockerignore") && err.contains("line 2"), "{err}");
    }

    #[test]
    fn the_dockerfile_ignore_file_wins_over_the_context_one() {
        let dir = TempDir::new("own");
        let dockerfile = dir.path().join("sub/Dockerfile.worker");
        dir.file("sub/Dockerfile.worker", "FROM scratch\n");
        dir.file(".dockerignore", "from-context\n");
        let (path, ig) = Ignore::read(dir.path(), Some(&dockerfile)).unwrap().unwrap();
        assert_eq!(path, dir.path().join(".dockerignore"));
        assert!(ig.excludes("from-context"));
        dir.file("sub/Dockerfile.worker.dockerignore", "\u{feff}from-own\r\n");
        let (path, ig) = Ignore::read(dir.path(), Some(&dockerfile)).unwrap().unwrap();
        assert_eq!(path, dir.path().join("sub/Dockerfile.worker.dockerignore"));
        assert!(ig.excludes("from-own") && !ig.excludes("from-context"));
        // One that is a directory is absent, as for `.dockerignore`.
        fs::remove_file(&path).unwrap();
        fs::create_dir(&path).unwrap();
        let (path, _) = Ignore::read(dir.path(), Some(&dockerfile)).unwrap().unwrap();
        assert_eq!(path, dir.path().join(".dockerignore"));
    }

    /// `excludes` and `walk` agree on every file, and the walk prunes excluded directories.
    #[test]
    fn walk_agrees_with_excludes() {
        let dir = TempDir::new("agree");
        let tree = [
            "Dockerfile",
            "README.md",
            "notes.md",
            "a/b",
            "a/c",
            "docs/keep.md",
            "docs/drop.md",
            "docs/deep/keep.md",
            "src/main.go",
            "src/x.pyc",
            "src/test/t.go",
            "target/debug/big",
            "n5",
            "nd",
            "]",
            "sub/in/x",
            "sub/out/x",
        ];
        dir.files(&tree);
        let texts = [
            "*.md\n!README.md\na\n!a/b\na\n**/*.pyc\n**/test\ntarget\nn\\d\n[*]\nsub/*\n!sub/in/**",
            "*\n!src\n!docs/**/keep.md\n**/test/",
            "docs\n!docs/deep\n",
            "**\n!**/*.go\n",
        ];
        for text in texts {
            let ig = ignore(text);
            let walked = walk(dir.path(), Some(&ig)).unwrap();
            let want: Vec<&str> = {
                let mut all: Vec<&str> = tree.iter().copied().filter(|p| !ig.excludes(p)).collect();
                all.sort_unstable();
                all
            };
            assert_eq!(paths(&walked), want, "{text:?}");
        }
        assert!(!ignore("target").may_include_below("target"));
        assert!(ignore("*\n!src/**/*.go").may_include_below("src"));
        assert!(!ignore("*\n!src/**/*.go").may_include_below("target"));
        assert!(ignore("*\n!**/*.go").may_include_below("target"));
        assert!(!ignore("*\n!lib/").may_include_below("target"));
        assert!(ignore("*\n!lib/x").may_include_below("lib"));
    }

    #[cfg(unix)]
    #[test]
    fn walk_lists_files_and_symlinks_without_following() {
        use std::os::unix::fs::symlink;
        let dir = TempDir::new("links");
        dir.file("real/one", "12345");
        dir.file("real/two", "");
        fs::create_dir_all(dir.path().join("empty/dir")).unwrap();
        symlink("real", dir.path().join("link-to-dir")).unwrap();
        symlink("nowhere", dir.path().join("dangling")).unwrap();
        let walked = walk(dir.path(), None).unwrap();
        assert_eq!(paths(&walked), ["dangling", "link-to-dir", "real/one", "real/two"]);
        assert_eq!(walked.files[1].size, 4); // the link's own size: "real"
        assert_eq!(walked.bytes, 7 + 4 + 5);
        let walked = walk(dir.path(), Some(&ignore("real\n!real/two"))).unwrap();
        assert_eq!(paths(&walked), ["dangling", "link-to-dir", "real/two"]);
        assert!(walk(&dir.path().join("real/one"), None).is_err());
        assert!(walk(&dir.path().join("missing"), None).is_err());
    }

    /// The repository's own .dockerignore (an allowlist) on a tree shaped like the repository.
    #[test]
    fn real_dockerignore_allowlist() {
        let source = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.dockerignore");
        let text = fs::read_to_string(&source).unwrap();
        assert!(text.contains("\n*\n") && text.contains("!lib/") && text.contains("**/test/"), "unexpected {text}");
        let dir = TempDir::new("real");
        dir.file(".dockerignore", &text);
        let tree = [
            ".env",
            ".env.example",
            ".git/config",
            "Cargo.toml",
            "Dockerfile.worker",
            "README.md",
            "db/schema.sql",
            "docker/compose.yaml",
            "docker/entrypoint.sh",
            "docker/fetch-claude.sh",
            "docker/structure/worker.yaml",
            "docker/uv-requirements.txt",
            "docker/with-status.sh",
            "hooks/pre-tool-use.sh",
            "install.sh",
            "lib/.env",
            "lib/node_modules/m.js",
            "lib/test/y",
            "lib/x.sh",
            "models.json",
            "ralph.sh",
            "scripts/test.sh",
            "skills/ralph-build/SKILL.md",
            "status/.venv/bin/python",
            "status/pyproject.toml",
            "status/src/ralph_status/__pycache__/server.cpython-312.pyc",
            "status/src/ralph_status/server.py",
            "status/src/ralph_status/x.pyc",
            "status/tests/test_server.py",
            "task",
            "target/debug/xtask",
            "test/worker/run.sh",
            "xtask/src/main.rs",
        ];
        dir.files(&tree);
        let (_, ig) = Ignore::read(dir.path(), None).unwrap().unwrap();
        let walked = walk(dir.path(), Some(&ig)).unwrap();
        let want = [
            ".env.example",
            "db/schema.sql",
            "docker/entrypoint.sh",
            "docker/fetch-claude.sh",
            "docker/uv-requirements.txt",
            "docker/with-status.sh",
            "hooks/pre-tool-use.sh",
            "install.sh",
            "lib/x.sh",
            "models.json",
            "ralph.sh",
            "skills/ralph-build/SKILL.md",
            "status/pyproject.toml",
            "status/src/ralph_status/server.py",
            "status/tests/test_server.py",
            "task",
        ];
        assert_eq!(paths(&walked), want);
        assert!(ig.excludes(".dockerignore") && ig.excludes("Dockerfile.worker"));
        assert!(!ig.excludes("lib/x.sh") && ig.excludes("lib/test/y") && ig.excludes("target/debug/xtask"));
        assert!(!ig.may_include_below("target"), "target/ must be pruned");
        let bytes: u64 = want.iter().map(|p| p.len() as u64).sum();
        assert_eq!(walked.bytes, bytes);
    }

    #[test]
    fn a_walk_of_2000_files_keeps_them_and_skips_the_ignored() {
        let dir = TempDir::new("perf");
        for d in 0..40 {
            for f in 0..50 {
                dir.file(&format!("src/d{d:02}/f{f:02}.rs"), "fn main() {}\n");
            }
        }
        for f in 0..500 {
            dir.file(&format!("target/debug/deps/f{f}.o"), "x");
        }
        let ig = ignore("*\n!src/\n**/target/\n**/*.pyc\n**/.git");
        // Its wall time is `cargo xtask bench lint`'s figure, not a test's.
        let walked = walk(dir.path(), Some(&ig)).unwrap();
        assert_eq!(walked.files.len(), 2000);
        assert!(walked.files.iter().all(|f| f.path.starts_with("src/")), "an ignored file was walked");
    }
}
