//! Git's pack format, written and read by our own code: a pack and its index written in one
//! pass (`write`), entries read back by offset or id (`read`), packs from outside (a bundle's)
//! checked and indexed (`index`).

pub mod delta;
pub mod index;
pub mod merge;
pub mod read;
pub mod write;

pub use read::*;
pub use write::*;
