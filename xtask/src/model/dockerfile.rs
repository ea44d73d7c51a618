//! Dockerfile parsing the way BuildKit's Dockerfile frontend reads a Dockerfile.
//!
//! This follows moby/buildkit `frontend/dockerfile/parser` (parser.go, line_parsers.go, split_command.go,
//! directives.go), `frontend/dockerfile/shell/lex.go` and the argument checks of
//! `frontend/dockerfile/instructions/parse.go`, plus the global-`ARG` handling of
//! `dockerfile2llb/convert.go` for [`Dockerfile::stages`]:
//!
//! * parser directives (`# syntax=`, `# escape=`, `# check=`) only before the first instruction, blank line or
//!   other comment; keys are case-insensitive; a repeated directive or an escape other than `\` or `` ` `` is an
//!   error;
//! * line continuation with the escape character at the end of a line (blanks after it allowed, an escaped escape
//!   is not a continuation); comment lines and empty lines inside a continued instruction are dropped; the joined
//!   text is kept in [`Instruction::original`];
//! * heredocs (`<<EOF`, `<<-EOF`, `<<"EOF"`, several per line) for `RUN`, `COPY` and `ADD` (also under `ONBUILD`),
//!   not for their JSON forms;
//! * leading `--flag[=value]` words, JSON (exec) form versus shell form, keywords in any case;
//! * the errors BuildKit reports while parsing: unknown instructions, missing or extra arguments where BuildKit
//!   checks them, `FROM` syntax and stage names, `ENV`/`LABEL` syntax, JSON arrays with non-string items,
//!   instructions before the first `FROM`, unterminated heredocs, a file without instructions;
//! * shell-word expansion ([`expand`]) as BuildKit's lexer does it: `$VAR`, `${VAR}`, `${VAR:-w}`, `${VAR-w}`,
//!   `${VAR:+w}`, `${VAR+w}`, `${VAR:?w}`, `${VAR?w}`, `${VAR#p}`, `${VAR##p}`, `${VAR%p}`, `${VAR%%p}`,
//!   `${VAR/p/r}`, `${VAR//p/r}`, quotes and escapes.
//!
//! Where it differs from BuildKit:
//!
//! * Flags are not checked: BuildKit rejects unknown flags (`Unknown flag: x`), repeated flags and bad values
//!   (booleans, `HEALTHCHECK` durations and retries, `--platform` strings); here any leading `--name[=value]` word
//!   is accepted and kept as written.
//! * `RUN`, `CMD` and `ENTRYPOINT` without arguments are accepted, because BuildKit accepts them.
//! * [`Dockerfile::comments`] holds every comment line (BuildKit only keeps the comments right before an
//!   instruction); comment text is what follows the `#`, trimmed.
//! * [`Heredoc::content`] has its leading tabs already removed for `<<-` (BuildKit's parser keeps them and strips
//!   them when it dispatches the instruction); line endings are kept as in the source (`\r\n` in a CRLF file), as
//!   BuildKit keeps them.
//! * Messages are BuildKit's, except: a bad parser directive's error carries the directive's own line (BuildKit
//!   reports one less); an unknown instruction gets no "did you mean" suggestion; `FROM a AS` and an empty `FROM`
//!   add a hint in parentheses; an unterminated heredoc names its delimiter. Warnings (empty continuation lines)
//!   are not reported, and BuildKit's 64 KiB limit on a line is not enforced.
//! * Unicode letter and digit classes in variable names are Rust's (`char::is_alphabetic`, `char::is_numeric`),
//!   close to but not exactly Go's.
//! * [`Dockerfile::stages`] does not know the build or target platform: BuildKit's automatic platform ARGs
//!   (`BUILDPLATFORM`, `TARGETARCH`, ...) are taken from `build_args` when given there and are otherwise left
//!   unexpanded, as written, in `base` and `platform`. Duplicate stage names are not reported.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    pub directives: Directives,
    pub instructions: Vec<Instruction>,
    /// Every comment line outside the directives, with its 1-based line number and text after '#', trimmed.
    pub comments: Vec<Comment>,
}

/// Parser directives from the top of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directives {
    /// `# syntax=` value as written (e.g. `docker/dockerfile:1`).
    pub syntax: Option<String>,
    /// `# escape=` character: `\` (default) or `` ` ``.
    pub escape: char,
    /// `# check=` value as written (e.g. `skip=all;error=true`).
    pub check: Option<String>,
}

impl Default for Directives {
    fn default() -> Self {
        Directives { syntax: None, escape: '\\', check: None }
    }
}

/// A comment line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comment {
    /// 1-based line number.
    pub line: usize,
    /// The text after `#`, trimmed.
    pub text: String,
}

/// One instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// 1-based line where the instruction starts.
    pub line: usize,
    /// Last line it spans (continuations and heredoc bodies included).
    pub end_line: usize,
    /// Upper-case keyword: FROM, RUN, COPY, ADD, ENV, ARG, USER, WORKDIR, HEALTHCHECK, ...
    pub keyword: String,
    /// Leading `--name[=value]` flags (quotes removed as BuildKit removes them).
    pub flags: Vec<Flag>,
    /// What follows the flags.
    pub args: Args,
    /// Heredoc bodies, in the order of their `<<` words.
    pub heredocs: Vec<Heredoc>,
    /// The instruction's source text, continuations joined as BuildKit joins them (heredoc bodies not included).
    pub original: String,
}

impl Instruction {
    /// The first flag called `name` (without the leading `--`).
    pub fn flag(&self, name: &str) -> Option<&Flag> {
        self.flags.iter().find(|f| f.name == name)
    }
}

/// A `--name[=value]` flag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flag {
    pub name: String,
    /// `None` for `--name` without `=`.
    pub value: Option<String>,
}

/// Instruction arguments.
///
/// `Exec` is the JSON form, for the instructions where BuildKit accepts it (`RUN`, `CMD`, `ENTRYPOINT`, `SHELL`,
/// `COPY`, `ADD`, `VOLUME`) when the rest parses as a JSON array of strings. Everything else is `Shell`: the text
/// after the flags, trimmed (for `HEALTHCHECK` that includes the `CMD`/`NONE` word, for `ONBUILD` the whole
/// trigger instruction).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Args {
    Exec(Vec<String>),
    Shell(String),
}

/// A heredoc body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// The delimiter word, quotes removed.
    pub name: String,
    /// The lines between the `<<` line and the delimiter line, each with its line ending; leading tabs removed
    /// when `strip_tabs`.
    pub content: String,
    /// False when the delimiter was (partly) quoted: the content is not to be expanded.
    pub expand: bool,
    /// `<<-`: leading tabs are stripped from the body and the delimiter line.
    pub strip_tabs: bool,
}

/// A parse error with the 1-based line it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

impl ParseError {
    fn new(line: usize, message: impl Into<String>) -> Self {
        ParseError { line, message: message.into() }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for ParseError {}

/// A build stage: one per `FROM`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// 0-based position among the stages.
    pub index: usize,
    /// `AS name`, lower-cased as BuildKit does.
    pub name: Option<String>,
    /// The `FROM` image after ARG expansion.
    pub base: String,
    /// The `FROM` image as written.
    pub base_raw: String,
    /// `--platform` after ARG expansion.
    pub platform: Option<String>,
    /// Line of the `FROM`.
    pub line: usize,
    /// Indexes into [`Dockerfile::instructions`] after the `FROM` up to the next `FROM`.
    pub instructions: Range<usize>,
}

/// BuildKit's automatic platform ARGs (dockerfile2llb `defaultArgs`), always in the global scope.
const AUTOMATIC_ARGS: &[&str] = &[
    "BUILDPLATFORM",
    "BUILDOS",
    "BUILDOSVERSION",
    "BUILDARCH",
    "BUILDVARIANT",
    "TARGETPLATFORM",
    "TARGETOS",
    "TARGETOSVERSION",
    "TARGETARCH",
    "TARGETVARIANT",
    "TARGETSTAGE",
];

impl Dockerfile {
    /// Build stages: one per `FROM`.
    ///
    /// Global ARGs (those before the first FROM) with their defaults, overridden by `build_args`, expanded into
    /// each FROM, as BuildKit does: a default is expanded with the ARGs before it, an ARG without a value and
    /// without a build arg stays unset. `TARGETSTAGE` defaults to the last stage's name; the other automatic
    /// platform ARGs come only from `build_args` and are left unexpanded otherwise.
    pub fn stages(&self, build_args: &BTreeMap<String, String>) -> Result<Vec<Stage>, ParseError> {
        let escape = self.directives.escape;
        let froms: Vec<usize> =
            self.instructions.iter().enumerate().filter(|(_, i)| i.keyword == "FROM").map(|(n, _)| n).collect();
        let Some(&first_from) = froms.first() else {
            let line = self.instructions.first().map_or(1, |i| i.line);
            return Err(ParseError::new(line, "dockerfile contains no stages to build"));
        };

        struct FromParts<'a> {
            index: usize,
            base_raw: String,
            name: Option<String>,
            platform_raw: Option<&'a str>,
        }
        let mut parts = Vec::new();
        for &index in &froms {
            let ins = &self.instructions[index];
            let words = split_whitespace_re(args_text(&ins.args));
            let Some(base_raw) = words.first() else {
                return Err(ParseError::new(ins.line, "FROM requires either one or three arguments"));
            };
            let name = if words.len() == 3 { Some(words[2].to_lowercase()) } else { None };
            let platform_raw = ins.flag("platform").map(|f| f.value.as_deref().unwrap_or(""));
            parts.push(FromParts { index, base_raw: base_raw.clone(), name, platform_raw });
        }

        let mut env: BTreeMap<String, String> = BTreeMap::new();
        for &auto in AUTOMATIC_ARGS {
            if let Some(v) = build_args.get(auto) {
                env.insert(auto.to_string(), v.clone());
            }
        }
        if !env.contains_key("TARGETSTAGE") {
            let last = parts.last().and_then(|p| p.name.clone()).unwrap_or_default();
            env.insert("TARGETSTAGE".to_string(), last);
        }
        for ins in &self.instructions[..first_from] {
            if ins.keyword != "ARG" {
                continue;
            }
            for (key, value) in key_values_raw("ARG", args_text(&ins.args), escape) {
                if let Some(v) = build_args.get(&key) {
                    env.insert(key, v.clone());
                } else if let Some(raw) = value {
                    let expanded = {
                        let lookup = global_lookup(&env);
                        lex(&raw, escape, false, false, &lookup).map_err(|m| ParseError::new(ins.line, m))?.0
                    };
                    env.insert(key, expanded);
                }
            }
        }

        let lookup = global_lookup(&env);
        let mut stages = Vec::new();
        for (n, p) in parts.iter().enumerate() {
            let ins = &self.instructions[p.index];
            let (base, _) =
                lex(&p.base_raw, escape, false, false, &lookup).map_err(|m| ParseError::new(ins.line, m))?;
            if base.is_empty() {
                return Err(ParseError::new(ins.line, format!("base name ({}) should not be blank", p.base_raw)));
            }
            let platform = match p.platform_raw {
                None => None,
                Some("") => None,
                Some(raw) => {
                    let (v, _) = lex(raw, escape, false, false, &lookup).map_err(|m| {
                        ParseError::new(ins.line, format!("failed to process arguments for platform {raw}: {m}"))
                    })?;
                    if v.is_empty() {
                        return Err(ParseError::new(ins.line, format!("empty platform value from expression {raw}")));
                    }
                    Some(v)
                }
            };
            let end = froms.get(n + 1).copied().unwrap_or(self.instructions.len());
            stages.push(Stage {
                index: n,
                name: p.name.clone(),
                base,
                base_raw: p.base_raw.clone(),
                platform,
                line: ins.line,
                instructions: p.index + 1..end,
            });
        }
        Ok(stages)
    }
}

fn global_lookup(env: &BTreeMap<String, String>) -> impl Fn(&str) -> Lookup + '_ {
    move |name: &str| match env.get(name) {
        Some(v) => Lookup::Set(v.clone()),
        None if AUTOMATIC_ARGS.contains(&name) => Lookup::Keep,
        None => Lookup::Unset,
    }
}

