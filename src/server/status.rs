//! The one mapping from domain errors to gRPC statuses.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};
use tracing::error;

use crate::error::Error;

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
        Error::Store(e) => {
            // Details stay in the log: they may contain paths or data the caller must not see.
            error!(error = %e, "storage failure");
            Status::internal("internal storage error; the request was not applied")
        }
    }
}
