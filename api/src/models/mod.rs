//! Whisper models on disk and the `webcall model` commands.
//!
//! A model is fetched from `WHISPER_MODEL_BASE_URL` (default: the whisper.cpp project's
//! Hugging Face repository) as `{base}/ggml-NAME.bin` into `DATA_DIR/models`, checked against
//! the SHA-256 of [`transcriber::catalog`] (plus the operator's `WHISPER_MODEL_CATALOG`), and
//! only then named `ggml-NAME.bin`, the file `WHISPER_MODEL=NAME` loads. [`fetch`] downloads
//! (resume, progress, verification); this module reads the settings and runs the commands.
//! Results go to stdout, notes and progress to stderr.

pub mod fetch;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Deserialize;
use transcriber::catalog::{self, Catalog, Language, Model};

use crate::config::{self, ConfigError};

/// Where whisper.cpp publishes its ggml models.
pub const DEFAULT_BASE_URL: &str = "https://huggingface.co/ggerganov/whisper.cpp/resolve/main";

/// Where models come from and where they go.
#[derive(Debug, Clone)]
pub struct ModelStore {
    /// `DATA_DIR/models`.
    pub dir: PathBuf,
    /// `WHISPER_MODEL_BASE_URL`, without a trailing `/`.
    pub base_url: String,
    /// The official models plus those of `WHISPER_MODEL_CATALOG`.
    pub catalog: Catalog,
}

impl ModelStore {
    /// Reads `DATA_DIR`, `WHISPER_MODEL_BASE_URL` and `WHISPER_MODEL_CATALOG` (a JSON file of
    /// extra models: see [`read_catalog`]).
    ///
    /// # Errors
    /// A [`ConfigError`] naming the variable whose value can't be used.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let base_url = get("WHISPER_MODEL_BASE_URL")
            .unwrap_or_else(|| DEFAULT_BASE_URL.to_owned())
            .trim_end_matches('/')
            .to_owned();
        if !(base_url.starts_with("https://") || base_url.starts_with("http://")) {
            return Err(ConfigError {
                var: "WHISPER_MODEL_BASE_URL",
                reason: format!("{base_url:?} must start with https:// or http://"),
            });
        }
        let mut catalog = Catalog::official();
        if let Some(path) = get("WHISPER_MODEL_CATALOG") {
            let extra = read_catalog(Path::new(&path)).map_err(|reason| ConfigError {
                var: "WHISPER_MODEL_CATALOG",
                reason,
            })?;
            catalog.extend(extra);
        }
        Ok(Self {
            dir: config::models_dir(&config::data_dir(&get)),
            base_url,
            catalog,
        })
    }

    /// `DATA_DIR/models/ggml-NAME.bin`: a downloaded, verified model.
    #[must_use]
    pub fn path_of(&self, name: &str) -> PathBuf {
        self.dir.join(catalog::file_name(name))
    }

    /// `DATA_DIR/models/ggml-NAME.bin.part`: a download in progress (or interrupted).
    #[must_use]
    pub fn part_of(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{}.part", catalog::file_name(name)))
    }

    /// `{WHISPER_MODEL_BASE_URL}/ggml-NAME.bin`.
    #[must_use]
    pub fn url_of(&self, name: &str) -> String {
        format!("{}/{}", self.base_url, catalog::file_name(name))
    }
}

/// `WHISPER_MODEL_CATALOG`: models a mirror adds to the official ones (or publishes under an
/// official name with its own hash, which then replaces the official entry):
///
/// ```json
/// {"models": [{"name": "base-ru", "sha256": "<64 hex digits>", "bytes": 147951465,
///              "language": "multilingual"}]}
/// ```
///
/// `bytes` is optional (without it the size is not checked, only the hash); `language` is
/// `multilingual` or `en`, by default what the name says (`.en` is English-only).
///
/// # Errors
/// One line saying what is wrong with the file.
pub fn read_catalog(path: &Path) -> Result<Vec<Model>, String> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        models: Vec<Entry>,
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Entry {
        name: String,
        sha256: String,
        #[serde(default)]
        bytes: Option<u64>,
        #[serde(default)]
        language: Option<String>,
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let file: File = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    file.models
        .into_iter()
        .map(|e| {
            let language = match e.language.as_deref() {
                None => None,
                Some("multilingual") => Some(Language::Multilingual),
                Some("en") => Some(Language::English),
                Some(other) => {
                    return Err(format!(
                        "{}: language of {} is {other:?}, expected multilingual or en",
                        path.display(),
                        e.name
                    ))
                }
            };
            Model::new(&e.name, e.bytes, &e.sha256, language)
                .map_err(|err| format!("{}: {err}", path.display()))
        })
        .collect()
}