fn args_text(args: &Args) -> &str {
    match args {
        Args::Shell(s) => s,
        Args::Exec(_) => "",
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------------------------

/// Parses a Dockerfile.
pub fn parse(text: &str) -> Result<Dockerfile, ParseError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let mut directives = DirectiveState::default();
    let mut comments = Vec::new();
    let mut parsed: Vec<(Instruction, Node)> = Vec::new();

    let mut i = 0;
    while i < lines.len() {
        let raw = lines[i];
        i += 1;
        let start = i;
        let token = trim_left_ws(trim_newline(raw));
        let is_directive = directives.process(token).map_err(|m| ParseError::new(start, m))?;
        if is_comment(raw) {
            if !is_directive {
                comments.push(Comment { line: start, text: comment_text(raw) });
            }
            continue;
        }
        let escape = directives.value.escape;
        let (first, mut end_of_line) = trim_continuation(token, escape);
        if end_of_line && first.is_empty() {
            continue;
        }
        let mut line = first.to_string();
        while !end_of_line && i < lines.len() {
            let raw = lines[i];
            i += 1;
            if is_comment(raw) {
                comments.push(Comment { line: i, text: comment_text(raw) });
                continue;
            }
            let token = trim_newline(raw);
            if trim_left_ws(token).is_empty() {
                continue;
            }
            let (part, eol) = trim_continuation(token, escape);
            line.push_str(part);
            end_of_line = eol;
        }

        let node = parse_node(&line, escape).map_err(|m| ParseError::new(start, m))?;
        let mut heredocs = Vec::new();
        if node.can_contain_heredoc() && line.contains("<<") {
            for spec in heredocs_from_line(&line).map_err(|m| ParseError::new(start, m))? {
                let mut content = String::new();
                let mut terminated = false;
                while i < lines.len() {
                    let raw = lines[i];
                    i += 1;
                    let mut candidate = trim_newline(raw);
                    if spec.chomp {
                        candidate = candidate.trim_start_matches('\t');
                    }
                    if candidate == spec.name {
                        terminated = true;
                        break;
                    }
                    content.push_str(raw);
                }
                if !terminated {
                    return Err(ParseError::new(
                        start,
                        format!(
                            "unterminated heredoc {}: no line {} before the end of the file",
                            go_quote(&spec.name),
                            go_quote(&spec.name)
                        ),
                    ));
                }
                if spec.chomp {
                    content = content.split_inclusive('\n').map(|l| l.trim_start_matches('\t')).collect();
                }
                heredocs.push(Heredoc { name: spec.name, content, expand: spec.expand, strip_tabs: spec.chomp });
            }
        }

        let args = if node.json && EXEC_FORM_KEYWORDS.contains(&node.keyword.as_str()) {
            Args::Exec(node.words.clone())
        } else {
            Args::Shell(node.rest.clone())
        };
        let flags = node
            .flags
            .iter()
            .map(|f| {
                let f = f.strip_prefix("--").unwrap_or(f);
                match f.split_once('=') {
                    Some((name, value)) => Flag { name: name.to_string(), value: Some(value.to_string()) },
                    None => Flag { name: f.to_string(), value: None },
                }
            })
            .collect();
        let instruction = Instruction {
            line: start,
            end_line: i,
            keyword: node.keyword.clone(),
            flags,
            args,
            heredocs,
            original: line,
        };
        parsed.push((instruction, node));
    }

    if parsed.is_empty() {
        return Err(ParseError::new(lines.len().max(1), "file with no instructions"));
    }

    // Second pass, as BuildKit's instructions.Parse runs after the whole file has been parsed.
    let mut seen_from = false;
    for (instruction, node) in &parsed {
        validate(node).map_err(|m| ParseError::new(instruction.line, m))?;
        if instruction.keyword == "FROM" {
            seen_from = true;
        } else if !seen_from && instruction.keyword != "ARG" {
            return Err(ParseError::new(instruction.line, "no build stage in current context"));
        }
    }

    Ok(Dockerfile {
        directives: directives.value,
        instructions: parsed.into_iter().map(|(i, _)| i).collect(),
        comments,
    })
}

/// Keywords whose JSON form becomes [`Args::Exec`].
const EXEC_FORM_KEYWORDS: &[&str] = &["RUN", "CMD", "ENTRYPOINT", "SHELL", "COPY", "ADD", "VOLUME"];

/// Directive state (parser.go `directives` + directives.go `DirectiveParser`).
#[derive(Default)]
struct DirectiveState {
    value: Directives,
    done: bool,
    seen: Vec<String>,
}

impl DirectiveState {
    /// Returns whether `line` (newline and leading blanks removed) is a parser directive.
    fn process(&mut self, line: &str) -> Result<bool, String> {
        if self.done {
            return Ok(false);
        }
        let Some(after) = line.strip_prefix('#') else {
            self.done = true;
            return Ok(false);
        };
        let Some((key, value)) = match_directive(trim_left_ws(after)) else {
            self.done = true;
            return Ok(false);
        };
        let key = key.to_ascii_lowercase();
        if !matches!(key.as_str(), "syntax" | "escape" | "check") {
            self.done = true;
            return Ok(false);
        }
        if self.seen.contains(&key) {
            return Err(format!("only one {key} parser directive can be used"));
        }
        self.seen.push(key.clone());
        match key.as_str() {
            "escape" => {
                if value != "`" && value != "\\" {
                    return Err(format!("invalid escape token '{value}' does not match ` or \\"));
                }
                self.value.escape = value.chars().next().unwrap_or('\\');
            }
            "syntax" => self.value.syntax = Some(value.to_string()),
            _ => self.value.check = Some(value.to_string()),
        }
        Ok(true)
    }
}

/// `^([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$`
fn match_directive(s: &str) -> Option<(&str, &str)> {
    if !s.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return None;
    }
    let key_end = s.find(|c: char| !c.is_ascii_alphanumeric()).unwrap_or(s.len());
    let (key, rest) = s.split_at(key_end);
    let rest = rest.trim_start_matches(is_re_space).strip_prefix('=')?;
    let value = rest.trim_start_matches(is_re_space).trim_end_matches(is_re_space);
    if value.is_empty() || value.contains('\n') {
        return None;
    }
    Some((key, value))
}

/// Go regexp `\s`.
fn is_re_space(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\x0c' | '\r' | ' ')
}

/// Go regexp `[\t\v\f\r ]` (BuildKit's `reWhitespace` / `tokenWhitespace`).
fn is_token_space(c: char) -> bool {
    matches!(c, '\t' | '\x0b' | '\x0c' | '\r' | ' ')
}

fn trim_newline(s: &str) -> &str {
    s.trim_end_matches(['\r', '\n'])
}

fn trim_left_ws(s: &str) -> &str {
    s.trim_start_matches(char::is_whitespace)
}

fn is_comment(line: &str) -> bool {
    trim_left_ws(line).starts_with('#')
}

fn comment_text(raw: &str) -> String {
    let t = trim_left_ws(trim_newline(raw));
    t.strip_prefix('#').unwrap_or(t).trim().to_string()
}

/// `([^E])E[ \t]*$|^E[ \t]*$` replaced by `$1`: returns the line without the continuation and whether the line
/// ends the instruction.
fn trim_continuation(line: &str, escape: char) -> (&str, bool) {
    let trimmed = line.trim_end_matches([' ', '\t']);
    if let Some(before) = trimmed.strip_suffix(escape) {
        if before.is_empty() || !before.ends_with(escape) {
            return (before, false);
        }
    }
    (line, true)
}

/// `reWhitespace.Split(s, -1)` on a trimmed string: how BuildKit splits `COPY`, `ADD`, `EXPOSE` and `VOLUME`
/// arguments into words (quotes kept, for [`expand`] to remove).
pub fn split_words(s: &str) -> Vec<String> {
    split_whitespace_re(s.trim())
}

fn split_whitespace_re(s: &str) -> Vec<String> {
    if s.is_empty() {
        return Vec::new();
    }
    s.split(is_token_space).filter(|w| !w.is_empty()).map(str::to_string).collect()
}

/// BuildKit's parse-tree node for one instruction.
#[derive(Debug, Clone)]
struct Node {
    keyword: String,
    flags: Vec<String>,
    rest: String,
    words: Vec<String>,
    json: bool,
    sub: Option<Box<Node>>,
}

impl Node {
    fn can_contain_heredoc(&self) -> bool {
        let node = match (&self.sub, self.keyword.as_str()) {
            (Some(sub), "ONBUILD") => sub,
            _ => self,
        };
        matches!(node.keyword.as_str(), "RUN" | "COPY" | "ADD") && !node.json
    }
}

const NOT_STRING_ARRAY: &str = "when using JSON array syntax, arrays must be comprised of strings only";

/// `newNodeFromLine`: splitCommand, then the keyword's line parser.
fn parse_node(line: &str, escape: char) -> Result<Node, String> {
    let trimmed = line.trim();
    let (cmd, after) = match trimmed.find(is_token_space) {
        Some(pos) => (&trimmed[..pos], trimmed[pos..].trim_start_matches(is_token_space)),
        None => (trimmed, ""),
    };
    let (rest, flags) = extract_builder_flags(after);
    let rest = rest.trim().to_string();
    let keyword = cmd.to_uppercase();
    let mut node = Node { keyword, flags, rest, words: Vec::new(), json: false, sub: None };
    let rest = node.rest.as_str();
    match node.keyword.as_str() {
        "ADD" | "COPY" | "VOLUME" => match parse_json(rest)? {
            Some(words) => (node.words, node.json) = (words, true),
            None => node.words = split_whitespace_re(rest),
        },
        "CMD" | "ENTRYPOINT" | "RUN" | "SHELL" => (node.words, node.json) = parse_maybe_json(rest)?,
        "ARG" => node.words = parse_words(rest, escape),
        "ENV" | "LABEL" => node.words = parse_name_val(rest, &node.keyword, escape)?,
        "EXPOSE" | "FROM" => node.words = split_whitespace_re(rest),
        "HEALTHCHECK" => {
            let sep = rest.find(char::is_whitespace).unwrap_or(rest.len());
            if sep > 0 {
                let (words, json) = parse_maybe_json(trim_left_ws(&rest[sep..]))?;
                node.words = std::iter::once(rest[..sep].to_string()).chain(words).collect();
                node.json = json;
            }
        }
        "MAINTAINER" | "STOPSIGNAL" | "USER" | "WORKDIR" if !rest.is_empty() => node.words = vec![rest.to_string()],
        "ONBUILD" if !rest.is_empty() => {
            let sub = parse_node(rest, escape)?;
            node.words = std::iter::once(sub.keyword.clone()).chain(sub.words.iter().cloned()).collect();
            node.sub = Some(Box::new(sub));
        }
        // Empty arguments, or an unknown instruction (BuildKit's parseIgnore).
        _ => {}
    }
    Ok(node)
}

/// `parseJSON`: `Ok(None)` when `rest` is not a JSON array.
fn parse_json(rest: &str) -> Result<Option<Vec<String>>, String> {
    let rest = trim_left_ws(rest);
    if !rest.starts_with('[') {
        return Ok(None);
    }
    let Ok(serde_json::Value::Array(items)) = serde_json::from_str::<serde_json::Value>(rest) else {
        return Ok(None);
    };
    items
        .into_iter()
        .map(|v| match v {
            serde_json::Value::String(s) => Ok(s),
            _ => Err(NOT_STRING_ARRAY.to_string()),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// `parseMaybeJSON`.
fn parse_maybe_json(rest: &str) -> Result<(Vec<String>, bool), String> {
    if rest.is_empty() {
        return Ok((Vec::new(), false));
    }
    Ok(match parse_json(rest)? {
        Some(words) => (words, true),
        None => (vec![rest.to_string()], false),
    })
}

/// `parseNameVal` (ENV, LABEL), flattened to key, value, key, value, ...
fn parse_name_val(rest: &str, keyword: &str, escape: char) -> Result<Vec<String>, String> {
    let words = parse_words(rest, escape);
    let Some(first) = words.first() else {
        return Ok(Vec::new());
    };
    if !first.contains('=') {
        return match split_once_token_space(rest) {
            Some((k, v)) => Ok(vec![k.to_string(), v.to_string()]),
            None => Err(format!("{keyword} must have two arguments")),
        };
    }
    let mut out = Vec::new();
    for word in &words {
        let Some((k, v)) = word.split_once('=') else {
            return Err(format!("Syntax error - can't find = in {}. Must be of the form: name=value", go_quote(word)));
        };
        out.push(k.to_string());
        out.push(v.to_string());
    }
    Ok(out)
}

/// `reWhitespace.Split(s, 2)` when it gives two parts.
fn split_once_token_space(s: &str) -> Option<(&str, &str)> {
    let pos = s.find(is_token_space)?;
    Some((&s[..pos], s[pos..].trim_start_matches(is_token_space)))
}

/// `parseWords`: splits on blanks, keeping quotes and escapes in the words.
fn parse_words(rest: &str, escape: char) -> Vec<String> {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote,
    }
    let chars: Vec<char> = rest.chars().collect();
    let n = chars.len();
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut word = String::new();
    let mut quote = '\0';
    let mut blank_ok = false;
    let mut pos = 0;
    loop {
        let mut ch = chars.get(pos).copied().unwrap_or('\0');
        if phase == Phase::Spaces {
            if pos == n {
                break;
            }
            if ch.is_whitespace() {
                pos += 1;
                continue;
            }
            phase = Phase::Word;
        }
        if pos == n {
            if blank_ok || !word.is_empty() {
                words.push(word);
            }
            break;
        }
        if phase == Phase::Word {
            if ch.is_whitespace() {
                phase = Phase::Spaces;
                if blank_ok || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                blank_ok = false;
                pos += 1;
                continue;
            }
            if ch == '\'' || ch == '"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
            }
            if ch == escape {
                if pos + 1 == n {
                    pos += 1;
                    continue;
                }
                word.push(ch);
                pos += 1;
                ch = chars[pos];
            }
            word.push(ch);
            pos += 1;
            continue;
        }
        // Phase::Quote
        if ch == quote {
            phase = Phase::Word;
        }
        if ch == escape && quote != '\'' {
            if pos + 1 == n {
                phase = Phase::Word;
                pos += 1;
                continue;
            }
            pos += 1;
            word.push(ch);
            ch = chars[pos];
        }
        word.push(ch);
        pos += 1;
    }
    words
}

/// `extractBuilderFlags`: the leading `--` words (quotes removed, `\` escapes applied) and the rest of the line.
fn extract_builder_flags(line: &str) -> (&str, Vec<String>) {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote,
    }
    let chars: Vec<(usize, char)> = line.char_indices().collect();
    let n = chars.len();
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut word = String::new();
    let mut quote = '\0';
    let mut blank_ok = false;
    let mut pos = 0;
    loop {
        let mut ch = chars.get(pos).map_or('\0', |c| c.1);
        if phase == Phase::Spaces {
            if pos == n {
                break;
            }
            if ch.is_whitespace() {
                pos += 1;
                continue;
            }
            if ch != '-' || pos + 1 == n || chars[pos + 1].1 != '-' {
                return (&line[chars[pos].0..], words);
            }
            phase = Phase::Word;
        }
        if pos == n {
            if word != "--" && (blank_ok || !word.is_empty()) {
                words.push(word);
            }
            break;
        }
        if phase == Phase::Word {
            if ch.is_whitespace() {
                phase = Phase::Spaces;
                if word == "--" {
                    return (&line[chars[pos].0..], words);
                }
                if blank_ok || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                word.clear();
                blank_ok = false;
                pos += 1;
                continue;
            }
            if ch == '\'' || ch == '"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
                pos += 1;
                continue;
            }
            if ch == '\\' {
                if pos + 1 == n {
                    pos += 1;
                    continue;
                }
                pos += 1;
                ch = chars[pos].1;
            }
            word.push(ch);
            pos += 1;
            continue;
        }
        // Phase::Quote
        if ch == quote {
            phase = Phase::Word;
            pos += 1;
            continue;
        }
        if ch == '\\' {
            if pos + 1 == n {
                phase = Phase::Word;
                pos += 1;
                continue;
            }
            pos += 1;
            ch = chars[pos].1;
        }
        word.push(ch);
        pos += 1;
    }
    ("", words)
}

