//! Secrets the operator did not set: generated once, kept in `DATA_DIR`, reused on restart.
//!
//! Keeping the JWT secret means a restart doesn't log everyone out; keeping the registration
//! secret means registration is never open by accident and the secret doesn't change under
//! the people it was handed to.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rand::RngCore;
use secrecy::SecretString;

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("cannot read or write {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is empty; delete it to generate a new secret")]
    Empty { path: PathBuf },
}

/// Where a secret came from, so start-up can tell the operator what it did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretOrigin {
    Configured,
    /// Read back from a file written by an earlier start.
    Stored(PathBuf),
    /// Created now; this is the only time the value is printed.
    Generated(PathBuf),
}

/// Returns the configured secret, or the one kept in `dir/file_name`, or a new random one
/// (`bytes` of entropy, hex encoded) written there with mode 0600.
///
/// # Errors
/// [`SecretError`] when the file can't be read or written.
pub fn load_or_generate(
    configured: Option<&SecretString>,
    dir: &Path,
    file_name: &str,
    bytes: usize,
) -> Result<(SecretString, SecretOrigin), SecretError> {
    if let Some(secret) = configured {
        return Ok((secret.clone(), SecretOrigin::Configured));
    }
    let path = dir.join(file_name);
    let io = |source| SecretError::Io {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let text = text.trim().to_owned();
            if text.is_empty() {
                return Err(SecretError::Empty { path });
            }
            Ok((SecretString::from(text), SecretOrigin::Stored(path)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut raw = vec![0u8; bytes];
            rand::thread_rng().fill_bytes(&mut raw);
            let value: String = raw.iter().map(|b| format!("{b:02x}")).collect();
            // create_new: if two processes race on a fresh DATA_DIR, one fails loudly instead
            // of both running with different secrets.
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .map_err(io)?;
            writeln!(file, "{value}").map_err(io)?;
            Ok((SecretString::from(value), SecretOrigin::Generated(path)))
        }
        Err(e) => Err(io(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn a_generated_secret_is_kept_and_read_back_on_the_next_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (first, origin) = load_or_generate(None, dir.path(), "s", 16).expect("generate");
        assert!(matches!(origin, SecretOrigin::Generated(_)));
        assert_eq!(first.expose_secret().len(), 32);
        let (second, origin) = load_or_generate(None, dir.path(), "s", 16).expect("reload");
        assert!(matches!(origin, SecretOrigin::Stored(_)));
        assert_eq!(first.expose_secret(), second.expose_secret());
        let mode = std::fs::metadata(dir.path().join("s")).expect("meta");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(mode.permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn a_configured_secret_wins_and_writes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let configured = SecretString::from("from-env-value".to_owned());
        let (s, origin) = load_or_generate(Some(&configured), dir.path(), "s", 16).expect("ok");
        assert_eq!(s.expose_secret(), "from-env-value");
        assert_eq!(origin, SecretOrigin::Configured);
        assert!(!dir.path().join("s").exists());
    }
}
