//! blobmount: mount Azure Blob Storage containers read-only through FUSE.
//!
//! Layers, bottom up: `source` (which container), `auth` (how requests are authorized),
//! `store` (the Blob service behind one trait), `cache` and `prefetch` (blocks of content
//! and read-ahead), `fs` (inodes, listing and reads, and the
//! FUSE adapter), then `mount`/`daemon`/`mountpoint` (start-up, readiness and unmount) and
//! `cli` (flags).

pub mod auth;
pub mod cache;
pub mod check;
pub mod cli;
pub mod daemon;
pub mod fs;
pub mod mount;
pub mod mountpoint;
pub mod prefetch;
pub mod redact;
pub mod source;
pub mod store;
