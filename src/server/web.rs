//! The embedded patient page and the security headers every response gets.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Request, State as AxState};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha384};

use super::AppState;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/web_assets.rs"));
}

/// The page's Content Security Policy: own origin only, nothing inline.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data: blob:; media-src 'self' blob: mediastream:; connect-src 'self'; \
    base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// One servable file.
#[derive(Debug)]
struct Asset {
    bytes: Vec<u8>,
    content_type: &'static str,
}

/// The page's files, with `{{sri:NAME}}` placeholders in HTML filled in with
/// the Subresource Integrity hash of NAME.
#[derive(Debug)]
pub struct Assets {
    files: HashMap<&'static str, Asset>,
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}

/// `sha384-…` of some bytes, as Subresource Integrity wants it.
pub fn sri(bytes: &[u8]) -> String {
    format!("sha384-{}", STANDARD.encode(Sha384::digest(bytes)))
}

impl Assets {
    pub fn load() -> Assets {
        let sri_of: HashMap<&str, String> = embedded::ASSETS
            .iter()
            .map(|(name, bytes)| (*name, sri(bytes)))
            .collect();
        let files = embedded::ASSETS
            .iter()
            .map(|(name, bytes)| {
                let mut bytes = bytes.to_vec();
                if name.ends_with(".html") {
                    bytes = fill_sri(&String::from_utf8_lossy(&bytes), &sri_of).into_bytes();
                }
                (
                    *name,
                    Asset {
                        bytes,
                        content_type: content_type(name),
                    },
                )
            })
            .collect();
        Assets { files }
    }

    /// The integrity value of one file, as filled into the page.
    pub fn sri_of(&self, name: &str) -> Option<String> {
        self.files.get(name).map(|a| sri(&a.bytes))
    }

    fn response(&self, name: &str) -> Response {
        match self.files.get(name) {
            Some(a) => ([(header::CONTENT_TYPE, a.content_type)], a.bytes.clone()).into_response(),
            None => StatusCode::NOT_FOUND.into_response(),
        }
    }
}

fn fill_sri(html: &str, sri_of: &HashMap<&str, String>) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(start) = rest.find("{{sri:") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 6..];
        match after.find("}}") {
            Some(end) => {
                let name = &after[..end];
                // An unknown name leaves an integrity value no file matches,
                // so the browser refuses it instead of running it unchecked.
                out.push_str(sri_of.get(name).map_or("sha384-missing", String::as_str));
                rest = &after[end + 2..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// `GET /c/{token}`: the same page for every token. The token is checked only
/// when the page joins over the WebSocket, so loading the page reveals
/// nothing about whether a token exists.
pub async fn patient_page(
    AxState(app): AxState<Arc<AppState>>,
    Path(_token): Path<String>,
) -> Response {
    app.assets.response("index.html")
}

pub async fn static_file(
    AxState(app): AxState<Arc<AppState>>,
    Path(name): Path<String>,
) -> Response {
    if name == "index.html" {
        return StatusCode::NOT_FOUND.into_response();
    }
    app.assets.response(&name)
}

/// `GET /legal/{imprint,privacy,terms}`: the operator's legal pages.
pub async fn legal_page(
    AxState(app): AxState<Arc<AppState>>,
    Path(page): Path<String>,
) -> Response {
    match app.legal.get(&page) {
        Some(html) => (
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            html.to_owned(),
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

pub async fn healthz() -> &'static str {
    "ok"
}

/// Refuses requests over the rate limits with 429 and `Retry-After`, before
/// any work is done for them.
pub async fn rate_limit(
    AxState(app): AxState<Arc<AppState>>,
    req: Request<Body>,
    next: Next,
) -> Response {
    use super::limits::{Class, Decision};
    let path = req.uri().path();
    let class = if path == "/api/v1/login" {
        Some(Class::Login)
    } else if path.starts_with("/api/") {
        Some(Class::Api)
    } else if path == "/ws" {
        Some(Class::Signal)
    } else if path.starts_with("/c/") || path.starts_with("/static/") || path.starts_with("/legal/")
    {
        Some(Class::Page)
    } else {
        None
    };
    let source = req
        .extensions()
        .get::<axum::extract::ConnectInfo<super::ClientAddr>>()
        .map(|ci| ci.0.0.ip());
    if let (Some(class), Some(source)) = (class, source)
        && let Decision::Limited { retry_after } = app.limit(source, class)
    {
        app.metrics.rate_limited(class);
        let body = serde_json::json!({"error": {"code": "rate_limited", "message": "too many requests, try again later"}});
        let mut res = (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response();
        if let Ok(v) = HeaderValue::from_str(&retry_after.as_secs().to_string()) {
            res.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return res;
    }
    next.run(req).await
}

/// Adds the security headers to every response.
pub async fn security_headers(
    AxState(app): AxState<Arc<AppState>>,
    req: Request<Body>,
    next: Next,
) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    let mut set = |name: HeaderName, value: &'static str| {
        h.insert(name, HeaderValue::from_static(value));
    };
    set(header::CONTENT_SECURITY_POLICY, CSP);
    set(header::REFERRER_POLICY, "no-referrer");
    set(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(header::X_FRAME_OPTIONS, "DENY");
    set(header::CACHE_CONTROL, "no-store");
    set(
        HeaderName::from_static("permissions-policy"),
        "camera=(self), microphone=(self), display-capture=(), geolocation=(), payment=(), usb=()",
    );
    set(
        HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    );
    set(
        HeaderName::from_static("cross-origin-resource-policy"),
        "same-origin",
    );
    if app.config.tls() {
        set(
            header::STRICT_TRANSPORT_SECURITY,
            "max-age=63072000; includeSubDomains",
        );
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sri_placeholders_are_filled() {
        let mut m = HashMap::new();
        m.insert("a.js", "sha384-AAA".to_owned());
        assert_eq!(
            fill_sri("x {{sri:a.js}} y {{sri:b.js}} {{sri:", &m),
            "x sha384-AAA y sha384-missing {{sri:"
        );
    }

    #[test]
    fn sri_matches_known_value() {
        // SHA-384 of the empty string.
        assert_eq!(
            sri(b""),
            "sha384-OLBgp1GsljhM2TJ+sbHjaiH9txEUvgdDTAzHv2P24donTt6/529l+9Ua0vFImLlb"
        );
    }
}
