//! The `webcall` command line.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{Settings, TelegramSettings, WhisperSettings};
use crate::models::{self, ModelStore};
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
    /// Transcribe a WAV file with the server's pipeline (resample, VAD, whisper) and print
    /// timestamped segments.
    Transcribe {
        /// A WAV file (any rate, mono or stereo).
        file: PathBuf,
        /// A whisper.cpp ggml model; default `WHISPER_MODEL`.
        #[arg(long)]
        model: Option<PathBuf>,
    },
    /// Convert a faster-whisper (CTranslate2) Whisper model folder into a whisper.cpp ggml
    /// file. Production servers should use the official ggml models instead.
    ImportModel {
        /// The folder with model.bin and vocabulary.txt.
        #[arg(long)]
        from: PathBuf,
        /// The ggml file to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// The Telegram bot that delivers summaries.
    #[command(subcommand)]
    Telegram(TelegramCommand),
    /// The official whisper.cpp models: list, download into DATA_DIR/models (resumed,
    /// SHA-256 checked), verify. `WHISPER_MODEL=NAME` then loads a downloaded one.
    #[command(subcommand)]
    Model(ModelCommand),
}

#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Every model in the catalog: size, languages, and whether it is downloaded.
    List,
    /// Download a model (e.g. `base`, `small.en-q8_0`, `large-v3-turbo`) from
    /// WHISPER_MODEL_BASE_URL, resuming an interrupted download; it is installed only when
    /// its SHA-256 matches the catalog.
    Fetch {
        /// A name from `webcall model list`.
        name: String,
    },
    /// Check the SHA-256 of the downloaded models, or of one.
    Verify {
        /// A name from `webcall model list`; default every downloaded model.
        name: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum TelegramCommand {
    /// Register this server's webhook with the Bot API (with TELEGRAM_WEBHOOK_SECRET), so
    /// `/start <token>` messages reach it.
    SetWebhook {
        /// The public HTTPS URL of `/api/v1/telegram/webhook`, e.g.
        /// https://call.example.org/api/v1/telegram/webhook
        #[arg(long)]
        url: String,
    },
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
    match cli.command {
        Command::Transcribe { file, model } => return transcribe(&file, model),
        Command::ImportModel { from, out } => return import_model(&from, &out),
        Command::Telegram(TelegramCommand::SetWebhook { url }) => return set_webhook(&url).await,
        Command::Model(command) => return model(command).await,
        Command::Serve | Command::Migrate => {}
    }
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
        Command::Transcribe { .. }
        | Command::ImportModel { .. }
        | Command::Telegram(_)
        | Command::Model(_) => Ok(()),
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

/// `webcall model`: reads only `DATA_DIR` and the `WHISPER_MODEL_*` settings.
async fn model(command: ModelCommand) -> ExitCode {
    let store = match ModelStore::from_lookup(|name| std::env::var(name).ok()) {
        Ok(store) => store,
        Err(err) => {
            eprintln!("error: configuration: {err}");
            return ExitCode::from(2);
        }
    };
    match command {
        ModelCommand::List => models::list(&store),
        ModelCommand::Fetch { name } => models::fetch_command(&store, &name).await,
        ModelCommand::Verify { name } => models::verify(&store, name.as_deref()).await,
    }
}

/// `webcall telegram set-webhook`: reads only the `TELEGRAM_*` settings.
async fn set_webhook(url: &str) -> ExitCode {
    let settings = match TelegramSettings::from_lookup(&|name| {
        std::env::var(name).ok().filter(|v| !v.trim().is_empty())
    }) {
        Ok(Some(settings)) => settings,
        Ok(None) => {
            eprintln!("error: configuration: TELEGRAM_BOT_TOKEN is not set");
            return ExitCode::from(2);
        }
        Err(err) => {
            eprintln!("error: configuration: {err}");
            return ExitCode::from(2);
        }
    };
    let Some(secret) = &settings.webhook_secret else {
        eprintln!("error: configuration: TELEGRAM_WEBHOOK_SECRET must be set: the server refuses webhook calls without it");
        return ExitCode::from(2);
    };
    if !url.starts_with("https://") {
        eprintln!("error: --url: Telegram only calls https:// webhooks");
        return ExitCode::from(2);
    }
    let result = match crate::telegram::bot::Bot::new(&settings) {
        Ok(bot) => bot
            .set_webhook(url, secret)
            .await
            .map_err(|e| e.to_string()),
        Err(err) => Err(err.to_string()),
    };
    match result {
        Ok(()) => {
            println!("webhook set: Telegram now sends the bot's messages to {url}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

/// `webcall transcribe`: whisper runs on this thread; the command has no async work.
fn transcribe(file: &Path, model: Option<PathBuf>) -> ExitCode {
    let whisper = match WhisperSettings::from_lookup(&|name| std::env::var(name).ok()) {
        Ok(w) => w,
        Err(err) => {
            eprintln!("error: configuration: {err}");
            return ExitCode::from(2);
        }
    };
    let Some(model) = model.or(whisper.model) else {
        eprintln!("error: no model: pass --model FILE or set WHISPER_MODEL");
        return ExitCode::from(2);
    };
    let data_dir =
        crate::config::data_dir(&|name| std::env::var(name).ok().filter(|v| !v.trim().is_empty()));
    if let Some(name) = crate::models::missing_download(&model, &data_dir) {
        eprintln!("error: model {name} is not downloaded: run `webcall model fetch {name}`");
        return ExitCode::from(2);
    }
    let config = transcriber::whisper::WhisperConfig {
        language: whisper.language,
        languages: whisper.languages,
        threads: whisper.threads,
    };
    let vad = transcriber::vad::VadConfig {
        detector: whisper.vad,
        ..transcriber::vad::VadConfig::default()
    };
    let started = std::time::Instant::now();
    let result = transcriber::whisper::Whisper::load(&model, config)
        .and_then(|w| transcriber::file::transcribe_file(file, &w, vad));
    match result {
        Ok(segments) => {
            for s in &segments {
                println!(
                    "[{} --> {}] {}",
                    timestamp(s.start_ms),
                    timestamp(s.end_ms),
                    s.text
                );
            }
            tracing::info!(
                segments = segments.len(),
                seconds = started.elapsed().as_secs_f64(),
                "transcribed"
            );
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

fn timestamp(ms: u64) -> String {
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

fn import_model(from: &Path, out: &Path) -> ExitCode {
    match transcriber::ggml::convert(from, out) {
        Ok(c) => {
            println!(
                "wrote {} ({} tensors, {} encoder and {} decoder layers, {})",
                out.display(),
                c.tensors,
                c.audio_layers,
                c.text_layers,
                if c.multilingual {
                    "multilingual"
                } else {
                    "English-only"
                }
            );
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}
