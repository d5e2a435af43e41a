//! The authenticated caller of one request and what it may do as: its conversation scope, its skills, and the
//! agent a desk request acts as.

use crate::error::{Error, Result};
use crate::identity::Role;

/// The authenticated caller of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The key's id (never its secret): what conversations are owned by and audits name.
    pub key_id: String,
    pub role: Role,
    /// For agents: the skills whose hand-offs they work (empty: all).
    pub skills: Vec<String>,
    /// For agent keys: the agent the key belongs to (the key's name). Everything the key does on the desk is
    /// attributed to this agent, whatever the request says.
    pub agent: Option<String>,
    /// For agent keys: the name customers see on the agent's messages (empty: none set).
    pub display_name: String,
    /// For a conversation token (role WIDGET): the one conversation it may hold.
    pub conversation: Option<String>,
}

impl Caller {
    /// The caller of a server in open (demo) mode: everything is allowed.
    pub fn open() -> Caller {
        Caller::with_role("open", Role::Admin)
    }

    /// A caller of `role` with nothing else: no skills, agent or conversation.
    pub(super) fn with_role(key_id: &str, role: Role) -> Caller {
        Caller {
            key_id: key_id.to_owned(),
            role,
            skills: Vec::new(),
            agent: None,
            display_name: String::new(),
            conversation: None,
        }
    }

    /// Whether this caller works hand-offs of `skill`.
    pub fn has_skill(&self, skill: &str) -> bool {
        self.role != Role::Agent || self.skills.is_empty() || self.skills.iter().any(|s| s == skill)
    }

    /// Fails unless this caller works hand-offs of `skill`.
    pub fn check_skill(&self, skill: &str) -> Result<()> {
        match self.has_skill(skill) {
            true => Ok(()),
            false => Err(Error::PermissionDenied(format!("this API key does not work skill {skill:?}"))),
        }
    }

    /// The skills a queue or list request may cover: what it asks for, within this caller's skills (all of them
    /// when it asks for none).
    pub fn skills_within(&self, requested: Vec<String>) -> Result<Vec<String>> {
        if self.skills.is_empty() {
            return Ok(requested);
        }
        if requested.is_empty() {
            return Ok(self.skills.clone());
        }
        requested.iter().try_for_each(|skill| self.check_skill(skill))?;
        Ok(requested)
    }

    /// The conversation owner a request on `conversation_id` is limited to: a client sees only what it started, a
    /// conversation token only its conversation, others see all. A widget key itself holds no conversation.
    pub fn scope_for(&self, conversation_id: &str) -> Result<Option<&str>> {
        match (self.role, self.conversation.as_deref()) {
            (Role::Client, _) => Ok(Some(self.key_id.as_str())),
            (Role::Widget, Some(own)) if own == conversation_id.trim() => Ok(Some(self.key_id.as_str())),
            (Role::Widget, Some(_)) => Err(Error::PermissionDenied(
                "this conversation token is for another conversation: use the token its StartConversation returned"
                    .into(),
            )),
            (Role::Widget, None) => Err(Error::PermissionDenied(
                "a widget key may only start conversations: send the conversation token StartConversation returned"
                    .into(),
            )),
            _ => Ok(None),
        }
    }

    /// Whether this caller may start a conversation (a conversation token holds the one it has).
    pub fn may_start(&self) -> Result<()> {
        match self.conversation {
            Some(_) => Err(Error::PermissionDenied(
                "a conversation token holds one conversation: start another with the widget key".into(),
            )),
            None => Ok(()),
        }
    }
}

/// The agent a desk operation is done as, from [`acting_agent`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActingAgent {
    /// Who claims, writes, transfers, resolves and signs the notes.
    pub agent_id: String,
    /// The administrator's key id when an administrator acts for the agent: the desk audits it.
    pub admin_key_id: Option<String>,
    /// The name the customer sees on the agent's messages: the agent key's display name (empty when it has none,
    /// and when an administrator acts for the agent).
    pub display_name: String,
}

/// Who a desk request of `caller` acts as, given the agent id the request names (`requested`, may be empty).
/// An agent key is its agent: the request may leave the id empty or repeat it, never name another. An
/// administrator (and the open demo mode) has no agent of its own, so it must name the agent it acts for.
pub fn acting_agent(caller: &Caller, requested: &str) -> Result<ActingAgent> {
    let requested = requested.trim();
    match (caller.role, caller.agent.as_deref()) {
        (Role::Agent, Some(own)) if requested.is_empty() || requested == own => {
            Ok(ActingAgent { agent_id: own.to_owned(), admin_key_id: None, display_name: caller.display_name.clone() })
        }
        (Role::Agent, Some(own)) => Err(Error::PermissionDenied(format!(
            "this API key belongs to agent {own:?}; it may not act as agent {requested:?}"
        ))),
        (Role::Admin, _) if requested.is_empty() => {
            Err(Error::invalid("agent_id", "is required: an admin key acts for the agent it names"))
        }
        (Role::Admin, _) => {
            let admin_key_id = Some(caller.key_id.clone());
            Ok(ActingAgent { agent_id: requested.to_owned(), admin_key_id, display_name: String::new() })
        }
        (role, _) => Err(Error::PermissionDenied(format!("role {} does not act for an agent", role.as_str()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::{KeyRing, new_key};

    #[test]
    fn an_agent_key_acts_only_as_its_agent_and_an_admin_names_the_agent() {
        let ring = KeyRing::default();
        let anna = new_key("anna", Role::Agent, Vec::new(), 0);
        let admin = new_key("admin", Role::Admin, Vec::new(), 0);
        ring.load(vec![anna.record.clone(), admin.record.clone()]);
        let anna = ring.authenticate(&anna.token).unwrap();
        for requested in ["", "anna", " anna "] {
            let acting = acting_agent(&anna, requested).unwrap();
            assert_eq!((acting.agent_id.as_str(), acting.admin_key_id), ("anna", None), "{requested:?}");
        }
        assert!(
            matches!(acting_agent(&anna, "bob"), Err(Error::PermissionDenied(m)) if m.contains("anna") && m.contains("bob"))
        );
        let admin = ring.authenticate(&admin.token).unwrap();
        assert!(matches!(acting_agent(&admin, " "), Err(Error::InvalidArgument { field: "agent_id", .. })));
        let acting = acting_agent(&admin, "bob").unwrap();
        assert_eq!((acting.agent_id.as_str(), acting.admin_key_id), ("bob", Some(admin.key_id.clone())));
        assert!(acting_agent(&Caller::open(), "").is_err(), "the open mode names its agent too");
        let client = Caller::with_role("c", Role::Client);
        assert!(matches!(acting_agent(&client, "anna"), Err(Error::PermissionDenied(_))));
    }
}
