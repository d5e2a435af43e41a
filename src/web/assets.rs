//! The files under `web/dist/`, embedded in the binary at build time and served with their content type, an ETag
//! (revalidated on every use: the names carry no hash) and a strict Content-Security-Policy. Nothing is read from
//! disk at run time.

use std::collections::HashMap;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Response, StatusCode};
use http_body_util::Full;
use sha2::{Digest, Sha256};

use super::plain;

/// Pages run only what loket served them: no inline script or style, no other origin, no plugins, no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// One embedded file: where it is served, what it is, and its bytes.
struct File {
    path: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

macro_rules! dist {
    ($path:literal, $file:literal, $content_type:literal) => {
        File { path: $path, content_type: $content_type, bytes: include_bytes!(concat!("../../web/dist/", $file)) }
    };
}

/// Everything loket serves to browsers.
const FILES: &[File] = &[
    dist!("/", "index.html", "text/html; charset=utf-8"),
    dist!("/loket.css", "loket.css", "text/css; charset=utf-8"),
];

struct Entry {
    file: &'static File,
    etag: HeaderValue,
}

/// The embedded files by path, each with its ETag.
pub struct Assets {
    by_path: HashMap<&'static str, Entry>,
}

impl Assets {
    pub fn embedded() -> Assets {
        let by_path = FILES
            .iter()
            .map(|file| {
                let digest = Sha256::digest(file.bytes);
                let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
                let etag = HeaderValue::from_str(&format!("\"{hex}\"")).expect("hex is a valid header value");
                (file.path, Entry { file, etag })
            })
            .collect();
        Assets { by_path }
    }

    /// GET or HEAD of a page; 304 when the browser's copy is current, 404 for an unknown path, 405 for other
    /// methods.
    pub fn respond(&self, method: &Method, path: &str, request: &HeaderMap) -> Response<Full<Bytes>> {
        if method != Method::GET && method != Method::HEAD {
            let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "pages are read with GET or HEAD\n");
            response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return response;
        }
        let Some(entry) = self.by_path.get(path) else {
            return plain(StatusCode::NOT_FOUND, "no such page\n");
        };
        let current = request.get(header::IF_NONE_MATCH).is_some_and(|tags| {
            tags.to_str().is_ok_and(|tags| tags.split(',').any(|t| t.trim() == entry.etag || t.trim() == "*"))
        });
        let (status, body) = match (current, method == Method::HEAD) {
            (true, _) => (StatusCode::NOT_MODIFIED, Bytes::new()),
            (false, true) => (StatusCode::OK, Bytes::new()),
            (false, false) => (StatusCode::OK, Bytes::from_static(entry.file.bytes)),
        };
        let mut response = Response::new(Full::new(body));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(entry.file.content_type));
        if method == Method::HEAD && !current {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(entry.file.bytes.len()));
        }
        headers.insert(header::ETAG, entry.etag.clone());
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
        headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        response
    }
}
