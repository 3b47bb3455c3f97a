//! The web UI: plain HTML, CSS and JavaScript embedded in the binary, with no
//! build step. `/` serves the page shell; the scripts talk to the same JSON API
//! and events WebSocket as every other client.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::LazyLock;

use axum::Router;
use axum::extract::FromRequestParts;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::HeaderValue;
use axum::http::StatusCode;
use axum::http::header;
use axum::http::request::Parts;
use axum::response::IntoResponse;
use axum::response::Response;
use axum::routing::get;
use sha2::Digest;

use crate::actor::Actor;
use crate::services::Services;

/// Only our own files: no inline script or style, no other origin, no framing.
/// `connect-src 'self'` covers the same-origin `ws:`/`wss:` events socket.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; \
                   frame-ancestors 'none'";

/// Where the index page shows who is signed in, filled in on the server so the
/// first paint (and a client without scripts) already says it.
const WHO_MARK: &str = "<!--who-->";

const INDEX: &str = include_str!("../../ui/assets/index.html");

/// A file served as it is.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset {
        path: "/ui/app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../ui/assets/app.js"),
    },
    Asset {
        path: "/ui/task.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../ui/assets/task.js"),
    },
    Asset {
        path: "/ui/util.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../ui/assets/util.js"),
    },
    Asset {
        path: "/ui/app.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../ui/assets/app.css"),
    },
    Asset {
        path: "/ui/icon.svg",
        content_type: "image/svg+xml",
        body: include_bytes!("../../ui/assets/icon.svg"),
    },
    Asset {
        path: "/manifest.webmanifest",
        content_type: "application/manifest+json",
        body: include_bytes!("../../ui/assets/manifest.webmanifest"),
    },
];

/// Content hashes, so a browser revalidates cheaply and never keeps a stale
/// script after an upgrade.
static ETAGS: LazyLock<HashMap<&'static str, String>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|a| {
            let digest = sha2::Sha256::digest(a.body);
            (a.path, format!("\"{}\"", hex::encode(&digest[..12])))
        })
        .collect()
});

/// Adds the scripts, styles, icon and manifest to `router`.
pub(super) fn assets(mut router: Router<Arc<Services>>) -> Router<Arc<Services>> {
    for asset in ASSETS {
        router = router.route(
            asset.path,
            get(move |headers: HeaderMap| async move { serve(asset, &headers) }),
        );
    }
    router
}

fn secure(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    resp
}

fn serve(asset: &'static Asset, headers: &HeaderMap) -> Response {
    let etag = ETAGS.get(asset.path).map(String::as_str).unwrap_or("");
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let common = [
        (header::CACHE_CONTROL, "no-cache"),
        (header::ETAG, etag),
        (header::CONTENT_TYPE, asset.content_type),
    ];
    let resp = if fresh {
        (StatusCode::NOT_MODIFIED, common).into_response()
    } else {
        (common, asset.body).into_response()
    };
    secure(resp)
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The page shell. The scripts decide which screen to show; the signed-in
/// user's name is filled in here.
/// `GET /`.
pub(super) async fn index(State(state): State<Arc<Services>>, mut parts: Parts) -> Response {
    let who = match Actor::from_request_parts(&mut parts, &state).await {
        Ok(actor) => format!("Signed in as {}", esc(&actor.user.login)),
        Err(_) => String::new(),
    };
    let body = INDEX.replacen(WHO_MARK, &who, 1);
    let resp = (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            // The shell names the user, so no shared cache may keep it.
            (header::CACHE_CONTROL, "no-cache, private"),
            (header::VARY, "Cookie"),
        ],
        body,
    )
        .into_response();
    secure(resp)
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderMap;
    use axum::http::HeaderValue;
    use axum::http::StatusCode;
    use axum::http::header;

    use super::ASSETS;
    use super::CSP;
    use super::INDEX;
    use super::serve;

    #[test]
    fn assets_have_their_types_a_strict_policy_and_revalidate() {
        let types = [
            ("/ui/app.js", "text/javascript"),
            ("/ui/task.js", "text/javascript"),
            ("/ui/util.js", "text/javascript"),
            ("/ui/app.css", "text/css"),
            ("/ui/icon.svg", "image/svg+xml"),
            ("/manifest.webmanifest", "application/manifest+json"),
        ];
        assert_eq!(ASSETS.len(), types.len());
        for (asset, (path, kind)) in ASSETS.iter().zip(types) {
            assert_eq!(asset.path, path);
            let resp = serve(asset, &HeaderMap::new());
            assert_eq!(resp.status(), StatusCode::OK);
            let h = resp.headers();
            assert!(h[header::CONTENT_TYPE].to_str().unwrap().starts_with(kind));
            assert_eq!(h[header::CONTENT_SECURITY_POLICY], CSP);
            let mut again = HeaderMap::new();
            again.insert(header::IF_NONE_MATCH, h[header::ETAG].clone());
            assert_eq!(serve(asset, &again).status(), StatusCode::NOT_MODIFIED);
            let stale = HeaderValue::from_static("\"old\"");
            again.insert(header::IF_NONE_MATCH, stale);
            assert_eq!(serve(asset, &again).status(), StatusCode::OK);
        }
        assert!(CSP.starts_with("default-src 'none'; script-src 'self';"));
        assert!(!CSP.contains("unsafe"));
    }

    #[test]
    fn the_page_has_no_inline_code_and_no_external_assets() {
        assert!(INDEX.contains("<meta name=\"viewport\""));
        assert!(INDEX.contains("<link rel=\"manifest\" href=\"/manifest.webmanifest\">"));
        assert!(INDEX.contains(super::WHO_MARK));
        assert!(!INDEX.contains("<script>") && !INDEX.contains("style=\""));
        assert!(!INDEX.contains("http://") && !INDEX.contains("https://"));
        let manifest = ASSETS.iter().find(|a| a.path == "/manifest.webmanifest");
        let manifest: serde_json::Value = serde_json::from_slice(manifest.unwrap().body).unwrap();
        assert_eq!(manifest["start_url"], "/");
        assert_eq!(manifest["icons"][0]["src"], "/ui/icon.svg");
        for asset in ASSETS {
            let text = String::from_utf8_lossy(asset.body);
            assert!(
                !text.contains("https://"),
                "{} loads nothing from elsewhere",
                asset.path
            );
        }
    }
}