/// `handleJSONArgs`.
fn handle_json_args(args: &[String], json: bool) -> Vec<String> {
    if args.is_empty() {
        Vec::new()
    } else if json {
        args.to_vec()
    } else {
        vec![args.join(" ")]
    }
}

/// The checks of BuildKit's `instructions.ParseInstruction` (flags aside).
fn validate(node: &Node) -> Result<(), String> {
    let kw = node.keyword.as_str();
    let args = &node.words;
    let at_least_one = || format!("{kw} requires at least one argument");
    let exactly_one = || format!("{kw} requires exactly one argument");
    match kw {
        "ENV" | "LABEL" => {
            if args.is_empty() {
                return Err(at_least_one());
            }
            if args.chunks(2).any(|pair| pair[0].is_empty()) {
                return Err(format!("{kw} names can not be blank"));
            }
        }
        "MAINTAINER" | "WORKDIR" | "USER" | "STOPSIGNAL" => {
            if args.len() != 1 {
                return Err(exactly_one());
            }
        }
        "ADD" | "COPY" => {
            if args.len() < 2 {
                return Err(format!(
                    "{kw} requires at least two arguments, but only one was provided. Destination could not be \
                     determined"
                ));
            }
            let dest = &args[args.len() - 1];
            if matches!(parse_heredoc(dest), Ok(Some(_))) {
                return Err(format!("{kw} cannot accept a heredoc as a destination"));
            }
        }
        "FROM" => match args.len() {
            1 => {}
            3 if args[1].eq_ignore_ascii_case("as") => {
                let name = args[2].to_lowercase();
                let valid = name.starts_with(|c: char| c.is_ascii_lowercase())
                    && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c));
                if !valid {
                    return Err(format!(
                        "invalid name for build stage: {}, name can't start with a number or contain symbols",
                        go_quote(&args[2])
                    ));
                }
            }
            2 if args[1].eq_ignore_ascii_case("as") => {
                return Err("FROM requires either one or three arguments (the stage name after AS is missing)".into())
            }
            0 => return Err("FROM requires either one or three arguments (no base image given)".into()),
            _ => return Err("FROM requires either one or three arguments".into()),
        },
        "ONBUILD" => {
            let Some(trigger) = args.first() else {
                return Err(at_least_one());
            };
            let trigger = trigger.trim().to_uppercase();
            match trigger.as_str() {
                "ONBUILD" => return Err("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".into()),
                "MAINTAINER" | "FROM" => return Err(format!("{trigger} isn't allowed as an ONBUILD trigger")),
                _ => {}
            }
        }
        "RUN" | "CMD" | "ENTRYPOINT" => {}
        "HEALTHCHECK" => {
            let Some(typ) = args.first() else {
                return Err(at_least_one());
            };
            let typ = typ.to_uppercase();
            let rest = &args[1..];
            match typ.as_str() {
                "NONE" if !rest.is_empty() => return Err("HEALTHCHECK NONE takes no arguments".into()),
                "NONE" => {}
                "CMD" => {
                    if handle_json_args(rest, node.json).is_empty() {
                        return Err("Missing command after HEALTHCHECK CMD".into());
                    }
                }
                _ => return Err(format!("Unknown type {} in HEALTHCHECK (try CMD)", go_quote(&typ))),
            }
        }
        "EXPOSE" => {
            if args.is_empty() {
                return Err(at_least_one());
            }
        }
        "VOLUME" => {
            if args.is_empty() {
                return Err(at_least_one());
            }
            if args.iter().any(|v| v.trim().is_empty()) {
                return Err("VOLUME specified can not be an empty string".into());
            }
        }
        "ARG" => {
            if args.is_empty() {
                return Err(at_least_one());
            }
            if args.iter().any(|a| a.starts_with('=')) {
                return Err("ARG names can not be blank".into());
            }
        }
        "SHELL" => {
            if handle_json_args(args, node.json).is_empty() {
                return Err(at_least_one());
            }
            if !node.json {
                return Err("SHELL requires the arguments to be in JSON form".into());
            }
        }
        _ => return Err(format!("unknown instruction: {kw}")),
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------------
// Heredocs
// ---------------------------------------------------------------------------------------------------------------

struct HeredocSpec {
    name: String,
    expand: bool,
    chomp: bool,
}

/// `heredocsFromLine`: the heredoc words of a whole instruction line.
fn heredocs_from_line(line: &str) -> Result<Vec<HeredocSpec>, String> {
    let keep = |_: &str| Lookup::Keep;
    let words = match lex(line, '\\', true, true, &keep) {
        Ok((_, words)) => words,
        Err(_) => return Ok(Vec::new()),
    };
    let mut docs = Vec::new();
    for word in words {
        if let Some(doc) = parse_heredoc(&word)? {
            docs.push(doc);
        }
    }
    Ok(docs)
}

/// `ParseHeredoc`: `^(\d*)<<(-?)([^<]*)$`, the rest being a single shell word.
fn parse_heredoc(src: &str) -> Result<Option<HeredocSpec>, String> {
    let s = src.trim_start_matches(|c: char| c.is_ascii_digit());
    let Some(s) = s.strip_prefix("<<") else {
        return Ok(None);
    };
    let (chomp, rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s),
    };
    if rest.is_empty() || rest.contains('<') {
        return Ok(None);
    }
    let keep = |_: &str| Lookup::Keep;
    let (_, words) = lex(rest, '\\', false, false, &keep)?;
    if words.len() != 1 {
        return Ok(None);
    }
    let (_, raw_words) = lex(rest, '\\', true, false, &keep)?;
    if raw_words.len() != words.len() {
        return Err(format!("internal lexing of heredoc produced inconsistent results: {rest}"));
    }
    let quotes = |w: &str| w.chars().filter(|&c| c == '\'' || c == '"').count();
    let expand = quotes(&words[0]) == quotes(&raw_words[0]);
    Ok(Some(HeredocSpec { name: words[0].clone(), expand, chomp }))
}

// ---------------------------------------------------------------------------------------------------------------
// Key/value arguments
// ---------------------------------------------------------------------------------------------------------------

/// `ENV`/`ARG`/`LABEL` arguments as key/value pairs: `a=b c="d e"` (quotes removed, escapes applied), the legacy
/// `ENV key value with spaces` form, and `ARG NAME` without value (None). Uses the default escape `\`; see
/// [`key_values_with_escape`]. Variables are not expanded (`$X` stays `$X`; note that `"\$X"` gives `$X` too: when
/// expansion matters, run [`expand`] on the words of [`key_values_raw`] instead).
#[cfg(test)]
pub fn key_values(keyword: &str, args: &str) -> Vec<(String, Option<String>)> {
    key_values_with_escape(keyword, args, '\\')
}

/// [`key_values`] with the Dockerfile's escape character.
#[cfg(test)]
pub fn key_values_with_escape(keyword: &str, args: &str, escape: char) -> Vec<(String, Option<String>)> {
    let keep = |_: &str| Lookup::Keep;
    let unquote = |s: &str| lex(s, escape, false, false, &keep).map(|(r, _)| r).unwrap_or_else(|_| s.to_string());
    key_values_raw(keyword, args, escape).into_iter().map(|(k, v)| (unquote(&k), v.map(|v| unquote(&v)))).collect()
}

/// Key/value words as BuildKit's parser splits them, quotes and escapes still in place (what BuildKit later feeds
/// to its shell lexer, i.e. to [`expand`]): `ENV a="b c"` gives `("a", Some("\"b c\""))`.
pub fn key_values_raw(keyword: &str, args: &str, escape: char) -> Vec<(String, Option<String>)> {
    let args = args.trim();
    let words = parse_words(args, escape);
    let split = |w: &String| match w.split_once('=') {
        Some((k, v)) => (k.to_string(), Some(v.to_string())),
        None => (w.clone(), None),
    };
    if words.is_empty() {
        return Vec::new();
    }
    let legacy_form = matches!(keyword.to_ascii_uppercase().as_str(), "ENV" | "LABEL") && !words[0].contains('=');
    if legacy_form {
        return vec![match split_once_token_space(args) {
            Some((k, v)) => (k.to_string(), Some(v.to_string())),
            None => (args.to_string(), None),
        }];
    }
    words.iter().map(split).collect()
}

// ---------------------------------------------------------------------------------------------------------------
// Shell-word expansion (shell/lex.go)
// ---------------------------------------------------------------------------------------------------------------

/// Shell-style word expansion as BuildKit's shell lexer does for FROM/COPY/ENV etc. (`ProcessWord`): quotes
/// removed, escapes applied, variables expanded; `vars` returns `None` for an unset variable, which expands to "".
/// The error text is BuildKit's (`failed to process "…": …`).
pub fn expand(word: &str, vars: &dyn Fn(&str) -> Option<String>, escape: char) -> Result<String, String> {
    let lookup = |name: &str| vars(name).map_or(Lookup::Unset, Lookup::Set);
    lex(word, escape, false, false, &lookup).map(|(result, _)| result)
}

/// Like [`expand`], split into words after expansion as BuildKit's `ProcessWords` does (quoted blanks do not
/// split, empty words are dropped).
#[cfg(test)]
pub fn expand_words(word: &str, vars: &dyn Fn(&str) -> Option<String>, escape: char) -> Result<Vec<String>, String> {
    let lookup = |name: &str| vars(name).map_or(Lookup::Unset, Lookup::Set);
    lex(word, escape, false, false, &lookup).map(|(_, words)| words)
}

/// What a variable lookup gives the lexer.
enum Lookup {
    Set(String),
    Unset,
    /// Leave the reference as written (BuildKit's `SkipUnsetEnv`).
    Keep,
}

fn lex(
    word: &str,
    escape: char,
    raw_quotes: bool,
    raw_escapes: bool,
    lookup: &dyn Fn(&str) -> Lookup,
) -> Result<(String, Vec<String>), String> {
    let mut lexer = Lexer { chars: word.chars().collect(), pos: 0, escape, raw_quotes, raw_escapes, lookup };
    lexer.process_stop_on(None, raw_escapes).map_err(|e| format!("failed to process {}: {e}", go_quote(word)))
}

struct Lexer<'a> {
    chars: Vec<char>,
    pos: usize,
    escape: char,
    raw_quotes: bool,
    raw_escapes: bool,
    lookup: &'a dyn Fn(&str) -> Lookup,
}

#[derive(Default)]
struct Words {
    buf: String,
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, ch: char) {
        if ch.is_whitespace() {
            if self.in_word && !self.buf.is_empty() {
                self.words.push(std::mem::take(&mut self.buf));
                self.in_word = false;
            }
        } else {
            self.add_raw_char(ch);
        }
    }

    fn add_raw_char(&mut self, ch: char) {
        self.buf.push(ch);
        self.in_word = true;
    }

    fn add_string(&mut self, s: &str) {
        s.chars().for_each(|c| self.add_char(c));
    }

    fn add_raw_string(&mut self, s: &str) {
        self.buf.push_str(s);
        self.in_word = true;
    }

    fn finish(mut self) -> Vec<String> {
        if !self.buf.is_empty() {
            self.words.push(self.buf);
        }
        self.words
    }
}

