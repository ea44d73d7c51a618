//! RE2-dialect regular expressions (the dialect of Go's `regexp` package)
//! compiled with the Rust `regex` crate: the one regex module of the checks.
//! The smoke specs' regexes use it (container-structure-test is written in
//! Go), and so do the `.dockerignore` patterns of the lint's context walk
//! (Docker compiles each pattern to a Go regexp).
//!
//! [`compile`] parses the pattern the way Go's `regexp/syntax` does and rewrites it
//! into an equivalent Rust pattern, so that matching follows RE2 semantics where
//! the two dialects differ:
//!
//! - `\d \D \s \S \w \W` are ASCII-only (`\s` is `[\t\n\f\r ]`, without `\v`), also
//!   inside bracket classes (`[\d]`, `[^\d]`); Rust's are Unicode-aware.
//! - `\b` and `\B` are ASCII word boundaries; `\B` never matches inside a
//!   multi-byte character.
//! - `\Q...\E` is literal text (`\Q` without `\E` runs to the end).
//! - `\p{^Greek}` and `\P{^Greek}` (negation inside the braces) work; `\pC` and
//!   `\p{Other}` leave out unassigned code points, as Go's tables do; `\p{Cs}`
//!   (surrogates, which Rust does not know) compiles and matches no text.
//! - Octal escapes (`\0`, `\12`, `\123`) work; `\1`..`\9` alone (backreferences) and
//!   any escape RE2 does not know (`\u`, `\e`, `\Z`, ...) are errors.
//! - Characters that are special only to Rust are literals: `\<` and `\>`;
//!   `&&`, `--` and `~~` and a nested `[` inside a class; a `{` that does not start a
//!   valid `{n}`, `{n,}` or `{n,m}` (e.g. `a{,5}`, `a{01}`, `x{`).
//! - Flags are only `i`, `m`, `s` and `U` (`(?x)`, `(?u)`, `(?R)` are errors);
//!   repeated or cancelled flags such as `(?i-i)` and the empty `(?)` are accepted.
//! - RE2's limits are errors, with Go's messages: a repeat count above 1000 (also as
//!   the product of nested counts, e.g. `(a{100}){11}`), nested repetition operators
//!   (`a**`, `a+?+`), a repetition with nothing to repeat.
//! - `\C` (any single byte) is rejected with an error saying it is not supported.
//!
//! Case folding (`(?i)`, simple folding: `(?i)ß` matches `ẞ` but not `SS`), `(?s)`,
//! `(?m)`, `(?U)`, POSIX classes (`[[:alpha:]]`, ASCII in both), `.` and the
//! leftmost-first match semantics are the same in both engines and pass through.
//! Where Go's `regexp` and the C++ RE2 library disagree, this follows Go.
//!
//! Errors are one line: `` `PATTERN` is not a valid regex: WHY `` (control
//! characters in the pattern are shown escaped).
//!
//! What still differs from RE2 / Go:
//!
//! - Empty matches from `find_iter`/`split` (e.g. of `a*`) can fall between the
//!   bytes of a multi-byte character, because this is a `regex::bytes::Regex`;
//!   Go reports them only at character boundaries. `is_match`, the first match and
//!   all non-empty matches are the same.
//! - Rust accepts some `\p{...}` names that Go rejects (binary properties such as
//!   `\p{Alphabetic}`, an `Is` prefix as in `\p{IsGreek}`), and its Unicode tables may
//!   be of a newer Unicode version than Go's.
//! - A capture group name that Rust cannot hold (starting with a digit, or a
//!   duplicate) is kept as an unnamed capture group: numbering and matching are as in
//!   Go, but the name cannot be looked up.
//! - A repetition operator right after a flag group (`a(?i)*`) is an error; Go
//!   applies it to the `a`.
//! - Go's nesting limit (1000 levels) is replaced by Rust's nest limit (250) and
//!   Go's size limit by a 256 MiB compiled-size limit.

use std::fmt::Write as _;

use anyhow::anyhow;
use regex::bytes::{Regex, RegexBuilder};

/// Compiles an RE2 pattern; the error is one line: "`PATTERN` is not a valid regex: WHY".
pub fn compile(pattern: &str) -> anyhow::Result<Regex> {
    build(pattern).map_err(|why| anyhow!("`{}` is not a valid regex: {why}", one_line(pattern)))
}

/// Compiles an RE2 pattern; the error is only the reason, on one line (for a caller that
/// names the pattern its own way).
pub fn build(pattern: &str) -> Result<Regex, String> {
    let translated = Translator::new(pattern).run().map_err(|why| one_line(&why))?;
    RegexBuilder::new(&translated)
        .unicode(true)
        .size_limit(256 << 20)
        .build()
        .map_err(|err| one_line(&rust_reason(&err)))
}

/// The reason of a `regex` error, without the multi-line pattern display.
fn rust_reason(err: &regex::Error) -> String {
    match err {
        regex::Error::Syntax(msg) => {
            let why = msg.lines().rev().find_map(|line| line.strip_prefix("error: ")).unwrap_or(msg);
            format!("not supported by the Rust regex engine: {why}")
        }
        regex::Error::CompiledTooBig(limit) => format!("the compiled regex exceeds the size limit of {limit} bytes"),
        other => other.to_string(),
    }
}

/// `s` with control characters (newlines, tabs, ...) escaped.
fn one_line(s: &str) -> String {
    s.chars().fold(String::new(), |mut out, c| {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
        out
    })
}

type Parse<T> = Result<T, String>;

/// A Go-style error reason: "CODE: `EXPR`".
fn fail<T>(code: &str, expr: &str) -> Parse<T> {
    Err(format!("{code}: `{expr}`"))
}

/// Largest repeat count, alone or as a product of nested counts (RE2's limit).
const MAX_REPEAT: u64 = 1000;

/// A class that matches nothing (used for surrogate code points, which never occur in UTF-8 text).
const NOTHING: &str = r"[^\x{0}-\x{10FFFF}]";

/// The ASCII meaning of RE2's Perl classes, as Rust classes.
fn perl_class(c: char) -> Option<&'static str> {
    Some(match c {
        'd' => "[0-9]",
        'D' => "[^0-9]",
        's' => r"[\t\n\f\r ]",
        'S' => r"[^\t\n\f\r ]",
        'w' => "[0-9A-Za-z_]",
        'W' => "[^0-9A-Za-z_]",
        _ => return None,
    })
}

