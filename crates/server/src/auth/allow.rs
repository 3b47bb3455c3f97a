//! Who may use Dockhand: the GitHub logins in `github.allowed_users` and the
//! members of `github.allowed_orgs`. Checked at sign-in and again at every
//! request, so removing someone takes effect at once; org membership is asked of
//! GitHub with the user's own token and remembered for at most ten minutes.

use dockhand_forge::github::GitHubClient;
use dockhand_store::User;
use dockhand_store::UserIdentity;

use super::AuthError;
use crate::services::Services;

/// Whether the token's user belongs to any allowed org; an error only when no
/// org said yes and GitHub could not answer for one of them.
async fn in_allowed_org(state: &Services, gh: &GitHubClient, token: &str) -> Result<bool, String> {
    let mut failure = None;
    for org in &state.config.github.allowed_orgs {
        match gh.is_member(token, org).await {
            Ok(true) => return Ok(true),
            Ok(false) => {}
            Err(e) => failure = Some(format!("checking membership of {org}: {e}")),
        }
    }
    failure.map_or(Ok(false), Err)
}

fn listed(state: &Services, login: &str) -> bool {
    state
        .config
        .github
        .allowed_users
        .iter()
        .any(|u| u.eq_ignore_ascii_case(login))
}

/// Why GitHub user `login` may not sign in, in words for them; `Ok` when they may.
pub(crate) async fn may_sign_in(
    state: &Services,
    gh: &GitHubClient,
    token: &str,
    login: &str,
) -> Result<(), String> {
    let cfg = &state.config.github;
    if listed(state, login) {
        return Ok(());
    }
    if cfg.allowed_users.is_empty() && cfg.allowed_orgs.is_empty() {
        return Err(format!(
            "This Dockhand lets nobody in yet: its operator must list GitHub users or organisations \
             (github.allowed_users, github.allowed_orgs). You are signed in to GitHub as {login}."
        ));
    }
    match in_allowed_org(state, gh, token).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(format!(
            "The GitHub account {login} is not allowed to use this Dockhand. Ask its operator to add you to \
             github.allowed_users, or to an organisation in github.allowed_orgs (membership is read with the read:org scope)."
        )),
        Err(e) => Err(format!(
            "Dockhand could not confirm that {login} may sign in ({e}). Try again in a moment."
        )),
    }
}

/// At every request: a GitHub user must still be allowed. Local users (the
/// admin, tokens made under local auth) have no GitHub identity and pass.
pub(crate) async fn still_allowed(state: &Services, user: &User) -> Result<(), AuthError> {
    let Some(UserIdentity {
        login,
        github_id: Some(_),
    }) = state.store.user_identity(user.id)?
    else {
        return Ok(());
    };
    let refused = || {
        AuthError::Unauthorized(format!(
            "the GitHub account {login} is no longer allowed to use this Dockhand \
             (github.allowed_users, github.allowed_orgs)"
        ))
    };
    let Some(gh) = state.sign_in() else {
        return Err(refused());
    };
    if listed(state, &login) {
        return Ok(());
    }
    let ttl = state.config.github.membership_ttl();
    if let Some(member) = state.auth.memberships.get(user.id, ttl) {
        return if member { Ok(()) } else { Err(refused()) };
    }
    let token = state.user_token(user.id).ok_or_else(refused)?;
    match in_allowed_org(state, gh, &token).await {
        Ok(member) => {
            state.auth.memberships.put(user.id, member);
            if member { Ok(()) } else { Err(refused()) }
        }
        Err(e) => Err(AuthError::Upstream(format!(
            "could not confirm that {login} may use this Dockhand: {e}"
        ))),
    }
}
