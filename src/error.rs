//! The errors the service's operations return to callers, and the store's errors they wrap. The transport maps
//! each kind to one status code (`server::status`); internal details are logged there, never sent. This module is
//! the ground floor: it imports no other module of the crate.

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

/// One rule an entry breaks. `field` is a path into the entry: `id`, `translations.nl.answer`, ...
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub field: String,
    pub reason: String,
}

impl Violation {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Violation { field: field.into(), reason: reason.into() }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Database(sqlx::Error),
    /// The database could not be reached (refused, connection lost, no connection free in time) before anything
    /// was committed: the operation was not applied and may be retried as it is.
    #[error("database unreachable: {0}")]
    Unavailable(sqlx::Error),
    /// The connection was lost while the commit was under way: it may or may not have been applied. Only a retry
    /// that is idempotent (the same client message id, a conditional update) is safe.
    #[error("commit outcome unknown: {0}")]
    OutcomeUnknown(sqlx::Error),
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// A customer message with this client message id is already stored (a concurrent retry won).
    #[error("duplicate client message id")]
    DuplicateClientMessage,
    /// The hand-off was no longer in the expected state: someone else changed it first.
    #[error("hand-off changed concurrently")]
    Conflict,
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        if is_connection_error(&error) { StoreError::Unavailable(error) } else { StoreError::Database(error) }
    }
}

/// Whether the error says the database could not be talked to, rather than that it refused the statement.
fn is_connection_error(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        // SQLSTATE class 08 (connection exception) and 57P01-57P03 (the server is shutting down or starting).
        sqlx::Error::Database(e) => e.code().is_some_and(|code| code.starts_with("08") || code.starts_with("57P0")),
        _ => false,
    }
}
