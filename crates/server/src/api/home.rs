//! `GET /`: a plain page until the web UI lands. Signed in, it lists the user's
//! tasks; otherwise it offers the ways to sign in.

use axum::extract::State;
use axum::http::request::Parts;
use axum::response::Html;
use axum::response::IntoResponse;
use axum::response::Response;
use dockhand_store::TaskFilter;

use crate::AppState;
use crate::auth::AuthUser;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub(super) async fn home(State(state): State<AppState>, mut parts: Parts) -> Response {
    use axum::extract::FromRequestParts;
    let head = "<!doctype html><html lang=en><meta charset=utf-8><meta name=viewport content=\"width=device-width, initial-scale=1\">\
                <title>Dockhand</title><body style=\"font-family:system-ui;max-width:48rem;margin:2rem auto;padding:0 1rem\"><h1>Dockhand</h1>";
    let Ok(user) = AuthUser::from_request_parts(&mut parts, &state).await else {
        let github = if state.auth.github.is_some() {
            "<p><a href=\"/auth/github/login\">Sign in with GitHub</a></p>"
        } else {
            "<p>This server uses local auth: sign in with <code>dockhand</code> and the admin token or an API token.</p>"
        };
        return Html(format!("{head}{github}</body></html>")).into_response();
    };
    let filter = TaskFilter {
        user_id: (!user.is_operator()).then_some(user.0.id),
        ..TaskFilter::default()
    };
    let rows = state
        .store
        .list_tasks(&filter, None, 50)
        .map(|(r, _)| r)
        .unwrap_or_default();
    let mut body = format!("{head}<p>Signed in as {}.</p><ul>", esc(&user.0.login));
    for t in &rows {
        body.push_str(&format!(
            "<li><code>{}</code> {} — {} <small>({})</small></li>",
            t.id,
            esc(&t.title),
            t.status,
            esc(&t.repo)
        ));
    }
    if rows.is_empty() {
        body.push_str("<li>No tasks yet.</li>");
    }
    body.push_str("</ul></body></html>");
    Html(body).into_response()
}
