//! SARIF 2.1.0, the static-analysis format code-scanning services read: one
//! run per tool, its rules, and its results with where they are.

use serde_json::{json, Value};

/// The SARIF schema the log names.
pub const SCHEMA: &str = "https://json.schemastore.org/sarif-2.1.0.json";

#[derive(Debug, Clone, Default)]
pub struct Log {
    pub runs: Vec<Run>,
}

/// One tool's findings.
#[derive(Debug, Clone, Default)]
pub struct Run {
    pub tool: String,
    pub version: Option<String>,
    pub information_uri: Option<String>,
    pub rules: Vec<Rule>,
    pub results: Vec<SarifResult>,
}

#[derive(Debug, Clone, Default)]
pub struct Rule {
    pub id: String,
    pub title: String,
    /// How to fix a finding.
    pub help: String,
    pub help_uri: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Error,
    Warning,
    Note,
}

#[derive(Debug, Clone)]
pub struct SarifResult {
    pub rule_id: String,
    pub level: Level,
    pub message: String,
    /// The file, relative to the repository root where it is in it.
    pub uri: String,
    /// 1-based; `None` for a finding about the whole file.
    pub line: Option<usize>,
}

impl Log {
    pub fn to_json(&self) -> Value {
        json!({
            "$schema": SCHEMA,
            "version": "2.1.0",
            "runs": self.runs.iter().map(Run::to_json).collect::<Vec<_>>(),
        })
    }
}

impl Run {
    fn to_json(&self) -> Value {
        let mut driver = json!({
            "name": self.tool,
            "rules": self.rules.iter().map(|r| {
                let mut rule = json!({
                    "id": r.id,
                    "shortDescription": {"text": r.title},
                    "help": {"text": r.help},
                });
                if let Some(uri) = &r.help_uri {
                    rule["helpUri"] = json!(uri);
                }
                rule
            }).collect::<Vec<_>>(),
        });
        if let Some(v) = &self.version {
            driver["version"] = json!(v);
        }
        if let Some(uri) = &self.information_uri {
            driver["informationUri"] = json!(uri);
        }
        let results: Vec<Value> = self
            .results
            .iter()
            .map(|r| {
                let mut location = json!({"physicalLocation": {"artifactLocation": {"uri": r.uri}}});
                if let Some(line) = r.line.filter(|l| *l >= 1) {
                    location["physicalLocation"]["region"] = json!({"startLine": line});
                }
                let mut result = json!({
                    "ruleId": r.rule_id,
                    "level": match r.level { Level::Error => "error", Level::Warning => "warning", Level::Note => "note" },
                    "message": {"text": r.message},
                    "locations": [location],
                });
                if let Some(index) = self.rules.iter().position(|rule| rule.id == r.rule_id) {
                    result["ruleIndex"] = json!(index);
                }
                result
            })
            .collect();
        json!({"tool": {"driver": driver}, "results": results})
    }
}
