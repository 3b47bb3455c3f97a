//! `POST /webhooks/github`: the signature is checked in constant time over the
//! raw body, deliveries are deduplicated by id and by a hash of the signed body
//! (a captured delivery replayed under a new id does nothing), and the trigger
//! is handled after the 202 (see `triggers`).

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::StatusCode;
use dockhand_protocol::WebhookAccepted;
use hmac::Mac;
use sha2::Digest;

use super::ApiError;
use crate::services::Services;
use crate::triggers::Payload;
use crate::triggers::Trigger;

fn verify(secret: &str, body: &[u8], header: Option<&str>) -> bool {
    let Some(hex_sig) = header.and_then(|h| h.strip_prefix("sha256=")) else {
        return false;
    };
    let Ok(sig) = hex::decode(hex_sig) else {
        return false;
    };
    let Ok(mut mac) = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

/// `POST /webhooks/github`.
#[utoipa::path(post, path = "/webhooks/github", tag = "github", security(()), request_body(content = String, description = "A GitHub webhook payload, signed with X-Hub-Signature-256"), responses(
    (status = 202, description = "Accepted; handled after the answer", body = WebhookAccepted),
    (status = 200, description = "A delivery seen before", body = WebhookAccepted),
    (status = 401, description = "A missing or wrong signature", body = dockhand_protocol::ErrorResponse),
    (status = 404, description = "Webhooks are not configured", body = dockhand_protocol::ErrorResponse),
))]
pub(super) async fn github(
    State(state): State<Arc<Services>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<WebhookAccepted>), ApiError> {
    let secret = &state.config.github.webhook_secret;
    if secret.is_empty() {
        return Err(ApiError::NotFound(
            "GitHub webhooks are not configured (DOCKHAND_GITHUB_WEBHOOK_SECRET)".into(),
        ));
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if !verify(secret, &body, header("x-hub-signature-256")) {
        return Err(ApiError::Unauthorized(
            "missing or wrong X-Hub-Signature-256".into(),
        ));
    }
    let event = header("x-github-event").unwrap_or("").to_owned();
    let delivery = header("x-github-delivery").filter(|d| !d.is_empty() && d.len() <= 100);
    let Some(delivery) = delivery else {
        return Err(ApiError::field("X-GitHub-Delivery", "is required"));
    };
    let payload: Payload = serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest {
        message: format!("the body is not a JSON object: {e}"),
        fields: Default::default(),
    })?;
    let body_hash = hex::encode(sha2::Sha256::digest(&body));
    if !state.store.first_delivery(delivery, &body_hash).await? {
        return Ok((
            StatusCode::OK,
            Json(WebhookAccepted {
                status: "duplicate".into(),
            }),
        ));
    }
    let st = state.clone();
    tokio::spawn(async move {
        if let Some(trigger) = Trigger::read(&event, payload)
            && let Err(e) = crate::triggers::handle(&st, trigger).await
        {
            tracing::warn!(event, error = %e, "handling a GitHub webhook");
        }
    });
    Ok((
        StatusCode::ACCEPTED,
        Json(WebhookAccepted {
            status: "accepted".into(),
        }),
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn signatures_match_githubs_test_vector() {
        let sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert!(super::verify(
            "It's a Secret to Everybody",
            b"Hello, World!",
            Some(sig)
        ));
        assert!(!super::verify(
            "It's a Secret to Everybody",
            b"Hello, World?",
            Some(sig)
        ));
        assert!(!super::verify("other", b"Hello, World!", Some(sig)));
        assert!(!super::verify(
            "It's a Secret to Everybody",
            b"Hello, World!",
            None
        ));
        assert!(!super::verify(
            "It's a Secret to Everybody",
            b"Hello, World!",
            Some("sha1=abc")
        ));
    }
}
