//! Downloads one model into `DATA_DIR/models`.
//!
//! The bytes go to `ggml-NAME.bin.part`. When a part is already there (an interrupted run),
//! the request asks only for the rest (`Range: bytes=N-`) and the part is hashed first, so the
//! SHA-256 always covers the whole file; a server that ignores the range and answers 200 gets
//! the part truncated and the download starts over. Only a file whose hash matches the
//! catalog is renamed to `ggml-NAME.bin`: a mismatch deletes the part, so a corrupt or
//! substituted download is never loaded. A connection that breaks keeps the part for the next
//! run.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use indicatif::HumanBytes;
use reqwest::header::{CONTENT_RANGE, RANGE};
use reqwest::StatusCode;
use sha2::{Digest, Sha256};
use transcriber::catalog::Model;

use super::{progress_bar, ModelStore};

/// A connection that delivers nothing for this long is given up (the part is kept).
const STALL: Duration = Duration::from_secs(60);

/// What [`fetch`] left in `DATA_DIR/models`.
#[derive(Debug)]
pub enum Fetched {
    /// `ggml-NAME.bin` was already there and its hash matches.
    AlreadyThere(PathBuf),
    /// Downloaded (or completed) and verified; `bytes` is the file's size.
    Downloaded { path: PathBuf, bytes: u64 },
}

/// Why a model could not be fetched. Each displays as one line that says what to do.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{url}: {reason} (WHISPER_MODEL_BASE_URL)")]
    Request { url: String, reason: String },
    #[error("{url} answered HTTP {status} (WHISPER_MODEL_BASE_URL)")]
    Status { url: String, status: StatusCode },
    #[error("the download of {file} stopped at {have} bytes ({reason}); run the same command again to resume")]
    Interrupted {
        file: String,
        have: u64,
        reason: String,
    },
    #[error("{file}: the server sent more than the {expected} bytes the catalog says; the download was deleted")]
    TooLong { file: String, expected: u64 },
    #[error("{file}: sha256 mismatch (expected {expected}, got {actual}); the download was deleted and nothing was installed")]
    Mismatch {
        file: String,
        expected: String,
        actual: String,
    },
    #[error("{path} is already there but its sha256 is {actual}, not the catalog's {expected}: delete it, then fetch again")]
    AlreadyThereButDifferent {
        path: PathBuf,
        expected: String,
        actual: String,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> FetchError + '_ {
    move |source| FetchError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Downloads `model` into `store.dir` (resuming a part left by an earlier run) and installs
/// it once its SHA-256 matches.
///
/// # Errors
/// A [`FetchError`] saying what failed; after `Interrupted` the part is kept for a resume,
/// after `Mismatch` and `TooLong` it is deleted.
pub async fn fetch(store: &ModelStore, model: &Model) -> Result<Fetched, FetchError> {
    // 0700: DATA_DIR also holds the generated secrets; nobody else needs to list it.
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&store.dir)
        .map_err(io(&store.dir))?;
    let file = model.file_name();
    let target = store.path_of(&model.name);
    if target.is_file() {
        let (digest, _) = hash_file(&target, format!("checking {file}")).await?;
        let actual = hex(digest);
        if actual == model.sha256 {
            return Ok(Fetched::AlreadyThere(target));
        }
        return Err(FetchError::AlreadyThereButDifferent {
            path: target,
            expected: model.sha256.clone(),
            actual,
        });
    }

    let part = store.part_of(&model.name);
    let mut have = match std::fs::metadata(&part) {
        Ok(meta) => meta.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(e) => return Err(io(&part)(e)),
    };
    if model.bytes.is_some_and(|bytes| have > bytes) {
        // Longer than the model can be: not a prefix of it.
        std::fs::remove_file(&part).map_err(io(&part))?;
        have = 0;
    }
    let mut hasher = Sha256::new();
    if have > 0 {
        eprintln!(
            "resuming {file} after {} already downloaded",
            HumanBytes(have)
        );
        (hasher, have) = hash_file(&part, format!("checking the first part of {file}")).await?;
    }
    if model.bytes != Some(have) {
        let url = store.url_of(&model.name);
        eprintln!(
            "fetching {file} ({}) from {url}",
            model
                .bytes
                .map_or_else(|| "size unknown".to_owned(), |b| HumanBytes(b).to_string())
        );
        download(model, &url, &part, &mut hasher, &mut have).await?;
    }

    let actual = hex(hasher);
    if actual != model.sha256 {
        std::fs::remove_file(&part).map_err(io(&part))?;
        return Err(FetchError::Mismatch {
            file,
            expected: model.sha256.clone(),
            actual,
        });
    }
    std::fs::rename(&part, &target).map_err(io(&target))?;
    Ok(Fetched::Downloaded {
        path: target,
        bytes: have,
    })
}

