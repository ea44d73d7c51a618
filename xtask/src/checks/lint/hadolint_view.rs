//! hadolint's view of a Dockerfile that BuildKit reads but hadolint 2.15.1's
//! parser can't: the same instructions, rewritten only where that parser
//! stops, and a map from the view's lines back to the original's. Pure: the
//! parsed Dockerfile and its text in, the view out.
//!
//! What hadolint 2.15.1 can't parse, found by running it on each form
//! (`hadolint --format json -`), and how the view rewrites it:
//!
//! * a heredoc whose terminator is followed by a line that is not blank (the
//!   next instruction, a comment), `<<-` heredocs (it strips no tabs, so it
//!   never finds the terminator), two heredocs in one `RUN`, any heredoc in
//!   `ADD`: a `RUN` becomes `RUN <<HADOLINT_VIEW_EOF` holding the script
//!   BuildKit hands the shell (the body of a lone heredoc; otherwise the
//!   command line followed by each body and its terminator, as
//!   dockerfile2llb reconstitutes it), then a blank line; a `COPY`/`ADD`
//!   copies a file named as the heredoc, its body left as blank lines;
//! * a `--mount` with quotes, upper-case keys or values, booleans spelt as
//!   Go reads them (`1`, `TRUE`), or a key hadolint does not accept for its
//!   type (`required` on a cache, `bind-propagation`): written as hadolint
//!   spells it, such keys dropped;
//! * a line of blanks inside a continued instruction (BuildKit skips it):
//!   an empty line;
//! * `RUN`, `CMD` or `ENTRYPOINT` without arguments: `[]`.
//!
//! Instructions hadolint reads as they are stay as they are, line for line.

use serde::Serialize;

use crate::model::dockerfile::{Dockerfile, Instruction};

/// Lines of the original that hadolint read rewritten, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rewrite {
    pub line: usize,
    pub end_line: usize,
    pub why: String,
}

/// The file as hadolint reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    /// The rewritten Dockerfile (LF line endings).
    pub text: String,
    /// For each line of `text`, the line of the original it stands for.
    pub origin: Vec<usize>,
    pub rewrites: Vec<Rewrite>,
}

impl View {
    /// The original line of the view's 1-based `line` (0 stays 0: the file as a whole).
    pub fn original_line(&self, line: usize) -> usize {
        if line == 0 {
            return 0;
        }
        self.origin.get(line - 1).or(self.origin.last()).copied().unwrap_or(line)
    }
}

/// The terminator of the view's own heredocs (a digit is added while a script line is the same word).
const TERMINATOR: &str = "HADOLINT_VIEW_EOF";

/// hadolint's view of `text`, which `df` is the parse of.
pub fn view(df: &Dockerfile, text: &str) -> View {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = text.split_inclusive('\n').map(|l| l.trim_end_matches(['\n', '\r'])).collect();
    let mut out: Vec<(String, usize)> = Vec::new();
    let mut rewrites = Vec::new();
    let mut next = 1;
    for ins in &df.instructions {
        while next < ins.line {
            out.push((lines[next - 1].to_string(), next));
            next += 1;
        }
        let end = ins.end_line.min(lines.len()).max(ins.line);
        let after = lines.get(end).copied();
        match rewrite(ins, &lines[ins.line - 1..end], after) {
            Some((new, why)) => {
                out.extend(new);
                rewrites.push(Rewrite { line: ins.line, end_line: end, why: why.join("; ") });
            }
            None => out.extend((ins.line..=end).map(|n| (lines[n - 1].to_string(), n))),
        }
        next = end + 1;
    }
    out.extend((next..=lines.len()).map(|n| (lines[n - 1].to_string(), n)));
    let mut view = String::new();
    for (line, _) in &out {
        view.push_str(line);
        view.push('\n');
    }
    View { text: view, origin: out.iter().map(|(_, n)| *n).collect(), rewrites }
}

/// The keyword, the leading `--flag` words and the rest of an instruction's (joined) text.
fn split_command(text: &str) -> (&str, Vec<&str>, &str) {
    let text = text.trim_start();
    let (keyword, mut rest) = text.split_once([' ', '\t']).unwrap_or((text, ""));
    let mut flags = Vec::new();
    loop {
        rest = rest.trim_start();
        if !rest.starts_with("--") {
            break;
        }
        let (flag, after) = rest.split_once([' ', '\t']).unwrap_or((rest, ""));
        flags.push(flag);
        rest = after;
    }
    (keyword, flags, rest.trim_end())
}

