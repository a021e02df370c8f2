//! Integration tests: real FUSE mounts of containers in Azurite. Sections follow
//! docs/SEMANTICS.md.

mod azurite;
mod check;
mod common;
mod errors;
mod identity;
mod names;
mod outage;
mod read;
mod readonly;
