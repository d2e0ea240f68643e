//! Which exit code an error chain deserves. The one module that knows every area's error type
//! (config, lock, remote, target), so that `exit` itself stays at the bottom: every area
//! depends on `exit`, and this sits above them all.

use crate::exit::{Exit, HasExit};

/// Finds the exit code an error chain asks for: the first error in the chain that knows its
/// code wins; anything else is a plain failure.
pub fn exit_for(err: &anyhow::Error) -> Exit {
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<crate::config::ConfigError>() {
            return e.exit();
        }
        if let Some(e) = cause.downcast_ref::<crate::lock::LockError>() {
            return e.exit();
        }
        if let Some(e) = cause.downcast_ref::<crate::exit::UserError>() {
            return e.exit();
        }
        if let Some(e) = cause.downcast_ref::<crate::git::remote::RemoteError>() {
            return e.exit();
        }
        if let Some(e) = cause.downcast_ref::<crate::target::Unavailable>() {
            return e.exit();
        }
    }
    Exit::Failed
}
