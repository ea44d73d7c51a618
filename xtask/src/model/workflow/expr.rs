//! GitHub Actions expressions (`${{ … }}`), as the rehearsal evaluates
//! them: literals, context paths (`github.ref`, `matrix.arch`,
//! `needs.plan.outputs.matrix`, `inputs.emulate-arm64`), `!`, `==`, `!=`,
//! `<`, `<=`, `>`, `>=`, `&&`, `||` (which return an operand, as GitHub's
//! do), and the functions a workflow uses: `contains`, `startsWith`,
//! `endsWith`, `format`, `join`, `toJSON`, `fromJSON`, `hashFiles`, and the
//! status functions. Values are JSON values, compared the way GitHub
//! documents: strings case-insensitively, mixed types as numbers.

use anyhow::{bail, Context as _, Result};
use serde_json::Value;

/// What an expression can ask of the run it is in beyond its contexts.
pub trait Host {
    /// `success()`, `failure()`, `cancelled()`: whether an earlier step or
    /// needed job failed.
    fn failed(&self) -> bool;
    /// `hashFiles(patterns…)`: a hash of the files that match, "" for none.
    fn hash_files(&self, patterns: &[String]) -> String;
}

/// A host with nothing failed and no files.
pub struct NoHost;

impl Host for NoHost {
    fn failed(&self) -> bool {
        false
    }
    fn hash_files(&self, _: &[String]) -> String {
        String::new()
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Str(String),
    Num(f64),
    Ident(String),
    Op(&'static str),
}

fn tokenize(src: &str) -> Result<Vec<Token>> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c == '\'' {
            let mut s = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => bail!("unterminated string in `{src}`"),
                    Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                        s.push('\'');
                        i += 2;
                    }
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some(ch) => {
                        s.push(*ch);
                        i += 1;
                    }
                }
            }
            out.push(Token::Str(s));
            continue;
        }
        if c.is_ascii_digit() || (c == '-' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) {
            let start = i;
            i += 1;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
            let text: String = chars[start..i].iter().collect();
            let n = if let Some(hex) = text.strip_prefix("0x") {
                i64::from_str_radix(hex, 16).map(|n| n as f64).ok()
            } else {
                text.parse::<f64>().ok()
            };
            out.push(Token::Num(n.with_context(|| format!("`{text}` is not a number in `{src}`"))?));
            continue;
        }
        if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == '-') {
                i += 1;
            }
            out.push(Token::Ident(chars[start..i].iter().collect()));
            continue;
        }
        let two: String = chars[i..chars.len().min(i + 2)].iter().collect();
        let op = ["==", "!=", "<=", ">=", "&&", "||"].into_iter().find(|o| *o == two);
        if let Some(op) = op {
            out.push(Token::Op(op));
            i += 2;
            continue;
        }
        let op = ["!", "<", ">", "(", ")", "[", "]", ".", ",", "*"].into_iter().find(|o| o.starts_with(c));
        match op {
            Some(op) => out.push(Token::Op(op)),
            None => bail!("unexpected `{c}` in `{src}`"),
        }
        i += 1;
    }
    Ok(out)
}

