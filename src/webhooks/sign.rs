//! The signature every webhook request carries, as Stripe and GitHub sign theirs: `loket-signature:
//! t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" under the webhook's secret>`. The time is inside what is
//! signed, so a receiver that refuses old times refuses replays. docs/webhooks.md has the recipe for receivers.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The header's name.
pub const HEADER: &str = "loket-signature";

fn mac(secret: &[u8], timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The header value for `body` sent at `timestamp` (Unix seconds).
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let digest = mac(secret, timestamp, body).finalize().into_bytes();
    format!("t={timestamp},v1={}", crate::text::hex(&digest))
}

/// Checks a header as a receiver would: a `v1` signature of `body` at its `t` under `secret`, with `t` at most
/// `tolerance_secs` away from `now` (Unix seconds). Several `v1` entries are allowed (one per secret while a
/// secret is being changed); one matching is enough.
pub fn verify(secret: &[u8], header: &str, body: &[u8], now: i64, tolerance_secs: i64) -> Result<(), &'static str> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) => timestamp = value.parse::<i64>().ok(),
            Some(("v1", value)) => signatures.push(value),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or("no timestamp")?;
    if (now - timestamp).abs() > tolerance_secs {
        return Err("timestamp outside the tolerance");
    }
    let matches = |signature: &&str| {
        crate::text::unhex(signature).is_some_and(|bytes| mac(secret, timestamp, body).verify_slice(&bytes).is_ok())
    };
    if signatures.iter().any(matches) { Ok(()) } else { Err("no matching signature") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_only_for_its_secret_body_and_time() {
        let secret = b"0123456789abcdef0123456789abcdef";
        let body = br#"{"version":1}"#;
        let header = sign(secret, 1_800_000_000, body);
        assert!(header.starts_with("t=1800000000,v1="), "{header}");
        assert_eq!(verify(secret, &header, body, 1_800_000_010, 300), Ok(()));
        assert!(verify(b"another secret of 32 bytes at least", &header, body, 1_800_000_010, 300).is_err());
        assert!(verify(secret, &header, br#"{"version":2}"#, 1_800_000_010, 300).is_err());
        assert_eq!(verify(secret, &header, body, 1_800_000_400, 300), Err("timestamp outside the tolerance"));
        let replayed = header.replace("t=1800000000", "t=1800000300");
        assert!(verify(secret, &replayed, body, 1_800_000_300, 300).is_err(), "the time is signed");
        assert!(verify(secret, "garbage", body, 0, 300).is_err());
    }

    #[test]
    fn the_digest_is_hmac_sha256_of_time_dot_body() {
        // Computed independently: printf '1700000000.{}' | openssl dgst -sha256 -hmac 'secret'
        let header = sign(b"secret", 1_700_000_000, b"{}");
        assert_eq!(header, "t=1700000000,v1=b8569b78799ff9e3cbff0fc2d63a33a2b57f3282abd07c37ae5e8e7d79a5f163");
    }
}