/// `s` starts with a Perl class escape: its Rust class.
fn perl_class_at(s: &str) -> Option<&'static str> {
    s.strip_prefix('\\').and_then(|t| t.chars().next()).and_then(perl_class)
}

const POSIX_CLASSES: [&str; 14] = [
    "alnum", "alpha", "ascii", "blank", "cntrl", "digit", "graph", "lower", "print", "punct", "space", "upper", "word",
    "xdigit",
];

/// Appends the code point `c` as a literal that means the same inside and outside a Rust class.
fn push_char(out: &mut String, c: u32) {
    match char::from_u32(c) {
        None => out.push_str(NOTHING),
        Some(ch) if ch.is_ascii_alphanumeric() || ch == '<' || ch == '>' || (!ch.is_ascii() && !ch.is_control()) => {
            out.push(ch)
        }
        Some(ch) if ch.is_ascii_punctuation() => {
            out.push('\\');
            out.push(ch);
        }
        Some(_) => {
            let _ = write!(out, "\\x{{{c:X}}}");
        }
    }
}

/// Appends the class item `lo-hi` (`lo <= hi`), leaving out surrogates.
fn push_range(out: &mut String, lo: u32, hi: u32) {
    let mut any = false;
    for (a, b) in [(lo, hi.min(0xD7FF)), (lo.max(0xE000), hi)] {
        if a <= b {
            push_char(out, a);
            if a != b {
                out.push('-');
                push_char(out, b);
            }
            any = true;
        }
    }
    if !any {
        out.push_str(NOTHING);
    }
}

/// Parses a single-character escape at the start of `s` (which starts with `\`) as
/// Go's `parseEscape` does: the code point and the length of the escape.
fn parse_escape(s: &str) -> Parse<(u32, usize)> {
    let invalid = |end: usize| fail("invalid escape sequence", &s[..end.min(s.len())]);
    let Some(c) = s[1..].chars().next() else {
        return Err("trailing backslash at end of expression".to_string());
    };
    let b = s.as_bytes();
    let is_octal = |i: usize| b.get(i).is_some_and(|d| (b'0'..=b'7').contains(d));
    match c {
        '0'..='7' => {
            // A single non-zero digit would be a backreference: not supported.
            if c != '0' && !is_octal(2) {
                return invalid(2);
            }
            let mut value = u32::from(b[1] - b'0');
            let mut end = 2;
            while end < 4 && is_octal(end) {
                value = value * 8 + u32::from(b[end] - b'0');
                end += 1;
            }
            Ok((value, end))
        }
        'x' => {
            let mut chars = s[2..].char_indices().map(|(i, c)| (2 + i + c.len_utf8(), c));
            let Some((end, first)) = chars.next() else { return invalid(2) };
            if first == '{' {
                let (mut value, mut digits) = (0u32, 0);
                loop {
                    let Some((end, c)) = chars.next() else { return invalid(s.len()) };
                    if c == '}' {
                        return if digits == 0 { invalid(end) } else { Ok((value, end)) };
                    }
                    let Some(digit) = c.to_digit(16) else { return invalid(end) };
                    value = value * 16 + digit;
                    if value > 0x10FFFF {
                        return invalid(end);
                    }
                    digits += 1;
                }
            }
            let Some((end, second)) = chars.next() else { return invalid(end) };
            match (first.to_digit(16), second.to_digit(16)) {
                (Some(x), Some(y)) => Ok((x * 16 + y, end)),
                _ => invalid(end),
            }
        }
        'a' => Ok((0x07, 2)),
        'f' => Ok((0x0C, 2)),
        'n' => Ok((0x0A, 2)),
        'r' => Ok((0x0D, 2)),
        't' => Ok((0x09, 2)),
        'v' => Ok((0x0B, 2)),
        c if c.is_ascii() && !c.is_ascii_alphanumeric() => Ok((c as u32, 2)),
        c => invalid(1 + c.len_utf8()),
    }
}

/// Parses `\pN`, `\p{Name}`, `\PN`, `\P{Name}` (and `^` negation inside the braces) at
/// the start of `s`: the Rust class and the length of the escape.
fn parse_unicode_class(s: &str) -> Parse<(String, usize)> {
    let mut negated = s.as_bytes()[1] == b'P';
    let Some(c) = s[2..].chars().next() else { return fail("invalid character class range", &s[..2]) };
    let (len, mut name) = if c == '{' {
        let Some(end) = s.find('}') else { return fail("invalid character class range", s) };
        (end + 1, &s[3..end])
    } else {
        (2 + c.len_utf8(), &s[2..2 + c.len_utf8()])
    };
    if let Some(rest) = name.strip_prefix('^') {
        negated = !negated;
        name = rest;
    }
    // Go looks names up ignoring case, spaces, '_' and '-'; anything else (Rust's
    // `scx=Greek`, `gc:L`, ...) is not an RE2 name.
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | ' ')) {
        return fail("invalid character class range", &s[..len]);
    }
    let canonical: String = name.chars().filter(|c| !matches!(c, '_' | '-' | ' ')).collect();
    let is = |other: &str| canonical.eq_ignore_ascii_case(other);
    let sign = if negated { "^" } else { "" };
    let class = if is("C") || is("Other") {
        // Go's C (Other) is Cc, Cf, Co and Cs; Rust's also has the unassigned code points.
        // (Surrogates never occur in UTF-8 text.)
        format!(r"[{sign}\p{{Cc}}\p{{Cf}}\p{{Co}}]")
    } else if is("Cs") || is("Surrogate") {
        // Rust has no surrogate class; no UTF-8 text has surrogates.
        format!(r"[{sign}{NOTHING}]")
    } else {
        format!(r"\{}{{{name}}}", if negated { 'P' } else { 'p' })
    };
    Ok((class, len))
}

