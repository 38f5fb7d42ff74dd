//! Credentials: bcrypt password hashes (computed off the async runtime) and HS256 JWTs.

mod passwords;
mod tokens;

pub use passwords::PasswordHasher;
pub use tokens::{Claims, TokenService};
