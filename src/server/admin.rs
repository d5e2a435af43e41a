//! `loket.v1.AdminService` adapter.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::auth::caller;
use super::convert::timestamp;
use super::pb;
use super::status::status_of;
use crate::access::{Access, ApiKey, Role};
use crate::error::Error;
use crate::paging::{self, Pager, Position};
use crate::store::Delivery;
use crate::webhooks::Webhooks;

pub struct AdminApi {
    access: Arc<Access>,
    webhooks: Arc<Webhooks>,
}

impl AdminApi {
    pub fn new(access: Arc<Access>, webhooks: Arc<Webhooks>) -> Self {
        Self { access, webhooks }
    }
}

fn delivery_to_pb(delivery: Delivery) -> pb::WebhookDelivery {
    pb::WebhookDelivery {
        delivery_id: delivery.id,
        event_id: delivery.event_id,
        event_type: delivery.event,
        webhook: delivery.webhook,
        conversation_id: delivery.conversation_id.unwrap_or_default(),
        attempts: delivery.attempts as i32,
        last_error: delivery.last_error.unwrap_or_default(),
        create_time: timestamp(delivery.created_at),
        fail_time: timestamp(delivery.updated_at),
        payload: delivery.payload,
    }
}

fn role_to_pb(role: Role) -> pb::Role {
    match role {
        Role::Client => pb::Role::Client,
        Role::Agent => pb::Role::Agent,
        Role::Editor => pb::Role::Editor,
        Role::Admin => pb::Role::Admin,
        Role::Widget => pb::Role::Widget,
    }
}

fn role_from_pb(value: i32) -> Result<Role, Status> {
    match pb::Role::try_from(value) {
        Ok(pb::Role::Client) => Ok(Role::Client),
        Ok(pb::Role::Agent) => Ok(Role::Agent),
        Ok(pb::Role::Editor) => Ok(Role::Editor),
        Ok(pb::Role::Admin) => Ok(Role::Admin),
        Ok(pb::Role::Widget) => Ok(Role::Widget),
        Ok(pb::Role::Unspecified) => Err(status_of(Error::invalid("role", "is required"))),
        Err(_) => Err(status_of(Error::invalid("role", format!("unknown value {value}")))),
    }
}

fn key_to_pb(key: &ApiKey) -> pb::ApiKey {
    pb::ApiKey {
        key_id: key.id.clone(),
        name: key.name.clone(),
        display_name: key.display_name.clone(),
        role: role_to_pb(key.role).into(),
        skills: key.skills.clone(),
        create_time: timestamp(key.created_at),
        revoke_time: key.revoked_at.and_then(timestamp),
    }
}

#[tonic::async_trait]
impl pb::admin_service_server::AdminService for AdminApi {
    async fn create_api_key(
        &self,
        request: Request<pb::CreateApiKeyRequest>,
    ) -> Result<Response<pb::CreateApiKeyResponse>, Status> {
        let actor = caller(&request)?.key_id;
        let r = request.into_inner();
        let role = role_from_pb(r.role)?;
        let key = self.access.create_key(&r.name, role, r.skills, &r.display_name, &actor).await.map_err(status_of)?;
        Ok(Response::new(pb::CreateApiKeyResponse { key: Some(key_to_pb(&key.record)), token: key.token }))
    }

    async fn revoke_api_key(
        &self,
        request: Request<pb::RevokeApiKeyRequest>,
    ) -> Result<Response<pb::RevokeApiKeyResponse>, Status> {
        let actor = caller(&request)?.key_id;
        self.access.revoke_key(request.get_ref().key_id.trim(), &actor).await.map_err(status_of)?;
        Ok(Response::new(pb::RevokeApiKeyResponse {}))
    }

    async fn list_api_keys(
        &self,
        request: Request<pb::ListApiKeysRequest>,
    ) -> Result<Response<pb::ListApiKeysResponse>, Status> {
        let pb::ListApiKeysRequest { page_size, page_token } = request.into_inner();
        let size = paging::page_size(page_size).map_err(status_of)?;
        let pager = Pager::new("api_keys", "");
        let after = pager.after(&page_token).map_err(status_of)?;
        // Keys are few and all held in memory by the key ring anyway: paged here, oldest first.
        let mut keys = self.access.keys().await.map_err(status_of)?;
        let key = |k: &ApiKey| Position::new(k.created_at, &k.id);
        keys.sort_by_key(key);
        let (page, next_page_token) = pager.page(keys, key, false, after.as_ref(), size);
        Ok(Response::new(pb::ListApiKeysResponse { keys: page.iter().map(key_to_pb).collect(), next_page_token }))
    }

    async fn erase_customer(
        &self,
        request: Request<pb::EraseCustomerRequest>,
    ) -> Result<Response<pb::EraseCustomerResponse>, Status> {
        let actor = caller(&request)?.key_id;
        let erased = self.access.erase_customer(&request.get_ref().customer_id, &actor).await.map_err(status_of)?;
        Ok(Response::new(pb::EraseCustomerResponse {
            conversations: erased.conversations as i64,
            messages: erased.messages as i64,
            handoffs: erased.handoffs as i64,
            ratings: erased.ratings as i64,
            knowledge_gaps: erased.gaps as i64,
        }))
    }

    async fn list_failed_deliveries(
        &self,
        request: Request<pb::ListFailedDeliveriesRequest>,
    ) -> Result<Response<pb::ListFailedDeliveriesResponse>, Status> {
        let pb::ListFailedDeliveriesRequest { page_size, page_token, webhook } = request.into_inner();
        let (page, next_page_token) =
            self.webhooks.failed(&webhook, page_size, &page_token).await.map_err(status_of)?;
        let deliveries = page.into_iter().map(delivery_to_pb).collect();
        Ok(Response::new(pb::ListFailedDeliveriesResponse { deliveries, next_page_token }))
    }

    async fn redeliver_webhook(
        &self,
        request: Request<pb::RedeliverWebhookRequest>,
    ) -> Result<Response<pb::RedeliverWebhookResponse>, Status> {
        let actor = caller(&request)?.key_id;
        let pb::RedeliverWebhookRequest { delivery_id, webhook } = request.into_inner();
        let redelivered = self.webhooks.redeliver(&delivery_id, &webhook, &actor).await.map_err(status_of)?;
        Ok(Response::new(pb::RedeliverWebhookResponse { redelivered: redelivered as i64 }))
    }
}