/// The name to fetch when `model` (a resolved `WHISPER_MODEL`) is a `DATA_DIR/models/ggml-NAME.bin`
/// that isn't there, so `webcall serve` can say which `webcall model fetch` to run.
#[must_use]
pub fn missing_download(model: &Path, data_dir: &Path) -> Option<String> {
    if model.exists() || model.parent() != Some(config::models_dir(data_dir).as_path()) {
        return None;
    }
    let name = model
        .file_name()?
        .to_str()?
        .strip_prefix("ggml-")?
        .strip_suffix(".bin")?;
    catalog::is_model_name(name).then(|| name.to_owned())
}

/// `webcall model list`: every model of the catalog, its size and languages, and whether it is
/// in `DATA_DIR/models`.
pub fn list(store: &ModelStore) -> ExitCode {
    // writeln, not println: `webcall model list | head` closes the pipe early, which is not
    // an error worth a panic.
    let mut out = std::io::stdout().lock();
    let mut rows = vec![format!(
        "{:<22} {:>10}  {:<13} DOWNLOADED",
        "NAME", "SIZE", "LANGUAGES"
    )];
    for m in store.catalog.models() {
        let size = m
            .bytes
            .map_or_else(|| "?".to_owned(), |b| HumanBytes(b).to_string());
        let downloaded = if store.path_of(&m.name).is_file() {
            "yes".to_owned()
        } else {
            match std::fs::metadata(store.part_of(&m.name)) {
                Ok(part) => format!("partly ({})", HumanBytes(part.len())),
                Err(_) => "no".to_owned(),
            }
        };
        rows.push(format!(
            "{:<22} {size:>10}  {:<13} {downloaded}",
            m.name,
            m.language.to_string()
        ));
    }
    for row in rows {
        if writeln!(out, "{row}").is_err() {
            return ExitCode::SUCCESS;
        }
    }
    eprintln!(
        "models directory: {} (fetch one with `webcall model fetch NAME`, then set WHISPER_MODEL=NAME)",
        store.dir.display()
    );
    ExitCode::SUCCESS
}

