//! The filesystem: blob names as a tree of inodes, served through FUSE.
//!
//! `names` holds the naming rules, `inode` the inode table, `superblock` every operation
//! over the object store, and `fuse` the thin adapter to the kernel.

pub mod fuse;
pub mod inode;
pub mod names;
pub mod superblock;

pub use fuse::{AttrConfig, FuseAdapter};
pub use superblock::{Superblock, SuperblockConfig};