/// Lines of a view, each with the original line it stands for.
type Lines = Vec<(String, usize)>;

/// The rewrite of one instruction (its lines `src`, `after` the line that follows it), with the reasons; `None`
/// when hadolint reads it as it is.
fn rewrite(ins: &Instruction, src: &[&str], after: Option<&str>) -> Option<(Lines, Vec<String>)> {
    let (prefix, text) = match ins.keyword.as_str() {
        "ONBUILD" => ("ONBUILD ", split_command(&ins.original).2),
        _ => ("", ins.original.as_str()),
    };
    let (keyword, raw_flags, rest) = split_command(text);
    let keyword = keyword.to_ascii_uppercase();
    let mut why = Vec::new();
    let mut flags = Vec::new();
    for raw in &raw_flags {
        let (flag, notes) = normalise_flag(raw);
        why.extend(notes);
        flags.push(flag);
    }
    let header = |rest: &str| {
        let mut h = format!("{prefix}{keyword}");
        for part in flags.iter().map(String::as_str).chain([rest]).filter(|p| !p.is_empty()) {
            h.push(' ');
            h.push_str(part);
        }
        h
    };
    let body_lines: usize = ins.heredocs.iter().map(|h| h.content.split_inclusive('\n').count() + 1).sum();
    let header_end = (ins.line + src.len()).saturating_sub(1 + body_lines).max(ins.line);
    let blank_in_header = src[..=header_end - ins.line].iter().skip(1).any(|l| !l.is_empty() && l.trim().is_empty());

    if ins.heredocs.is_empty() {
        let no_args = rest.is_empty() && matches!(keyword.as_str(), "RUN" | "CMD" | "ENTRYPOINT");
        if no_args {
            why.push(format!("{keyword} without arguments written as {keyword} []"));
        }
        if !why.is_empty() {
            // One line with the flags as hadolint spells them, the continuation lines left blank.
            let mut new = vec![(header(if no_args { "[]" } else { rest }), ins.line)];
            new.extend((ins.line + 1..ins.line + src.len()).map(|n| (String::new(), n)));
            return Some((new, why));
        }
        if blank_in_header {
            let new = src
                .iter()
                .zip(ins.line..)
                .map(|(l, n)| (if l.trim().is_empty() { String::new() } else { l.to_string() }, n))
                .collect();
            return Some((new, vec!["a line of blanks inside the continuation left empty".into()]));
        }
        return None;
    }

    let chomp = ins.heredocs.iter().any(|h| h.strip_tabs);
    if chomp {
        why.push("<<- heredoc read with its tabs stripped".into());
    }
    if keyword == "RUN" && ins.heredocs.len() > 1 {
        why.push(format!("{} heredocs in one RUN", ins.heredocs.len()));
    }
    if keyword == "ADD" {
        why.push("heredoc in ADD".into());
    }
    if after.is_some_and(|l| !l.trim().is_empty()) {
        why.push("no blank line after the heredoc".into());
    }
    if blank_in_header {
        why.push("a line of blanks inside the continuation".into());
    }
    if why.is_empty() {
        return None;
    }
    let end_line = ins.line + src.len() - 1;
    let mut new = Vec::new();
    if keyword == "RUN" {
        // The script BuildKit hands the shell, with the original line each of its lines comes from.
        let mut script: Vec<(String, usize)> = Vec::new();
        let mut at = header_end + 1;
        let lone = ins.heredocs.len() == 1 && lone_heredoc(rest);
        if !lone {
            script.push((rest.to_string(), header_end));
        }
        for h in &ins.heredocs {
            for l in h.content.split_inclusive('\n') {
                script.push((l.trim_end_matches(['\n', '\r']).to_string(), at));
                at += 1;
            }
            if !lone {
                script.push((h.name.clone(), at));
            }
            at += 1;
        }
        let mut terminator = TERMINATOR.to_string();
        while script.iter().any(|(l, _)| l.trim() == terminator) {
            terminator.push('0');
        }
        new.push((header(&format!("<<{terminator}")), ins.line));
        new.extend(script);
        new.push((terminator, end_line));
        new.push((String::new(), end_line));
    } else {
        // COPY/ADD: a file named as the heredoc (BuildKit names it so), the body left blank.
        let sources: Vec<String> = rest
            .split_whitespace()
            .map(|w| match heredoc_word(w) {
                Some(name) => name,
                None => w.to_string(),
            })
            .collect();
        new.push((header(&sources.join(" ")), ins.line));
        new.extend((ins.line + 1..=end_line).map(|n| (String::new(), n)));
    }
    Some((new, why))
}

