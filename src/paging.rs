//! Paging of every List RPC (AIP-158): page sizes, and page tokens that name where the next page starts (the
//! sort key of the previous page's last item, a keyset) rather than how many items to skip, so items added or
//! removed meanwhile never shift a page. Tokens are opaque to callers: base64url of a small JSON record that
//! also names the list and the filter it was made for.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Items per page when the request names no size.
pub const DEFAULT_PAGE_SIZE: usize = 50;
/// Larger requested sizes are cut to this.
pub const MAX_PAGE_SIZE: usize = 500;

/// The page size a request asks for: 0 is the default, more than the maximum is the maximum, negative is an error.
pub fn page_size(requested: i32) -> Result<usize> {
    match requested {
        0 => Ok(DEFAULT_PAGE_SIZE),
        n if n < 0 => Err(Error::invalid("page_size", "must not be negative")),
        n => Ok((n as usize).min(MAX_PAGE_SIZE)),
    }
}

/// The sort key of an item: a time (or another ordered number, like a revision's version) and an id that
/// breaks ties.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Position {
    #[serde(rename = "t")]
    pub at: i64,
    #[serde(rename = "i")]
    pub id: String,
}

impl Position {
    pub fn new(at: i64, id: impl Into<String>) -> Self {
        Position { at, id: id.into() }
    }
}

#[derive(Serialize, Deserialize)]
struct Token {
    /// The list ("handoffs", "faqs", ...).
    #[serde(rename = "l")]
    list: String,
    /// A digest of the filter the first page was asked with: a token is no good for another filter.
    #[serde(rename = "f")]
    filter: String,
    #[serde(rename = "p")]
    after: Position,
}

/// One list's tokens, for requests with one filter (`filter` is any text that differs when the filter does).
pub struct Pager {
    list: &'static str,
    filter: String,
}

impl Pager {
    pub fn new(list: &'static str, filter: &str) -> Self {
        let digest = Sha256::digest(filter.as_bytes());
        Pager { list, filter: crate::text::hex(&digest[..8]) }
    }

    /// Where the page asked for by `token` starts: after this position, or at the start for an empty token.
    pub fn after(&self, token: &str) -> Result<Option<Position>> {
        if token.is_empty() {
            return Ok(None);
        }
        let refused = || {
            Error::invalid("page_token", "is not a next_page_token this list gave for a request with the same filter")
        };
        let bytes = base64url_decode(token).ok_or_else(refused)?;
        let token: Token = serde_json::from_slice(&bytes).map_err(|_| refused())?;
        if token.list != self.list || token.filter != self.filter {
            return Err(refused());
        }
        Ok(Some(token.after))
    }

    /// The token of the page after one ending at `last`.
    pub fn token(&self, last: Position) -> String {
        let token = Token { list: self.list.to_owned(), filter: self.filter.clone(), after: last };
        base64url_encode(&serde_json::to_vec(&token).expect("a token serialises"))
    }

    /// One page of `items` (sorted by `key`, ascending or descending) after `after`, with the next page's token
    /// (empty on the last page). For lists kept in memory; stores page their tables with the same positions.
    pub fn page<T>(
        &self,
        items: Vec<T>,
        key: impl Fn(&T) -> Position,
        descending: bool,
        after: Option<&Position>,
        size: usize,
    ) -> (Vec<T>, String) {
        let mut page: Vec<T> = items
            .into_iter()
            .filter(|item| match after {
                None => true,
                Some(after) if descending => key(item) < *after,
                Some(after) => key(item) > *after,
            })
            .take(size + 1)
            .collect();
        let next = self.next(&mut page, size, key);
        (page, next)
    }

    /// Cuts `page` (read with one item more than `size`) to `size` and returns the next page's token: empty when
    /// nothing followed.
    pub fn next<T>(&self, page: &mut Vec<T>, size: usize, key: impl Fn(&T) -> Position) -> String {
        if page.len() <= size {
            return String::new();
        }
        page.truncate(size);
        page.last().map(|last| self.token(key(last))).unwrap_or_default()
    }
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Base64 with the URL-safe alphabet and no padding (RFC 4648 §5): tokens travel in JSON and URLs unescaped.
pub(crate) fn base64url_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

pub(crate) fn base64url_decode(text: &str) -> Option<Vec<u8>> {
    if text.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    for chunk in text.as_bytes().chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            let value = ALPHABET.iter().position(|&a| a == c)? as u32;
            n |= value << (18 - 6 * i);
        }
        for i in 0..chunk.len() - 1 {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_round_trips() {
        for bytes in [&b""[..], b"f", b"fo", b"foo", b"foob", b"fooba", b"foobar", &[0xff, 0xfe, 0x00]] {
            assert_eq!(base64url_decode(&base64url_encode(bytes)).as_deref(), Some(bytes));
        }
        assert_eq!(base64url_encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64url_encode(&[0xfb, 0xff]), "-_8");
        assert_eq!(base64url_decode("a"), None);
        assert_eq!(base64url_decode("a=b="), None);
    }

    #[test]
    fn tokens_are_bound_to_their_list_and_filter() {
        let pager = Pager::new("handoffs", "state=queued");
        let token = pager.token(Position::new(5, "h-1"));
        assert_eq!(pager.after(&token).unwrap(), Some(Position::new(5, "h-1")));
        assert_eq!(pager.after("").unwrap(), None);
        assert!(Pager::new("handoffs", "state=claimed").after(&token).is_err());
        assert!(Pager::new("faqs", "state=queued").after(&token).is_err());
        assert!(pager.after("12").is_err());
        assert!(pager.after("garbage!").is_err());
    }

    #[test]
    fn pages_in_memory_neither_repeat_nor_skip() {
        let pager = Pager::new("keys", "");
        let items: Vec<(i64, &str)> = vec![(1, "a"), (1, "b"), (2, "a"), (3, "c"), (3, "d")];
        let key = |item: &(i64, &str)| Position::new(item.0, item.1);
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let (page, next) = pager.page(items.clone(), key, false, after.as_ref(), 2);
            seen.extend(page);
            if next.is_empty() {
                break;
            }
            after = pager.after(&next).unwrap();
        }
        assert_eq!(seen, items);
        assert_eq!(page_size(0).unwrap(), DEFAULT_PAGE_SIZE);
        assert_eq!(page_size(10_000).unwrap(), MAX_PAGE_SIZE);
        assert!(page_size(-1).is_err());
    }
}