/// `webcall model fetch NAME`: downloads (or resumes) and verifies one model. Exit 2 for a
/// name the catalog doesn't have, 1 when the download fails or doesn't match.
pub async fn fetch_command(store: &ModelStore, name: &str) -> ExitCode {
    let Some(model) = store.catalog.get(name) else {
        return unknown_name(store, name);
    };
    match fetch::fetch(store, model).await {
        Ok(fetch::Fetched::AlreadyThere(path)) => {
            println!("{name}: already downloaded, sha256 ok: {}", path.display());
            ExitCode::SUCCESS
        }
        Ok(fetch::Fetched::Downloaded { path, bytes }) => {
            println!(
                "{name}: downloaded {}, sha256 ok: {}",
                HumanBytes(bytes),
                path.display()
            );
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

/// `webcall model verify [NAME]`: checks the SHA-256 of the downloaded models (or of one).
/// Exit 1 when one doesn't match (or NAME isn't downloaded), 2 for an unknown NAME.
pub async fn verify(store: &ModelStore, name: Option<&str>) -> ExitCode {
    let models: Vec<&Model> = match name {
        Some(name) => {
            let Some(model) = store.catalog.get(name) else {
                return unknown_name(store, name);
            };
            if !store.path_of(name).is_file() {
                eprintln!("error: {name} is not downloaded: run `webcall model fetch {name}`");
                return ExitCode::FAILURE;
            }
            vec![model]
        }
        None => store
            .catalog
            .models()
            .iter()
            .filter(|m| store.path_of(&m.name).is_file())
            .collect(),
    };
    if models.is_empty() {
        eprintln!("no models downloaded in {}", store.dir.display());
    }
    let mut failed = 0usize;
    for model in models {
        let path = store.path_of(&model.name);
        match fetch::hash_file(&path, format!("verifying {}", model.file_name())).await {
            Ok((digest, len)) => {
                let sha256 = fetch::hex(digest);
                if sha256 == model.sha256 && model.bytes.is_none_or(|b| b == len) {
                    println!("{}: ok", model.name);
                } else {
                    failed += 1;
                    println!(
                        "{}: MISMATCH: sha256 {sha256}, the catalog says {} ({})",
                        model.name,
                        model.sha256,
                        path.display()
                    );
                }
            }
            Err(err) => {
                failed += 1;
                println!("{}: unreadable: {err}", model.name);
            }
        }
    }
    if name.is_none() {
        for stray in strays(store) {
            println!("{stray}: not in the catalog, not checked");
        }
    }
    if failed > 0 {
        eprintln!(
            "error: {failed} model(s) failed verification: delete them and run `webcall model fetch NAME` again"
        );
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// Names of `ggml-*.bin` files in the models directory that the catalog doesn't list.
fn strays(store: &ModelStore) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(&store.dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|f| {
            let name = f.strip_prefix("ggml-")?.strip_suffix(".bin")?;
            store.catalog.get(name).is_none().then(|| name.to_owned())
        })
        .collect();
    names.sort();
    names
}

fn unknown_name(store: &ModelStore, name: &str) -> ExitCode {
    let close = store.catalog.close_to(name);
    if close.is_empty() {
        eprintln!("error: no model is named {name:?}; `webcall model list` shows them all");
    } else {
        eprintln!(
            "error: no model is named {name:?}; did you mean {}? (`webcall model list` shows them all)",
            close.join(", ")
        );
    }
    ExitCode::from(2)
}

/// A progress bar on stderr (a byte counter when the length is unknown), hidden when stderr
/// is not a terminal (a log file, a pipe).
fn progress_bar(len: Option<u64>, message: String) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar =
        ProgressBar::with_draw_target(len, ProgressDrawTarget::stderr()).with_message(message);
    let template = if len.is_some() {
        "{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}"
    } else {
        "{msg} {bytes} {binary_bytes_per_sec}"
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    // Redraws while a stalled connection sends nothing, so the rate and eta stay honest.
    bar.enable_steady_tick(Duration::from_millis(250));
    bar
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn store(pairs: &[(&str, &str)]) -> Result<ModelStore, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        ModelStore::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn models_come_from_whisper_cpp_and_go_to_data_dir_models() {
        let s = store(&[]).expect("defaults");
        assert_eq!(s.dir, PathBuf::from("./data/models"));
        assert_eq!(
            s.url_of("base"),
            "https://huggingface.co/ggerganov/whisper.cpp/resolve/main/ggml-base.bin"
        );
        let s = store(&[
            ("DATA_DIR", "/srv/webcall"),
            ("WHISPER_MODEL_BASE_URL", "http://mirror.lan/whisper/"),
        ])
        .expect("valid");
        assert_eq!(
            s.path_of("base.en"),
            PathBuf::from("/srv/webcall/models/ggml-base.en.bin")
        );
        assert_eq!(
            s.part_of("base.en"),
            PathBuf::from("/srv/webcall/models/ggml-base.en.bin.part")
        );
        assert_eq!(
            s.url_of("base.en"),
            "http://mirror.lan/whisper/ggml-base.en.bin"
        );
    }

    #[test]
    fn a_catalog_file_adds_models_and_a_bad_one_names_the_variable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let good = dir.path().join("good.json");
        let hash = "0f".repeat(32);
        std::fs::write(
            &good,
            format!(
                r#"{{"models": [{{"name": "base-ru", "sha256": "{hash}", "bytes": 12}},
                               {{"name": "x.en", "sha256": "{hash}", "language": "multilingual"}}]}}"#
            ),
        )
        .expect("write");
        let s = store(&[("WHISPER_MODEL_CATALOG", good.to_str().expect("utf-8"))]).expect("valid");
        let extra = s.catalog.get("base-ru").expect("added");
        assert_eq!(
            (extra.bytes, extra.language),
            (Some(12), Language::Multilingual)
        );
        assert_eq!(
            s.catalog.get("x.en").expect("added").language,
            Language::Multilingual
        );
        assert!(
            s.catalog.get("large-v3-turbo").is_some(),
            "official ones stay"
        );

        for (body, why) in [
            (
                r#"{"models": [{"name": "a/b", "sha256": "00"}]}"#,
                "bad name",
            ),
            (
                r#"{"models": [{"name": "a", "sha256": "00"}]}"#,
                "short hash",
            ),
            (
                r#"{"models": [{"name": "a", "sha": "00"}]}"#,
                "unknown field",
            ),
            ("[]", "not an object"),
        ] {
            let bad = dir.path().join("bad.json");
            std::fs::write(&bad, body).expect("write");
            let err =
                store(&[("WHISPER_MODEL_CATALOG", bad.to_str().expect("utf-8"))]).expect_err(why);
            assert_eq!(err.var, "WHISPER_MODEL_CATALOG", "{why}");
        }
        let err = store(&[("WHISPER_MODEL_CATALOG", "/nonexistent/catalog.json")])
            .expect_err("missing file");
        assert_eq!(err.var, "WHISPER_MODEL_CATALOG");
        let err = store(&[("WHISPER_MODEL_BASE_URL", "mirror.lan")]).expect_err("no scheme");
        assert_eq!(err.var, "WHISPER_MODEL_BASE_URL");
    }

    #[test]
    fn a_missing_download_is_named_only_under_data_dir_models() {
        let data = Path::new("/nonexistent/data");
        assert_eq!(
            missing_download(&data.join("models/ggml-small.en.bin"), data).as_deref(),
            Some("small.en")
        );
        assert_eq!(
            missing_download(Path::new("/elsewhere/ggml-base.bin"), data),
            None
        );
        assert_eq!(missing_download(&data.join("models/base.bin"), data), None);
    }
}
