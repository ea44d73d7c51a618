//! buildx progress: we ask buildx for `--progress=rawjson` (BuildKit's
//! SolveStatus stream), print it the way `--progress=plain` does, and keep
//! what the report needs: which steps ran or came from cache, per platform,
//! and the output of a step that failed.

use std::collections::{BTreeMap, HashMap};

use base64::Engine as _;
use serde::Deserialize;

use crate::model::catalog::Platform;

#[derive(Debug, Default, Deserialize)]
pub struct SolveStatus {
    #[serde(default)]
    pub vertexes: Vec<Vertex>,
    #[serde(default)]
    pub statuses: Vec<VertexStatus>,
    #[serde(default)]
    pub logs: Vec<VertexLog>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Vertex {
    pub digest: String,
    #[serde(default)]
    pub inputs: Vec<String>,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub cached: bool,
    pub started: Option<String>,
    pub completed: Option<String>,
    pub error: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct VertexStatus {
    pub vertex: String,
    #[serde(default)]
    pub id: String,
    pub completed: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct VertexLog {
    pub vertex: String,
    #[serde(default)]
    pub data: String,
}

/// Lines of a step's output kept for the error report.
const LOG_TAIL: usize = 20;

#[derive(Debug, Default)]
struct VertexState {
    number: usize,
    vertex: Vertex,
    printed_start: bool,
    printed_end: bool,
    log_tail: Vec<String>,
    partial_line: String,
}

/// Follows one build's SolveStatus stream.
#[derive(Debug, Default)]
pub struct Tracker {
    order: Vec<String>,
    states: HashMap<String, VertexState>,
    /// Object being assembled from the line stream.
    pending: String,
    /// Lines buildx printed outside the JSON stream (its final error).
    pub text: Vec<String>,
    echo: bool,
}

impl Tracker {
    pub fn new(echo: bool) -> Tracker {
        Tracker { echo, ..Tracker::default() }
    }

    /// Feeds one line of buildx's stderr. rawjson objects are printed with
    /// indentation, one `{` line to one `}` line.
    pub fn feed_line(&mut self, line: &str) {
        if self.pending.is_empty() && line != "{" {
            if !line.trim().is_empty() {
                if self.echo {
                    eprintln!("{line}");
                }
                self.text.push(line.to_string());
            }
            return;
        }
        self.pending.push_str(line);
        self.pending.push('\n');
        if line == "}" {
            let object = std::mem::take(&mut self.pending);
            match serde_json::from_str::<SolveStatus>(&object) {
                Ok(status) => self.apply(status),
                Err(_) => self.text.extend(object.lines().map(str::to_string)),
            }
        }
    }

    pub fn apply(&mut self, status: SolveStatus) {
        for v in status.vertexes {
            let next_number = self.order.len() + 1;
            let state = self.states.entry(v.digest.clone()).or_insert_with(|| {
                self.order.push(v.digest.clone());
                VertexState { number: next_number, ..VertexState::default() }
            });
            let cached = state.vertex.cached || v.cached;
            let inputs = if v.inputs.is_empty() { std::mem::take(&mut state.vertex.inputs) } else { v.inputs.clone() };
            state.vertex = Vertex { cached, inputs, ..v };
            Self::print_progress(state, self.echo);
        }
        for s in status.statuses {
            if let (Some(state), Some(_)) = (self.states.get(&s.vertex), &s.completed) {
                if self.echo && !s.id.is_empty() {
                    eprintln!("#{} {} done", state.number, s.id);
                }
            }
        }
        for log in status.logs {
            let Some(state) = self.states.get_mut(&log.vertex) else { continue };
            let bytes = base64::engine::general_purpose::STANDARD.decode(&log.data).unwrap_or_default();
            state.partial_line.push_str(&String::from_utf8_lossy(&bytes));
            while let Some(pos) = state.partial_line.find('\n') {
                let line: String = state.partial_line.drain(..=pos).collect();
                let line = line.trim_end().to_string();
                if self.echo {
                    eprintln!("#{} {line}", state.number);
                }
                state.log_tail.push(line);
                if state.log_tail.len() > LOG_TAIL {
                    state.log_tail.remove(0);
                }
            }
        }
    }

    fn print_progress(state: &mut VertexState, echo: bool) {
        let v = &state.vertex;
        if !state.printed_start && (v.started.is_some() || v.cached) {
            state.printed_start = true;
            if echo {
                eprintln!("\n#{} {}", state.number, v.name);
            }
        }
        if state.printed_end {
            return;
        }
        let end = if let Some(err) = &v.error {
            Some(format!("ERROR: {err}"))
        } else if v.cached {
            Some("CACHED".to_string())
        } else if v.completed.is_some() {
            Some(format!("DONE {:.1}s", duration_secs(v.started.as_deref(), v.completed.as_deref())))
        } else {
            None
        };
        if let Some(end) = end {
            state.printed_end = true;
            if echo {
                eprintln!("#{} {end}", state.number);
            }
        }
    }

    /// Dockerfile steps (`[stage 2/5] RUN …`) and whether each came from cache,
    /// attributed to a platform by the step's name or, failing that, by the
    /// step it builds on.
    pub fn steps(&self) -> Vec<Step> {
        let mut platforms: HashMap<&str, Option<Platform>> = HashMap::new();
        let mut out = Vec::new();
        for digest in &self.order {
            let state = &self.states[digest];
            if let Some(name) = step_name(&state.vertex.name) {
                out.push(Step {
                    name: name.to_string(),
                    cached: state.vertex.cached,
                    platform: self.platform_of(digest, &mut platforms, 0),
                });
            }
        }
        out
    }

    fn platform_of<'a>(
        &'a self,
        digest: &'a str,
        memo: &mut HashMap<&'a str, Option<Platform>>,
        depth: usize,
    ) -> Option<Platform> {
        if let Some(p) = memo.get(digest) {
            return p.clone();
        }
        let state = self.states.get(digest)?;
        let mut found = platform_in_name(&state.vertex.name);
        if found.is_none() && depth < 256 {
            found = state.vertex.inputs.iter().find_map(|i| self.platform_of(i, memo, depth + 1));
        }
        memo.insert(digest, found.clone());
        found
    }

    /// The step that failed (not the ones cancelled because of it), with the
    /// tail of its output.
    pub fn failure(&self) -> Option<Failure> {
        self.order.iter().map(|d| &self.states[d]).find_map(|s| {
            let err = s.vertex.error.as_deref()?;
            if err.contains("context canceled") {
                return None;
            }
            Some(Failure { step: s.vertex.name.clone(), error: err.to_string(), log_tail: s.log_tail.clone() })
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub name: String,
    pub cached: bool,
    pub platform: Option<Platform>,
}

#[derive(Debug, Clone)]
pub struct Failure {
    pub step: String,
    pub error: String,
    pub log_tail: Vec<String>,
}

/// Cached and total steps per platform; a step with no platform counts for
/// every requested platform (BuildKit ran it once for all of them).
pub fn cache_stats(steps: &[Step], platforms: &[Platform]) -> BTreeMap<Platform, CacheStats> {
    let mut stats: BTreeMap<Platform, CacheStats> =
        platforms.iter().map(|p| (p.clone(), CacheStats::default())).collect();
    for step in steps {
        for (platform, s) in stats.iter_mut() {
            if step.platform.as_ref().is_none_or(|p| p == platform) {
                s.total += 1;
                s.cached += usize::from(step.cached);
            }
        }
    }
    stats
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct CacheStats {
    pub cached: usize,
    pub total: usize,
}

impl CacheStats {
    pub fn rate(&self) -> f64 {
        if self.total == 0 {
            1.0
        } else {
            self.cached as f64 / self.total as f64
        }
    }
}

/// `[linux/arm64 build 2/5] RUN x` -> `Some(..)`; `[internal] load …` -> `None`.
fn step_name(name: &str) -> Option<&str> {
    let inner = name.strip_prefix('[')?.split_once(']')?.0;
    let counter = inner.rsplit(' ').next()?;
    let (n, m) = counter.split_once('/')?;
    (n.parse::<u32>().is_ok() && m.parse::<u32>().is_ok()).then_some(name)
}

fn platform_in_name(name: &str) -> Option<Platform> {
    let inner = name.strip_prefix('[')?.split_once(']')?.0;
    let first = inner.split(' ').next()?;
    if first.contains('/') && !first.chars().next()?.is_ascii_digit() {
        Platform::parse(first).ok()
    } else {
        None
    }
}

/// Seconds between two RFC 3339 timestamps; only used for display, so a
/// time that does not parse (or does not exist, as 2026-02-31) is 0.
fn duration_secs(start: Option<&str>, end: Option<&str>) -> f64 {
    let time = |ts: Option<&str>| ts?.parse::<jiff::Timestamp>().ok();
    match (time(start), time(end)) {
        (Some(a), Some(b)) => b.duration_since(a).as_secs_f64().max(0.0),
        _ => 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(t: &mut Tracker, json: &serde_json::Value) {
        for line in serde_json::to_string_pretty(json).unwrap().lines() {
            t.feed_line(line);
        }
    }

    fn amd() -> Platform {
        Platform::parse("linux/amd64").unwrap()
    }
    fn arm() -> Platform {
        Platform::parse("linux/arm64").unwrap()
    }

    #[test]
    fn names_of_steps() {
        assert!(step_name("[linux/amd64 build 2/5] RUN make").is_some());
        assert!(step_name("[3/3] COPY a /b").is_some());
        assert!(step_name("[internal] load build context").is_none());
        assert!(step_name("exporting to image").is_none());
        assert_eq!(platform_in_name("[linux/arm64 1/4] COPY x /y"), Some(arm()));
        assert_eq!(platform_in_name("[2/4] RUN x"), None);
        assert_eq!(platform_in_name("[build 2/4] RUN x"), None);
    }

    #[test]
    fn tracks_cache_per_platform_through_inputs() {
        let mut t = Tracker::new(false);
        t.feed_line("#0 building with \"default\" instance");
        feed(
            &mut t,
            &serde_json::json!({"vertexes": [
                {"digest": "ctx", "name": "[internal] load build context", "started": "2026-01-01T00:00:00Z", "completed": "2026-01-01T00:00:01Z"},
                {"digest": "a1", "name": "[linux/amd64 1/2] COPY x /x", "inputs": ["ctx"], "cached": true},
                {"digest": "r1", "name": "[linux/arm64 1/2] COPY x /x", "inputs": ["ctx"], "cached": true},
                {"digest": "a2", "name": "[2/2] RUN make", "inputs": ["a1"], "started": "2026-01-01T00:00:01Z"},
                {"digest": "r2", "name": "[2/2] RUN make", "inputs": ["r1"], "cached": true},
            ]}),
        );
        // A later update for a2 carries no inputs; it must keep the old ones.
        feed(
            &mut t,
            &serde_json::json!({"vertexes": [{"digest": "a2", "name": "[2/2] RUN make", "started": "2026-01-01T00:00:01Z", "completed": "2026-01-01T00:00:03Z"}]}),
        );
        let steps = t.steps();
        assert_eq!(steps.len(), 4);
        assert_eq!(steps[2].platform, Some(amd()));
        assert_eq!(steps[3].platform, Some(arm()));
        let stats = cache_stats(&steps, &[amd(), arm()]);
        assert_eq!(stats[&amd()], CacheStats { cached: 1, total: 2 });
        assert_eq!(stats[&arm()], CacheStats { cached: 2, total: 2 });
        assert_eq!(t.text, vec!["#0 building with \"default\" instance"]);
    }

    #[test]
    fn unattributed_steps_count_for_every_platform() {
        let steps = vec![Step { name: "[1/1] RUN x".into(), cached: true, platform: None }];
        let stats = cache_stats(&steps, &[amd(), arm()]);
        assert_eq!(stats[&arm()], CacheStats { cached: 1, total: 1 });
        assert_eq!(CacheStats::default().rate(), 1.0);
    }

    #[test]
    fn failure_is_the_failing_step_with_its_log_tail() {
        let mut t = Tracker::new(false);
        let log = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        feed(
            &mut t,
            &serde_json::json!({
                "vertexes": [
                    {"digest": "x", "name": "[linux/arm64 2/3] RUN other", "error": "context canceled: context canceled"},
                    {"digest": "y", "name": "[2/3] RUN make", "started": "2026-01-01T00:00:00Z"}
                ],
                "logs": [{"vertex": "y", "data": log("compiling\nerror: no rule")}, {"vertex": "y", "data": log(" to make target\n")}]
            }),
        );
        feed(
            &mut t,
            &serde_json::json!({"vertexes": [{"digest": "y", "name": "[2/3] RUN make", "error": "process \"/bin/sh -c make\" did not complete successfully: exit code: 2"}]}),
        );
        let f = t.failure().unwrap();
        assert_eq!(f.step, "[2/3] RUN make");
        assert!(f.error.contains("exit code: 2"));
        assert_eq!(f.log_tail, vec!["compiling", "error: no rule to make target"]);
    }

    #[test]
    fn durations_of_impossible_or_distant_times() {
        // Before: only the time of day was read, so 2026-02-31 passed and days were lost.
        assert_eq!(duration_secs(Some("2026-02-31T10:00:00Z"), Some("2026-02-31T10:00:02Z")), 0.0);
        assert_eq!(duration_secs(Some("2026-01-01T10:00:00Z"), Some("2026-01-03T10:00:01Z")), 172_801.0);
        assert_eq!(duration_secs(Some("2026-01-01T10:00:00+02:00"), Some("2026-01-01T08:00:03Z")), 3.0);
    }

    #[test]
    fn durations_from_timestamps() {
        assert!((duration_secs(Some("2026-01-01T10:00:00.5Z"), Some("2026-01-01T10:00:02Z")) - 1.5).abs() < 1e-9);
        assert_eq!(duration_secs(None, Some("2026-01-01T10:00:02Z")), 0.0);
    }
}