/// Go's `parseRepeat`: `{n}`, `{n,}` or `{n,m}` at the start of `s` (no leading zeros).
/// Returns min, max (`None` when unbounded; counts too big are `u64::MAX`) and the length.
fn parse_repeat(s: &str) -> Option<(u64, Option<u64>, usize)> {
    fn int(s: &str, at: usize) -> Option<(u64, usize)> {
        let digits = s[at..].bytes().take_while(u8::is_ascii_digit).count();
        let text = &s[at..at + digits];
        if digits == 0 || (digits > 1 && text.starts_with('0')) {
            return None;
        }
        Some((text.parse().unwrap_or(u64::MAX), at + digits))
    }
    let (min, mut at) = int(s, 1)?;
    let max = match s[at..].strip_prefix(',') {
        None => Some(min),
        Some(rest) if rest.starts_with('}') => {
            at += 1;
            None
        }
        Some(_) => {
            let (max, end) = int(s, at + 1)?;
            at = end;
            Some(max)
        }
    };
    s[at..].starts_with('}').then_some((min, max, at + 1))
}

/// One open group: the "repeat weight" (the product of nested repeat counts, RE2's
/// `repeatIsValid`) of the finished items and of the last item, if a repetition may
/// still apply to it.
#[derive(Default)]
struct Frame {
    max: u64,
    last: Option<u64>,
}

struct Translator<'p> {
    pattern: &'p str,
    pos: usize,
    out: String,
    frames: Vec<Frame>,
    /// Start of the previous token when it was a repetition operator.
    last_repeat: Option<usize>,
    names: Vec<&'p str>,
}

impl<'p> Translator<'p> {
    fn new(pattern: &'p str) -> Self {
        let frames = vec![Frame::default()];
        Translator {
            pattern,
            pos: 0,
            out: String::with_capacity(pattern.len() * 2),
            frames,
            last_repeat: None,
            names: vec![],
        }
    }

