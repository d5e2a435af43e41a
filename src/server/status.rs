//! The one mapping from domain errors to gRPC statuses.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};
use tracing::{error, warn};

use crate::error::Error;
use crate::store::StoreError;

pub fn status_of(error: Error) -> Status {
    match error {
        Error::InvalidArgument { field, reason } => {
            let mut details = ErrorDetails::new();
            details.add_bad_request_violation(field, reason.clone());
            Status::with_error_details(Code::InvalidArgument, format!("{field}: {reason}"), details)
        }
        Error::InvalidFields(violations) => {
            let mut details = ErrorDetails::new();
            for v in &violations {
                details.add_bad_request_violation(v.field.clone(), v.reason.clone());
            }
            let message = Error::InvalidFields(violations).to_string();
            Status::with_error_details(Code::InvalidArgument, message, details)
        }
        Error::Aborted(message) => Status::aborted(message),
        Error::Unavailable(message) => Status::unavailable(message),
        Error::Unauthenticated(message) => Status::unauthenticated(message),
        Error::PermissionDenied(message) => Status::permission_denied(message),
        Error::ResourceExhausted { message, retry_after } => {
            let mut details = ErrorDetails::new();
            details.set_retry_info(Some(retry_after));
            let message = format!("{message}; retry after {} ms", retry_after.as_millis().max(1));
            Status::with_error_details(Code::ResourceExhausted, message, details)
        }
        Error::NotFound { what, id } => Status::not_found(format!("{what} {id:?} not found")),
        Error::FailedPrecondition(message) => Status::failed_precondition(message),
        Error::AlreadyExists(message) => Status::already_exists(message),
        Error::Store(StoreError::Unavailable(e)) => {
            warn!(error = %e, "database unreachable");
            Status::unavailable("the database is unreachable; the request was not applied: retry it shortly")
        }
        Error::Store(StoreError::OutcomeUnknown(e)) => {
            warn!(error = %e, "connection lost during a commit");
            // UNAVAILABLE is the code clients retry; the message says why the retry must be the same request.
            Status::unavailable(
                "the database connection was lost while committing: the request may have been applied. Retry it \
                 unchanged (with the same client_message_id): the retry returns the stored outcome or applies it \
                 once",
            )
        }
        Error::Store(e) => {
            // Details stay in the log: they may contain paths or data the caller must not see.
            error!(error = %e, "storage failure");
            Status::internal("internal storage error; the request was not applied")
        }
    }
}
