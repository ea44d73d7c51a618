//! Benchmarks that print their figures and assert nothing (machines are
//! noisy): `bench build`, how much the build cache saves; `bench smoke`, how
//! long all smoke checks of one image take; `bench size`, the time and
//! memory of the size analysis as layers grow; `bench lint`, the lint of
//! the catalog; `bench publish`, a publish's steps and the bytes it uploads.

pub mod build;
pub mod lint;
pub mod publish;
pub mod size;
pub mod smoke;

/// Median, min and max of some timings, as a table cell.
pub fn spread(samples: &[f64]) -> (f64, String) {
    let (median, min, max) = crate::checks::runtime::summarize(samples);
    (median, format!("{min:.2}-{max:.2}s (n={})", samples.len()))
}
