//! Keys a browser may hold. A widget key is public (it sits in the shop's page), so it may only start
//! conversations; each start hands the page a conversation token, signed (HMAC-SHA256 with a secret only loket
//! knows), expiring and good for that one conversation. Also the optional proof, made by the shop's backend, that
//! a customer id is really the shop's customer. Knows nothing of gRPC or HTTP.

use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::error::{Error, Result};
use crate::paging::{base64url_decode, base64url_encode};

/// How a conversation token starts, so the gate tells it from an API key (`lk_`).
pub const TOKEN_PREFIX: &str = "lkc_";

/// What a conversation token grants, as signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationGrant {
    /// The one conversation the token is good for.
    #[serde(rename = "c")]
    pub conversation_id: String,
    /// The widget key that started it: revoking the key ends its tokens.
    #[serde(rename = "k")]
    pub key_id: String,
    /// Unix milliseconds after which the token is refused.
    #[serde(rename = "e")]
    pub expires_at: i64,
}

/// Signs and checks conversation tokens: `lkc_<base64url(JSON grant)>.<base64url(HMAC-SHA256 of the first part)>`.
pub struct TokenSigner {
    secret: Vec<u8>,
}

impl TokenSigner {
    pub fn new(secret: &[u8]) -> TokenSigner {
        TokenSigner { secret: secret.to_vec() }
    }

    fn mac(&self) -> Hmac<Sha256> {
        Hmac::<Sha256>::new_from_slice(&self.secret).expect("HMAC takes a key of any length")
    }

    pub fn issue(&self, grant: &ConversationGrant) -> String {
        let payload = base64url_encode(&serde_json::to_vec(grant).expect("a grant serialises"));
        let mut mac = self.mac();
        mac.update(payload.as_bytes());
        format!("{TOKEN_PREFIX}{payload}.{}", base64url_encode(&mac.finalize().into_bytes()))
    }

    /// The grant of a token this loket signed, unless it expired by `now` (Unix milliseconds).
    pub fn verify(&self, token: &str, now: i64) -> Result<ConversationGrant> {
        let invalid = || {
            Error::Unauthenticated(
                "the conversation token is not valid (malformed, or not signed by this loket)".into(),
            )
        };
        let (payload, signature) =
            token.strip_prefix(TOKEN_PREFIX).and_then(|t| t.split_once('.')).ok_or_else(invalid)?;
        let signature = base64url_decode(signature).ok_or_else(invalid)?;
        let mut mac = self.mac();
        mac.update(payload.as_bytes());
        // Constant time: how much of a forged signature matched stays hidden.
        mac.verify_slice(&signature).map_err(|_| invalid())?;
        let grant: ConversationGrant =
            base64url_decode(payload).and_then(|json| serde_json::from_slice(&json).ok()).ok_or_else(invalid)?;
        if now >= grant.expires_at {
            return Err(Error::Unauthenticated(
                "the conversation token expired: start a new conversation with the widget key".into(),
            ));
        }
        Ok(grant)
    }
}

/// A fresh random signing secret (244 random bits from the OS, in hex).
pub fn fresh_secret() -> String {
    format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())
}

/// The signature a shop's backend computes for a customer id: lower-case hex of HMAC-SHA256(secret, customer_id).
pub fn identity_signature(secret: &str, customer_id: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(customer_id.as_bytes());
    crate::text::hex(&mac.finalize().into_bytes())
}

/// Whether `signature` (hex, either case) is the identity signature of `customer_id` under `secret`, compared in
/// constant time.
pub fn identity_verified(secret: &str, customer_id: &str, signature: &str) -> bool {
    let Some(bytes) = crate::text::unhex(signature.trim()) else { return false };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(customer_id.as_bytes());
    mac.verify_slice(&bytes).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(expires_at: i64) -> ConversationGrant {
        ConversationGrant { conversation_id: "conv-1".into(), key_id: "k1".into(), expires_at }
    }

    #[test]
    fn a_token_grants_what_was_signed_until_it_expires() {
        let signer = TokenSigner::new(b"secret");
        let token = signer.issue(&grant(1_000));
        assert!(token.starts_with(TOKEN_PREFIX));
        assert_eq!(signer.verify(&token, 999).unwrap(), grant(1_000));
        let expired = signer.verify(&token, 1_000).unwrap_err().to_string();
        assert!(expired.contains("expired"), "{expired}");
    }

    #[test]
    fn forged_tokens_are_refused() {
        let signer = TokenSigner::new(b"secret");
        let token = signer.issue(&grant(1_000));
        // Another loket's token, an edited grant with the old signature, truncation, garbage.
        let other = TokenSigner::new(b"other").issue(&grant(1_000));
        let (_, signature) = token.split_once('.').unwrap();
        let mut longer = grant(i64::MAX);
        longer.conversation_id = "conv-2".into();
        let edited = format!("{TOKEN_PREFIX}{}.{signature}", base64url_encode(&serde_json::to_vec(&longer).unwrap()));
        for forged in [other.as_str(), &edited, &token[..token.len() - 2], "lkc_x.y", "lkc_", "lk_a_b"] {
            let error = signer.verify(forged, 0).unwrap_err().to_string();
            assert!(error.contains("not valid"), "{forged}: {error}");
        }
    }

    #[test]
    fn identity_signatures_are_hmac_sha256_in_hex() {
        // RFC 4231, test case 2.
        assert_eq!(
            identity_signature("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let signature = identity_signature("shop-secret", "c-42");
        assert!(identity_verified("shop-secret", "c-42", &signature));
        assert!(identity_verified("shop-secret", "c-42", &signature.to_uppercase()));
        assert!(!identity_verified("shop-secret", "c-43", &signature));
        assert!(!identity_verified("other-secret", "c-42", &signature));
        assert!(!identity_verified("shop-secret", "c-42", "zz"));
        assert!(!identity_verified("shop-secret", "c-42", ""));
    }
}
