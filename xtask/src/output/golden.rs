//! Golden files for printed output: what a table or a JUnit file looks like
//! is compared with `xtask/test_data/NAME`. After a deliberate change, run
//! `UPDATE_GOLDEN=1 cargo test -p xtask` and review the diff of test_data/.

use std::path::PathBuf;

/// Fails unless `actual` is the content of `test_data/name` (or rewrites the
/// file with `UPDATE_GOLDEN=1`).
pub fn check(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("test_data").join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
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
