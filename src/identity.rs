//! Who a credential is: the roles and the stored key record. Leaf data at the ground floor, shared by the store
//! (which persists keys) and `access` (which checks them); it imports nothing of the crate.

use serde::{Deserialize, Serialize};

/// What a credential may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A front-end: holds conversations, only the ones it started.
    Client,
    /// A human agent: works hand-offs of its skills (all skills when it has none listed).
    Agent,
    /// A knowledge editor: maintains the FAQ and reads KPIs.
    Editor,
    /// Everything, including erasing a customer's data.
    Admin,
    /// A web widget's publishable key: it only starts conversations, from a page of an allowed origin; the page
    /// holds each conversation through the conversation token the start returned.
    Widget,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Client => "client",
            Role::Agent => "agent",
            Role::Editor => "editor",
            Role::Admin => "admin",
            Role::Widget => "widget",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        [Role::Client, Role::Agent, Role::Editor, Role::Admin, Role::Widget].into_iter().find(|r| r.as_str() == text)
    }
}

/// A stored key: everything but the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub id: String,
    pub name: String,
    /// Agent keys: the name customers see on the agent's messages (empty: none, the customer sees "agent").
    pub display_name: String,
    pub role: Role,
    pub skills: Vec<String>,
    /// Hex SHA-256 of the secret.
    pub secret_hash: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}