    fn rest(&self) -> &'p str {
        &self.pattern[self.pos..]
    }

    fn frame(&mut self) -> &mut Frame {
        self.frames.last_mut().expect("the top-level frame is never popped")
    }

    /// Closes the last item of the current group: no repetition applies to it any more.
    fn end_item(&mut self) {
        let frame = self.frame();
        if let Some(weight) = frame.last.take() {
            frame.max = frame.max.max(weight);
        }
    }

    /// Appends an item a repetition can apply to (one Rust atom).
    fn item(&mut self, text: &str, weight: u64) {
        self.end_item();
        self.frame().last = Some(weight);
        self.out.push_str(text);
    }

    fn literal(&mut self, c: u32) {
        let mut text = String::new();
        push_char(&mut text, c);
        self.item(&text, 0);
    }

    fn run(mut self) -> Parse<String> {
        while let Some(c) = self.rest().chars().next() {
            let start = self.pos;
            let mut repeat = None;
            match c {
                '(' => self.open_group()?,
                ')' => self.close_group()?,
                '|' => {
                    self.end_item();
                    self.out.push('|');
                    self.pos += 1;
                }
                '^' | '$' | '.' => {
                    self.pos += 1;
                    self.item(&self.pattern[start..self.pos], 0);
                }
                '[' => self.class()?,
                '*' | '+' | '?' => {
                    self.pos += 1;
                    self.repeat(start, None)?;
                    repeat = Some(start);
                }
                '{' => match parse_repeat(self.rest()) {
                    Some((min, max, len)) => {
                        self.pos += len;
                        if min > MAX_REPEAT || max.is_some_and(|max| max > MAX_REPEAT || min > max) {
                            return fail("invalid repeat count", &self.pattern[start..self.pos]);
                        }
                        self.repeat(start, Some((min, max)))?;
                        repeat = Some(start);
                    }
                    None => {
                        self.pos += 1;
                        self.literal('{' as u32);
                    }
                },
                '\\' => self.escape()?,
                c => {
                    self.pos += c.len_utf8();
                    self.literal(c as u32);
                }
            }
            self.last_repeat = repeat;
        }
        if self.frames.len() > 1 {
            return fail("missing closing )", self.pattern);
        }
        Ok(self.out)
    }

    /// A repetition operator from `start` to `self.pos` (a `?` suffix is taken here).
    fn repeat(&mut self, start: usize, counts: Option<(u64, Option<u64>)>) -> Parse<()> {
        let lazy = self.rest().starts_with('?');
        if lazy {
            self.pos += 1;
        }
        let op = &self.pattern[start..self.pos];
        if let Some(previous) = self.last_repeat {
            return fail("invalid nested repetition operator", &self.pattern[previous..self.pos]);
        }
        let Some(weight) = self.frame().last else { return fail("missing argument to repetition operator", op) };
        let weight = match counts {
            None => weight,
            Some((_, Some(0))) => 0,
            Some((min, max)) => match max.unwrap_or(min) {
                0 => weight,
                m => m.saturating_mul(weight.max(1)),
            },
        };
        if let Some((min, max)) = counts {
            if (min >= 2 || max.is_some_and(|max| max >= 2)) && weight > MAX_REPEAT {
                return fail("invalid repeat count", op);
            }
            match max {
                Some(max) if max == min => write!(self.out, "{{{min}}}"),
                Some(max) => write!(self.out, "{{{min},{max}}}"),
                None => write!(self.out, "{{{min},}}"),
            }
            .expect("writing to a String");
        } else {
            self.out.push_str(&op[..1]);
        }
        if lazy {
            self.out.push('?');
        }
        self.frame().last = Some(weight);
        Ok(())
    }

    fn open_group(&mut self) -> Parse<()> {
        let rest = self.rest();
        if !rest.starts_with("(?") {
            self.pos += 1;
            return self.begin_group("(");
        }
        let b = rest.as_bytes();
        let python = b.len() > 4 && b[2] == b'P' && b[3] == b'<';
        if python || (b.len() > 3 && b[2] == b'<') {
            let Some(end) = rest.find('>') else { return fail("invalid named capture", rest) };
            let name = &rest[if python { 4 } else { 3 }..end];
            if name.is_empty() || !name.bytes().all(|c| c == b'_' || c.is_ascii_alphanumeric()) {
                return fail("invalid named capture", &rest[..=end]);
            }
            self.pos += end + 1;
            // Rust wants names to start with a letter or '_' and to be unique; Go does not.
            if name.as_bytes()[0].is_ascii_digit() || self.names.contains(&name) {
                return self.begin_group("(");
            }
            self.names.push(name);
            return self.begin_group(&format!("(?P<{name}>"));
        }
        // Flags: (?flags) or (?flags:re), flags being [imsU]* optionally followed by -[imsU]+.
        let (mut set, mut clear) = (String::new(), String::new());
        let (mut negated, mut saw_flag) = (false, false);
        for (i, c) in rest.char_indices().skip(2) {
            let end = i + c.len_utf8();
            match c {
                'i' | 'm' | 's' | 'U' => {
                    let (add, remove) = if negated { (&mut clear, &mut set) } else { (&mut set, &mut clear) };
                    if !add.contains(c) {
                        add.push(c);
                    }
                    remove.retain(|f| f != c);
                    saw_flag = true;
                }
                '-' if !negated => {
                    negated = true;
                    saw_flag = false;
                }
                ':' | ')' if !negated || saw_flag => {
                    self.pos += end;
                    let flags = if clear.is_empty() { set } else { format!("{set}-{clear}") };
                    if c == ':' {
                        return self.begin_group(&format!("(?{flags}:"));
                    }
                    self.end_item();
                    if !flags.is_empty() {
                        let _ = write!(self.out, "(?{flags})");
                    }
                    return Ok(());
                }
                _ => return fail("invalid or unsupported Perl syntax", &rest[..end]),
            }
        }
        fail("invalid or unsupported Perl syntax", rest)
    }

    fn begin_group(&mut self, text: &str) -> Parse<()> {
        self.end_item();
        self.out.push_str(text);
        self.frames.push(Frame::default());
        Ok(())
    }

    fn close_group(&mut self) -> Parse<()> {
        if self.frames.len() == 1 {
            return fail("unexpected )", self.pattern);
        }
        let frame = self.frames.pop().expect("checked above");
        self.pos += 1;
        self.out.push(')');
        self.item("", frame.max.max(frame.last.unwrap_or(0)));
        Ok(())
    }

    fn escape(&mut self) -> Parse<()> {
        let rest = self.rest();
        let next = rest[1..].chars().next();
        let simple = match next {
            Some('A') => Some(r"\A"),
            Some('z') => Some(r"\z"),
            Some('b') => Some(r"(?-u:\b)"),
            // (?:\b|\B), Unicode-aware, holds at every character boundary and never
            // inside a multi-byte character, where (?-u:\B) alone would match.
            Some('B') => Some(r"(?:(?-u:\B)(?:\b|\B))"),
            Some(c) => perl_class(c),
            None => None,
        };
        if let Some(text) = simple {
            self.pos += 2;
            self.item(text, 0);
            return Ok(());
        }
        match next {
            Some('C') => Err(r"`\C` (match any single byte) is not supported".to_string()),
            Some('Q') => {
                let body = &rest[2..];
                let (text, len) = match body.find(r"\E") {
                    Some(end) => (&body[..end], 2 + end + 2),
                    None => (body, rest.len()),
                };
                self.pos += len;
                for c in text.chars() {
                    self.literal(c as u32);
                }
                Ok(())
            }
            Some('p' | 'P') => {
                let (class, len) = parse_unicode_class(rest)?;
                self.pos += len;
                self.item(&class, 0);
                Ok(())
            }
            _ => {
                let (c, len) = parse_escape(rest)?;
                self.pos += len;
                self.literal(c);
                Ok(())
            }
        }
    }

    /// A bracket class, parsed as Go's `parseClass` and written item by item.
    fn class(&mut self) -> Parse<()> {
        let whole = self.rest();
        let mut at = 1;
        let mut out = String::from("[");
        if whole[at..].starts_with('^') {
            out.push('^');
            at += 1;
        }
        let mut first = true;
        loop {
            let rest = &whole[at..];
            if rest.starts_with(']') && !first {
                at += 1;
                break;
            }
            first = false;
            // A POSIX class: "[:" then the name up to the next ":]" (which Go looks for
            // even past the end of the bracket class).
            if let Some(i) = rest.strip_prefix("[:").filter(|t| !t.is_empty()).and_then(|t| t.find(":]")) {
                let named = &rest[..i + 4];
                let name = &named[2..named.len() - 2];
                if !POSIX_CLASSES.contains(&name.strip_prefix('^').unwrap_or(name)) {
                    return fail("invalid character class range", named);
                }
                out.push_str(named);
                at += named.len();
                continue;
            }
            if rest.starts_with(r"\p") || rest.starts_with(r"\P") {
                let (class, len) = parse_unicode_class(rest)?;
                out.push_str(&class);
                at += len;
                continue;
            }
            if let Some(class) = perl_class_at(rest) {
                out.push_str(class);
                at += 2;
                continue;
            }
            if rest.starts_with(r"\C") {
                return Err(r"`\C` (match any single byte) is not supported".to_string());
            }
            let range_start = at;
            let (lo, len) = class_char(rest, whole)?;
            at += len;
            let mut hi = lo;
            let tail = &whole.as_bytes()[at..];
            if tail.len() >= 2 && tail[0] == b'-' && tail[1] != b']' {
                let (end, len) = class_char(&whole[at + 1..], whole)?;
                at += 1 + len;
                if end < lo {
                    return fail("invalid character class range", &whole[range_start..at]);
                }
                hi = end;
            }
            push_range(&mut out, lo, hi);
        }
        out.push(']');
        self.pos += at;
        self.item(&out, 0);
        Ok(())
    }
}

/// A character in a class (literal or escape) at the start of `s`, with its length.
fn class_char(s: &str, whole_class: &str) -> Parse<(u32, usize)> {
    match s.chars().next() {
        None => fail("missing closing ]", whole_class),
        Some('\\') => parse_escape(s),
        Some(c) => Ok((c as u32, c.len_utf8())),
    }
}

#[cfg(test)]
mod tests {
    use super::compile;

    fn re(pattern: &str) -> regex::bytes::Regex {
        compile(pattern).unwrap_or_else(|err| panic!("{err}"))
    }

    fn matches(pattern: &str, text: &str) -> bool {
        re(pattern).is_match(text.as_bytes())
    }

    fn find(pattern: &str, text: &str) -> Option<String> {
        re(pattern).find(text.as_bytes()).map(|m| String::from_utf8(m.as_bytes().to_vec()).unwrap())
    }

    fn error(pattern: &str) -> String {
        let message = match compile(pattern) {
            Ok(_) => panic!("`{pattern}` compiled"),
            Err(err) => err.to_string(),
        };
        assert!(!message.contains('\n'), "not one line: {message:?}");
        message
    }

    const ARABIC_THREE: &str = "\u{663}";
    const FULLWIDTH_FIVE: &str = "\u{FF15}";

