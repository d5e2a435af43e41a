//! The access gate in front of every service: reads `authorization: Bearer <key>`, asks `access` who is calling
//! and whether they may call now, checks the role the service needs, and hands the caller to the adapter in the
//! request's extensions. Health and reflection stay open (load balancers and tools call them without keys).

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio_stream::{Stream, StreamExt};

use tonic::service::Interceptor;
use tonic::{Request, Status};

use super::status::status_of;
use crate::access::{Access, Caller, RequestInfo, Role};
use crate::error::Error;
use crate::web::PageOrigin;

#[derive(Clone)]
pub struct Gate {
    access: Arc<Access>,
    service: &'static str,
    roles: &'static [Role],
}

impl Gate {
    pub fn new(access: Arc<Access>, service: &'static str, roles: &'static [Role]) -> Gate {
        Gate { access, service, roles }
    }
}

impl Interceptor for Gate {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let token = match request.metadata().get("authorization").map(|value| value.to_str()) {
            None => None,
            Some(Ok(value)) => Some(bearer(value).map_err(status_of)?),
            Some(Err(_)) => return Err(status_of(malformed())),
        };
        let info = RequestInfo {
            page_origin: request.extensions().get::<PageOrigin>().map(|origin| origin.0.clone()),
            client_address: request.remote_addr().map(|address| address.ip()),
        };
        let caller = self.access.admit(token, &info).map_err(status_of)?;
        if !self.roles.contains(&caller.role) {
            let allowed: Vec<&str> = self.roles.iter().map(|r| r.as_str()).collect();
            return Err(status_of(Error::PermissionDenied(format!(
                "role {} may not call {}; it needs {}",
                caller.role.as_str(),
                self.service,
                allowed.join(" or ")
            ))));
        }
        request.extensions_mut().insert(caller);
        Ok(request)
    }
}

/// The key in an `authorization` header, which must read `Bearer <key>` (RFC 6750; the scheme's case is free,
/// RFC 9110). A bare key is refused: accepting it would make a misconfigured client work by accident.
fn bearer(value: &str) -> Result<&str, Error> {
    match value.split_once(' ') {
        Some((scheme, key)) if scheme.eq_ignore_ascii_case("bearer") && !key.trim().is_empty() => Ok(key.trim()),
        _ => Err(malformed()),
    }
}

fn malformed() -> Error {
    Error::Unauthenticated("the authorization header must read `Bearer <key>`".into())
}

/// The caller the gate admitted.
pub fn caller<T>(request: &Request<T>) -> Result<Caller, Status> {
    request.extensions().get::<Caller>().cloned().ok_or_else(|| Status::internal("request passed no access gate"))
}

/// How often a stream with nothing to send checks that its caller's key is still live.
const REVOCATION_CHECK: Duration = Duration::from_secs(1);

type Watch<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// Ends a watch stream with UNAUTHENTICATED once its caller's key is revoked: checked before every item and every
/// `REVOCATION_CHECK` while none comes, so a revoked key neither receives another event nor keeps a quiet stream.
pub fn while_admitted<T: Send + 'static>(mut stream: Watch<T>, access: Arc<Access>, caller: Caller) -> Watch<T> {
    Box::pin(async_stream::stream! {
        let mut check = tokio::time::interval(REVOCATION_CHECK);
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        check.tick().await;
        loop {
            let item = tokio::select! {
                item = stream.next() => match item {
                    Some(item) => Some(item),
                    None => break,
                },
                _ = check.tick() => None,
            };
            if let Err(revoked) = access.still_admitted(&caller) {
                yield Err(status_of(revoked));
                break;
            }
            if let Some(item) = item {
                yield item;
            }
        }
    })
}
