//! The users, organizations and repositories the fake is configured with.

use crate::FakeError;

/// The configured users, orgs and repos; fixed once started.
pub(super) struct Directory {
    pub(super) users: Vec<User>,
    pub(super) orgs: Vec<Org>,
    pub(super) repos: Vec<Repo>,
}

pub(super) struct User {
    pub(super) login: String,
    pub(super) id: u64,
}

pub(super) struct Org {
    pub(super) login: String,
    pub(super) id: u64,
    /// Indexes into `Directory::users`.
    pub(super) members: Vec<usize>,
}

pub(super) struct Repo {
    pub(super) id: u64,
    pub(super) owner: String,
    pub(super) name: String,
}

impl Directory {
    /// Checks and numbers the configured `users`, `orgs` (with their members'
    /// logins) and `owner/name` `repos`.
    pub(super) fn new(
        users: &[String],
        orgs: &[(String, Vec<String>)],
        repos: &[String],
    ) -> Result<Self, FakeError> {
        let invalid = |message: String| Err(FakeError::Scenario(message));
        if users.is_empty() {
            return invalid("the fake GitHub needs at least one user".into());
        }
        let mut known: Vec<User> = Vec::new();
        for (login, id) in users.iter().zip(1001..) {
            if login.is_empty() || known.iter().any(|u| u.login.eq_ignore_ascii_case(login)) {
                return invalid(format!("user login {login:?} is empty or repeated"));
            }
            known.push(User {
                login: login.clone(),
                id,
            });
        }
        let mut directory = Directory {
            users: known,
            orgs: Vec::new(),
            repos: Vec::new(),
        };
        // Org and repo ids start far from user ids so they never collide.
        for ((login, members), id) in orgs.iter().zip(500_001..) {
            let members = members
                .iter()
                .map(|m| {
                    directory.user_index(m).ok_or_else(|| {
                        FakeError::Scenario(format!("org {login:?} lists unknown user {m:?}"))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            if login.is_empty() || directory.org(login).is_some() {
                return invalid(format!("org {login:?} is empty or repeated"));
            }
            directory.orgs.push(Org {
                login: login.clone(),
                id,
                members,
            });
        }
        for (full_name, id) in repos.iter().zip(700_001..) {
            match full_name.split_once('/') {
                Some((owner, name))
                    if !owner.is_empty() && !name.is_empty() && !name.contains('/') =>
                {
                    directory.repos.push(Repo {
                        id,
                        owner: owner.to_owned(),
                        name: name.to_owned(),
                    });
                }
                _ => return invalid(format!("repo {full_name:?} is not owner/name")),
            }
        }
        Ok(directory)
    }

    /// Logins are case-insensitive on GitHub.
    pub(super) fn user_index(&self, login: &str) -> Option<usize> {
        self.users
            .iter()
            .position(|u| u.login.eq_ignore_ascii_case(login))
    }

    pub(super) fn org(&self, login: &str) -> Option<&Org> {
        self.orgs
            .iter()
            .find(|o| o.login.eq_ignore_ascii_case(login))
    }
}
