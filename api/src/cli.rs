//! The `webcall` command line.

use clap::{Parser, Subcommand};

use crate::config::Settings;
use crate::server;

#[derive(Debug, Parser)]
#[command(
    name = "webcall",
    version,
    about = "Self-hosted audio calls with server-side transcription."
)]
#[command(
    after_help = "Configuration comes from environment variables (and ./.env); see README.md."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (applies pending migrations first).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
}

/// Parses the command line and runs it. Returns the process exit code.
pub async fn main() -> std::process::ExitCode {
    // A missing .env is normal; a broken one is worth saying.
    if let Err(err) = dotenvy::dotenv() {
        if !err.not_found() {
            eprintln!("error: .env: {err}");
            return std::process::ExitCode::from(2);
        }
    }
    let cli = Cli::parse();
    crate::telemetry::init_logging();
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("error: configuration: {err}");
            return std::process::ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Command::Serve => server::run(settings).await,
        Command::Migrate => migrate(&settings).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn migrate(settings: &Settings) -> Result<(), server::StartError> {
    let store = server::open_store(settings).await?;
    let versions = store.migrate().await?;
    println!(
        "database is at migration {:?} ({:?})",
        versions.last().copied().unwrap_or(0),
        store.backend()
    );
    store.close().await;
    Ok(())
}
