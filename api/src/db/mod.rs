//! The store: users, rooms, membership, chat, keys, DMs, transcripts and the AI agent's
//! sessions, summaries, prompts, Telegram links and push subscriptions on SQLite (embedded default) or PostgreSQL.
//!
//! One implementation serves both databases through sqlx's `Any` driver. The dialect
//! differences live in the two migration folders (identity columns, types); the queries here
//! are the portable subset (`$n` parameters, `RETURNING`, Unix-millisecond timestamps).
//! That keeps one copy of every query instead of two that drift apart.

mod agent;
mod chat;
mod dm;
mod keys;
mod prompts;
mod push;
mod rooms;
mod telegram;
mod transcripts;
mod users;

use std::time::Duration;

use sqlx::any::{install_default_drivers, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, Executor};

pub use agent::{AgentSessionRow, NewSummary, SummaryRow};
pub use chat::ChatRow;
pub use dm::{ConversationRow, DmBody, DmRow};
pub use keys::KeyRow;
pub use push::{
    PushSession, PushSubscriptionInfo, PushSubscriptionRow, MAX_SUBSCRIPTIONS_PER_USER,
};
pub use rooms::{MemberRow, RoomRow};
pub use telegram::TelegramLinkRow;
pub use transcripts::{NewSegment, SegmentRow};
pub use users::{DeletedUser, TokenUser, UserRow, UserWithHash};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/postgres");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique constraint refused the row (a taken username, an existing member).
    #[error("conflict with an existing row")]
    Conflict,
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// Why the database can't serve a request for now, when it is the database's state (not
/// the request) that is at fault: the client may retry later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outage {
    /// Unreachable, restarting, refusing connections, or every connection busy.
    Unavailable,
    /// No space left for the write (SQLite `SQLITE_FULL`, PostgreSQL `53100`).
    StorageFull,
}

impl StoreError {
    /// Whether this failure is an outage of the database rather than a bug.
    pub fn outage(&self) -> Option<Outage> {
        let StoreError::Database(err) = self else {
            return None;
        };
        match err {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => Some(Outage::Unavailable),
            sqlx::Error::Database(db) => {
                let code = db.code()?;
                match code.as_ref() {
                    // PostgreSQL: disk full.
                    "53100" => Some(Outage::StorageFull),
                    // PostgreSQL: connection exceptions, shutting down, starting up, out of
                    // memory or connections.
                    c if c.starts_with("08") || c.starts_with("57P") || c.starts_with("53") => {
                        Some(Outage::Unavailable)
                    }
                    // SQLite extended result codes; the primary code is the low byte.
                    c => match c.parse::<i32>().map(|n| n & 0xff) {
                        Ok(13) => Some(Outage::StorageFull), // SQLITE_FULL
                        // SQLITE_BUSY, SQLITE_LOCKED, SQLITE_IOERR, SQLITE_CANTOPEN
                        Ok(5 | 6 | 10 | 14) => Some(Outage::Unavailable),
                        _ => None,
                    },
                }
            }
            _ => None,
        }
    }

    fn from_write(err: sqlx::Error) -> Self {
        match &err {
            sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict,
            _ => StoreError::Database(err),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

impl Store {
    /// Connects to `url` (`sqlite:…` or `postgres://…`).
    ///
    /// # Errors
    /// [`StoreError::Database`] when the database can't be reached or opened.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            Backend::Postgres
        };
        let options = AnyPoolOptions::new().acquire_timeout(Duration::from_secs(5));
        let pool = match backend {
            // SQLite allows one writer at a time; WAL lets readers go on meanwhile, and the
            // busy timeout makes a writer wait its turn instead of failing.
            Backend::Sqlite => {
                options
                    .max_connections(4)
                    .after_connect(|conn, _meta| {
                        Box::pin(async move {
                            conn.execute("PRAGMA journal_mode = WAL").await?;
                            conn.execute("PRAGMA foreign_keys = ON").await?;
                            conn.execute("PRAGMA busy_timeout = 5000").await?;
                            Ok(())
                        })
                    })
                    .connect(url)
                    .await?
            }
            Backend::Postgres => options.max_connections(16).connect(url).await?,
        };
        Ok(Self { pool, backend })
    }

    /// The SQLite URL of the embedded default database under `data_dir`.
    pub fn sqlite_url_in(data_dir: &std::path::Path) -> String {
        format!(
            "sqlite://{}?mode=rwc",
            Self::sqlite_path_in(data_dir).display()
        )
    }

    /// The embedded database's file under `DATA_DIR`.
    pub fn sqlite_path_in(data_dir: &std::path::Path) -> std::path::PathBuf {
        data_dir.join("webcall.db")
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Applies the migrations this database lacks; returns the versions now applied.
    ///
    /// # Errors
    /// [`StoreError::Migrate`] when a migration fails or the database has an unknown one.
    pub async fn migrate(&self) -> Result<Vec<i64>, StoreError> {
        let migrator = match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator.run(&self.pool).await?;
        Ok(migrator.iter().map(|m| m.version).collect())
    }

    /// A round trip to the database, for readiness checks.
    ///
    /// # Errors
    /// [`StoreError::Database`] when the database doesn't answer.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// The row a write's `RETURNING` gave, taken from `fetch_all`, which runs the statement to
/// its end. `fetch_one` and `fetch_optional` stop at the first row, and sqlx's SQLite driver
/// then drops the statement's last step — where an autocommit write commits — so a commit
/// that fails (a full disk, a busy database) would go unreported and the caller would hand
/// out the id of a row that was rolled back (launchbadge/sqlx#2099; found by
/// `faults::a_full_disk_in_data_dir_gives_clear_errors_and_no_half_written_rows`).
fn first_row<T>(rows: Vec<T>) -> Option<T> {
    rows.into_iter().next()
}

/// [`first_row`] for a write that must return one.
///
/// # Errors
/// [`sqlx::Error::RowNotFound`] when it returned none.
fn single_row<T>(rows: Vec<T>) -> Result<T, sqlx::Error> {
    first_row(rows).ok_or(sqlx::Error::RowNotFound)
}

/// Milliseconds since the Unix epoch, the timestamp format of every table.
pub fn now_millis() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(now.as_millis()).unwrap_or(i64::MAX)
}
