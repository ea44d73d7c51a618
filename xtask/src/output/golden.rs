//! Golden files for printed output: what a table or a JUnit file looks like
//! is compared with `xtask/test_data/NAME`. After a deliberate change, run
//! `UPDATE_GOLDEN=1 cargo test -p xtask` and review the diff of test_data/.
//! Only `1` rewrites (not `0`, not an empty value), and never under CI.

use std::path::PathBuf;

/// Whether the golden files are rewritten, from `UPDATE_GOLDEN` and `CI`:
/// only on `UPDATE_GOLDEN=1`, and never when `CI` is set (a CI run that
/// rewrote them would compare the output with itself and pass). Anything
/// else in `UPDATE_GOLDEN` is a mistake worth a failure, not a silent
/// compare.
pub fn rewrite(update_golden: Option<&str>, ci: Option<&str>) -> Result<bool, String> {
    match (update_golden, ci) {
        (None, _) => Ok(false),
        (Some("1"), None) => Ok(true),
        (Some("1"), Some(_)) => Err("UPDATE_GOLDEN=1 under CI (CI is set): golden files are rewritten only on a developer's machine; unset UPDATE_GOLDEN".into()),
        (Some(other), _) => Err(format!("UPDATE_GOLDEN={other:?}: set it to 1 to rewrite the golden files, or unset it to compare")),
    }
}

/// Fails unless `actual` is the content of `test_data/name` (or rewrites the
/// file with `UPDATE_GOLDEN=1`).
pub fn check(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("test_data").join(name);
    let var = |k: &str| std::env::var(k).ok();
    if rewrite(var("UPDATE_GOLDEN").as_deref(), var("CI").as_deref()).unwrap_or_else(|e| panic!("{e}")) {
        std::fs::write(&path, actual).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!("{} is missing: run `UPDATE_GOLDEN=1 cargo test -p xtask` to write it", path.display())
    });
    assert!(
        expected == actual,
        "{} differs from the output (run `UPDATE_GOLDEN=1 cargo test -p xtask` if the change is meant):\n\
         --- expected\n{expected}--- actual\n{actual}",
        path.display()
    );
}

#[cfg(test)]
mod tests {
    use super::rewrite;

    #[test]
    fn only_update_golden_1_off_ci_rewrites() {
        assert_eq!(rewrite(None, None), Ok(false));
        assert_eq!(rewrite(None, Some("true")), Ok(false));
        assert_eq!(rewrite(Some("1"), None), Ok(true));
        assert_eq!(
            rewrite(Some("1"), Some("true")),
            Err("UPDATE_GOLDEN=1 under CI (CI is set): golden files are rewritten only on a developer's machine; unset UPDATE_GOLDEN".into())
        );
        for value in ["0", "", "yes", "true"] {
            assert_eq!(
                rewrite(Some(value), None),
                Err(format!(
                    "UPDATE_GOLDEN={value:?}: set it to 1 to rewrite the golden files, or unset it to compare"
                ))
            );
        }
    }
}