impl Lexer<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next_char(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    fn process_stop_on(&mut self, stop: Option<char>, raw_escapes: bool) -> Result<(String, Vec<String>), String> {
        let saved = std::mem::replace(&mut self.raw_escapes, raw_escapes);
        let result = self.stop_on(stop);
        self.raw_escapes = saved;
        result
    }

    fn stop_on(&mut self, stop: Option<char>) -> Result<(String, Vec<String>), String> {
        let mut result = String::new();
        let mut words = Words::default();
        while let Some(ch) = self.peek() {
            if Some(ch) == stop {
                self.next_char();
                return Ok((result, words.finish()));
            }
            match ch {
                '$' => {
                    let value = self.process_dollar()?;
                    result.push_str(&value);
                    words.add_string(&value);
                }
                '\'' => {
                    let value = self.process_single_quote()?;
                    result.push_str(&value);
                    words.add_raw_string(&value);
                }
                '"' => {
                    let value = self.process_double_quote()?;
                    result.push_str(&value);
                    words.add_raw_string(&value);
                }
                _ => {
                    self.next_char();
                    let mut ch = ch;
                    if ch == self.escape {
                        if self.raw_escapes {
                            words.add_raw_char(ch);
                            result.push(ch);
                        }
                        match self.next_char() {
                            None => break,
                            Some(c) => ch = c,
                        }
                        words.add_raw_char(ch);
                    } else {
                        words.add_char(ch);
                    }
                    result.push(ch);
                }
            }
        }
        if let Some(stop) = stop {
            return Err(format!("unexpected end of statement while looking for matching {stop}"));
        }
        Ok((result, words.finish()))
    }

    fn process_single_quote(&mut self) -> Result<String, String> {
        let mut result = String::new();
        let open = self.next_char().unwrap_or('\'');
        if self.raw_quotes {
            result.push(open);
        }
        loop {
            match self.next_char() {
                None => return Err("unexpected end of statement while looking for matching single-quote".into()),
                Some('\'') => {
                    if self.raw_quotes {
                        result.push('\'');
                    }
                    return Ok(result);
                }
                Some(c) => result.push(c),
            }
        }
    }

    fn process_double_quote(&mut self) -> Result<String, String> {
        let mut result = String::new();
        let open = self.next_char().unwrap_or('"');
        if self.raw_quotes {
            result.push(open);
        }
        loop {
            match self.peek() {
                None => return Err("unexpected end of statement while looking for matching double-quote".into()),
                Some('"') => {
                    self.next_char();
                    if self.raw_quotes {
                        result.push('"');
                    }
                    return Ok(result);
                }
                Some('$') => {
                    let value = self.process_dollar()?;
                    result.push_str(&value);
                }
                Some(_) => {
                    let mut ch = self.next_char().unwrap_or_default();
                    if ch == self.escape {
                        if self.raw_escapes {
                            result.push(ch);
                        }
                        match self.peek() {
                            None => continue,
                            Some(c) if c == '"' || c == '$' || c == self.escape => {
                                ch = self.next_char().unwrap_or_default();
                            }
                            Some(_) => {}
                        }
                    }
                    result.push(ch);
                }
            }
        }
    }

    fn process_dollar(&mut self) -> Result<String, String> {
        self.next_char(); // '$'
        if self.peek() != Some('{') {
            let name = self.process_name();
            if name.is_empty() {
                return Ok("$".into());
            }
            return Ok(match (self.lookup)(&name) {
                Lookup::Set(v) => v,
                Lookup::Unset => String::new(),
                Lookup::Keep => format!("${name}"),
            });
        }
        self.next_char(); // '{'
        match self.peek() {
            None => return Err("syntax error: missing '}'".into()),
            Some('{' | '}' | ':') => return Err("syntax error: bad substitution".into()),
            Some(_) => {}
        }
        let name = self.process_name();
        let Some(mut ch) = self.next_char() else {
            return Err("syntax error: missing '}'".into());
        };
        let mut modifier = ch.to_string();
        match ch {
            '}' => {
                return Ok(match (self.lookup)(&name) {
                    Lookup::Set(v) => v,
                    Lookup::Unset => String::new(),
                    Lookup::Keep => format!("${{{name}}}"),
                })
            }
            '/' => return self.process_replace(&name),
            ':' | '+' | '-' | '?' | '#' | '%' => {}
            _ => return Err(format!("unsupported modifier ({modifier}) in substitution")),
        }
        let null_is_unset = ch == ':';
        if null_is_unset {
            let Some(c) = self.next_char() else {
                return Err("syntax error: missing '}'".into());
            };
            ch = c;
            modifier.push(ch);
        }
        let raw_escapes = ch == '#' || ch == '%';
        if null_is_unset && raw_escapes {
            return Err(format!("unsupported modifier ({modifier}) in substitution"));
        }
        let word = match self.process_stop_on(Some('}'), raw_escapes) {
            Ok((w, _)) => w,
            Err(e) => {
                if self.peek().is_none() {
                    return Err("syntax error: missing '}'".into());
                }
                return Err(e);
            }
        };
        let (value, set) = match (self.lookup)(&name) {
            Lookup::Set(v) => (v, true),
            Lookup::Unset => (String::new(), false),
            Lookup::Keep => return Ok(format!("${{{name}{modifier}{word}}}")),
        };
        let empty = !set || (null_is_unset && value.is_empty());
        match ch {
            '-' => Ok(if empty { word } else { value }),
            '+' => Ok(if empty { String::new() } else { word }),
            '?' => {
                if !set {
                    let message = if word.is_empty() { "is not allowed to be unset" } else { &word };
                    Err(format!("{name}: {message}"))
                } else if null_is_unset && value.is_empty() {
                    let message = if word.is_empty() { "is not allowed to be empty" } else { &word };
                    Err(format!("{name}: {message}"))
                } else {
                    Ok(value)
                }
            }
            '%' | '#' => {
                let (greedy, pattern) = match word.strip_prefix(ch) {
                    Some(p) => (true, p),
                    None => (false, word.as_str()),
                };
                let pattern =
                    compile_glob(pattern).map_err(|e| format!("invalid pattern ({pattern}) in substitution: {e}"))?;
                Ok(if ch == '%' {
                    trim_suffix(&pattern, &value, greedy)
                } else {
                    trim_prefix(&pattern, &value, greedy)
                })
            }
            _ => Err(format!("unsupported modifier ({modifier}) in substitution")),
        }
    }

    /// `${name/pattern/replacement}` and `${name//pattern/replacement}`, after the first `/`.
    fn process_replace(&mut self, name: &str) -> Result<String, String> {
        let replace_all = self.peek() == Some('/');
        if replace_all {
            self.next_char();
        }
        let pattern = match self.process_stop_on(Some('/'), true) {
            Ok((p, _)) => p,
            Err(e) => {
                if self.peek().is_none() {
                    return Err("syntax error: missing '/' in ${}".into());
                }
                return Err(e);
            }
        };
        let replacement = match self.process_stop_on(Some('}'), true) {
            Ok((r, _)) => r,
            Err(e) => {
                if self.peek().is_none() {
                    return Err("syntax error: missing '}'".into());
                }
                return Err(e);
            }
        };
        let value = match (self.lookup)(name) {
            Lookup::Set(v) => v,
            Lookup::Unset => String::new(),
            Lookup::Keep => return Ok(format!("${{{name}/{pattern}/{replacement}}}")),
        };
        let glob = compile_glob(&pattern).map_err(|e| format!("invalid pattern ({pattern}) in substitution: {e}"))?;
        Ok(replace_glob(&glob, &value, &replacement, replace_all))
    }

    fn process_name(&mut self) -> String {
        let mut name = String::new();
        while let Some(ch) = self.peek() {
            if name.is_empty() && ch.is_numeric() {
                while let Some(c) = self.peek().filter(|c| c.is_numeric()) {
                    self.next_char();
                    name.push(c);
                }
                return name;
            }
            if name.is_empty() && matches!(ch, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0') {
                self.next_char();
                return ch.to_string();
            }
            if !ch.is_alphabetic() && !ch.is_numeric() && ch != '_' {
                break;
            }
            self.next_char();
            name.push(ch);
        }
        name
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Glob {
    Star,
    Any,
    Lit(char),
}

/// `convertShellPatternToRegex` as a glob: `*`, `?`, `\*`, `\?`, `\\`; `\}` and `\/` are `}` and `/`.
fn compile_glob(pattern: &str) -> Result<Vec<Glob>, String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '*' => out.push(Glob::Star),
            '?' => out.push(Glob::Any),
            '\\' => match chars.get(i) {
                Some('}' | '/') => {}
                Some(&n @ ('*' | '?' | '\\')) => {
                    out.push(Glob::Lit(n));
                    i += 1;
                }
                Some(&n) => return Err(format!("invalid escape '\\{n}'")),
                None => return Err("invalid escape '\\'".into()),
            },
            c => out.push(Glob::Lit(c)),
        }
    }
    Ok(out)
}

/// Whether the whole of `s` matches `pattern`.
fn glob_match(pattern: &[Glob], s: &[char]) -> bool {
    let mut dp = vec![false; s.len() + 1];
    dp[0] = true;
    for token in pattern {
        let mut next = vec![false; s.len() + 1];
        match *token {
            Glob::Star => {
                let mut any = false;
                for (j, slot) in next.iter_mut().enumerate() {
                    any |= dp[j];
                    *slot = any;
                }
            }
            Glob::Any => (1..=s.len()).for_each(|j| next[j] = dp[j - 1]),
            Glob::Lit(c) => (1..=s.len()).for_each(|j| next[j] = dp[j - 1] && s[j - 1] == c),
        }
        dp = next;
    }
    dp[s.len()]
}

/// `${v#p}` (shortest) / `${v##p}` (longest): removes a matching prefix.
fn trim_prefix(pattern: &[Glob], value: &str, greedy: bool) -> String {
    let chars: Vec<char> = value.chars().collect();
    let mut lens: Box<dyn Iterator<Item = usize>> =
        if greedy { Box::new((0..=chars.len()).rev()) } else { Box::new(0..=chars.len()) };
    match lens.find(|&len| glob_match(pattern, &chars[..len])) {
        Some(len) => chars[len..].iter().collect(),
        None => value.to_string(),
    }
}

/// `${v%p}` (shortest) / `${v%%p}` (longest): removes a matching suffix.
fn trim_suffix(pattern: &[Glob], value: &str, greedy: bool) -> String {
    let chars: Vec<char> = value.chars().collect();
    let mut starts: Box<dyn Iterator<Item = usize>> =
        if greedy { Box::new(0..=chars.len()) } else { Box::new((0..=chars.len()).rev()) };
    match starts.find(|&start| glob_match(pattern, &chars[start..])) {
        Some(start) => chars[..start].iter().collect(),
        None => value.to_string(),
    }
}

/// `${v/p/r}` / `${v//p/r}`: leftmost, longest matches replaced (non-overlapping; an empty match right after a
/// previous match is skipped, as Go's `ReplaceAllString` does).
fn replace_glob(pattern: &[Glob], value: &str, replacement: &str, all: bool) -> String {
    let chars: Vec<char> = value.chars().collect();
    let n = chars.len();
    let find_from = |from: usize| {
        (from..=n).find_map(|start| {
            (start..=n).rev().find(|&end| glob_match(pattern, &chars[start..end])).map(|end| (start, end))
        })
    };
    let mut out = String::new();
    let mut last = 0;
    let mut search = 0;
    let mut prev_end = None;
    while search <= n {
        let Some((start, end)) = find_from(search) else {
            break;
        };
        if start == end && prev_end == Some(start) {
            search = start + 1;
            continue;
        }
        out.extend(&chars[last..start]);
        out.push_str(replacement);
        last = end;
        prev_end = Some(end);
        if !all {
            break;
        }
        search = if end == start { end + 1 } else { end };
    }
    out.extend(&chars[last.min(n)..]);
    out
}

