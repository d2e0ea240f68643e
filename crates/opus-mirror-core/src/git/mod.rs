//! Everything that talks to git: the object format we write ourselves, and the backup repo
//! we open with libgit2.

pub mod backup_repo;
pub mod fsck;
pub mod local_push;
pub mod objects;
pub mod pack;
pub mod remote;

pub use backup_repo::BackupRepo;