/// An expression, parsed.
#[derive(Debug, Clone)]
enum Expr {
    Lit(Value),
    Context(String),
    Index(Box<Expr>, Box<Expr>),
    Star(Box<Expr>),
    Not(Box<Expr>),
    Binary(&'static str, Box<Expr>, Box<Expr>),
    Call(String, Vec<Expr>),
}

struct Parser<'a> {
    tokens: Vec<Token>,
    pos: usize,
    src: &'a str,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn eat(&mut self, op: &str) -> bool {
        if matches!(self.peek(), Some(Token::Op(o)) if *o == op) {
            self.pos += 1;
            return true;
        }
        false
    }

    fn expect(&mut self, op: &str) -> Result<()> {
        if !self.eat(op) {
            bail!("expected `{op}` in `{}`", self.src);
        }
        Ok(())
    }

    fn binary(&mut self, ops: &[&'static str], next: fn(&mut Self) -> Result<Expr>) -> Result<Expr> {
        let mut left = next(self)?;
        loop {
            let Some(op) = ops.iter().copied().find(|op| matches!(self.peek(), Some(Token::Op(o)) if o == op)) else {
                return Ok(left);
            };
            self.pos += 1;
            left = Expr::Binary(op, Box::new(left), Box::new(next(self)?));
        }
    }

    fn or(&mut self) -> Result<Expr> {
        self.binary(&["||"], Self::and)
    }

    fn and(&mut self) -> Result<Expr> {
        self.binary(&["&&"], Self::compare)
    }

    fn compare(&mut self) -> Result<Expr> {
        self.binary(&["==", "!=", "<=", ">=", "<", ">"], Self::unary)
    }

    fn unary(&mut self) -> Result<Expr> {
        if self.eat("!") {
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        self.postfix()
    }

    fn postfix(&mut self) -> Result<Expr> {
        let mut e = self.primary()?;
        loop {
            if self.eat(".") {
                if self.eat("*") {
                    e = Expr::Star(Box::new(e));
                    continue;
                }
                match self.tokens.get(self.pos).cloned() {
                    Some(Token::Ident(name)) => {
                        self.pos += 1;
                        e = Expr::Index(Box::new(e), Box::new(Expr::Lit(Value::String(name))));
                    }
                    _ => bail!("expected a property name after `.` in `{}`", self.src),
                }
            } else if self.eat("[") {
                let index = if self.eat("*") { None } else { Some(self.or()?) };
                self.expect("]")?;
                e = match index {
                    Some(index) => Expr::Index(Box::new(e), Box::new(index)),
                    None => Expr::Star(Box::new(e)),
                };
            } else {
                return Ok(e);
            }
        }
    }

    fn primary(&mut self) -> Result<Expr> {
        let token = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        match token {
            Some(Token::Str(s)) => Ok(Expr::Lit(Value::String(s))),
            Some(Token::Num(n)) => Ok(Expr::Lit(number(n))),
            Some(Token::Op("(")) => {
                let e = self.or()?;
                self.expect(")")?;
                Ok(e)
            }
            Some(Token::Ident(name)) => match name.as_str() {
                "true" => Ok(Expr::Lit(Value::Bool(true))),
                "false" => Ok(Expr::Lit(Value::Bool(false))),
                "null" => Ok(Expr::Lit(Value::Null)),
                _ if self.eat("(") => {
                    let mut args = Vec::new();
                    if !self.eat(")") {
                        loop {
                            args.push(self.or()?);
                            if self.eat(")") {
                                break;
                            }
                            self.expect(",")?;
                        }
                    }
                    Ok(Expr::Call(name.to_ascii_lowercase(), args))
                }
                _ => Ok(Expr::Context(name)),
            },
            _ => bail!("unexpected end or token in `{}`", self.src),
        }
    }
}

fn parse(src: &str) -> Result<Expr> {
    let mut p = Parser { tokens: tokenize(src)?, pos: 0, src };
    let e = p.or()?;
    if p.pos != p.tokens.len() {
        bail!("unexpected `{:?}` in `{src}`", p.tokens[p.pos]);
    }
    Ok(e)
}

fn number(n: f64) -> Value {
    serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number)
}

/// GitHub's truthiness: false, 0, "", null (and NaN) are false.
pub fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|n| n != 0.0 && !n.is_nan()),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

fn as_number(v: &Value) -> f64 {
    match v {
        Value::Null => 0.0,
        Value::Bool(b) => f64::from(u8::from(*b)),
        Value::Number(n) => n.as_f64().unwrap_or(f64::NAN),
        Value::String(s) if s.trim().is_empty() => 0.0,
        Value::String(s) => s.trim().parse().unwrap_or(f64::NAN),
        Value::Array(_) | Value::Object(_) => f64::NAN,
    }
}

/// A value as text, as `${{ }}` puts it into a string.
pub fn to_text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
            _ => n.to_string(),
        },
        Value::String(s) => s.clone(),
        other => serde_json::to_string_pretty(other).unwrap_or_default(),
    }
}

fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::String(x), Value::String(y)) => x.eq_ignore_ascii_case(y),
        (Value::Null, Value::Null) => true,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Array(_) | Value::Object(_), _) | (_, Value::Array(_) | Value::Object(_)) => std::ptr::eq(a, b),
        _ => as_number(a) == as_number(b),
    }
}

fn order(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Value::String(x), Value::String(y)) => Some(x.to_ascii_lowercase().cmp(&y.to_ascii_lowercase())),
        _ => as_number(a).partial_cmp(&as_number(b)),
    }
}

fn index(v: &Value, key: &Value) -> Value {
    match (v, key) {
        (Value::Object(m), _) => {
            let key = to_text(key);
            m.iter().find(|(k, _)| k.eq_ignore_ascii_case(&key)).map_or(Value::Null, |(_, v)| v.clone())
        }
        (Value::Array(items), Value::Number(n)) => {
            let i = n.as_f64().filter(|f| f.fract() == 0.0 && *f >= 0.0).map(|f| f as usize);
            i.and_then(|i| items.get(i)).cloned().unwrap_or(Value::Null)
        }
        (Value::Array(items), _) => Value::Array(items.iter().map(|i| index(i, key)).collect()),
        _ => Value::Null,
    }
}

