//! Dated git bundles of a source's backup repo: written by us (header + our own pack
//! stream), read by us (header + libgit2's indexer), and readable by stock git.

pub mod create;
pub mod format;
pub mod manifest;
pub mod read;
pub mod write;
