//! The engine layer: everything the xtask asks of the machine. Processes
//! (only [`process`] starts them), the Docker engine and buildx, the
//! containers and images checks use, files inside containers, git, HTTP.
//! Above the model; below the checks.

pub mod buildx;
pub mod clamp;
pub mod container;
pub mod cosign;
pub mod docker;
pub mod files;
pub mod git;
pub mod http;
pub mod image;
pub mod imagetools;
pub mod layout;
pub mod oci;
pub mod process;
pub mod progress;
pub mod registry;
pub mod skopeo;
pub mod tools;