fn eval(e: &Expr, ctx: &Value, host: &dyn Host) -> Result<Value> {
    Ok(match e {
        Expr::Lit(v) => v.clone(),
        Expr::Context(name) => {
            let v = index(ctx, &Value::String(name.clone()));
            if v.is_null() && ctx.get(name.to_ascii_lowercase()).is_none() {
                bail!("unknown context `{name}`");
            }
            v
        }
        Expr::Index(of, key) => index(&eval(of, ctx, host)?, &eval(key, ctx, host)?),
        Expr::Star(of) => match eval(of, ctx, host)? {
            Value::Object(m) => Value::Array(m.into_iter().map(|(_, v)| v).collect()),
            Value::Array(a) => Value::Array(a),
            _ => Value::Array(Vec::new()),
        },
        Expr::Not(e) => Value::Bool(!truthy(&eval(e, ctx, host)?)),
        Expr::Binary(op, a, b) => {
            let a = eval(a, ctx, host)?;
            match *op {
                "&&" => {
                    if truthy(&a) {
                        eval(b, ctx, host)?
                    } else {
                        a
                    }
                }
                "||" => {
                    if truthy(&a) {
                        a
                    } else {
                        eval(b, ctx, host)?
                    }
                }
                op => {
                    let b = eval(b, ctx, host)?;
                    Value::Bool(match op {
                        "==" => equal(&a, &b),
                        "!=" => !equal(&a, &b),
                        "<" => order(&a, &b) == Some(std::cmp::Ordering::Less),
                        ">" => order(&a, &b) == Some(std::cmp::Ordering::Greater),
                        "<=" => matches!(order(&a, &b), Some(std::cmp::Ordering::Less | std::cmp::Ordering::Equal)),
                        ">=" => matches!(order(&a, &b), Some(std::cmp::Ordering::Greater | std::cmp::Ordering::Equal)),
                        _ => unreachable!("the parser makes no other operator"),
                    })
                }
            }
        }
        Expr::Call(name, args) => {
            let args = args.iter().map(|a| eval(a, ctx, host)).collect::<Result<Vec<_>>>()?;
            call(name, &args, host)?
        }
    })
}

fn call(name: &str, args: &[Value], host: &dyn Host) -> Result<Value> {
    let arity = |n: usize| -> Result<()> {
        if args.len() != n {
            bail!("{name}() takes {n} argument(s), not {}", args.len());
        }
        Ok(())
    };
    let text = |i: usize| to_text(&args[i]).to_ascii_lowercase();
    Ok(match name {
        "success" => Value::Bool(!host.failed()),
        "failure" => Value::Bool(host.failed()),
        "always" => Value::Bool(true),
        "cancelled" => Value::Bool(false),
        "contains" => {
            arity(2)?;
            Value::Bool(match &args[0] {
                Value::Array(items) => items.iter().any(|i| equal(i, &args[1])),
                _ => text(0).contains(&text(1)),
            })
        }
        "startswith" => {
            arity(2)?;
            Value::Bool(text(0).starts_with(&text(1)))
        }
        "endswith" => {
            arity(2)?;
            Value::Bool(text(0).ends_with(&text(1)))
        }
        "format" => {
            let Some(Value::String(template)) = args.first() else { bail!("format() needs a string first") };
            let mut out = template.clone();
            for (i, a) in args[1..].iter().enumerate() {
                out = out.replace(&format!("{{{i}}}"), &to_text(a));
            }
            Value::String(out.replace("{{", "{").replace("}}", "}"))
        }
        "join" => {
            let sep = args.get(1).map_or(",".to_string(), to_text);
            match args.first() {
                Some(Value::Array(items)) => Value::String(items.iter().map(to_text).collect::<Vec<_>>().join(&sep)),
                Some(v) => Value::String(to_text(v)),
                None => bail!("join() needs an array"),
            }
        }
        "tojson" => {
            arity(1)?;
            Value::String(serde_json::to_string_pretty(&args[0])?)
        }
        "fromjson" => {
            arity(1)?;
            let s = to_text(&args[0]);
            serde_json::from_str(&s).with_context(|| format!("fromJSON() of text that is not JSON: `{s}`"))?
        }
        "hashfiles" => Value::String(host.hash_files(&args.iter().map(to_text).collect::<Vec<_>>())),
        other => bail!("the rehearsal does not know the function {other}()"),
    })
}

/// Evaluates one expression (the text inside `${{ }}`, or a bare `if:`).
pub fn evaluate(src: &str, ctx: &Value, host: &dyn Host) -> Result<Value> {
    eval(&parse(src)?, ctx, host).with_context(|| format!("evaluating `{}`", src.trim()))
}

