//! The access gate in front of every service: reads `authorization: Bearer <key>`, asks `access` who is calling
//! and whether they may call now, checks the role the service needs, and hands the caller to the adapter in the
//! request's extensions. Health and reflection stay open (load balancers and tools call them without keys).

use std::sync::Arc;

use tonic::service::Interceptor;
use tonic::{Request, Status};

use super::status::status_of;
use crate::access::{Access, Caller, Role};
use crate::error::Error;

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
        let header = request.metadata().get("authorization");
        let token = match header.map(|value| value.to_str()) {
            None => None,
            Some(Ok(value)) => Some(value.strip_prefix("Bearer ").unwrap_or(value)),
            Some(Err(_)) => {
                return Err(status_of(Error::Unauthenticated("the authorization header is not text".into())));
            }
        };
        let caller = self.access.admit(token).map_err(status_of)?;
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

/// The caller the gate admitted.
pub fn caller<T>(request: &Request<T>) -> Result<Caller, Status> {
    request.extensions().get::<Caller>().cloned().ok_or_else(|| Status::internal("request passed no access gate"))
}