    #[test]
    fn digit_is_ascii() {
        for p in [r"\d", r"[\d]", r"[^\D]", "[[:digit:]]"] {
            assert!(matches(p, "3"), "{p}");
            assert!(!matches(p, ARABIC_THREE), "{p}");
            assert!(!matches(p, FULLWIDTH_FIVE), "{p}");
        }
        for p in [r"\D", r"[^\d]", r"[\D]", r"[a\D]"] {
            assert!(!matches(p, "3"), "{p}");
            assert!(matches(p, ARABIC_THREE), "{p}");
            assert!(matches(p, FULLWIDTH_FIVE), "{p}");
        }
        assert!(matches(r"^\d+$", "0123456789"));
        assert!(matches(r"\pN", ARABIC_THREE));
        assert!(matches(r"\p{Nd}", FULLWIDTH_FIVE));
    }

    #[test]
    fn word_is_ascii() {
        for p in [r"\w", r"[\w]", r"[^\W]"] {
            assert!(!matches(p, "é"), "{p}");
            assert!(matches(p, "_") && matches(p, "Z") && matches(p, "0"), "{p}");
        }
        for p in [r"\W", r"[\W]", r"[^\w]"] {
            assert!(matches(p, "é"), "{p}");
            assert!(!matches(p, "a"), "{p}");
        }
        assert!(matches(r"\pL", "é"));
        assert!(matches(r"^\w+$", "abc_XYZ_019"));
        assert!(!matches(r"^\w+$", "naïve"));
    }

    #[test]
    fn space_is_ascii_without_vertical_tab() {
        for p in [r"\s", r"[\s]", r"[^\S]"] {
            for ws in ["\t", "\n", "\u{c}", "\r", " "] {
                assert!(matches(p, ws), "{p} {ws:?}");
            }
            assert!(!matches(p, "\u{b}"), "{p} vertical tab");
            assert!(!matches(p, "\u{a0}"), "{p} no-break space");
            assert!(!matches(p, "\u{2003}"), "{p} em space");
        }
        assert!(matches(r"\S", "\u{b}"));
        assert!(matches(r"[^\s]", "\u{a0}"));
        // POSIX [:space:] does include \v, in RE2 as in Rust.
        assert!(matches("[[:space:]]", "\u{b}"));
    }

    #[test]
    fn perl_classes_fold_case_like_go() {
        // Go folds the class under (?i): \w then also has the Kelvin sign and long s.
        assert!(matches(r"(?i)\w", "\u{212A}"));
        assert!(matches(r"(?i)[\w]", "\u{17F}"));
        assert!(!matches(r"(?i)\W", "\u{212A}"));
        assert!(!matches(r"\w", "\u{212A}"));
    }

    #[test]
    fn word_boundaries_are_ascii() {
        // é is not an ASCII word character, so there is a boundary between é and f.
        assert_eq!(find(r"\bfoo\b", "éfoo").as_deref(), Some("foo"));
        assert_eq!(find(r"\bfoo\b", "fooé").as_deref(), Some("foo"));
        assert!(!matches(r"\bfoo\b", "afoo"));
        assert!(!matches(r"\Bfoo", "éfoo"));
        assert!(matches(r"\Bfoo", "afoo"));
        assert!(matches(r"é\B", "éé"));
        // \B never matches inside a multi-byte character: "aéb" has boundaries at every
        // character boundary, so RE2 finds no \B at all.
        assert!(!matches(r"\B", "aéb"));
        assert!(matches(r"\B", "ab"));
        assert_eq!(re(r"\B").find("aéé".as_bytes()).map(|m| m.start()), Some(3));
        assert!(matches(r"\b*x", "x"));
        assert!(matches(r"(?:\B)+x", "ax"));
    }

