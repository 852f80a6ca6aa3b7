//! Static assets, embedded in the binary and served at URLs that carry a
//! hash of their content, so they can be cached forever and never go stale.

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use sha2::{Digest, Sha256};
use std::sync::OnceLock;

pub struct Asset {
    pub name: &'static str,
    pub content_type: &'static str,
    pub body: &'static str,
}

const ASSETS: &[Asset] = &[
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("../assets/app.css"),
    },
    Asset {
        name: "agents.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("../assets/agents.css"),
    },
    Asset {
        name: "agents.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../assets/agents.js"),
    },
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../assets/app.js"),
    },
    Asset {
        name: "import.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../assets/import.js"),
    },
    Asset {
        name: "inbox.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("../assets/inbox.css"),
    },
    Asset {
        name: "inbox.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../assets/inbox.js"),
    },
    Asset {
        name: "intake.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../assets/intake.js"),
    },
    Asset {
        name: "leads.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("../assets/leads.css"),
    },
];

struct Hashed {
    url: String,
    asset: &'static Asset,
}

fn table() -> &'static Vec<Hashed> {
    static T: OnceLock<Vec<Hashed>> = OnceLock::new();
    T.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| {
                let h = Sha256::digest(a.body.as_bytes());
                let hex: String = h.iter().take(6).map(|b| format!("{b:02x}")).collect();
                let (stem, ext) = a.name.rsplit_once('.').unwrap_or((a.name, ""));
                Hashed {
                    url: format!("/assets/{stem}.{hex}.{ext}"),
                    asset: a,
                }
            })
            .collect()
    })
}

/// The hashed URL of an asset by its plain name (`"app.css"`).
pub fn url(name: &str) -> &'static str {
    table()
        .iter()
        .find(|h| h.asset.name == name)
        .map(|h| h.url.as_str())
        .unwrap_or("/assets/missing")
}

async fn serve(Path(file): Path<String>) -> Response {
    let want = format!("/assets/{file}");
    match table().iter().find(|h| h.url == want) {
        Some(h) => (
            [
                (header::CONTENT_TYPE, h.asset.content_type),
                (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
            ],
            h.asset.body,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "unknown asset").into_response(),
    }
}

pub fn router() -> Router<crate::AppState> {
    Router::new().route("/assets/{file}", get(serve))
}

#[cfg(test)]
mod tests {
    /// The pages' CSP (`style-src 'self'`) blocks inline style attributes,
    /// so a template that uses one renders differently from what its author
    /// saw: every template must style through the stylesheet's classes.
    #[test]
    fn no_template_carries_an_inline_style() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
        let mut offenders = Vec::new();
        let mut stack = vec![dir];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else if std::fs::read_to_string(&path).unwrap().contains("style=\"") {
                    offenders.push(path.display().to_string());
                }
            }
        }
        assert!(
            offenders.is_empty(),
            "inline style attributes (blocked by the CSP) in: {offenders:?}"
        );
    }
}