/// `<<EOF`, `<<-"EOF"`, `3<<'EOF'`: the heredoc's name.
fn heredoc_word(word: &str) -> Option<String> {
    let w = word.trim_start_matches(|c: char| c.is_ascii_digit()).strip_prefix("<<")?;
    let w = w.strip_prefix('-').unwrap_or(w);
    let name: String = w.chars().filter(|c| *c != '"' && *c != '\'').collect();
    (!name.is_empty()).then_some(name)
}

/// A command line that is one heredoc and nothing else (BuildKit's `MustParseHeredoc`): its body is the script.
fn lone_heredoc(rest: &str) -> bool {
    let Some(r) = rest.trim_start_matches(|c: char| c.is_ascii_digit()).strip_prefix("<<") else { return false };
    let r = r.strip_prefix('-').unwrap_or(r);
    !r.contains('<') && r.split_whitespace().count() == 1
}

/// A `--flag[=value]` word as hadolint's parser reads it, and what changed.
fn normalise_flag(raw: &str) -> (String, Vec<String>) {
    let Some((name, value)) = raw.split_once('=') else { return (raw.to_string(), Vec::new()) };
    let mut notes = Vec::new();
    let unquoted: String = value.chars().filter(|c| *c != '"' && *c != '\'').collect();
    if unquoted != value && name != "--mount" {
        notes.push(format!("{name}: quotes removed"));
    }
    let value = if name == "--mount" {
        let (mount, more) = normalise_mount(&unquoted, unquoted != value);
        notes.extend(more);
        mount
    } else {
        unquoted
    };
    (format!("{name}={value}"), notes)
}

/// The keys hadolint 2.15.1 accepts in a `--mount` of each type (tried one by one).
fn mount_keys(kind: &str) -> Option<&'static [&'static str]> {
    const TARGET: [&str; 3] = ["target", "dst", "destination"];
    Some(match kind {
        "bind" => &[
            "type",
            TARGET[0],
            TARGET[1],
            TARGET[2],
            "source",
            "src",
            "from",
            "ro",
            "readonly",
            "rw",
            "readwrite",
            "relabel",
        ],
        "cache" => &[
            "type",
            TARGET[0],
            TARGET[1],
            TARGET[2],
            "source",
            "src",
            "from",
            "id",
            "sharing",
            "mode",
            "uid",
            "gid",
            "ro",
            "readonly",
            "rw",
            "readwrite",
        ],
        "tmpfs" => &["type", TARGET[0], TARGET[1], TARGET[2], "size"],
        "secret" | "ssh" => {
            &["type", TARGET[0], TARGET[1], TARGET[2], "source", "src", "id", "mode", "uid", "gid", "required", "env"]
        }
        _ => return None,
    })
}

