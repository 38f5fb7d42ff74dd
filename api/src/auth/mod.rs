//! Credentials: bcrypt password hashes (computed off the async runtime), HS256 JWTs, and
//! single-use WebSocket tickets.
//!
//! - `passwords`: [`PasswordHasher`].
//! - `tokens`: [`TokenService`] and its [`Claims`].
//! - `tickets`: [`WsTickets`], in process or in Redis.

mod passwords;
mod tickets;
mod tokens;

pub use passwords::PasswordHasher;
pub use tickets::{TicketGrant, WsTickets};
pub use tokens::{Claims, TokenService};