    #[test]
    fn quoted_text_is_literal() {
        assert!(matches(r"^\Q.*\E$", ".*"));
        assert!(!matches(r"\Q.*\E", "abc"));
        assert!(matches(r"^a\Q+?[(\E$", "a+?[("));
        assert!(matches(r"^\Q\d(", r"\d("), "\\Q without \\E runs to the end");
        assert!(matches(r"^\Qa\\E$", r"a\"), "the first \\E ends the quote");
        // A repetition after \Q...\E applies to the last character only, as in Go.
        assert!(matches(r"^\Qab\E+$", "abbb"));
        assert!(!matches(r"^\Qab\E+$", "abab"));
        assert!(matches(r"^a\Q\E*$", "aaa"));
    }

    #[test]
    fn escapes() {
        assert!(matches(r"^\\d$", r"\d"));
        assert!(!matches(r"\\d", "5"));
        assert!(matches(r"^\\\d$", r"\5"));
        assert!(matches(r"^\[a\]$", "[a]"));
        assert!(matches(r"^[\]]$", "]"));
        assert!(matches(r"^[\[]$", "["));
        assert!(matches(r"^\101\0\x42\x{263A}\a\f\t\n\r\v$", "A\0B\u{263A}\u{7}\u{c}\t\n\r\u{b}"));
        assert!(matches(r"^\12$", "\n"), "two-digit octal");
        assert!(matches(r"^\1234$", "S4"), "octal takes at most three digits");
        assert!(matches(r"^\_\<\>\-\ \#\&\~$", "_<>- #&~"));
        assert!(matches(r"^\x{10FFFF}$", "\u{10FFFF}"));
        assert!(!matches(r"\x{D800}", "\u{FFFD}"), "a surrogate matches nothing");
        assert!(matches(r"^[\x{D000}-\x{E000}]$", "\u{D7FF}"));
        assert!(matches(r"^[\x{D000}-\x{E000}]$", "\u{E000}"));
    }

    #[test]
    fn invalid_escapes_are_errors() {
        for (p, expr) in [
            (r"\1", r"\1"),
            (r"(a)\1", r"\1"),
            (r"\8", r"\8"),
            (r"\u0041", r"\u"),
            (r"\e", r"\e"),
            (r"\Z", r"\Z"),
            (r"\G", r"\G"),
            (r"\k<a>", r"\k"),
            (r"\x{110000}", r"\x{110000"),
            (r"\x{}", r"\x{}"),
            (r"\xg1", r"\xg1"),
            (r"[\b]", r"\b"),
            (r"[\Q]", r"\Q"),
            (r"\é", r"\é"),
        ] {
            let message = error(p);
            assert!(message.ends_with(&format!("invalid escape sequence: `{expr}`")), "{message}");
        }
        assert!(error("a\\").ends_with("trailing backslash at end of expression"));
    }

    #[test]
    fn any_byte_is_not_supported() {
        for p in [r"a\Cb", r"[\C]"] {
            let message = error(p);
            assert!(message.starts_with(&format!("`{p}` is not a valid regex:")), "{message}");
            assert!(message.contains(r"`\C`") && message.contains("not supported"), "{message}");
        }
        // An escaped backslash followed by C is fine.
        assert!(matches(r"^\\C$", r"\C"));
    }

    #[test]
    fn unicode_classes() {
        for p in [r"\p{Greek}", r"\P{^Greek}", r"[\p{Greek}]", r"[^\P{Greek}]", r"\p{greek}"] {
            assert!(matches(p, "α"), "{p}");
            assert!(!matches(p, "a"), "{p}");
        }
        for p in [r"\p{^Greek}", r"\P{Greek}", r"[^\p{Greek}]", r"[\p{^Greek}]"] {
            assert!(!matches(p, "α"), "{p}");
            assert!(matches(p, "a"), "{p}");
        }
        assert!(matches(r"^\pL+$", "héllo"));
        assert!(matches(r"\PL", "1") && !matches(r"\PL", "é"));
        assert!(matches(r"\p{Lu}", "É") && !matches(r"\p{Lu}", "é"));
        assert!(matches(r"(?i)\p{Lu}", "é"), "folding applies to Unicode classes");
        assert!(matches(r"^\p{Any}$", "\u{10FFFF}"));
        // Go's \pC has no unassigned code points (U+0378 is unassigned).
        assert!(matches(r"\pC", "\u{0}") && matches(r"\p{Other}", "\u{AD}"));
        assert!(!matches(r"\pC", "\u{378}") && !matches(r"[\pC]", "\u{378}"));
        assert!(matches(r"\PC", "\u{378}") && matches(r"\p{^C}", "\u{378}"));
        assert!(!matches(r"\p{Cs}", "\u{FFFD}") && matches(r"^\P{Cs}$", "a") && matches(r"^[^\p{Cs}]$", "a"));
        assert!(compile(r"\p{IsGreek}").is_ok() && compile(r"\p{Alphabetic}").is_ok(), "Rust-only names (see the doc)");
        for p in [r"\p{NoSuchClass}", r"\p{scx=Greek}", r"\p{}", r"\p{^}", r"\p", r"\p{Greek"] {
            error(p);
        }
    }

    #[test]
    fn posix_classes() {
        assert!(matches("[[:alpha:]]", "a") && !matches("[[:alpha:]]", "é"));
        assert!(matches("^[[:^alpha:]]$", "é") && !matches("[[:^alpha:]]", "a"));
        assert!(matches("^[^[:alpha:]]$", "1") && !matches("[^[:alpha:]]", "x"));
        assert!(matches("^[[:word:][:punct:]]+$", "a_b.c!"));
        assert!(matches("(?i)^[[:upper:]]+$", "abc"), "folded under (?i), as in Go");
        // Outside a bracket, [:alpha:] is a class of ':', 'a', 'l', 'p', 'h'.
        assert!(matches("^[:alpha:]+$", "::aph") && !matches("[:alpha:]", "x"));
        assert!(error("[[:foo:]]").ends_with("invalid character class range: `[:foo:]`"));
    }

    #[test]
    fn class_syntax() {
        assert!(matches("^[]a]+$", "]a]"));
        assert!(matches("^[^]a]$", "b") && !matches("[^]a]", "]"));
        assert!(matches("^[a-]+$", "a-") && matches("^[-a]+$", "-a"));
        assert!(matches("^[a-c-e]+$", "ac-e") && !matches("[a-c-e]", "d"));
        assert!(matches(r"^[\d-z]+$", "1-z"));
        // Rust's class set operators and nested classes are plain characters in RE2.
        assert!(matches("^[a&&b]+$", "a&b") && !matches("[a&&b]", "c"));
        assert!(matches("^[a~~b]+$", "a~b"));
        assert!(matches("^[a-b--]+$", "ab-") && !matches("[a-b--]", "c"), "'a'-'b', '-' and '-'");
        assert!(matches("^[--/]+$", "-./"), "the range '-'..'/'");
        assert!(error("[a--b]").ends_with("invalid character class range: `a--`"));
        assert!(matches("^[[]$", "[") && matches("^[a[]+$", "a["));
        assert!(matches("^[[:]]$", ":]"), "[[:] is a class of '[' and ':'");
        assert!(matches(r"^[\^\\]+$", r"^\"));
        assert!(matches("^[\\x{41}-\\x43]+$", "ABC"));
        assert!(error("[z-a]").ends_with("invalid character class range: `z-a`"));
        assert!(error("[a").ends_with("missing closing ]: `[a`"));
        assert!(error("[]").ends_with("missing closing ]: `[]`"));
        assert!(error("[^]").ends_with("missing closing ]: `[^]`"));
        assert!(error(r"[a-\d]").ends_with(r"invalid escape sequence: `\d`"));
    }

    #[test]
    fn braces_that_are_not_repeats_are_literal() {
        assert!(matches("^a{,5}$", "a{,5}"));
        assert!(matches("^a{01}$", "a{01}"));
        assert!(matches("^x{$", "x{") && matches("^a}$", "a}") && matches("^{}$", "{}"));
        assert!(matches("^a{ 1 }$", "a{ 1 }"));
        assert!(matches("^a{1,2}$", "aa") && matches("^a{2}$", "aa") && matches("^a{2,}$", "aaaa"));
        assert_eq!(find("a{1,3}?", "aaa").as_deref(), Some("a"));
        assert!(matches("^a{0}b$", "b"));
    }

    #[test]
    fn repetition_limits_and_errors() {
        assert!(matches("^a{1000}$", &"a".repeat(1000)));
        assert!(compile("(a{100}){10}").is_ok());
        assert!(compile("(?:a{2}){500}").is_ok());
        assert!(compile("(a{0}){1000}").is_ok());
        assert!(error("a{1001}").ends_with("invalid repeat count: `{1001}`"));
        assert!(error("a{2,1001}").ends_with("invalid repeat count: `{2,1001}`"));
        assert!(error("a{2,1}").ends_with("invalid repeat count: `{2,1}`"));
        assert!(error("a{99999999999}").ends_with("invalid repeat count: `{99999999999}`"));
        assert!(error("(a{100}){11}").ends_with("invalid repeat count: `{11}`"));
        assert!(error("((a{10}){10}b){11}").ends_with("invalid repeat count: `{11}`"));
        assert!(error("a**").ends_with("invalid nested repetition operator: `**`"));
        assert!(error("a+?+").ends_with("invalid nested repetition operator: `+?+`"));
        assert!(error("a*??").ends_with("invalid nested repetition operator: `*??`"));
        assert!(error("a{2}*").ends_with("invalid nested repetition operator: `{2}*`"));
        assert!(error("*a").ends_with("missing argument to repetition operator: `*`"));
        assert!(error("(+)").ends_with("missing argument to repetition operator: `+`"));
        assert!(error("a|?").ends_with("missing argument to repetition operator: `?`"));
        assert!(error("{2}").ends_with("missing argument to repetition operator: `{2}`"));
        // A group in between makes nesting fine, as in Go.
        assert!(matches("^(?:a*)*$", "aa") && matches("^(a+)+$", "aa"));
        // Assertions can be repeated in Go.
        assert!(matches("^*a$+", "a"));
    }

    #[test]
    fn case_folding_is_simple() {
        // Simple case folding: ß folds to ẞ but not to SS.
        assert!(matches("(?i)straße", "STRAßE"));
        assert!(matches("(?i)straße", "STRAẞE"));
        assert!(!matches("(?i)straße", "STRASSE"));
        assert!(matches("(?i)k", "\u{212A}"), "Kelvin sign");
        assert!(matches("(?i)σ", "ς") && matches("(?i)σ", "Σ"));
        assert!(matches("(?i:a)b", "Ab") && !matches("(?i:a)b", "AB"));
        assert!(matches("^[a-c]+$", "abc") && matches("(?i)^[a-c]+$", "ABC"));
    }

    #[test]
    fn flags() {
        assert_eq!(find("(?U)a+", "aaa").as_deref(), Some("a"));
        assert_eq!(find("(?U)a+?", "aaa").as_deref(), Some("aaa"));
        assert_eq!(find("(?U:a*)a", "aaa").as_deref(), Some("a"));
        assert!(!matches("a.b", "a\nb") && matches("(?s)a.b", "a\nb"));
        assert!(!matches("^b$", "a\nb\nc") && matches("(?m)^b$", "a\nb\nc"));
        assert!(!matches("a$", "a\n"), "without (?m), $ is only the end of the text");
        assert_eq!(re("(?m)^").find_iter(b"a\n").count(), 2);
        assert!(matches("(?i)a(?-i)b", "Ab") && !matches("(?i)a(?-i)b", "AB"));
        assert!(matches("(?ii)a", "A"), "repeated flags");
        assert!(!matches("(?i-i)a", "A"), "a flag set and cleared is cleared");
        assert!(matches("(?)a", "a"), "an empty flag group");
        assert!(matches("(?:a)", "a") && matches("(?ms-iU:a.)", "a\n"));
        assert!(matches("a(?i)b|c", "C"), "flags last to the end of the group, past |");
        assert!(!matches("(?:(?i)a)b", "AB"));
        for (p, expr) in [
            ("(?x)a b", "(?x"),
            ("(?u)a", "(?u"),
            ("(?R)", "(?R"),
            ("(?i-)a", "(?i-)"),
            ("(?-)a", "(?-)"),
            ("(?i--m)", "(?i--"),
            ("(?#comment)", "(?#"),
            ("(?=a)", "(?="),
            ("(?P=n)", "(?P"),
            ("(?i", "(?i"),
        ] {
            let message = error(p);
            assert!(message.ends_with(&format!("invalid or unsupported Perl syntax: `{expr}`")), "{message}");
        }
        assert!(error("a(?i)*").contains("missing argument to repetition operator"));
        // Go reads (?< as the start of a named capture, so lookbehind fails there.
        assert!(error("(?<=a)b").ends_with("invalid named capture: `(?<=a)b`"));
    }

    #[test]
    fn groups_and_names() {
        let r = re("(?P<year>[0-9]{4})-(?<month>[0-9]{2})");
        let caps = r.captures(b"on 2024-05").unwrap();
        assert_eq!(&caps["year"], b"2024");
        assert_eq!(&caps["month"], b"05");
        // Names Rust cannot hold stay numbered captures.
        let r = re("(?P<1st>a)(?P<x>b)(?P<x>c)");
        let caps = r.captures(b"abc").unwrap();
        assert_eq!((&caps[1], &caps[2], &caps[3]), (&b"a"[..], &b"b"[..], &b"c"[..]));
        assert_eq!(&caps["x"], b"b", "the leftmost group of a name, as Go's SubexpIndex");
        assert!(error("(?P<a-b>x)").ends_with("invalid named capture: `(?P<a-b>`"));
        assert!(error("(?P<>x)").ends_with("invalid named capture: `(?P<>`"));
        assert!(error("(?P<name").ends_with("invalid named capture: `(?P<name`"));
        assert!(matches("^(|a)(b|)$", "b") && matches("^()$", ""));
    }

    #[test]
    fn errors_are_one_line() {
        let message = error("(unclosed");
        assert!(message.starts_with("`(unclosed` is not a valid regex:"), "{message}");
        assert_eq!(message, "`(unclosed` is not a valid regex: missing closing ): `(unclosed`");
        assert!(error("a)").ends_with("unexpected ): `a)`"));
        // Control characters in the pattern do not break the line.
        let message = error("a\nb(");
        assert!(message.starts_with(r"`a\nb(` is not a valid regex:"), "{message}");
        // Errors from the Rust engine are one line too.
        let message = error(r"\p{NoSuchClass}");
        assert!(message.starts_with(r"`\p{NoSuchClass}` is not a valid regex:"), "{message}");
        let deep = format!("{}a{}", "(".repeat(300), ")".repeat(300));
        assert!(error(&deep).contains("not supported by the Rust regex engine"));
    }

    #[test]
    fn rust_only_syntax_is_literal() {
        assert!(matches(r"^\<a\>$", "<a>"));
        assert!(!matches(r"\<a", "a"));
        assert!(matches("^a#b c$", "a#b c"));
        assert!(matches("^a&&b--c~~d$", "a&&b--c~~d"));
    }

    #[test]
    fn matching_follows_leftmost_first() {
        assert_eq!(find("a|ab", "ab").as_deref(), Some("a"));
        assert_eq!(find("(a+)(b+)?", "aab").as_deref(), Some("aab"));
        assert_eq!(find("a.c", "aéc").as_deref(), Some("aéc"));
        assert!(matches("^.$", "é") && matches("^[^a]$", "€"));
        assert!(matches("", "") && matches("^$", ""));
    }

    #[test]
    fn large_repeats_compile() {
        // Go accepts these (its limit is on the repeat count, not the automaton size).
        assert!(matches(r"^\pL{1000}$", &"é".repeat(1000)));
        assert!(compile(r"[\w\pN]{2,1000}").is_ok());
    }

    /// On ASCII text without `\v`, RE2 and Rust agree on every construct, so the
    /// rewritten pattern must behave exactly like the original one in plain Rust:
    /// this checks that the rewriting keeps the structure (groups, repetitions,
    /// alternations, flags) intact.
    #[test]
    fn rewriting_keeps_the_structure() {
        const PIECES: [&str; 40] = [
            "a",
            "b",
            "A",
            r"\d",
            r"\w",
            r"\s",
            r"\W",
            r"\D",
            r"\S",
            r"\b",
            r"\B",
            "[ab]",
            "[^a]",
            "[a-c1]",
            r"[\d_]",
            r"[^\s]",
            ".",
            "^",
            "$",
            "(",
            ")",
            "(?:",
            "(?i)",
            "(?i:",
            "(?s)",
            "(?m)",
            "(?U)",
            "|",
            "*",
            "+",
            "?",
            "*?",
            "{1,2}",
            "{2}",
            "{0,}",
            r"\.",
            "-",
            " ",
            r"\n",
            "[[:^digit:]]",
        ];
        const TEXTS: [&str; 9] = ["", "a", "ab", "aA1 _", "b\nA", "1-1", "  ab_c ", "ABBA\n\nab", "a.b"];
        let mut seed = 0x2545_F491_4F6C_DD1D_u64;
        let mut next = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        let mut compared = 0;
        for _ in 0..4000 {
            let pattern: String = (0..1 + next(7)).map(|_| PIECES[next(PIECES.len())]).collect();
            let (Ok(ours), Ok(plain)) = (compile(&pattern), regex::bytes::Regex::new(&pattern)) else { continue };
            compared += 1;
            for text in TEXTS {
                let spans = |r: &regex::bytes::Regex| {
                    let all: Vec<_> = r.find_iter(text.as_bytes()).map(|m| m.range()).collect();
                    let groups =
                        r.captures(text.as_bytes()).map(|c| c.iter().map(|g| g.map(|g| g.range())).collect::<Vec<_>>());
                    (all, groups)
                };
                assert_eq!(spans(&ours), spans(&plain), "{pattern:?} on {text:?}");
            }
        }
        assert!(compared > 1000, "only {compared} patterns compared");
    }

    /// Every pattern in docker/structure/*.yaml (expectedOutput, excludedOutput,
    /// expectedError, excludedError, expectedContents, excludedContents and metadata
    /// values with isRegex: true), with a text it must match.
    const STRUCTURE_PATTERNS: &[(&str, &str)] = &[
        // worker.yaml
        (r"^2\.1\.328 \(Claude Code\)", "2.1.328 (Claude Code)\n"),
        (r"^ld-musl-(x86_64|aarch64)\.so\.1\n$", "ld-musl-x86_64.so.1\n"),
        (
            r"^2\.1\.328\n/usr/local/share/claude/2\.1\.328/claude\n$",
            "2.1.328\n/usr/local/share/claude/2.1.328/claude\n",
        ),
        (r"GNU bash, version 5\.", "GNU bash, version 5.2.15(1)-release"),
        (r"^git version 2\.", "git version 2.39.5\n"),
        (r"^jq-1\.", "jq-1.6\n"),
        (r"^psql \(PostgreSQL\) 1[0-9]", "psql (PostgreSQL) 15.8\n"),
        (r"^pg_isready \(PostgreSQL\) 1[0-9]", "pg_isready (PostgreSQL) 15.8\n"),
        (r"^curl [0-9]", "curl 7.88.1 (x86_64-pc-linux-gnu)"),
        (r"^ripgrep 1[0-9]", "ripgrep 14.1.0\n"),
        (r"^uid=1000\(ralph\) gid=1000\(ralph\)", "uid=1000(ralph) gid=1000(ralph) groups=1000(ralph)\n"),
        (r"usage: ralph\.sh", "usage: ralph.sh [options]"),
        (r"build \[--max-iterations N\]", "  build [--max-iterations N]"),
        (r"RALPH_DB_URL is not set: pass -e RALPH_DB_URL=", "RALPH_DB_URL is not set: pass -e RALPH_DB_URL=..."),
        (r#""default""#, r#"{"default": "x"}"#),
        (r"(^|:)/opt/ralph(:|$)", "/usr/bin:/opt/ralph:/bin"),
        (r"^ralph-worker", "ralph-worker"),
        // worker-amazonlinux.yaml (patterns not already above)
        (
            r"^/opt/ralph-status/venv\n/opt/ralph-status/venv/lib/python3\.[0-9]+/site-packages/ralph_status/__init__\.py",
            "/opt/ralph-status/venv\n/opt/ralph-status/venv/lib/python3.12/site-packages/ralph_status/__init__.py\n",
        ),
        (r#""status": "unhealthy""#, r#"{"status": "unhealthy"}"#),
        (r"server\.cpython-3[0-9]+\.pyc", "__init__.cpython-312.pyc\nserver.cpython-312.pyc\n"),
        (r"^tini version 0\.", "tini version 0.19.0\n"),
        (r"^/opt/ralph-status/venv/bin:", "/opt/ralph-status/venv/bin:/usr/bin"),
    ];

    #[test]
    fn structure_test_patterns_compile_and_match() {
        for (pattern, text) in STRUCTURE_PATTERNS {
            assert!(matches(pattern, text), "{pattern} should match {text:?}");
        }
        assert!(!matches(r"(^|:)/opt/ralph(:|$)", "/opt/ralph-status/venv/bin:/usr/bin"));
        assert!(!matches(r"^2\.1\.328\n/usr/local/share/claude/2\.1\.328/claude\n$", "2.1.328\n2.1.329\n"));
    }
}