/// A `--mount` value (quotes already removed) as hadolint spells it, and what changed.
fn normalise_mount(value: &str, had_quotes: bool) -> (String, Vec<String>) {
    let mut notes = Vec::new();
    if had_quotes {
        notes.push("--mount: quotes removed".to_string());
    }
    let fields: Vec<(String, Option<String>)> = value
        .split(',')
        .filter(|f| !f.is_empty())
        .map(|f| match f.split_once('=') {
            Some((k, v)) => (k.to_string(), Some(v.to_string())),
            None => (f.to_string(), None),
        })
        .collect();
    let kind = fields
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("type"))
        .and_then(|(_, v)| v.as_deref())
        .map_or("bind".to_string(), str::to_ascii_lowercase);
    let allowed = mount_keys(&kind);
    let mut kept = Vec::new();
    for (key, val) in fields {
        let lower = key.to_ascii_lowercase();
        if lower != key {
            notes.push(format!("--mount: {key} as {lower}"));
        }
        if allowed.is_some_and(|a| !a.contains(&lower.as_str())) {
            notes.push(format!("--mount: {lower} dropped (hadolint takes no {lower} for type={kind})"));
            continue;
        }
        let val = val.map(|v| {
            let new = match lower.as_str() {
                "type" | "sharing" => v.to_ascii_lowercase(),
                "ro" | "readonly" | "rw" | "readwrite" | "required" => match v.as_str() {
                    "1" | "t" | "T" | "TRUE" | "true" | "True" => "true".into(),
                    "0" | "f" | "F" | "FALSE" | "false" | "False" => "false".into(),
                    _ => v.clone(),
                },
                _ if v.contains(char::is_whitespace) => format!("\"{v}\""),
                _ => v.clone(),
            };
            if new != v && !new.starts_with('"') {
                notes.push(format!("--mount: {lower}={v} as {lower}={new}"));
            }
            new
        });
        kept.push(match val {
            Some(v) => format!("{lower}={v}"),
            None => lower,
        });
    }
    // BuildKit takes a bind, cache or tmpfs mount without a target (the upstream BuildKit and buildx
    // Dockerfiles have `--mount=from=binaries`); hadolint refuses one.
    let has_target = kept.iter().any(|f| ["target", "dst", "destination"].contains(&f.split('=').next().unwrap_or("")));
    if !has_target && matches!(kind.as_str(), "bind" | "cache" | "tmpfs") {
        notes.push(format!("--mount: no target, which hadolint requires, read with target={MOUNT_TARGET}"));
        kept.push(format!("target={MOUNT_TARGET}"));
    }
    (kept.join(","), notes)
}

