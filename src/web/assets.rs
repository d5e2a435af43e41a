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

/// Pages run only what loket served them: no inline script or style, no other origin, no plugins, no forms
/// posted elsewhere. Who may frame a page, and what it may frame, depends on the page (`Framing`).
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'";

/// How a page takes part in framing.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// Framed by nobody, frames nothing.
    None,
    /// The widget's chat: framed by loket's own pages and the allowed origins' pages only.
    Widget,
    /// The demo shop page: frames the widget (from loket's own origin).
    Host,
}

/// One embedded file: where it is served, what it is, and its bytes.
struct File {
    path: &'static str,
    content_type: &'static str,
    framing: Framing,
    bytes: &'static [u8],
}

macro_rules! dist {
    ($path:literal, $file:literal, $content_type:literal) => {
        dist!($path, $file, $content_type, Framing::None)
    };
    ($path:literal, $file:literal, $content_type:literal, $framing:expr) => {
        File {
            path: $path,
            content_type: $content_type,
            framing: $framing,
            bytes: include_bytes!(concat!("../../web/dist/", $file)),
        }
    };
}

/// Everything loket serves to browsers (built from `web/src` by `npm run build` in `web/`, committed).
const FILES: &[File] = &[
    dist!("/", "index.html", "text/html; charset=utf-8"),
    dist!("/loket.css", "loket.css", "text/css; charset=utf-8"),
    dist!("/widget.js", "widget.js", "text/javascript; charset=utf-8"),
    dist!("/widget", "widget.html", "text/html; charset=utf-8", Framing::Widget),
    dist!("/widget-app.js", "widget-app.js", "text/javascript; charset=utf-8"),
    dist!("/widget.css", "widget.css", "text/css; charset=utf-8"),
    dist!("/demo", "demo.html", "text/html; charset=utf-8", Framing::Host),
    dist!("/demo.js", "demo.js", "text/javascript; charset=utf-8"),
];

struct Entry {
    file: &'static File,
    etag: HeaderValue,
    policy: HeaderValue,
}

/// The embedded files by path, each with its ETag.
pub struct Assets {
    by_path: HashMap<&'static str, Entry>,
}

impl Assets {
    /// The embedded files; the widget's page may be framed by `allowed_origins` (checked origins).
    pub fn embedded(allowed_origins: &[String]) -> Assets {
        let by_path = FILES
            .iter()
            .map(|file| {
                let digest = Sha256::digest(file.bytes);
                let hex = crate::text::hex(&digest[..12]);
                let etag = HeaderValue::from_str(&format!("\"{hex}\"")).expect("hex is a valid header value");
                let framing = match file.framing {
                    Framing::None => "frame-src 'none'; frame-ancestors 'none'".to_owned(),
                    Framing::Widget => {
                        format!("frame-src 'none'; frame-ancestors 'self' {}", allowed_origins.join(" "))
                    }
                    Framing::Host => "frame-src 'self'; frame-ancestors 'none'".to_owned(),
                };
                let policy = HeaderValue::from_str(&format!("{CSP}; {}", framing.trim_end()))
                    .expect("origins are checked by the configuration");
                (file.path, Entry { file, etag, policy })
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
        headers.insert(header::CONTENT_SECURITY_POLICY, entry.policy.clone());
        headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
        if entry.file.framing != Framing::Widget {
            // For browsers without CSP frame-ancestors.
            headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        }
        response
    }
}
