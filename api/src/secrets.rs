//! Secrets the operator did not set: generated once, kept in `DATA_DIR`, reused on restart.
//!
//! Keeping the JWT secret means a restart doesn't log everyone out; keeping the registration
//! secret means registration is never open by accident and the secret doesn't change under
//! the people it was handed to.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
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

/// Creates `dir` (and its parents) for data only this user may read: mode 0700. An existing
/// directory with looser permissions (an older version made `DATA_DIR` 0755) is tightened,
/// with a log line, since it holds password hashes, chat and transcripts.
///
/// # Errors
/// [`SecretError::Io`] when it can't be created or its mode changed.
pub fn private_dir(dir: &Path) -> Result<(), SecretError> {
    let io = |source| SecretError::Io {
        path: dir.to_path_buf(),
        source,
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io)?;
    tighten(dir, 0o700).map_err(io)
}

/// Makes an existing file or directory no more open than `mode` (group and others lose
/// what `mode` doesn't give them); missing paths are fine.
fn tighten(path: &Path, mode: u32) -> std::io::Result<()> {
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let current = meta.permissions().mode() & 0o777;
    if current & !mode != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(current & mode))?;
        tracing::info!(path = %path.display(), from = format!("{current:o}"), to = format!("{:o}", current & mode), "made private");
    }
    Ok(())
}

/// The SQLite database file `path`, created empty with mode 0600 if it doesn't exist, and its
/// WAL and shared-memory files tightened to 0600 if they do. SQLite gives the `-wal` and
/// `-shm` files it creates the database file's permissions, so they start private too.
///
/// # Errors
/// [`SecretError::Io`] when the file can't be created or its mode changed.
pub fn private_database_file(path: &Path) -> Result<(), SecretError> {
    let io = |source| SecretError::Io {
        path: path.to_path_buf(),
        source,
    };
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    for suffix in ["", "-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        tighten(Path::new(&name), 0o600).map_err(io)?;
    }
    Ok(())
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
    private_dir(dir)?;
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
        assert_eq!(mode_of(&dir.path().join("s")), 0o600);
    }

    fn mode_of(path: &Path) -> u32 {
        std::fs::metadata(path).expect("meta").permissions().mode() & 0o777
    }

    #[test]
    fn the_data_dir_and_database_files_are_private_and_older_open_ones_are_tightened() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("data");
        private_dir(&dir).expect("created");
        assert_eq!(mode_of(&dir), 0o700);
        let db = dir.join("webcall.db");
        private_database_file(&db).expect("created");
        assert_eq!(mode_of(&db), 0o600);
        // What an older version left: a world-readable directory, database and WAL.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let wal = dir.join("webcall.db-wal");
        std::fs::write(&wal, b"").expect("wal");
        std::fs::set_permissions(&wal, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        private_dir(&dir).expect("tightened");
        private_database_file(&db).expect("tightened");
        assert_eq!(mode_of(&dir), 0o700);
        assert_eq!(mode_of(&db), 0o600);
        assert_eq!(mode_of(&wal), 0o600);
        // Stricter than asked is left alone.
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o400)).expect("chmod");
        private_database_file(&db).expect("kept");
        assert_eq!(mode_of(&db), 0o400);
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