/// Requests the bytes after the `have` already in `part` and appends them (or, when the
/// server sends the whole file, starts `part` and `hasher` over).
async fn download(
    model: &Model,
    url: &str,
    part: &Path,
    hasher: &mut Sha256,
    have: &mut u64,
) -> Result<(), FetchError> {
    let file = model.file_name();
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(30))
        .user_agent(concat!("webcall/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| request_error(url, &e))?;
    let mut request = client.get(url);
    if *have > 0 {
        request = request.header(RANGE, format!("bytes={have}-"));
    }
    let mut response = request.send().await.map_err(|e| request_error(url, &e))?;
    let status = response.status();
    let append = match status {
        StatusCode::PARTIAL_CONTENT if *have > 0 => {
            let start = response
                .headers()
                .get(CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .and_then(content_range_start);
            if start != Some(*have) {
                return Err(FetchError::Request {
                    url: url.to_owned(),
                    reason: format!(
                        "asked for bytes from {have}, got a range starting at {start:?}"
                    ),
                });
            }
            true
        }
        // Nothing after `have`: the part is the whole file (a catalog entry without a size).
        StatusCode::RANGE_NOT_SATISFIABLE if *have > 0 => return Ok(()),
        StatusCode::OK => {
            if *have > 0 {
                eprintln!(
                    "the server ignored the range request: downloading {file} from the start"
                );
            }
            *hasher = Sha256::new();
            *have = 0;
            false
        }
        _ => {
            return Err(FetchError::Status {
                url: url.to_owned(),
                status,
            })
        }
    };
    let mut out = if append {
        OpenOptions::new().append(true).open(part)
    } else {
        File::create(part)
    }
    .map_err(io(part))?;

    let total = model
        .bytes
        .or_else(|| response.content_length().map(|rest| rest + *have));
    let bar = progress_bar(total, format!("fetching {file}"));
    bar.set_position(*have);
    loop {
        let chunk = match tokio::time::timeout(STALL, response.chunk()).await {
            Ok(Ok(Some(chunk))) => chunk,
            Ok(Ok(None)) => break,
            Ok(Err(e)) => {
                return Err(FetchError::Interrupted {
                    file,
                    have: *have,
                    reason: error_chain(&e),
                })
            }
            Err(_) => {
                return Err(FetchError::Interrupted {
                    file,
                    have: *have,
                    reason: format!("no data for {} s", STALL.as_secs()),
                })
            }
        };
        let len = chunk.len() as u64;
        if let Some(expected) = model.bytes.filter(|&b| *have + len > b) {
            drop(out);
            std::fs::remove_file(part).map_err(io(part))?;
            return Err(FetchError::TooLong { file, expected });
        }
        // A blocking write from async code: this command's runtime has nothing else to run,
        // and the write lands in the page cache.
        out.write_all(&chunk).map_err(io(part))?;
        hasher.update(&chunk);
        *have += len;
        bar.set_position(*have);
    }
    bar.finish_and_clear();
    out.sync_all().map_err(io(part))?;
    if let Some(expected) = model.bytes.filter(|&b| *have < b) {
        return Err(FetchError::Interrupted {
            file,
            have: *have,
            reason: format!("the server closed the connection before byte {expected}"),
        });
    }
    Ok(())
}

/// The SHA-256 state and length of a file, read on a blocking thread (a large model takes
/// seconds), with a progress bar on a terminal.
///
/// # Errors
/// [`FetchError::Io`] when the file can't be read.
pub async fn hash_file(path: &Path, message: String) -> Result<(Sha256, u64), FetchError> {
    let owned = path.to_owned();
    let hashed = tokio::task::spawn_blocking(move || -> std::io::Result<(Sha256, u64)> {
        let mut file = File::open(&owned)?;
        let len = file.metadata()?.len();
        let mut sink = HashSink {
            hasher: Sha256::new(),
            bar: progress_bar(Some(len), message),
        };
        let read = std::io::copy(&mut file, &mut sink)?;
        sink.bar.finish_and_clear();
        Ok((sink.hasher, read))
    })
    .await
    .map_err(std::io::Error::other)
    .and_then(|r| r);
    hashed.map_err(io(path))
}

/// Lowercase hex of a finished hash.
#[must_use]
pub fn hex(hasher: Sha256) -> String {
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A writer that hashes what it is given and moves a progress bar.
struct HashSink {
    hasher: Sha256,
    bar: indicatif::ProgressBar,
}

impl Write for HashSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.hasher.update(buf);
        self.bar.inc(buf.len() as u64);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `bytes START-END/TOTAL` -> START.
fn content_range_start(value: &str) -> Option<u64> {
    value
        .strip_prefix("bytes ")?
        .split('-')
        .next()?
        .trim()
        .parse()
        .ok()
}

fn request_error(url: &str, err: &reqwest::Error) -> FetchError {
    FetchError::Request {
        url: url.to_owned(),
        reason: error_chain(err),
    }
}

/// An error and its causes on one line: reqwest's own message ("error sending request") says
/// nothing about the refused connection or the DNS failure underneath.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_start_of_a_content_range_is_read() {
        assert_eq!(content_range_start("bytes 100-199/200"), Some(100));
        assert_eq!(content_range_start("bytes 0-9/*"), Some(0));
        assert_eq!(content_range_start("items 1-2/3"), None);
        assert_eq!(content_range_start("bytes */200"), None);
    }

    #[test]
    fn hex_is_the_lowercase_sha256() {
        let mut h = Sha256::new();
        h.update(b"abc");
        assert_eq!(
            hex(h),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