/// Go's `%q` for the strings in BuildKit's messages.
fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\x7f' => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where the real Dockerfiles live (adjust when the module moves).
    const REAL_FILES_ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

    fn p(text: &str) -> Dockerfile {
        parse(text).unwrap_or_else(|e| panic!("unexpected error: {e}\n{text}"))
    }

    fn err(text: &str) -> ParseError {
        match parse(text) {
            Ok(d) => panic!("expected an error, got {d:#?}"),
            Err(e) => e,
        }
    }

    fn shell(s: &str) -> Args {
        Args::Shell(s.to_string())
    }

    fn exec(words: &[&str]) -> Args {
        Args::Exec(words.iter().map(|w| w.to_string()).collect())
    }

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn ex(word: &str, pairs: &[(&str, &str)]) -> Result<String, String> {
        let vars = map(pairs);
        expand(word, &|name| vars.get(name).cloned(), '\\')
    }

    fn kv(pairs: &[(&str, Option<&str>)]) -> Vec<(String, Option<String>)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.map(str::to_string))).collect()
    }

    fn lines(d: &Dockerfile) -> Vec<(usize, usize, &str)> {
        d.instructions.iter().map(|i| (i.line, i.end_line, i.keyword.as_str())).collect()
    }

    // --- directives -------------------------------------------------------------------------------------------

    #[test]
    fn directives_are_read_at_the_top() {
        let d = p("# syntax=docker/dockerfile:1.7\n# escape=`\n# check=skip=all;error=true\nFROM alpine\n");
        assert_eq!(d.directives.syntax.as_deref(), Some("docker/dockerfile:1.7"));
        assert_eq!(d.directives.escape, '`');
        assert_eq!(d.directives.check.as_deref(), Some("skip=all;error=true"));
        assert!(d.comments.is_empty(), "directives are not comments: {:?}", d.comments);
        assert_eq!(d.instructions[0].line, 4);
    }

    #[test]
    fn directive_keys_are_case_insensitive_and_blanks_are_allowed() {
        let d = p("#SYNTAX = docker/dockerfile:1 \n#  Escape =  \\  \n  # CHECK=error=true\nFROM a\n");
        assert_eq!(d.directives.syntax.as_deref(), Some("docker/dockerfile:1"));
        assert_eq!(d.directives.escape, '\\');
        assert_eq!(d.directives.check.as_deref(), Some("error=true"));
    }

    #[test]
    fn directive_defaults() {
        let d = p("FROM a\n");
        assert_eq!(d.directives, Directives { syntax: None, escape: '\\', check: None });
    }

    #[test]
    fn repeated_directive_is_an_error() {
        let e = err("# syntax=a\n# SYNTAX=b\nFROM a\n");
        assert_eq!(e.line, 2);
        assert_eq!(e.message, "only one syntax parser directive can be used");
        let e = err("# escape=`\n# escape=`\nFROM a\n");
        assert_eq!(e.message, "only one escape parser directive can be used");
    }

    #[test]
    fn invalid_escape_directive_is_an_error() {
        let e = err("# escape=x\nFROM a\n");
        assert_eq!(e.line, 1);
        assert_eq!(e.message, "invalid escape token 'x' does not match ` or \\");
    }

    #[test]
    fn directives_end_at_the_first_other_line() {
        // After a comment.
        let d = p("# hello\n# escape=`\nFROM a\n");
        assert_eq!(d.directives.escape, '\\');
        assert_eq!(
            d.comments,
            vec![Comment { line: 1, text: "hello".into() }, Comment { line: 2, text: "escape=`".into() }]
        );
        // After a blank line.
        let d = p("# syntax=x\n\n# escape=`\nFROM a\n");
        assert_eq!(d.directives.syntax.as_deref(), Some("x"));
        assert_eq!(d.directives.escape, '\\');
        assert_eq!(d.comments, vec![Comment { line: 3, text: "escape=`".into() }]);
        // After an unknown directive-like comment.
        let d = p("# foo=bar\n# escape=`\nFROM a\n");
        assert_eq!(d.directives.escape, '\\');
        assert_eq!(d.comments.len(), 2);
        // After an instruction: a repeated key is then only a comment, not an error.
        let d = p("# escape=`\nFROM a\n# escape=`\n# syntax=x\n");
        assert_eq!(d.directives.escape, '`');
        assert_eq!(d.directives.syntax, None);
        assert_eq!(d.comments.iter().map(|c| c.line).collect::<Vec<_>>(), vec![3, 4]);
    }

    // --- comments and line continuation ------------------------------------------------------------------------

    #[test]
    fn comments_are_collected_with_lines() {
        let d = p("# one\nFROM a\n   #   two  \nRUN x # not a comment\n#\n");
        assert_eq!(
            d.comments,
            vec![
                Comment { line: 1, text: "one".into() },
                Comment { line: 3, text: "two".into() },
                Comment { line: 5, text: "".into() },
            ]
        );
        assert_eq!(d.instructions[1].args, shell("x # not a comment"));
    }

    #[test]
    fn continuation_joins_lines_as_buildkit() {
        let d = p("FROM a\nRUN apk add \\\n      bash \\\n      git\nUSER 1\n");
        assert_eq!(lines(&d), vec![(1, 1, "FROM"), (2, 4, "RUN"), (5, 5, "USER")]);
        // Continuation lines keep their leading blanks; the escape is removed.
        assert_eq!(d.instructions[1].original, "RUN apk add       bash       git");
        assert_eq!(d.instructions[1].args, shell("apk add       bash       git"));
    }

    #[test]
    fn continuation_allows_trailing_blanks_after_the_escape() {
        let d = p("FROM a\nRUN echo a \\  \t\n  b\n");
        assert_eq!(lines(&d), vec![(1, 1, "FROM"), (2, 3, "RUN")]);
        assert_eq!(d.instructions[1].args, shell("echo a   b"));
    }

    #[test]
    fn escaped_escape_at_line_end_is_not_a_continuation() {
        let d = p("FROM a\nRUN echo a\\\\\nUSER b\n");
        assert_eq!(lines(&d), vec![(1, 1, "FROM"), (2, 2, "RUN"), (3, 3, "USER")]);
        assert_eq!(d.instructions[1].args, shell("echo a\\\\"));
    }

    #[test]
    fn comments_and_empty_lines_inside_a_continuation_are_dropped() {
        let text = "FROM a\nRUN one \\\n# inside\n\n   \n  # indented \\\n    two \\\n    three\nUSER x\n";
        let d = p(text);
        assert_eq!(lines(&d), vec![(1, 1, "FROM"), (2, 8, "RUN"), (9, 9, "USER")]);
        assert_eq!(d.instructions[1].args, shell("one     two     three"));
        assert_eq!(
            d.comments,
            vec![Comment { line: 3, text: "inside".into() }, Comment { line: 6, text: "indented \\".into() }]
        );
    }

    #[test]
    fn continuation_may_run_to_the_end_of_the_file() {
        let d = p("FROM a\nRUN x \\\n");
        assert_eq!(lines(&d), vec![(1, 1, "FROM"), (2, 2, "RUN")]);
        let d = p("FROM a\nRUN x \\\n\n\n");
        assert_eq!(lines(&d), vec![(1, 1, "FROM"), (2, 4, "RUN")]);
        assert_eq!(d.instructions[1].args, shell("x"));
    }

    #[test]
    fn a_comment_line_never_continues() {
        let d = p("FROM a\n# comment \\\nRUN x\n");
        assert_eq!(lines(&d), vec![(1, 1, "FROM"), (3, 3, "RUN")]);
    }

    #[test]
    fn backtick_escape_windows_style() {
        let text = concat!(
            "# escape=`\n",
            "FROM mcr.microsoft.com/windows/servercore\n",
            "COPY testfile.txt c:\\\n",
            "RUN dir c:\\ `\n",
            "    /s\n",
            "WORKDIR c:\\\\app\n",
        );
        let d = p(text);
        assert_eq!(d.directives.escape, '`');
        assert_eq!(lines(&d), vec![(2, 2, "FROM"), (3, 3, "COPY"), (4, 5, "RUN"), (6, 6, "WORKDIR")]);
        assert_eq!(d.instructions[1].args, shell("testfile.txt c:\\"));
        assert_eq!(d.instructions[2].args, shell("dir c:\\     /s"));
        assert_eq!(d.instructions[3].args, shell("c:\\\\app"));
        // Without the directive, the backslash continues the COPY into the RUN.
        let d = p("FROM a\nCOPY testfile.txt c:\\\nRUN dir c:\\\n");
        assert_eq!(lines(&d), vec![(1, 1, "FROM"), (2, 3, "COPY")]);
    }

    #[test]
    fn crlf_line_endings() {
        let text = concat!(
            "# syntax=x\r\n",
            "# note\r\n",
            "FROM a AS b\r\n",
            "RUN one \\\r\n",
            "# c\r\n",
            "  two\r\n",
            "RUN <<EOF\r\n",
            "echo hi\r\n",
            "EOF\r\n",
            "USER u\r\n",
        );
        let d = p(text);
        assert_eq!(d.directives.syntax.as_deref(), Some("x"));
        assert_eq!(d.comments, vec![Comment { line: 2, text: "note".into() }, Comment { line: 5, text: "c".into() }]);
        assert_eq!(lines(&d), vec![(3, 3, "FROM"), (4, 6, "RUN"), (7, 9, "RUN"), (10, 10, "USER")]);
        assert_eq!(d.instructions[1].args, shell("one   two"));
        assert_eq!(d.instructions[2].heredocs[0].content, "echo hi\r\n");
        assert_eq!(d.instructions[3].args, shell("u"));
        assert_eq!(d.stages(&BTreeMap::new()).unwrap()[0].name.as_deref(), Some("b"));
    }

    #[test]
    fn byte_order_mark_is_ignored() {
        let d = p("\u{feff}# escape=`\nFROM a\n");
        assert_eq!(d.directives.escape, '`');
    }

    #[test]
    fn keywords_are_case_insensitive() {
        let d = p("from alpine as Build\nRun echo hi\ncopy --FROM=build a b\n");
        assert_eq!(lines(&d), vec![(1, 1, "FROM"), (2, 2, "RUN"), (3, 3, "COPY")]);
        assert_eq!(d.instructions[2].flags, vec![Flag { name: "FROM".into(), value: Some("build".into()) }]);
        assert_eq!(d.stages(&BTreeMap::new()).unwrap()[0].name.as_deref(), Some("build"));
    }

    // --- heredocs ----------------------------------------------------------------------------------------------

    #[test]
    fn heredoc_run() {
        let d = p("FROM a\nRUN <<EOF\nset -e\n# not a comment\necho $HOME\nEOF\nUSER x\n");
        assert_eq!(lines(&d), vec![(1, 1, "FROM"), (2, 6, "RUN"), (7, 7, "USER")]);
        let run = &d.instructions[1];
        assert_eq!(run.args, shell("<<EOF"));
        assert_eq!(
            run.heredocs,
            vec![Heredoc {
                name: "EOF".into(),
                content: "set -e\n# not a comment\necho $HOME\n".into(),
                expand: true,
                strip_tabs: false,
            }]
        );
        assert!(d.comments.is_empty());
    }

    #[test]
    fn heredoc_copy_with_destination() {
        let d = p("FROM a\nCOPY --chmod=0755 <<EOF /usr/local/bin/hello\n#!/bin/sh\necho hello\nEOF\n");
        let copy = &d.instructions[1];
        assert_eq!((copy.line, copy.end_line), (2, 5));
        assert_eq!(copy.args, shell("<<EOF /usr/local/bin/hello"));
        assert_eq!(copy.flag("chmod").and_then(|f| f.value.as_deref()), Some("0755"));
        assert_eq!(copy.heredocs[0].content, "#!/bin/sh\necho hello\n");
    }

    #[test]
    fn heredoc_add_and_redirect_forms() {
        let d = p("FROM a\nADD <<A /a\nx\nA\nRUN cat <<EOF > /file\nhello\nEOF\n");
        assert_eq!(lines(&d), vec![(1, 1, "FROM"), (2, 4, "ADD"), (5, 7, "RUN")]);
        assert_eq!(d.instructions[1].heredocs[0].name, "A");
        assert_eq!(d.instructions[2].heredocs[0].content, "hello\n");
    }

    #[test]
    fn several_heredocs_on_one_line() {
        let d = p("FROM a\nRUN <<A <<B bash\necho a\nA\necho b\nB\nUSER x\n");
        let run = &d.instructions[1];
        assert_eq!((run.line, run.end_line), (2, 6));
        assert_eq!(run.heredocs.iter().map(|h| h.name.as_str()).collect::<Vec<_>>(), vec!["A", "B"]);
        assert_eq!(run.heredocs[0].content, "echo a\n");
        assert_eq!(run.heredocs[1].content, "echo b\n");
        assert_eq!(d.instructions[2].line, 7);
    }

    #[test]
    fn heredoc_strip_tabs() {
        let d = p("FROM a\nRUN <<-EOF\n\techo a\n\t\techo b\n  echo c\n\tEOF\n");
        let h = &d.instructions[1].heredocs[0];
        assert!(h.strip_tabs);
        assert_eq!(h.content, "echo a\necho b\n  echo c\n");
        assert_eq!(d.instructions[1].end_line, 6);
        // Without `-`, a tab-indented delimiter does not end the heredoc.
        let e = err("FROM a\nRUN <<EOF\n\techo a\n\tEOF\n");
        assert_eq!(e.line, 2);
    }

    #[test]
    fn quoted_heredoc_delimiters_do_not_expand() {
        let d =
            p("FROM a\nRUN <<\"EOF\"\n$A\nEOF\nRUN <<'X'\n$B\nX\nRUN <<-E\"N\"D\n\t$C\nEND\nRUN <<PLAIN\n$D\nPLAIN\n");
        let h: Vec<_> = d.instructions[1..].iter().map(|i| &i.heredocs[0]).collect();
        assert_eq!(h.iter().map(|h| h.name.as_str()).collect::<Vec<_>>(), vec!["EOF", "X", "END", "PLAIN"]);
        assert_eq!(h.iter().map(|h| h.expand).collect::<Vec<_>>(), vec![false, false, false, true]);
        assert_eq!(h[2].content, "$C\n");
    }

    #[test]
    fn heredocs_only_for_run_copy_add() {
        // ENTRYPOINT does not take heredocs: the next lines are instructions of their own.
        let e = err("FROM a\nENTRYPOINT cat <<EOF\nEOF\n");
        assert_eq!(e, ParseError::new(3, "unknown instruction: EOF"));
        let d = p("FROM a\nLABEL a=<<EOF\nUSER x\n");
        assert_eq!(lines(&d), vec![(1, 1, "FROM"), (2, 2, "LABEL"), (3, 3, "USER")]);
        assert!(d.instructions[1].heredocs.is_empty());
        // Nor for the JSON form.
        let d = p("FROM a\nRUN [\"cat\", \"<<EOF\"]\nUSER x\n");
        assert!(d.instructions[1].heredocs.is_empty());
        assert_eq!(d.instructions[1].args, exec(&["cat", "<<EOF"]));
        // A quoted `<<` is not a heredoc.
        let d = p("FROM a\nRUN echo \"<<EOF\"\nUSER x\n");
        assert!(d.instructions[1].heredocs.is_empty());
    }

    #[test]
    fn heredoc_under_onbuild() {
        let d = p("FROM a\nONBUILD RUN <<EOF\necho hi\nEOF\nUSER x\n");
        assert_eq!(lines(&d), vec![(1, 1, "FROM"), (2, 4, "ONBUILD"), (5, 5, "USER")]);
        assert_eq!(d.instructions[1].heredocs[0].content, "echo hi\n");
        assert_eq!(d.instructions[1].args, shell("RUN <<EOF"));
    }

    #[test]
    fn heredoc_after_continuation_lines() {
        let d = p("FROM a\nRUN --mount=type=cache,target=/x \\\n    bash <<EOF\necho $X\nEOF\nUSER x\n");
        assert_eq!(lines(&d), vec![(1, 1, "FROM"), (2, 5, "RUN"), (6, 6, "USER")]);
        let run = &d.instructions[1];
        assert_eq!(run.flag("mount").and_then(|f| f.value.as_deref()), Some("type=cache,target=/x"));
        assert_eq!(run.args, shell("bash <<EOF"));
        assert_eq!(run.heredocs[0].content, "echo $X\n");
    }

    #[test]
    fn heredoc_last_line_without_newline() {
        let d = p("FROM a\nRUN <<EOF\necho\nEOF");
        assert_eq!(d.instructions[1].end_line, 4);
        assert_eq!(d.instructions[1].heredocs[0].content, "echo\n");
    }

    #[test]
    fn unterminated_heredoc_is_an_error() {
        let e = err("FROM a\nRUN echo \\\n  <<EOF\nline\n");
        assert_eq!(e.line, 2);
        assert!(e.message.contains("unterminated heredoc"), "{e}");
        assert!(e.message.contains("\"EOF\""), "{e}");
        let e = err("FROM a\nRUN <<A <<B\na\nA\nb\n");
        assert_eq!(e.line, 2);
        assert!(e.message.contains("\"B\""), "{e}");
    }

    // --- JSON form, flags --------------------------------------------------------------------------------------

    #[test]
    fn json_form_versus_shell_form() {
        let d = p(concat!(
            "FROM a\n",
            "CMD [\"a\", \"b c\"]\n",
            "ENTRYPOINT [ \"x\" ]  \n",
            "CMD ['single', 'quotes']\n",
            "RUN [not json\n",
            "RUN [\"unterminated\"\n",
            "COPY [\"a b\", \"/c\"]\n",
            "VOLUME /v /w\n",
            "CMD []\n",
            "USER [\"u\"]\n",
            "SHELL [\"/bin/sh\", \"-c\"]\n",
            "RUN [\"a\"] trailing\n",
        ));
        let args: Vec<_> = d.instructions.iter().map(|i| i.args.clone()).collect();
        assert_eq!(
            args,
            vec![
                shell("a"),
                exec(&["a", "b c"]),
                exec(&["x"]),
                shell("['single', 'quotes']"),
                shell("[not json"),
                shell("[\"unterminated\""),
                exec(&["a b", "/c"]),
                shell("/v /w"),
                exec(&[]),
                shell("[\"u\"]"),
                exec(&["/bin/sh", "-c"]),
                shell("[\"a\"] trailing"),
            ]
        );
    }

    #[test]
    fn json_array_with_non_strings_is_an_error() {
        let e = err("FROM a\nCMD [\"a\", 1]\n");
        assert_eq!(e, ParseError::new(2, NOT_STRING_ARRAY));
    }

    #[test]
    fn flags_are_the_leading_double_dash_words() {
        let d = p(concat!(
            "FROM --platform=$BUILDPLATFORM golang AS build\n",
            "COPY --from=build --chmod=0755 --link /out /app\n",
            "RUN --mount=type=cache,target=/root/.cache echo --not-a-flag -x\n",
            "COPY --chown=\"1000:1000\" --exclude='*.md' a b\n",
            "RUN -- --literal\n",
            "RUN echo --x\n",
        ));
        let flags = |n: usize| {
            d.instructions[n].flags.iter().map(|f| (f.name.as_str(), f.value.as_deref())).collect::<Vec<_>>()
        };
        assert_eq!(flags(0), vec![("platform", Some("$BUILDPLATFORM"))]);
        assert_eq!(d.instructions[0].args, shell("golang AS build"));
        assert_eq!(flags(1), vec![("from", Some("build")), ("chmod", Some("0755")), ("link", None)]);
        assert_eq!(d.instructions[1].args, shell("/out /app"));
        assert_eq!(flags(2), vec![("mount", Some("type=cache,target=/root/.cache"))]);
        assert_eq!(d.instructions[2].args, shell("echo --not-a-flag -x"));
        assert_eq!(flags(3), vec![("chown", Some("1000:1000")), ("exclude", Some("*.md"))]);
        assert_eq!(flags(4), vec![]);
        assert_eq!(d.instructions[4].args, shell("--literal"));
        assert_eq!(flags(5), vec![]);
        assert_eq!(d.instructions[5].args, shell("echo --x"));
    }

    #[test]
    fn run_with_only_flags() {
        let d = p("FROM a\nRUN --mount=type=cache,target=/x\n");
        assert_eq!(d.instructions[1].args, shell(""));
        assert_eq!(d.instructions[1].flags.len(), 1);
    }

    // --- errors ------------------------------------------------------------------------------------------------

    #[test]
    fn unknown_instruction() {
        let e = err("FROM a\n\nFOO bar\n");
        assert_eq!(e, ParseError::new(3, "unknown instruction: FOO"));
        assert_eq!(e.to_string(), "line 3: unknown instruction: FOO");
        let boxed: Box<dyn std::error::Error> = Box::new(e);
        assert_eq!(boxed.to_string(), "line 3: unknown instruction: FOO");
        assert_eq!(err("FROM a\nfoo bar\n").message, "unknown instruction: FOO");
    }

    #[test]
    fn missing_arguments_name_the_instruction() {
        let cases = [
            ("FROM\n", "FROM requires either one or three arguments"),
            ("FROM a\nCOPY\n", "COPY requires at least two arguments"),
            ("FROM a\nCOPY onlyone\n", "COPY requires at least two arguments"),
            ("FROM a\nADD x\n", "ADD requires at least two arguments"),
            ("FROM a\nENV\n", "ENV requires at least one argument"),
            ("FROM a\nLABEL\n", "LABEL requires at least one argument"),
            ("FROM a\nWORKDIR\n", "WORKDIR requires exactly one argument"),
            ("FROM a\nUSER\n", "USER requires exactly one argument"),
            ("FROM a\nMAINTAINER\n", "MAINTAINER requires exactly one argument"),
            ("FROM a\nSTOPSIGNAL\n", "STOPSIGNAL requires exactly one argument"),
            ("FROM a\nEXPOSE\n", "EXPOSE requires at least one argument"),
            ("FROM a\nVOLUME\n", "VOLUME requires at least one argument"),
            ("FROM a\nVOLUME []\n", "VOLUME requires at least one argument"),
            ("ARG\nFROM a\n", "ARG requires at least one argument"),
            ("FROM a\nONBUILD\n", "ONBUILD requires at least one argument"),
            ("FROM a\nHEALTHCHECK\n", "HEALTHCHECK requires at least one argument"),
            ("FROM a\nSHELL\n", "SHELL requires at least one argument"),
            ("FROM a\nSHELL []\n", "SHELL requires at least one argument"),
        ];
        for (text, message) in cases {
            let e = err(text);
            assert!(e.message.starts_with(message), "{text:?}: {e}");
            let offending = if text.starts_with("ARG") { 1 } else { text.lines().count() };
            assert_eq!(e.line, offending, "{text:?}");
        }
    }

    #[test]
    fn run_cmd_entrypoint_without_arguments_are_accepted_as_buildkit_does() {
        let d = p("FROM a\nRUN\nCMD\nENTRYPOINT\n");
        assert_eq!(d.instructions[1..].iter().map(|i| i.args.clone()).collect::<Vec<_>>(), vec![shell(""); 3]);
    }

    #[test]
    fn from_errors() {
        let e = err("FROM a AS\n");
        assert_eq!(e.line, 1);
        assert!(e.message.starts_with("FROM requires either one or three arguments"), "{e}");
        assert!(e.message.contains("stage name"), "{e}");
        assert_eq!(err("FROM a b c\n").message, "FROM requires either one or three arguments");
        assert_eq!(err("FROM a AS b c\n").message, "FROM requires either one or three arguments");
        assert_eq!(
            err("FROM a AS 1st\n").message,
            "invalid name for build stage: \"1st\", name can't start with a number or contain symbols"
        );
        assert!(err("FROM a AS b$\n").message.starts_with("invalid name for build stage"));
        p("FROM a AS b-c_d.e9\n");
    }

    #[test]
    fn env_and_label_syntax_errors() {
        assert_eq!(err("FROM a\nENV key\n"), ParseError::new(2, "ENV must have two arguments"));
        assert_eq!(err("FROM a\nLABEL key\n"), ParseError::new(2, "LABEL must have two arguments"));
        assert_eq!(
            err("FROM a\nENV a=b c\n"),
            ParseError::new(2, "Syntax error - can't find = in \"c\". Must be of the form: name=value")
        );
        assert_eq!(err("FROM a\nENV =b\n").message, "ENV names can not be blank");
        assert_eq!(err("ARG =b\nFROM a\n").message, "ARG names can not be blank");
    }

    #[test]
    fn other_instruction_errors() {
        assert_eq!(err("FROM a\nSHELL /bin/sh -c\n").message, "SHELL requires the arguments to be in JSON form");
        assert_eq!(err("FROM a\nHEALTHCHECK NONE x\n").message, "HEALTHCHECK NONE takes no arguments");
        assert_eq!(err("FROM a\nHEALTHCHECK FOO x\n").message, "Unknown type \"FOO\" in HEALTHCHECK (try CMD)");
        assert_eq!(err("FROM a\nHEALTHCHECK CMD\n").message, "Missing command after HEALTHCHECK CMD");
        assert_eq!(
            err("FROM a\nONBUILD ONBUILD RUN x\n").message,
            "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"
        );
        assert_eq!(err("FROM a\nONBUILD FROM b\n").message, "FROM isn't allowed as an ONBUILD trigger");
        assert_eq!(err("FROM a\nCOPY a <<EOF\nx\nEOF\n").message, "COPY cannot accept a heredoc as a destination");
        assert_eq!(err("FROM a\nVOLUME [\"\"]\n").message, "VOLUME specified can not be an empty string");
        p("FROM a\nHEALTHCHECK NONE\nHEALTHCHECK --interval=5s CMD curl -f http://x/\nONBUILD RUN x\n");
    }

    #[test]
    fn instructions_before_the_first_from() {
        let e = err("# c\nARG A=1\nRUN echo\nFROM a\n");
        assert_eq!(e, ParseError::new(3, "no build stage in current context"));
    }

    #[test]
    fn empty_file_is_an_error() {
        assert_eq!(err("").message, "file with no instructions");
        let e = err("# syntax=x\n# only a comment\n\n");
        assert_eq!(e.message, "file with no instructions");
    }

    #[test]
    fn errors_carry_the_instruction_line_and_parser_errors_come_first() {
        let e = err("FROM a\nRUN a \\\n  b \\\n  c\nWORKDIR\n");
        assert_eq!(e, ParseError::new(5, "WORKDIR requires exactly one argument"));
        // BuildKit parses the whole file before it checks instructions.
        let e = err("FROM a\nFOO\nRUN <<EOF\nnever closed\n");
        assert_eq!(e.line, 3);
        assert!(e.message.starts_with("unterminated heredoc"), "{e}");
    }

    // --- stages ------------------------------------------------------------------------------------------------

    #[test]
    fn stages_expand_global_args() {
        let text = concat!(
            "ARG BASE_IMAGE=alpine:3.21\n",
            "ARG REGISTRY\n",
            "ARG TAG=3.21\n",
            "ARG DIGEST=sha256:abc\n",
            "FROM ${BASE_IMAGE} AS Base\n",
            "ARG INSIDE=x\n",
            "RUN true\n",
            "FROM ${REGISTRY:-docker.io}/library/alpine:${TAG}@${DIGEST}\n",
            "FROM base\n",
        );
        let d = p(text);
        let stages = d.stages(&BTreeMap::new()).unwrap();
        assert_eq!(stages.len(), 3);
        assert_eq!(stages[0].name.as_deref(), Some("base"));
        assert_eq!(stages[0].base, "alpine:3.21");
        assert_eq!(stages[0].base_raw, "${BASE_IMAGE}");
        assert_eq!((stages[0].line, stages[0].instructions.clone()), (5, 5..7));
        assert_eq!(stages[1].name, None);
        assert_eq!(stages[1].base, "docker.io/library/alpine:3.21@sha256:abc");
        assert_eq!((stages[1].index, stages[1].line, stages[1].instructions.clone()), (1, 8, 8..8));
        assert_eq!(stages[2].base, "base");
        assert_eq!(stages[2].instructions, 9..9);

        let stages = d.stages(&map(&[("REGISTRY", "r.example"), ("TAG", "3.20"), ("INSIDE", "ignored")])).unwrap();
        assert_eq!(stages[1].base, "r.example/library/alpine:3.20@sha256:abc");
    }

    #[test]
    fn arg_defaults_use_earlier_args_and_build_args_win() {
        let d = p("ARG V=1\nARG IMG=img:${V}\nARG A=1 B=${A}2\nFROM ${IMG}-${B}\n");
        assert_eq!(d.stages(&BTreeMap::new()).unwrap()[0].base, "img:1-12");
        assert_eq!(d.stages(&map(&[("V", "9")])).unwrap()[0].base, "img:9-12");
        assert_eq!(d.stages(&map(&[("IMG", "other")])).unwrap()[0].base, "other-12");
        // A build arg that no ARG declares is not in scope.
        let d = p("FROM img:${UNDECLARED:-none}\n");
        assert_eq!(d.stages(&map(&[("UNDECLARED", "x")])).unwrap()[0].base, "img:none");
        // An ARG without a value stays unset (so `-` gives the default).
        let d = p("ARG T\nFROM img:${T-unset}\n");
        assert_eq!(d.stages(&BTreeMap::new()).unwrap()[0].base, "img:unset");
        assert_eq!(d.stages(&map(&[("T", "")])).unwrap()[0].base, "img:");
    }

    #[test]
    fn stages_platform_and_automatic_args() {
        let d = p("FROM --platform=$BUILDPLATFORM golang:1.23 AS build\nFROM --platform=linux/arm64 alpine\n");
        let stages = d.stages(&BTreeMap::new()).unwrap();
        assert_eq!(stages[0].platform.as_deref(), Some("$BUILDPLATFORM"));
        assert_eq!(stages[0].name.as_deref(), Some("build"));
        assert_eq!(stages[0].base, "golang:1.23");
        assert_eq!(stages[1].platform.as_deref(), Some("linux/arm64"));
        let stages = d.stages(&map(&[("BUILDPLATFORM", "linux/amd64")])).unwrap();
        assert_eq!(stages[0].platform.as_deref(), Some("linux/amd64"));
        // A global ARG without a value does not hide an automatic ARG.
        let d = p("ARG TARGETARCH\nFROM tini-${TARGETARCH} AS tini\nFROM x:${TARGETSTAGE}\n");
        assert_eq!(d.stages(&BTreeMap::new()).unwrap()[0].base, "tini-${TARGETARCH}");
        assert_eq!(d.stages(&BTreeMap::new()).unwrap()[1].base, "x:");
        let stages = d.stages(&map(&[("TARGETARCH", "arm64")])).unwrap();
        assert_eq!(stages[0].base, "tini-arm64");
    }

    #[test]
    fn stages_errors() {
        let d = p("ARG EMPTY\nFROM ${EMPTY}\n");
        assert_eq!(
            d.stages(&BTreeMap::new()).unwrap_err(),
            ParseError::new(2, "base name (${EMPTY}) should not be blank")
        );
        let d = p("ARG P=\nFROM --platform=${P} a\n");
        assert_eq!(
            d.stages(&BTreeMap::new()).unwrap_err(),
            ParseError::new(2, "empty platform value from expression ${P}")
        );
        let d = p("ARG A=${\nFROM a\n");
        assert_eq!(d.stages(&BTreeMap::new()).unwrap_err().line, 1);
        let d = p("ARG A=1\n");
        assert_eq!(d.stages(&BTreeMap::new()).unwrap_err().message, "dockerfile contains no stages to build");
    }

    // --- expansion ---------------------------------------------------------------------------------------------

    #[test]
    fn expand_variables() {
        let vars = [("A", "a"), ("EMPTY", ""), ("SP", "x y")];
        assert_eq!(ex("$A", &vars).unwrap(), "a");
        assert_eq!(ex("${A}b", &vars).unwrap(), "ab");
        assert_eq!(ex("$Ab", &vars).unwrap(), "");
        assert_eq!(ex("x$UNKNOWN-y", &vars).unwrap(), "x-y");
        assert_eq!(ex("${UNKNOWN}", &vars).unwrap(), "");
        assert_eq!(ex("cost $", &vars).unwrap(), "cost $");
        assert_eq!(ex("${SP}", &vars).unwrap(), "x y");
    }

    #[test]
    fn expand_default_and_alternative_forms() {
        let vars = [("A", "a"), ("EMPTY", "")];
        assert_eq!(ex("${A:-d}", &vars).unwrap(), "a");
        assert_eq!(ex("${EMPTY:-d}", &vars).unwrap(), "d");
        assert_eq!(ex("${UNSET:-d}", &vars).unwrap(), "d");
        assert_eq!(ex("${EMPTY-d}", &vars).unwrap(), "");
        assert_eq!(ex("${UNSET-d}", &vars).unwrap(), "d");
        assert_eq!(ex("${A:+alt}", &vars).unwrap(), "alt");
        assert_eq!(ex("${EMPTY:+alt}", &vars).unwrap(), "");
        assert_eq!(ex("${EMPTY+alt}", &vars).unwrap(), "alt");
        assert_eq!(ex("${UNSET+alt}", &vars).unwrap(), "");
        assert_eq!(ex("${UNSET:-${A}/x}", &vars).unwrap(), "a/x");
        assert_eq!(
            ex("${REGISTRY:-docker.io}/library/alpine:3.21@sha256:0123", &vars).unwrap(),
            "docker.io/library/alpine:3.21@sha256:0123"
        );
        assert_eq!(ex("${A:?must}", &vars).unwrap(), "a");
        assert!(ex("${UNSET:?must be set}", &vars).unwrap_err().ends_with("UNSET: must be set"));
        assert!(ex("${EMPTY:?}", &vars).unwrap_err().ends_with("EMPTY: is not allowed to be empty"));
        assert_eq!(ex("${EMPTY?}", &vars).unwrap(), "");
        assert!(ex("${UNSET?}", &vars).unwrap_err().ends_with("UNSET: is not allowed to be unset"));
    }

    #[test]
    fn expand_patterns() {
        let vars = [("F", "dir/sub/file.tar.gz")];
        assert_eq!(ex("${F#*/}", &vars).unwrap(), "sub/file.tar.gz");
        assert_eq!(ex("${F##*/}", &vars).unwrap(), "file.tar.gz");
        assert_eq!(ex("${F%.*}", &vars).unwrap(), "dir/sub/file.tar");
        assert_eq!(ex("${F%%.*}", &vars).unwrap(), "dir/sub/file");
        assert_eq!(ex("${F#nomatch}", &vars).unwrap(), "dir/sub/file.tar.gz");
        assert_eq!(ex("${F/\\//-}", &vars).unwrap(), "dir-sub/file.tar.gz");
        assert_eq!(ex("${F//\\//-}", &vars).unwrap(), "dir-sub-file.tar.gz");
        assert_eq!(ex("${F/s?b/X}", &vars).unwrap(), "dir/X/file.tar.gz");
        assert_eq!(ex("${F//[a]/X}", &vars).unwrap(), "dir/sub/file.tar.gz");
        assert!(ex("${F:#x}", &vars).unwrap_err().contains("unsupported modifier (:#)"));
    }

    #[test]
    fn expand_quotes_and_escapes() {
        let vars = [("A", "a")];
        assert_eq!(ex("'$A'", &vars).unwrap(), "$A");
        assert_eq!(ex("\"$A b\"", &vars).unwrap(), "a b");
        assert_eq!(ex("\\$A", &vars).unwrap(), "$A");
        assert_eq!(ex("\"\\$A \\\" \\x\"", &vars).unwrap(), "$A \" \\x");
        assert_eq!(ex("a\\ b", &vars).unwrap(), "a b");
        assert_eq!(ex("'it'\\''s'", &vars).unwrap(), "it's");
        let vars2 = map(&vars);
        assert_eq!(expand("`$A", &|n| vars2.get(n).cloned(), '`').unwrap(), "$A");
        assert_eq!(expand("c:\\$A", &|n| vars2.get(n).cloned(), '`').unwrap(), "c:\\a");
    }

    #[test]
    fn expand_errors() {
        assert_eq!(ex("${", &[]).unwrap_err(), "failed to process \"${\": syntax error: missing '}'");
        assert_eq!(ex("${}", &[]).unwrap_err(), "failed to process \"${}\": syntax error: bad substitution");
        assert!(ex("${A", &[]).unwrap_err().ends_with("syntax error: missing '}'"));
        assert!(ex("${A:-x", &[]).unwrap_err().ends_with("syntax error: missing '}'"));
        assert!(ex("'open", &[]).unwrap_err().contains("matching single-quote"));
        assert!(ex("\"open", &[]).unwrap_err().contains("matching double-quote"));
        assert!(ex("${A!}", &[]).unwrap_err().contains("unsupported modifier (!)"));
    }

    #[test]
    fn expand_words_splits_after_expansion() {
        let vars = map(&[("L", "a  b"), ("E", "")]);
        let lookup = |n: &str| vars.get(n).cloned();
        assert_eq!(expand_words("x $L \"c d\" $E ''", &lookup, '\\').unwrap(), vec!["x", "a", "b", "c d"]);
        assert_eq!(expand_words("pre$L", &lookup, '\\').unwrap(), vec!["prea", "b"]);
    }

    #[test]
    fn buildkit_lexer_cases() {
        // frontend/dockerfile/shell/lex_test.go TestProcessWithMatches (results; `None` = error).
        type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], Option<&'a str>);
        let cases: &[Case<'_>] = &[
            ("x", &[("DUMMY", "dummy")], Some("x")),
            ("x ${UNUSED}", &[("DUMMY", "dummy")], Some("x ")),
            ("x ${FOO}", &[("FOO", "y")], Some("x y")),
            ("${FOO-aaa} ${BAR-bbb} ${BAZ-ccc}", &[("FOO", "xxx"), ("BAR", "")], Some("xxx  ccc")),
            ("${FOO:-aaa} ${BAR:-bbb} ${BAZ:-ccc}", &[("FOO", "xxx"), ("BAR", "")], Some("xxx bbb ccc")),
            ("${FOO:-}", &[("FOO", "xxx"), ("BAR", "")], Some("xxx")),
            ("${FOO:-}", &[], Some("")),
            ("${FOO+aaa} ${BAR+bbb} ${BAZ+ccc}", &[("FOO", "xxx"), ("BAR", "")], Some("aaa bbb ")),
            ("${FOO:+aaa} ${BAR:+bbb} ${BAZ:+ccc}", &[("FOO", "xxx"), ("BAR", "")], Some("aaa  ")),
            ("${FOO?aaa}", &[("FOO", "xxx"), ("BAR", "")], Some("xxx")),
            ("${BAR?bbb}", &[("FOO", "xxx"), ("BAR", "")], Some("")),
            ("${BAZ?ccc}", &[("FOO", "xxx"), ("BAR", "")], None),
            ("${FOO:?aaa}", &[("FOO", "xxx"), ("BAR", "")], Some("xxx")),
            ("${BAR:?bbb}", &[("FOO", "xxx"), ("BAR", "")], None),
            ("${BAZ:?ccc}", &[("FOO", "xxx"), ("BAR", "")], None),
            ("${BAZ:?}", &[("FOO", "xxx"), ("BAR", "")], None),
            ("${FOO=aaa}", &[("FOO", "xxx"), ("BAR", "")], None),
            ("${FOO=:aaa}", &[("FOO", "xxx"), ("BAR", "")], None),
            ("${FOO=}", &[], None),
            ("${FOO#()[]{\\}^$.\\*\\?|\\\\}", &[("FOO", "()[]{}^$.*?|\\x")], Some("x")),
            ("${FOO%%\\**}", &[("FOO", "xx**")], Some("xx")),
            ("${FOO#*x*y}", &[("FOO", "xxyy")], Some("y")),
            ("${FOO#*}", &[("FOO", "xxyy")], Some("xxyy")),
            ("${FOO#$BAR}", &[("FOO", "xxyy"), ("BAR", "x")], Some("xyy")),
            ("${FOO#$BAR}", &[("FOO", "xxyy"), ("BAR", "")], Some("xxyy")),
            ("${FOO#}", &[("FOO", "xxyy")], Some("xxyy")),
            ("${FOO##*x}", &[("FOO", "xxyy")], Some("yy")),
            ("${FOO##}", &[("FOO", "xxyy")], Some("xxyy")),
            ("${FOO#?\\?}", &[("FOO", "???y")], Some("?y")),
            ("${ABC:-.}${FOO%x}${ABC:-.}", &[("FOO", "xxyy")], Some(".xxyy.")),
            ("${FOO%%\\**\\*}", &[("FOO", "a***yy*")], Some("a")),
            ("${FOO%}", &[("FOO", "xxyy")], Some("xxyy")),
            ("${FOO%%$BAR}", &[("FOO", "xxyy"), ("BAR", "")], Some("xxyy")),
            ("${FOO:#}", &[], None),
            ("${FOO:##}", &[], None),
            ("${FOO:%}", &[], None),
            ("${FOO:%%}", &[], None),
            (
                "${FOO/$NEEDLE/.} - ${FOO//$NEEDLE/.}",
                &[("FOO", "/foo*/*/*.txt"), ("NEEDLE", "\\*/")],
                Some("/foo.*/*.txt - /foo..*.txt"),
            ),
            (
                "${FOO/$NEEDLE/} - ${FOO//$NEEDLE/}",
                &[("FOO", "/tmp/tmp/bar.txt"), ("NEEDLE", "/tmp")],
                Some("/tmp/bar.txt - /bar.txt"),
            ),
            (
                "${FOO/$NEEDLE/$REPLACEMENT} - ${FOO//$NEEDLE/$REPLACEMENT}",
                &[("FOO", "/a/foo/b/c.txt"), ("NEEDLE", "/?/"), ("REPLACEMENT", "/")],
                Some("/foo/b/c.txt - /foo/c.txt"),
            ),
            (
                "${FOO/$NEEDLE/$REPLACEMENT}",
                &[("FOO", "http://google.de"), ("NEEDLE", "http://"), ("REPLACEMENT", "https://")],
                Some("https://google.de"),
            ),
            ("${FOO//\\//\\/}", &[("FOO", "/tmp/foo.txt")], Some("\\/tmp\\/foo.txt")),
            ("${FOO/$BAR/ww}", &[("FOO", "xxyy"), ("BAR", "")], Some("wwxxyy")),
            ("${FOO//ww}", &[("FOO", "xxyy")], None),
            ("${FOO//}", &[("FOO", "xxyy")], None),
            ("${FOO///}", &[("FOO", "xxyy")], Some("xxyy")),
            ("${FOO///}", &[], Some("")),
        ];
        for (input, vars, expected) in cases {
            let result = ex(input, vars);
            match expected {
                Some(e) => assert_eq!(result.as_deref(), Ok(*e), "{input}"),
                None => assert!(result.is_err(), "{input}: {result:?}"),
            }
        }
        // TestShellParserMandatoryEnvVars.
        let set = [("VAR", "plain"), ("ARG", "x")];
        let empty = [("VAR", ""), ("ARG", "x")];
        let unset = [("ARG", "x")];
        assert_eq!(ex("${VAR:?message here$ARG}", &set).unwrap(), "plain");
        assert!(ex("${VAR:?message here$ARG}", &empty).unwrap_err().contains("message herex"));
        assert!(ex("${VAR:?message here$ARG}", &unset).unwrap_err().contains("message herex"));
        assert_eq!(ex("${VAR?message here$ARG}", &set).unwrap(), "plain");
        assert_eq!(ex("${VAR?message here$ARG}", &empty).unwrap(), "");
        assert!(ex("${VAR?message here$ARG}", &unset).unwrap_err().contains("message herex"));
        // TestProcessWithMatchesPlatform.
        let release = "something-${VERSION}.${TARGETOS}-${TARGETARCH}${TARGETVARIANT:+-${TARGETVARIANT}}.tar.gz";
        let v7 = [("VERSION", "v1.2.3"), ("TARGETOS", "linux"), ("TARGETARCH", "arm"), ("TARGETVARIANT", "v7")];
        assert_eq!(ex(release, &v7).unwrap(), "something-v1.2.3.linux-arm-v7.tar.gz");
        let arm64 = [("VERSION", "v1.2.3"), ("TARGETOS", "linux"), ("TARGETARCH", "arm64")];
        assert_eq!(ex(release, &arm64).unwrap(), "something-v1.2.3.linux-arm64.tar.gz");
    }

    // --- key/value arguments -----------------------------------------------------------------------------------

    #[test]
    fn key_values_forms() {
        assert_eq!(key_values("ENV", "a=b c=\"d e\""), kv(&[("a", Some("b")), ("c", Some("d e"))]));
        assert_eq!(key_values("ENV", "key value with  spaces"), kv(&[("key", Some("value with  spaces"))]));
        assert_eq!(key_values("ENV", "key \"quoted value\""), kv(&[("key", Some("quoted value"))]));
        assert_eq!(key_values("ARG", "NAME"), kv(&[("NAME", None)]));
        assert_eq!(key_values("ARG", "A=1 B C="), kv(&[("A", Some("1")), ("B", None), ("C", Some(""))]));
        assert_eq!(key_values("LABEL", "\"com.x\"='y z' w=a\\ b"), kv(&[("com.x", Some("y z")), ("w", Some("a b"))]));
        assert_eq!(
            key_values("ENV", "PATH=/opt:$PATH X=\"${Y:-z}\""),
            kv(&[("PATH", Some("/opt:$PATH")), ("X", Some("${Y:-z}"))])
        );
        assert_eq!(key_values("ENV", "a=x=y"), kv(&[("a", Some("x=y"))]));
        assert_eq!(key_values("ENV", ""), kv(&[]));
        let raw = key_values_raw("ENV", "a=\"$X y\" b='$X'", '\\');
        assert_eq!(raw, kv(&[("a", Some("\"$X y\"")), ("b", Some("'$X'"))]));
        let expanded: Vec<_> = raw.iter().map(|(_, v)| ex(v.as_deref().unwrap(), &[("X", "x")]).unwrap()).collect();
        assert_eq!(expanded, ["x y", "$X"]);
        assert_eq!(
            key_values_with_escape("ENV", "a=x`\" b=c:\\d", '`'),
            kv(&[("a", Some("x\"")), ("b", Some("c:\\d"))])
        );
    }

    // --- BuildKit's own parser fixtures ----------------------------------------------------------------------

    #[test]
    fn buildkit_line_information_fixture() {
        // frontend/dockerfile/parser/testfile-line/Dockerfile, TestParseIncludesLineNumbers: 5-5, 11-12, 17-31.
        let text = concat!(
            "# ESCAPE=\\\n\n\n\n",
            "FROM brimstone/ubuntu:14.04@sha256:f58e9b93e0cbbcb22ca4f995a14447732cce2aa6ff4d66d6112374272790f4e1\n",
            "\n\n# TORUN -v /var/run/docker.sock:/var/run/docker.sock\n\n\n",
            "ENV GOPATH \\\n/go\n\n\n\n",
            "# Install the packages we need, clean up after them and us\n",
            "RUN apt-get update \\\n",
            "\t&& dpkg -l | awk '/^ii/ {print $2}' > /tmp/dpkg.clean \\\n\n\n",
            "    && apt-get --no-install-recommends install -y git golang ca-certificates \\\n",
            "    && apt-get clean \\\n",
            "    && rm -rf /var/lib/apt/lists \\\n\n",
            "\t&& go get -v github.com/brimstone/consuldock \\\n",
            "    && mv $GOPATH/bin/consuldock /usr/local/bin/consuldock \\\n\n",
            "\t&& dpkg -l | awk '/^ii/ {print $2}' > /tmp/dpkg.dirty \\\n",
            "\t&& apt-get remove --purge -y $(diff /tmp/dpkg.clean /tmp/dpkg.dirty | awk '/^>/ {print $2}') \\\n",
            "\t&& rm /tmp/dpkg.* \\\n",
            "\t&& rm -rf $GOPATH\n\n\n\n\n",
        );
        let d = p(text);
        assert_eq!(lines(&d), vec![(5, 5, "FROM"), (11, 12, "ENV"), (17, 31, "RUN")]);
        assert_eq!(d.directives.escape, '\\');
        assert_eq!(d.comments.iter().map(|c| c.line).collect::<Vec<_>>(), vec![8, 16]);
        let Args::Shell(env) = &d.instructions[1].args else { panic!() };
        assert_eq!(key_values("ENV", env), kv(&[("GOPATH", Some("/go"))]));
    }

    #[test]
    fn buildkit_empty_continuation_fixture() {
        // TestParseWarnsOnEmptyContinutationLine: the joined texts.
        let text = concat!(
            "\nFROM alpine:3.6\n\nRUN something \\\n\n    following \\\n\n    more\n\n",
            "RUN another \\\n\n    thing\nRUN non-indented \\\n# this is a comment\n   after-comment\n\n",
            "RUN indented \\\n    # this is an indented comment\n    comment\n\t",
        );
        let d = p(text);
        let originals: Vec<_> = d.instructions.iter().map(|i| i.original.as_str()).collect();
        assert_eq!(
            originals,
            vec![
                "FROM alpine:3.6",
                "RUN something     following     more",
                "RUN another     thing",
                "RUN non-indented    after-comment",
                "RUN indented     comment",
            ]
        );
        assert_eq!(lines(&d)[1..], [(4, 8, "RUN"), (10, 12, "RUN"), (13, 15, "RUN"), (17, 19, "RUN")]);
    }

    #[test]
    fn buildkit_heredoc_fixture() {
        // TestParseExtractsHeredoc (without its `USER <<INVALID` case, which BuildKit rejects later as an unknown
        // instruction `INVALID`); contents of `<<-` heredocs have their tabs stripped here.
        let text = concat!(
            "\nFROM alpine:3.6\n\nENV NAME=me\n\nRUN ls\n\n",
            "RUN <<EMPTY\nEMPTY\n\nRUN 3<<EMPTY2\nEMPTY2\n\nRUN \"<<NOHEREDOC\"\n\n",
            "RUN <<INDENT\n\tfoo\n\tbar\nINDENT\n\n",
            "RUN <<-UNINDENT\n\tbaz\n\tquux\nUNINDENT\n\n",
            "RUN <<-UNINDENT2\n\tbaz\n\tquux\n\tUNINDENT2\n\n",
            "RUN <<-EXPAND\n\texpand $NAME\nEXPAND\n\n",
            "RUN <<-'NOEXPAND'\n\tdon't expand $NAME\nNOEXPAND\n\n",
            "RUN <<COPY\necho hello world\necho foo bar\nCOPY\n\n",
            "RUN <<COMMENT\n# internal comment\necho hello world\necho foo bar # trailing comment\nCOMMENT\n\n",
            "RUN --mount=type=cache,target=/foo <<MOUNT\necho hello\nMOUNT\n\n",
            "COPY <<FILE1 <<FILE2 /dest\ncontent 1\nFILE1\ncontent 2\nFILE2\n\n",
            "COPY <<X <<Y /dest\nY\nX\nX\nY\n\t",
        );
        let d = p(text);
        let doc = |name: &str, content: &str, expand: bool, strip_tabs: bool| Heredoc {
            name: name.into(),
            content: content.into(),
            expand,
            strip_tabs,
        };
        let expected: Vec<Vec<Heredoc>> = vec![
            vec![],
            vec![],
            vec![doc("EMPTY", "", true, false)],
            vec![doc("EMPTY2", "", true, false)],
            vec![],
            vec![doc("INDENT", "\tfoo\n\tbar\n", true, false)],
            vec![doc("UNINDENT", "baz\nquux\n", true, true)],
            vec![doc("UNINDENT2", "baz\nquux\n", true, true)],
            vec![doc("EXPAND", "expand $NAME\n", true, true)],
            vec![doc("NOEXPAND", "don't expand $NAME\n", false, true)],
            vec![doc("COPY", "echo hello world\necho foo bar\n", true, false)],
            vec![doc(
                "COMMENT",
                "# internal comment\necho hello world\necho foo bar # trailing comment\n",
                true,
                false,
            )],
            vec![doc("MOUNT", "echo hello\n", true, false)],
            vec![doc("FILE1", "content 1\n", true, false), doc("FILE2", "content 2\n", true, false)],
            vec![doc("X", "Y\n", true, false), doc("Y", "X\n", true, false)],
        ];
        let actual: Vec<Vec<Heredoc>> = d.instructions[1..].iter().map(|i| i.heredocs.clone()).collect();
        assert_eq!(actual, expected);
        assert!(d.comments.is_empty());
        // TestParseJSONHeredoc.
        let d = p("FROM a\nRUN [\"whoami\"]\nRUN [\"<<EOF\"]\nRUN [\"<<'EOF'\"]\n");
        assert!(d.instructions.iter().all(|i| i.heredocs.is_empty()));
    }

    #[test]
    fn buildkit_heredoc_word_helpers() {
        // TestParseHeredocHelpers.
        for src in ["<<EOF", "<<'EOF'", "<<\"EOF\"", "<<-EOF", "<<-'EOF'", "<<-\"EOF\""] {
            assert_eq!(parse_heredoc(src).unwrap().unwrap().name, "EOF", "{src}");
        }
        for src in ["<<'EOF", "<<\"EOF", "<<EOF'", "<<EOF\""] {
            assert!(parse_heredoc(src).is_err(), "{src}");
        }
        for src in ["", "EOF", "<<", "<<-", "<EOF", "<<<EOF"] {
            assert!(parse_heredoc(src).unwrap().is_none(), "{src}");
        }
        // TestHeredocsFromLine.
        let names = |line: &str| heredocs_from_line(line).unwrap().into_iter().map(|h| h.name).collect::<Vec<_>>();
        assert_eq!(names("RUN <<EOF"), ["EOF"]);
        assert_eq!(names("RUN <<-EOF"), ["EOF"]);
        assert_eq!(names("RUN <<'EOF'"), ["EOF"]);
        assert_eq!(names("RUN 4<<EOF"), ["EOF"]);
        assert_eq!(names("RUN <<EOF <<EOF2"), ["EOF", "EOF2"]);
        assert!(names("RUN '<<EOF'").is_empty());
        assert!(names("RUN \"<<EOF\"").is_empty());
    }

    #[test]
    fn buildkit_parse_words() {
        // TestParseWords: quotes and escapes stay in the words.
        let cases: [(&str, &[&str]); 8] = [
            ("foo", &["foo"]),
            ("foo bar", &["foo", "bar"]),
            ("foo\\ bar", &["foo\\ bar"]),
            ("foo=bar", &["foo=bar"]),
            ("foo bar 'abc xyz'", &["foo", "bar", "'abc xyz'"]),
            ("foo bar \"abc xyz\"", &["foo", "bar", "\"abc xyz\""]),
            ("àöû", &["àöû"]),
            ("föo bàr \"âbc xÿz\"", &["föo", "bàr", "\"âbc xÿz\""]),
        ];
        for (input, expected) in cases {
            assert_eq!(parse_words(input, '\\'), expected, "{input}");
        }
    }

    // --- the real files ----------------------------------------------------------------------------------------

    fn read_real(rel: &str) -> Dockerfile {
        let path = format!("{REAL_FILES_ROOT}/{rel}");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e} (adjust REAL_FILES_ROOT)"));
        parse(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn real_dockerfile_worker() {
        let d = read_real("Dockerfile.worker");
        let alpine = "alpine:3.21@sha256:48b0309ca019d89d40f670aa1bc06e426dc0931948452e8491e3d65087abc07d";
        let stages = d.stages(&BTreeMap::new()).unwrap();
        assert_eq!(stages.iter().map(|s| s.name.as_deref()).collect::<Vec<_>>(), vec![Some("claude"), Some("runtime")]);
        assert!(stages.iter().all(|s| s.base == alpine && s.base_raw == "${ALPINE_IMAGE}"));
        assert_eq!((stages[0].line, stages[1].line), (11, 25));

        let run = &d.instructions[stages[0].instructions.clone()].iter().find(|i| i.keyword == "RUN").unwrap();
        assert_eq!((run.line, run.end_line), (21, 22));
        let mount = run.flag("mount").unwrap();
        assert_eq!(mount.value.as_deref(), Some("type=cache,id=claude-npm,target=/var/cache/claude,sharing=locked"));
        assert_eq!(run.args, shell("CLAUDE_CACHE_DIR=/var/cache/claude fetch-claude musl \"$TARGETARCH\" /out"));

        let copy_from = d.instructions.iter().find(|i| i.flag("from").is_some()).unwrap();
        assert_eq!(copy_from.flag("from").unwrap().value.as_deref(), Some("claude"));
        let env = d.instructions.iter().find(|i| i.keyword == "ENV").unwrap();
        let Args::Shell(env_args) = &env.args else { panic!() };
        assert_eq!(key_values("ENV", env_args)[0], ("PATH".to_string(), Some("/opt/ralph:$PATH".to_string())));
        let env_keys: Vec<String> = key_values("ENV", env_args).into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            env_keys,
            [
                "PATH",
                "RALPH_HOME",
                "RALPH_WORKER_USER",
                "RALPH_AGENT_USER",
                "RALPH_GIT_DIR",
                "USE_BUILTIN_RIPGREP",
                "DISABLE_AUTOUPDATER"
            ]
        );
        let label = d.instructions.iter().find(|i| i.keyword == "LABEL").unwrap();
        let Args::Shell(label_args) = &label.args else { panic!() };
        assert_eq!(key_values("LABEL", label_args)[0].1.as_deref(), Some("ralph-worker"));
        let last = d.instructions.last().unwrap();
        assert_eq!((last.keyword.as_str(), &last.args), ("CMD", &exec(&["build"])));
        assert!(d.comments.iter().any(|c| c.line == 1 && c.text.starts_with("ralph worker")));
        assert!(d.comments.iter().all(|c| !d.instructions.iter().any(|i| i.line == c.line)));
    }

    #[test]
    fn real_dockerfile_worker_amazonlinux() {
        let d = read_real("Dockerfile.worker-amazonlinux");
        let stages = d.stages(&BTreeMap::new()).unwrap();
        let names: Vec<_> = stages.iter().map(|s| s.name.clone().unwrap()).collect();
        assert_eq!(names, ["tini-amd64", "tini-arm64", "tini", "python", "builder", "single", "runtime"]);
        assert_eq!(stages[2].base, "tini-${TARGETARCH}");
        assert!(stages[3].base.starts_with("amazonlinux:2023@sha256:"));
        let stages = d.stages(&map(&[("TARGETARCH", "arm64")])).unwrap();
        assert_eq!(stages[2].base, "tini-arm64");
        let add = &d.instructions[stages[0].instructions.start];
        assert_eq!(add.keyword, "ADD");
        assert!(add.flag("checksum").unwrap().value.as_deref().unwrap().starts_with("sha256:c5b0"));
        assert_eq!(add.flag("chmod").unwrap().value.as_deref(), Some("755"));
        let hc = d.instructions.iter().find(|i| i.keyword == "HEALTHCHECK").unwrap();
        assert_eq!(hc.flags.len(), 4);
        assert_eq!(hc.args, shell("CMD [\"python\", \"-m\", \"ralph_status.check\"]"));
        let mounts = d.instructions.iter().filter(|i| i.flag("mount").is_some()).count();
        assert_eq!(mounts, 4);
    }

    #[test]
    fn real_test_images() {
        let dir = format!("{REAL_FILES_ROOT}/test/images");
        let mut entries: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{dir}: {e} (adjust REAL_FILES_ROOT)"))
            .map(|e| e.unwrap().path().join("Dockerfile"))
            .filter(|p| p.exists())
            .collect();
        entries.sort();
        assert!(entries.len() >= 7, "{entries:?}");
        for path in &entries {
            let text = std::fs::read_to_string(path).unwrap();
            let d = parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let stages = d.stages(&BTreeMap::new()).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(!stages.is_empty());
            for i in &d.instructions {
                assert!(i.line <= i.end_line && i.end_line <= text.lines().count(), "{}: {i:?}", path.display());
            }
        }
        let busybox = read_real("test/images/busybox/Dockerfile");
        assert_eq!(busybox.instructions[3].args, exec(&["/bin/busybox", "--install", "-s", "/bin"]));
        assert_eq!(busybox.instructions[2].flag("from").unwrap().value.as_deref(), Some("busybox"));
        let postgres = read_real("test/images/postgres-standin/Dockerfile");
        let volume = postgres.instructions.iter().find(|i| i.keyword == "VOLUME").unwrap();
        assert_eq!(volume.args, exec(&["/var/lib/postgresql/data"]));
        let smoke = read_real("test/images/smoke-fixture/Dockerfile");
        assert_eq!(smoke.instructions.iter().find(|i| i.keyword == "VOLUME").unwrap().args, shell("/data"));
        let standin = read_real("test/images/worker-standin/Dockerfile");
        let names: Vec<_> = standin.stages(&BTreeMap::new()).unwrap().into_iter().map(|s| s.name).collect();
        assert_eq!(names, vec![Some("claude".to_string()), Some("runtime".to_string())]);
    }
}
