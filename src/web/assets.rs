//! The files under `web/dist/`, embedded in the binary at build time and served with their content type, an ETag
//! (revalidated on every use: the names carry no hash) and a strict Content-Security-Policy. Nothing is read from
//! disk at run time. A page with the `loket-page` data block gets the [`PageConfig`] written into it at start
//! (its texts in every served language), so its ETag is taken of what is served.

use std::collections::HashMap;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Response, StatusCode};
use http_body_util::Full;
use sha2::{Digest, Sha256};

use super::{PageConfig, plain};

/// Where a page takes its [`PageConfig`]: an empty JSON data block (a data block is not a script, so the strict
/// CSP lets the page read it), filled in when the assets are loaded.
const PAGE_CONFIG_SLOT: &str = r#"<script type="application/json" id="loket-page">{}</script>"#;

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
    dist!("/agent", "agent.html", "text/html; charset=utf-8"),
    dist!("/agent.js", "agent.js", "text/javascript; charset=utf-8"),
    dist!("/agent.css", "agent.css", "text/css; charset=utf-8"),
    dist!("/editor", "editor.html", "text/html; charset=utf-8"),
    dist!("/editor.js", "editor.js", "text/javascript; charset=utf-8"),
    dist!("/editor.css", "editor.css", "text/css; charset=utf-8"),
    dist!("/dashboard", "dashboard.html", "text/html; charset=utf-8"),
    dist!("/dashboard.js", "dashboard.js", "text/javascript; charset=utf-8"),
    dist!("/dashboard.css", "dashboard.css", "text/css; charset=utf-8"),
    // What the widget's chat, the agent console, the editor and the dashboard share (the gRPC-Web client, the
    // messages, the helpers), and what only some of them share (`web/build.mjs` names these chunks for the pages
    // that load them).
    dist!("/shared.js", "shared.js", "text/javascript; charset=utf-8"),
    dist!("/shared-agent-editor-dashboard.js", "shared-agent-editor-dashboard.js", "text/javascript; charset=utf-8"),
    dist!("/shared-editor-dashboard.js", "shared-editor-dashboard.js", "text/javascript; charset=utf-8"),
    dist!("/shared-widget-app-agent.js", "shared-widget-app-agent.js", "text/javascript; charset=utf-8"),
];

struct Entry {
    file: &'static File,
    /// The file's bytes, with the page configuration filled in where it has the slot.
    bytes: Bytes,
    etag: HeaderValue,
    policy: HeaderValue,
}

/// The embedded files by path, each with its ETag.
pub struct Assets {
    by_path: HashMap<&'static str, Entry>,
}

impl Assets {
    /// The embedded files, pages told `pages`; the widget's page may be framed by `allowed_origins` (checked
    /// origins).
    pub fn embedded(allowed_origins: &[String], pages: &PageConfig) -> Assets {
        let filled = PAGE_CONFIG_SLOT.replacen("{}", &data_block(pages), 1);
        let by_path = FILES
            .iter()
            .map(|file| {
                let bytes = match std::str::from_utf8(file.bytes) {
                    Ok(text) if text.contains(PAGE_CONFIG_SLOT) => Bytes::from(text.replace(PAGE_CONFIG_SLOT, &filled)),
                    _ => Bytes::from_static(file.bytes),
                };
                let digest = Sha256::digest(&bytes);
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
                (file.path, Entry { file, bytes, etag, policy })
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
            (false, false) => (StatusCode::OK, entry.bytes.clone()),
        };
        let mut response = Response::new(Full::new(body));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(entry.file.content_type));
        if method == Method::HEAD && !current {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(entry.bytes.len()));
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

/// `pages` as JSON that cannot end its `<script>` element or open a comment inside it: `<`, `>` and `&` are
/// written as JSON escapes, which read back as the same characters.
fn data_block(pages: &PageConfig) -> String {
    let json = serde_json::to_string(pages).expect("strings and numbers serialise");
    json.replace('<', "\\u003c").replace('>', "\\u003e").replace('&', "\\u0026")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_text_cannot_break_out_of_the_data_block() {
        let texts = [("evil".to_owned(), "</script><script>alert(1)</script><!-- & more".to_owned())];
        let language = super::super::PageLanguage { name: "x".into(), texts: texts.into_iter().collect() };
        let pages = PageConfig {
            default_language: "x".into(),
            max_message_bytes: 10,
            languages: [("x".to_owned(), language)].into_iter().collect(),
        };
        let block = data_block(&pages);
        assert!(!block.contains('<') && !block.contains('>') && !block.contains('&'), "{block}");
        let back: serde_json::Value = serde_json::from_str(&block).unwrap();
        assert_eq!(back["languages"]["x"]["texts"]["evil"], "</script><script>alert(1)</script><!-- & more");
    }
}
