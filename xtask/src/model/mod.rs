//! The model: what the xtask knows without asking anything: the image
//! catalog, the tag strategy, which built image a check looks at, a GitHub
//! Actions run and its workflow file. Pure
//! data and logic; nothing here starts a process.

pub mod build;
pub mod catalog;
pub mod dockerfile;
pub mod gate;
pub mod github;
pub mod repro;
pub mod tags;
pub mod target;
pub mod workflow;