/// The target a target-less mount gets in hadolint's view.
const MOUNT_TARGET: &str = "/hadolint-view-mount";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::dockerfile::parse;

    fn of(text: &str) -> View {
        view(&parse(text).unwrap(), text)
    }

    #[test]
    fn a_file_hadolint_reads_is_left_as_it_is() {
        let text = "# syntax=docker/dockerfile:1\nFROM alpine:3.20\nRUN <<EOF\napk add curl\nEOF\n\nRUN a \\\n  # c\n  && b\nCOPY <<A <<B /etc/\na\nA\nb\nB\n";
        let v = of(text);
        assert_eq!(v.text, text);
        assert!(v.rewrites.is_empty());
        assert_eq!(v.origin, (1..=14).collect::<Vec<_>>());
    }

    #[test]
    fn a_heredoc_without_a_blank_line_after_it_gets_one() {
        let v = of("FROM alpine:3.20\nRUN <<EOF\napk add curl\nEOF\nRUN echo x\n");
        assert_eq!(
            v.text,
            "FROM alpine:3.20\nRUN <<HADOLINT_VIEW_EOF\napk add curl\nHADOLINT_VIEW_EOF\n\nRUN echo x\n"
        );
        assert_eq!(v.origin, [1, 2, 3, 4, 4, 5]);
        assert_eq!(v.rewrites, [Rewrite { line: 2, end_line: 4, why: "no blank line after the heredoc".into() }]);
        assert_eq!((v.original_line(6), v.original_line(2), v.original_line(0)), (5, 2, 0));
    }

    #[test]
    fn chomped_heredocs_lose_their_tabs() {
        let v = of("FROM alpine:3.20\nRUN <<-EOT\n\tset -e\n\t\techo hi\n\tEOT\n\nCOPY <<-EOF /x\n\thello\n\tEOF\n");
        assert_eq!(
            v.text,
            "FROM alpine:3.20\nRUN <<HADOLINT_VIEW_EOF\nset -e\necho hi\nHADOLINT_VIEW_EOF\n\n\nCOPY EOF /x\n\n\n"
        );
        assert_eq!(v.origin, [1, 2, 3, 4, 5, 5, 6, 7, 8, 9]);
        assert_eq!(v.rewrites[0].why, "<<- heredoc read with its tabs stripped");
        assert_eq!((v.rewrites[1].line, v.rewrites[1].end_line), (7, 9));
    }

    #[test]
    fn several_heredocs_become_the_script_buildkit_runs() {
        // dockerfile2llb: the command line, then each body followed by its terminator.
        let v = of("FROM alpine:3.20\nRUN <<FILE1 cat > file1 && <<-FILE2 cat > file2\nI am\nfirst\nFILE1\n\tI am\n\tsecond\n\tFILE2\nENV A=b\n");
        assert_eq!(
            v.text,
            "FROM alpine:3.20\nRUN <<HADOLINT_VIEW_EOF\n<<FILE1 cat > file1 && <<-FILE2 cat > file2\nI am\nfirst\nFILE1\nI am\nsecond\nFILE2\nHADOLINT_VIEW_EOF\n\nENV A=b\n"
        );
        assert_eq!(v.origin, [1, 2, 2, 3, 4, 5, 6, 7, 8, 8, 8, 9]);
        assert_eq!(
            v.rewrites[0].why,
            "<<- heredoc read with its tabs stripped; 2 heredocs in one RUN; no blank line after the heredoc"
        );
    }

    #[test]
    fn the_views_terminator_is_no_line_of_the_script() {
        let v = of("FROM alpine:3.20\nRUN <<-EOF\n\tHADOLINT_VIEW_EOF\n\tEOF\n");
        assert!(v.text.contains("RUN <<HADOLINT_VIEW_EOF0\nHADOLINT_VIEW_EOF\nHADOLINT_VIEW_EOF0\n"), "{}", v.text);
    }

    #[test]
    fn mounts_and_continuations_as_hadolint_spells_them() {
        let v = of("FROM alpine:3.20\nRUN --mount=\"type=cache,target=/x\" \\\n    --mount=type=cache,target=/y,SHARING=LOCKED,required=1 \\\n    --network=none \\\n  echo hi\n");
        assert_eq!(
            v.text,
            "FROM alpine:3.20\nRUN --mount=type=cache,target=/x --mount=type=cache,target=/y,sharing=locked --network=none echo hi\n\n\n\n"
        );
        assert_eq!(v.origin, [1, 2, 3, 4, 5]);
        assert_eq!(
            v.rewrites[0].why,
            "--mount: quotes removed; --mount: SHARING as sharing; --mount: sharing=LOCKED as sharing=locked; \
             --mount: required dropped (hadolint takes no required for type=cache)"
        );
        let (m, notes) = normalise_mount("type=secret,id=tok,required=TRUE,ro,target=/a b", false);
        assert_eq!(m, "type=secret,id=tok,required=true,target=\"/a b\"");
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert_eq!(normalise_flag("--mount=type=bind,target=.").1, Vec::<String>::new());
        let (m, notes) = normalise_mount("from=binaries", false);
        assert_eq!(m, "from=binaries,target=/hadolint-view-mount");
        assert_eq!(notes, ["--mount: no target, which hadolint requires, read with target=/hadolint-view-mount"]);
        assert_eq!(normalise_mount("type=secret,id=tok", false).0, "type=secret,id=tok", "a secret needs none");
        assert_eq!(normalise_flag("--link"), ("--link".into(), vec![]));
    }

    #[test]
    fn a_heredoc_instruction_with_a_mount_to_rewrite_is_rewritten_whole() {
        let v = of("FROM alpine:3.20\nRUN --mount=type=cache,target=/c,required \\\n  <<EOT\necho hi\nEOT\n");
        assert_eq!(
            v.text,
            "FROM alpine:3.20\nRUN --mount=type=cache,target=/c <<HADOLINT_VIEW_EOF\necho hi\nHADOLINT_VIEW_EOF\n\n"
        );
        assert_eq!(v.origin, [1, 2, 4, 5, 5]);
    }

    #[test]
    fn blank_looking_continuation_lines_and_bare_instructions() {
        let v = of("FROM alpine:3.20\nRUN echo a \\\n   \n  && echo b\nCMD\nADD <<EOF /x\nhi\nEOF\n");
        assert_eq!(v.text, "FROM alpine:3.20\nRUN echo a \\\n\n  && echo b\nCMD []\nADD EOF /x\n\n\n");
        let lines: Vec<usize> = v.rewrites.iter().map(|r| r.line).collect();
        assert_eq!(lines, [2, 5, 6]);
        assert_eq!(v.rewrites[2].why, "heredoc in ADD");
    }

    #[test]
    fn onbuild_and_crlf() {
        let v = of("FROM alpine:3.20\r\nONBUILD RUN <<EOF\r\necho hi\r\nEOF\r\nRUN x\r\n");
        assert_eq!(v.text, "FROM alpine:3.20\nONBUILD RUN <<HADOLINT_VIEW_EOF\necho hi\nHADOLINT_VIEW_EOF\n\nRUN x\n");
    }
}
