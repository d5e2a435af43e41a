//! The errors the service's operations return to callers. The transport maps each kind to one status code
//! (`server::status`); internal details are logged there, never sent.

use crate::knowledge::validate::Violation;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request itself is wrong; `field` names the offending field.
    #[error("{field}: {reason}")]
    InvalidArgument { field: &'static str, reason: String },
    #[error("{what} {id:?} not found")]
    NotFound { what: &'static str, id: String },
    /// The request is valid but the target is in the wrong state (for example a message to an ended conversation).
    #[error("{0}")]
    FailedPrecondition(String),
    /// The thing to create exists already (for example a second rating).
    #[error("{0}")]
    AlreadyExists(String),
    /// Several fields are wrong at once (an FAQ entry, an import); every violation is reported.
    #[error("{}", .0.iter().map(|v| format!("{}: {}", v.field, v.reason)).collect::<Vec<_>>().join("; "))]
    InvalidFields(Vec<Violation>),
    /// No valid credential came with the request.
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller's role or ownership does not allow this.
    #[error("{0}")]
    PermissionDenied(String),
    /// Too many requests: retry after the given delay.
    #[error("{message}")]
    ResourceExhausted { message: String, retry_after: std::time::Duration },
    /// The server is shutting down: retry elsewhere or later (a watch resumes with its last sequence number).
    #[error("{0}")]
    Unavailable(String),
    /// Someone else changed the target since the caller read it (optimistic concurrency): re-read and retry.
    #[error("{0}")]
    Aborted(String),
    #[error("storage: {0}")]
    Store(#[from] StoreError),
}

impl Error {
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Error::InvalidArgument { field, reason: reason.into() }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
