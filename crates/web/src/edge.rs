//! What every request to the API and the UI passes through before a
//! handler sees it, and what every answer passes through after: the
//! client's address (from the peer, or from `X-Forwarded-For` when the peer
//! is a trusted proxy), refusing NUL characters, and turning the framework's
//! plain-text rejections (a query string or path that does not parse) into
//! the API's problem+json or the UI's error page.

use crate::error::{AppError, PageError};
use crate::AppState;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::net::{IpAddr, SocketAddr};

/// The client's address as [`client_addr`] worked it out.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub IpAddr);

/// The address a request comes from: the TCP peer, or — when the peer is
/// one of `trusted_proxies` — the rightmost `X-Forwarded-For` hop not
/// trusted (see [`bos_core::edge::TrustedProxies::client_ip`]).
pub fn client_ip(state: &AppState, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok());
    state.config.trusted_proxies.client_ip(peer, forwarded)
}

/// Records [`ClientAddr`] for handlers (the public form rate limit keys on
/// it). Without connect info (a server started without it) there is none.
pub async fn client_addr(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    if let Some(peer) = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
    {
        let ip = client_ip(&state, peer, req.headers());
        req.extensions_mut().insert(ClientAddr(ip));
    }
    next.run(req).await
}

/// The client's address from a request's extensions.
pub fn client_of(parts: &axum::http::request::Parts) -> Option<IpAddr> {
    parts.extensions.get::<ClientAddr>().map(|c| c.0)
}

const NUL_DETAIL: &str = "Text cannot contain NUL characters (\\u0000 in JSON, %00 in a URL or form). Remove them and send the request again.";

/// Which surface answers: the API (problem+json) or the UI (a page).
#[derive(Clone, Copy)]
enum Surface {
    Api,
    Page,
}

impl Surface {
    fn error(self, e: AppError) -> Response {
        match self {
            Surface::Api => e.into_response(),
            Surface::Page => PageError(e).into_response(),
        }
    }
}

/// The API's edge: NUL refused, rejections as problem+json.
pub async fn api_edge(State(state): State<AppState>, req: Request, next: Next) -> Response {
    edge(Surface::Api, &state, req, next).await
}

/// The UI's edge: NUL refused, rejections as an error page.
pub async fn page_edge(State(state): State<AppState>, req: Request, next: Next) -> Response {
    edge(Surface::Page, &state, req, next).await
}

async fn edge(surface: Surface, state: &AppState, req: Request, next: Next) -> Response {
    // PostgreSQL cannot store NUL in text, and no name, search or setting
    // needs one: refusing it here (rather than stripping it) tells a buggy
    // client what is wrong instead of storing something it did not send,
    // and answers the same on both engines.
    if has_encoded_nul(req.uri().path()) || req.uri().query().is_some_and(has_encoded_nul) {
        return surface.error(AppError::BadRequest(NUL_DETAIL.into()));
    }
    let req = match body_kind(req.headers()) {
        BodyKind::Other => req,
        kind => {
            let (parts, body) = req.into_parts();
            let bytes = match axum::body::to_bytes(body, state.config.body_limit_bytes).await {
                Ok(b) => b,
                Err(_) => return surface.error(AppError::body_too_large()),
            };
            let nul = match kind {
                BodyKind::Json => json_has_nul(&bytes),
                _ => bytes.contains(&0) || has_encoded_nul_bytes(&bytes),
            };
            if nul {
                return surface.error(AppError::BadRequest(NUL_DETAIL.into()));
            }
            Request::from_parts(parts, Body::from(bytes))
        }
    };
    let res = next.run(req).await;
    rejection_to(surface, res).await
}

enum BodyKind {
    Json,
    Form,
    Other,
}

fn body_kind(h: &HeaderMap) -> BodyKind {
    let ct = h
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if ct == "application/json" || ct.ends_with("+json") {
        BodyKind::Json
    } else if ct == "application/x-www-form-urlencoded" {
        BodyKind::Form
    } else {
        BodyKind::Other
    }
}

fn has_encoded_nul(s: &str) -> bool {
    has_encoded_nul_bytes(s.as_bytes())
}

fn has_encoded_nul_bytes(b: &[u8]) -> bool {
    b.windows(3).any(|w| w == b"%00")
}

/// True when a JSON text holds a NUL: in valid JSON that can only be the
/// escape `\u0000` inside a string (a raw NUL byte is not valid JSON, and
/// the parser refuses it). Escapes are read pairwise so `\\u0000` — a
/// backslash, then the text `u0000` — is not mistaken for one.
pub(crate) fn json_has_nul(b: &[u8]) -> bool {
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            0 => return true,
            b'\\' => {
                if b.get(i + 1) == Some(&b'u') && b.get(i + 2..i + 6).is_some_and(|h| h == b"0000")
                {
                    return true;
                }
                i += 2;
            }
            _ => i += 1,
        }
    }
    false
}

/// The framework answers a query string, path or body it cannot read with
/// a plain-text 4xx; give it the surface's shape with the same words.
async fn rejection_to(surface: Surface, res: Response) -> Response {
    let plain = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/plain"));
    if !res.status().is_client_error() || !plain {
        return res;
    }
    let status = res.status();
    let text = match axum::body::to_bytes(res.into_body(), 64 * 1024).await {
        Ok(b) => String::from_utf8_lossy(&b).trim().to_string(),
        Err(_) => String::new(),
    };
    let detail = if text.is_empty() {
        "The request could not be read. Check the URL and the query string.".to_string()
    } else if text.ends_with('.') {
        text
    } else {
        format!("{text}.")
    };
    let e = match status {
        StatusCode::NOT_FOUND => AppError::NotFound,
        StatusCode::METHOD_NOT_ALLOWED => AppError::MethodNotAllowed,
        StatusCode::PAYLOAD_TOO_LARGE => AppError::body_too_large(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => AppError::UnsupportedMediaType(detail),
        StatusCode::UNPROCESSABLE_ENTITY => AppError::Invalid {
            field: None,
            detail,
        },
        _ => AppError::BadRequest(detail),
    };
    surface.error(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_nul_is_the_escape_not_an_escaped_backslash() {
        assert!(json_has_nul(br#"{"name":"a\u0000b"}"#));
        assert!(json_has_nul(br#"["\u0000"]"#));
        assert!(json_has_nul(b"\"a\0\""));
        assert!(!json_has_nul(br#"{"name":"a\\u0000b"}"#));
        assert!(json_has_nul(br#"{"name":"a\\\u0000b"}"#));
        assert!(!json_has_nul(br#"{"name":"\u0001"}"#));
        assert!(!json_has_nul(br#"{"n":"\"u0000"}"#));
    }

    #[test]
    fn encoded_nul_in_urls_and_forms() {
        assert!(has_encoded_nul("q=a%00b"));
        assert!(!has_encoded_nul("q=a%200b"));
        assert!(!has_encoded_nul("q=%2500"));
    }
}
