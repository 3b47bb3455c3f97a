//! The caller's account: who they are, their personal API tokens, and the
//! GitHub repositories they can see.

use std::sync::Arc;

use axum::Json;
use axum::extract::Path;
use axum::extract::State;
use axum::http::StatusCode;
use dockhand_protocol::CreateTokenParams;
use dockhand_protocol::CreatedToken;
use dockhand_protocol::Me;
use dockhand_protocol::RepoList;
use dockhand_protocol::TokenInfo;
use dockhand_protocol::TokenList;
use dockhand_store::TokenKind;

use super::ApiError;
use super::ApiJson;
use crate::actor::Actor;
use crate::auth::generate_token;
use crate::auth::hash_token;
use crate::services::Services;

/// `GET /api/v1/me`.
#[utoipa::path(get, path = "/api/v1/me", tag = "account", responses(
    (status = 200, description = "Who the caller is", body = Me),
    (status = 401, description = "No valid credentials", body = dockhand_protocol::ErrorResponse),
))]
pub(super) async fn me(State(s): State<Arc<Services>>, actor: Actor) -> Json<Me> {
    let github = s.store.github_token(actor.user.id).ok().flatten().is_some();
    Json(Me {
        operator: actor.is_operator(),
        login: actor.user.login,
        github,
    })
}

/// `POST /api/v1/tokens {name}`: a personal token, shown once.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "account", request_body = CreateTokenParams, responses(
    (status = 201, description = "The token, shown once", body = CreatedToken),
    (status = 400, description = "A bad name", body = dockhand_protocol::ErrorResponse),
    (status = 429, description = "Too many tokens made; see Retry-After", body = dockhand_protocol::ErrorResponse),
))]
pub(super) async fn create_token(
    State(s): State<Arc<Services>>,
    actor: Actor,
    ApiJson(p): ApiJson<CreateTokenParams>,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    let name = p.name.trim();
    if name.is_empty() || name.len() > 100 || name.chars().any(char::is_control) {
        return Err(ApiError::field(
            "name",
            "must be 1 to 100 printable characters",
        ));
    }
    let per_minute = s.config.auth.rate_limits.tokens_per_user;
    s.auth
        .limiter
        .check("tokens", &actor.user.id.to_string(), per_minute)
        .map_err(|wait| ApiError::RateLimited {
            message: "too many tokens created; wait a moment".into(),
            retry_after: wait,
        })?;
    let token = generate_token();
    let id = s
        .store
        .insert_token(actor.user.id, name, TokenKind::Personal, hash_token(&token))
        .await?;
    let created = CreatedToken {
        id,
        name: name.to_owned(),
        token,
        created_at: dockhand_store::rfc3339(dockhand_store::now_ms()),
    };
    Ok((StatusCode::CREATED, Json(created)))
}

/// `GET /api/v1/tokens`: the caller's tokens, without the secrets.
#[utoipa::path(get, path = "/api/v1/tokens", tag = "account", responses(
    (status = 200, description = "The caller's tokens, without secrets", body = TokenList),
))]
pub(super) async fn list_tokens(
    State(s): State<Arc<Services>>,
    actor: Actor,
) -> Result<Json<TokenList>, ApiError> {
    let tokens = s
        .store
        .list_tokens(actor.user.id)?
        .into_iter()
        .map(|t| TokenInfo {
            id: t.id,
            name: t.name,
            created_at: dockhand_store::rfc3339(t.created_at),
            last_used_at: t.last_used_at.map(dockhand_store::rfc3339),
        })
        .collect();
    Ok(Json(TokenList { tokens }))
}

/// `DELETE /api/v1/tokens/{id}`: revokes one of the caller's tokens.
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "account", params(("id" = i64, Path, description = "The token's id")), responses(
    (status = 204, description = "Revoked"),
    (status = 404, description = "No such token of the caller's", body = dockhand_protocol::ErrorResponse),
))]
pub(super) async fn revoke_token(
    State(s): State<Arc<Services>>,
    actor: Actor,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let not_found = || ApiError::NotFound("no such token".into());
    let id: i64 = id.parse().map_err(|_| not_found())?;
    if s.store.revoke_token(actor.user.id, id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found())
    }
}

/// `GET /api/v1/repos`: repositories the signed-in GitHub user can see (for suggestions).
#[utoipa::path(get, path = "/api/v1/repos", tag = "account", responses(
    (status = 200, description = "Repositories the caller's GitHub account can see; empty without one", body = RepoList),
    (status = 502, description = "GitHub failed", body = dockhand_protocol::ErrorResponse),
))]
pub(super) async fn repos(
    State(s): State<Arc<Services>>,
    actor: Actor,
) -> Result<Json<RepoList>, ApiError> {
    let (Some(gh), Some(_)) = (s.sign_in(), s.store.github_token(actor.user.id)?) else {
        return Ok(Json(RepoList { repos: Vec::new() }));
    };
    let token = s
        .user_token(actor.user.id)
        .ok_or_else(|| ApiError::Internal("the stored GitHub token cannot be decrypted".into()))?;
    let repos = gh
        .user_repos(&token, 1)
        .await
        .map_err(|e| ApiError::BadGateway(e.to_string()))?;
    Ok(Json(RepoList { repos }))
}
