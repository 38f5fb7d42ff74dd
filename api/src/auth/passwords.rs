use crate::domain::Password;
use crate::error::{Error, Result};

/// Hashes and verifies passwords with bcrypt on the blocking pool: one hash costs tens of
/// milliseconds of CPU at the default cost, which would stall every other request if it ran
/// on the async runtime.
#[derive(Debug, Clone)]
pub struct PasswordHasher {
    cost: u32,
    /// Verified against when the user doesn't exist, so a login for an unknown name takes as
    /// long as one with a wrong password and the timing doesn't reveal who has an account.
    dummy_hash: String,
}

impl PasswordHasher {
    /// # Errors
    /// [`Error::Internal`] when bcrypt refuses the cost.
    pub async fn new(cost: u32) -> Result<Self> {
        let dummy_hash =
            tokio::task::spawn_blocking(move || bcrypt::hash("not a real password", cost))
                .await?
                .map_err(Error::internal)?;
        Ok(Self { cost, dummy_hash })
    }

    /// # Errors
    /// [`Error::Internal`] when hashing fails.
    pub async fn hash(&self, password: &Password) -> Result<String> {
        let password = password.expose().to_owned();
        let cost = self.cost;
        tokio::task::spawn_blocking(move || bcrypt::hash(password, cost))
            .await?
            .map_err(Error::internal)
    }

    /// Checks `password` against `hash`, or against a dummy hash when there is no user.
    ///
    /// A password over [`Password::MAX_BYTES`] never matches: bcrypt would read only its
    /// first 72 bytes and accept any suffix. It is still checked against the dummy hash so
    /// the answer takes as long as a wrong password's.
    ///
    /// # Errors
    /// [`Error::Internal`] when the stored hash is malformed.
    pub async fn verify(&self, password: &str, hash: Option<&str>) -> Result<bool> {
        let hash = hash.filter(|_| password.len() <= Password::MAX_BYTES);
        let exists = hash.is_some();
        let hash = hash.unwrap_or(&self.dummy_hash).to_owned();
        let password = password.to_owned();
        let matches = tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash))
            .await?
            .map_err(Error::internal)?;
        Ok(exists && matches)
    }
}
