//! API keys: making one (`lk_<id>_<secret>`, only the secret's SHA-256 stored) and checking a bearer token
//! against the live keys in memory ([`KeyRing`]), without a database round trip per request.

use std::collections::HashMap;
use std::sync::RwLock;

use sha2::{Digest, Sha256};

use super::Caller;
use crate::error::{Error, Result};
use crate::identity::{ApiKey, Role};

/// A new key: the record to store and the full key, shown once.
pub struct NewKey {
    pub record: ApiKey,
    pub token: String,
}

fn hash(secret: &str) -> String {
    crate::text::hex(&Sha256::digest(secret.as_bytes()))
}

/// Makes a key with a random secret (two v4 UUIDs: 244 random bits from the OS).
pub fn new_key(name: &str, role: Role, skills: Vec<String>, now: i64) -> NewKey {
    let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
    let secret = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
    let token = format!("lk_{id}_{secret}");
    let record = ApiKey {
        id,
        name: name.to_owned(),
        display_name: String::new(),
        role,
        skills,
        secret_hash: hash(&secret),
        created_at: now,
        revoked_at: None,
    };
    NewKey { record, token }
}

/// Splits `lk_<id>_<secret>`.
fn parse_token(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix("lk_")?;
    let (id, secret) = rest.split_once('_')?;
    (!id.is_empty() && !secret.is_empty()).then_some((id, secret))
}

/// Compares without stopping at the first difference, so timing does not reveal how much of a hash matched.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The valid keys, in memory.
#[derive(Default)]
pub struct KeyRing {
    keys: RwLock<HashMap<String, ApiKey>>,
}

impl KeyRing {
    /// Replaces the ring's keys (revoked ones are dropped).
    pub fn load(&self, keys: Vec<ApiKey>) {
        let live = keys.into_iter().filter(|k| k.revoked_at.is_none()).map(|k| (k.id.clone(), k)).collect();
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = live;
    }

    /// The caller a bearer token belongs to.
    pub fn authenticate(&self, token: &str) -> Result<Caller> {
        let unknown = || Error::Unauthenticated("the API key is not valid (unknown, malformed or revoked)".into());
        let (id, secret) = parse_token(token.trim()).ok_or_else(unknown)?;
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        let key = keys.get(id).ok_or_else(unknown)?;
        if !same(&key.secret_hash, &hash(secret)) {
            return Err(unknown());
        }
        let agent = (key.role == Role::Agent).then(|| key.name.clone());
        Ok(Caller {
            key_id: key.id.clone(),
            role: key.role,
            skills: key.skills.clone(),
            agent,
            display_name: key.display_name.clone(),
            conversation: None,
        })
    }

    /// Whether `id` is a live key of `role`.
    pub fn is_live(&self, id: &str, role: Role) -> bool {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).get(id).is_some_and(|k| k.role == role)
    }

    pub fn len(&self) -> usize {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_authenticates_only_with_its_own_secret_and_not_after_revocation() {
        let ring = KeyRing::default();
        let key = new_key("widget", Role::Client, Vec::new(), 0);
        let other = new_key("console", Role::Agent, vec!["billing".into()], 0);
        ring.load(vec![key.record.clone(), other.record.clone()]);
        assert_eq!(ring.authenticate(&key.token).unwrap().role, Role::Client);
        let agent = ring.authenticate(&other.token).unwrap();
        assert!(agent.has_skill("billing") && !agent.has_skill("returns"));
        let (id, _) = parse_token(&key.token).unwrap();
        let (_, secret) = parse_token(&other.token).unwrap();
        assert!(ring.authenticate(&format!("lk_{id}_{secret}")).is_err(), "a secret of another key");
        assert!(ring.authenticate("Bearer nonsense").is_err());
        let mut revoked = key.record.clone();
        revoked.revoked_at = Some(1);
        ring.load(vec![revoked, other.record]);
        assert!(ring.authenticate(&key.token).is_err());
    }
}
