//! What sign-in keeps between requests: OAuth states, device flows and
//! WebSocket tickets (each bounded globally and per client or user), org
//! membership answers and rate limits.

use std::time::Duration;

use dockhand_store::User;

use super::AuthError;
use super::local::generate_token;
use super::memberships::Memberships;
use super::pending::Pending;
use crate::ratelimit::RateLimiter;

/// How long a WebSocket ticket lasts.
pub const TICKET_TTL: Duration = Duration::from_secs(60);
/// Most pending logins, device flows or tickets held at once, of each kind.
const MAX_PENDING: usize = 10_000;
/// Most sign-ins in progress from one client address, of each kind.
const PENDING_PER_CLIENT: usize = 10;
/// Most unused WebSocket tickets one user holds.
const TICKETS_PER_USER: usize = 20;

/// A device flow in progress, known to the client only by its handle.
pub(crate) struct DeviceFlow {
    pub(crate) device_code: String,
}

/// Sign-in state in progress, tickets, membership answers and rate limits.
pub struct AuthState {
    /// Rate limits.
    pub limiter: RateLimiter,
    /// Org membership answers, for the check at every request.
    pub(crate) memberships: Memberships,
    pub(crate) states: Pending<()>,
    pub(crate) devices: Pending<DeviceFlow>,
    tickets: Pending<User>,
}

impl Default for AuthState {
    fn default() -> AuthState {
        AuthState {
            limiter: RateLimiter::default(),
            memberships: Memberships::default(),
            states: Pending::new(MAX_PENDING, PENDING_PER_CLIENT),
            devices: Pending::new(MAX_PENDING, PENDING_PER_CLIENT),
            tickets: Pending::new(MAX_PENDING, TICKETS_PER_USER),
        }
    }
}

impl AuthState {
    /// A single-use ticket for opening the events WebSocket from a browser.
    pub fn issue_ticket(&self, user: User) -> Result<String, AuthError> {
        let ticket = generate_token().replacen("dh_", "wst_", 1);
        let owner = user.id.to_string();
        self.tickets
            .put(ticket.clone(), &owner, TICKET_TTL, user)
            .map_err(|_| AuthError::RateLimited {
                message: "too many tickets outstanding".into(),
                retry_after: TICKET_TTL,
            })?;
        Ok(ticket)
    }

    /// The user a ticket was issued to; the ticket is spent.
    pub(crate) fn take_ticket(&self, ticket: &str) -> Option<User> {
        self.tickets.take(ticket).map(|(_, user)| user)
    }

    /// Drops expired sign-in state and tickets.
    pub fn purge(&self) {
        self.states.purge();
        self.devices.purge();
        self.tickets.purge();
    }
}
