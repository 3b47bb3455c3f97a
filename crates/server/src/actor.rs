//! Who is acting: a signed-in user calling from a client address, or a GitHub
//! webhook acting for a Dockhand user.

use dockhand_store::User;
use dockhand_store::UserRole;

/// The user behind an operation, and how they came.
#[derive(Clone, Debug)]
pub struct Actor {
    /// The user, with their role for this request.
    pub user: User,
    /// How the request reached Dockhand.
    pub via: Via,
}

/// How a request reached Dockhand.
#[derive(Clone, Debug)]
pub enum Via {
    /// A client's own request, from this address.
    Client {
        /// The client's address (the peer, or the first forwarded hop).
        ip: String,
    },
    /// A GitHub webhook, acting for the user.
    Webhook,
}

impl Actor {
    /// A user calling from `ip`.
    pub fn client(user: User, ip: String) -> Actor {
        Actor {
            user,
            via: Via::Client { ip },
        }
    }

    /// A webhook acting for `user`.
    pub fn webhook(user: User) -> Actor {
        Actor {
            user,
            via: Via::Webhook,
        }
    }

    /// Whether the user sees everyone's tasks and may use operator-only routes.
    pub fn is_operator(&self) -> bool {
        self.user.role == UserRole::Operator
    }

    /// Whether a task (or token) owned by user `owner` is theirs to see.
    pub fn may_see(&self, owner: i64) -> bool {
        owner == self.user.id || self.is_operator()
    }

    /// The client's address, when the request came from the client directly.
    pub fn client_ip(&self) -> Option<&str> {
        match &self.via {
            Via::Client { ip } => Some(ip),
            Via::Webhook => None,
        }
    }
}