/// A string with `${{ … }}` templates replaced by their values. A string
/// that is exactly one template keeps its value's type (a matrix from
/// `fromJSON`, say).
pub fn interpolate(text: &str, ctx: &Value, host: &dyn Host) -> Result<Value> {
    let trimmed = text.trim();
    if let Some(inner) = trimmed.strip_prefix("${{").and_then(|t| t.strip_suffix("}}")) {
        if !inner.contains("${{") {
            return evaluate(inner, ctx, host);
        }
    }
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 3..];
        let end = after.find("}}").with_context(|| format!("unterminated `${{{{` in `{text}`"))?;
        out.push_str(&to_text(&evaluate(&after[..end], ctx, host)?));
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(Value::String(out))
}

/// An `if:` condition: a bare expression or one `${{ }}`; without a status
/// function it means `success() && (…)`, as on GitHub.
pub fn condition(src: &str, ctx: &Value, host: &dyn Host) -> Result<bool> {
    let s = src.trim();
    let s = s.strip_prefix("${{").and_then(|t| t.strip_suffix("}}")).unwrap_or(s);
    let lower = s.to_ascii_lowercase();
    let status = ["success(", "failure(", "always(", "cancelled("].iter().any(|f| lower.contains(f));
    let value = truthy(&evaluate(s, ctx, host)?);
    Ok(if status { value } else { value && !host.failed() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx() -> Value {
        json!({
            "github": {"event_name": "push", "ref": "refs/tags/v1.2.3",
                       "event": {"repository": {"default_branch": "main"}}},
            "matrix": {"arch": "arm64", "image": "worker"},
            "inputs": {"emulate-arm64": false},
            "runner": {"arch": "X64"},
            "needs": {"plan": {"outputs": {"products": "[\"worker\",\"worker-amazonlinux\"]"}}},
        })
    }

    fn eval_str(src: &str) -> Value {
        evaluate(src, &ctx(), &NoHost).unwrap()
    }

    #[test]
    fn paths_literals_and_operators_as_github_reads_them() {
        assert_eq!(eval_str("github.event_name == 'PUSH'"), json!(true), "strings compare case-insensitively");
        assert_eq!(eval_str("startsWith(github.ref, 'refs/tags/v')"), json!(true));
        assert_eq!(
            eval_str("github.ref == format('refs/heads/{0}', github.event.repository.default_branch)"),
            json!(false)
        );
        assert_eq!(eval_str("(matrix.arch == 'arm64' && !inputs.emulate-arm64) && 'a' || 'b'"), json!("a"));
        assert_eq!(eval_str("matrix.arch != 'amd64' && runner.arch == 'X64'"), json!(true));
        assert_eq!(eval_str("matrix.missing"), Value::Null);
        assert_eq!(eval_str("fromJSON(needs.plan.outputs.products)[1]"), json!("worker-amazonlinux"));
        assert_eq!(eval_str("contains(fromJSON(needs.plan.outputs.products), 'WORKER')"), json!(true));
        assert_eq!(eval_str("'it''s'"), json!("it's"));
        assert_eq!(eval_str("1 < 2 && 0 == ''"), json!(true), "mixed types compare as numbers");
        assert!(evaluate("nosuch.thing", &ctx(), &NoHost).is_err(), "an unknown context is an error");
        assert!(evaluate("github.ref ==", &ctx(), &NoHost).is_err());
        assert!(evaluate("frobnicate()", &ctx(), &NoHost).is_err());
    }

    #[test]
    fn templates_keep_a_lone_value_and_join_text() {
        let v = interpolate("${{ fromJSON(needs.plan.outputs.products) }}", &ctx(), &NoHost).unwrap();
        assert_eq!(v, json!(["worker", "worker-amazonlinux"]));
        let v = interpolate("reports-${{ matrix.image }}-${{ matrix.arch }}", &ctx(), &NoHost).unwrap();
        assert_eq!(v, json!("reports-worker-arm64"));
        assert_eq!(interpolate("plain", &ctx(), &NoHost).unwrap(), json!("plain"));
    }

    struct Failed;
    impl Host for Failed {
        fn failed(&self) -> bool {
            true
        }
        fn hash_files(&self, _: &[String]) -> String {
            "h".into()
        }
    }

    #[test]
    fn conditions_imply_success_unless_they_name_a_status() {
        assert!(condition("github.event_name == 'push'", &ctx(), &NoHost).unwrap());
        assert!(!condition("github.event_name == 'push'", &ctx(), &Failed).unwrap(), "after a failure");
        assert!(condition("${{ always() && github.event_name == 'push' }}", &ctx(), &Failed).unwrap());
        assert!(condition("always() && hashFiles('x') != ''", &ctx(), &Failed).unwrap());
        assert!(!condition("always() && hashFiles('x') != ''", &ctx(), &NoHost).unwrap());
    }
}
