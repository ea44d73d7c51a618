//! The model: what the xtask knows without asking anything: the image
//! catalog, the tag strategy, and which built image a check looks at. Pure
//! data and logic; nothing here starts a process.

pub mod catalog;
pub mod dockerfile;
pub mod gate;
pub mod tags;
pub mod target;
