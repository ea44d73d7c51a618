//! The verdict against an image's budget from the catalog, with the numbers
//! that make it: sizes in MB of 1,000,000 bytes.

use serde::Serialize;

use crate::model::catalog::Budget;

pub const MB: u64 = 1_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Within,
    Over,
    NoBudget,
    /// The budget names a file the image doesn't have.
    FileMissing,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    pub status: Status,
    /// The image's uncompressed size, what the budget limits.
    pub size_bytes: u64,
    pub limit_bytes: Option<u64>,
    /// `file` budgets: the file (as named in the catalog), the file its
    /// symlinks lead to, and its size.
    pub file: Option<String>,
    pub resolved_file: Option<String>,
    pub file_bytes: Option<u64>,
    /// Limit minus size: negative when over.
    pub margin_bytes: Option<i64>,
    /// The verdict in one line, with its numbers.
    pub summary: String,
}

impl Verdict {
    pub fn failed(&self) -> bool {
        matches!(self.status, Status::Over | Status::FileMissing)
    }
}

/// `bytes` in MB with one decimal: `228.1 MB`.
pub fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / MB as f64)
}

/// A size from the catalog as written there (`150`, `0.5`), in MB.
fn catalog_mb(n: f64) -> String {
    format!("{n} MB")
}

fn mb_to_bytes(n: f64) -> u64 {
    (n * MB as f64).round() as u64
}

/// Judges `size_bytes` against `budget`; `find_file` looks up a file
/// budget's file in the image (where it resolves to and its size, or why it
/// isn't there).
pub fn verdict(
    budget: Option<&Budget>,
    size_bytes: u64,
    find_file: impl FnOnce(&str) -> Result<(String, u64), String>,
) -> Verdict {
    let base = Verdict {
        status: Status::NoBudget,
        size_bytes,
        limit_bytes: None,
        file: None,
        resolved_file: None,
        file_bytes: None,
        margin_bytes: None,
        summary: String::new(),
    };
    let Some(budget) = budget else {
        return Verdict { summary: "no budget".into(), ..base };
    };
    let (limit, explained, file) = match (&budget.file, budget.max_mb, budget.extra_mb) {
        (Some(file), _, extra) => {
            let extra = extra.unwrap_or(0.0);
            match find_file(file) {
                Ok((resolved, bytes)) => {
                    let limit = bytes + mb_to_bytes(extra);
                    (
                        limit,
                        format!("{file} {} + at most {} = {}", mb(bytes), catalog_mb(extra), mb(limit)),
                        Some((file.clone(), resolved, bytes)),
                    )
                }
                Err(why) => {
                    return Verdict {
                        status: Status::FileMissing,
                        file: Some(file.clone()),
                        summary: format!("budget file {file} not found: {why}: fix `budget.file` in images.toml"),
                        ..base
                    }
                }
            }
        }
        (None, Some(max), _) => (mb_to_bytes(max), format!("at most {}", catalog_mb(max)), None),
        (None, None, _) => return Verdict { summary: "no budget".into(), ..base },
    };
    let margin = limit as i64 - size_bytes as i64;
    let (status, outcome) = if margin >= 0 {
        (Status::Within, format!("within budget ({} to spare)", mb(margin as u64)))
    } else {
        (Status::Over, format!("over budget by {}", mb(margin.unsigned_abs())))
    };
    let (file, resolved_file, file_bytes) = match file {
        Some((file, resolved, bytes)) => (Some(file), Some(resolved), Some(bytes)),
        None => (None, None, None),
    };
    Verdict {
        status,
        limit_bytes: Some(limit),
        file,
        resolved_file,
        file_bytes,
        margin_bytes: Some(margin),
        summary: format!("{explained}; image {}: {outcome}", mb(size_bytes)),
        ..base
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_budget(extra: f64) -> Budget {
        Budget { max_mb: None, file: Some("/usr/local/bin/claude".into()), extra_mb: Some(extra) }
    }

    #[test]
    fn file_budgets_add_the_file_to_the_allowance() {
        let v = verdict(Some(&file_budget(150.0)), 301_200_000, |f| {
            assert_eq!(f, "/usr/local/bin/claude");
            Ok(("/usr/local/share/claude/2.1.328/claude".into(), 228_100_000))
        });
        assert_eq!(v.resolved_file.as_deref(), Some("/usr/local/share/claude/2.1.328/claude"));
        assert_eq!(v.status, Status::Within);
        assert_eq!(v.limit_bytes, Some(378_100_000));
        assert_eq!(v.margin_bytes, Some(76_900_000));
        assert_eq!(v.summary, "/usr/local/bin/claude 228.1 MB + at most 150 MB = 378.1 MB; image 301.2 MB: within budget (76.9 MB to spare)");
    }

    #[test]
    fn over_budget_says_by_how_much() {
        let v =
            verdict(Some(&Budget { max_mb: Some(400.0), file: None, extra_mb: None }), 412_300_000, |_| unreachable!());
        assert_eq!(v.status, Status::Over);
        assert!(v.failed());
        assert_eq!(v.summary, "at most 400 MB; image 412.3 MB: over budget by 12.3 MB");
        let exact =
            verdict(Some(&Budget { max_mb: Some(0.5), file: None, extra_mb: None }), 500_000, |_| unreachable!());
        assert_eq!((exact.status, exact.margin_bytes), (Status::Within, Some(0)));
    }

    #[test]
    fn no_budget_and_missing_files() {
        let none = verdict(None, 5, |_| unreachable!());
        assert_eq!((none.status, none.summary.as_str(), none.failed()), (Status::NoBudget, "no budget", false));
        let missing = verdict(Some(&file_budget(1.0)), 5, |_| Err("/usr/local/bin/claude is not in the image".into()));
        assert_eq!(missing.status, Status::FileMissing);
        assert!(missing.failed());
        assert_eq!(missing.summary, "budget file /usr/local/bin/claude not found: /usr/local/bin/claude is not in the image: fix `budget.file` in images.toml");
    }
}
