//! `webcall model` as an operator runs it, against a local stand-in for the model host: a
//! real HTTP server on 127.0.0.1 that serves small fake model files (with or without `Range`
//! support) and records what it was asked. The test catalog comes in through
//! `WHISPER_MODEL_CATALOG`, the way an operator adds a mirror's models, so the hashes are the
//! test's own.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{Arc, Mutex};

use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use sha2::{Digest, Sha256};

use crate::binary::webcall;

const NAME: &str = "test-model";
const FILE: &str = "ggml-test-model.bin";

/// Whether the stand-in answers `Range: bytes=N-` with 206 or ignores it (200, whole file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ranges {
    Honour,
    Ignore,
}

/// One request as the stand-in saw it and answered it.
#[derive(Debug, Clone)]
struct Served {
    path: String,
    range: Option<String>,
    status: u16,
}

struct Mirror {
    base: String,
    served: Arc<Mutex<Vec<Served>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Mirror {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Mirror {
    /// Serves `files` (name -> bytes) at `/{name}` on a free port.
    async fn start(files: &[(&str, Vec<u8>)], ranges: Ranges) -> Self {
        let files: Arc<HashMap<String, Vec<u8>>> = Arc::new(
            files
                .iter()
                .map(|(name, bytes)| ((*name).to_owned(), bytes.clone()))
                .collect(),
        );
        let served = Arc::new(Mutex::new(Vec::new()));
        let log = served.clone();
        let app = axum::Router::new().fallback(move |uri: Uri, headers: HeaderMap| {
            let files = files.clone();
            let log = log.clone();
            async move {
                let path = uri.path().trim_start_matches('/').to_owned();
                let range = headers
                    .get(header::RANGE)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                let start = range
                    .as_deref()
                    .and_then(|r| r.strip_prefix("bytes="))
                    .and_then(|r| r.strip_suffix('-'))
                    .and_then(|n| n.parse::<usize>().ok())
                    .filter(|_| ranges == Ranges::Honour);
                let mut answer = HeaderMap::new();
                let (status, body) = match (files.get(&path), start) {
                    (None, _) => (StatusCode::NOT_FOUND, Vec::new()),
                    (Some(bytes), Some(start)) if start >= bytes.len() => {
                        (StatusCode::RANGE_NOT_SATISFIABLE, Vec::new())
                    }
                    (Some(bytes), Some(start)) => {
                        let value = format!("bytes {start}-{}/{}", bytes.len() - 1, bytes.len());
                        answer.insert(
                            header::CONTENT_RANGE,
                            HeaderValue::from_str(&value).expect("header"),
                        );
                        (StatusCode::PARTIAL_CONTENT, bytes[start..].to_vec())
                    }
                    (Some(bytes), None) => (StatusCode::OK, bytes.clone()),
                };
                log.lock().expect("lock").push(Served {
                    path,
                    range,
                    status: status.as_u16(),
                });
                (status, answer, body)
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}/models", listener.local_addr().expect("addr"));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { base, served, task }
    }

    fn served(&self) -> Vec<Served> {
        self.served.lock().expect("lock").clone()
    }
}

/// A fake model: bytes a test can tell apart by position.
fn model_bytes(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A working directory with a catalog that lists [`NAME`] as `expected`, and a mirror that
/// serves `served` as [`FILE`].
struct Setup {
    dir: tempfile::TempDir,
    mirror: Mirror,
}

impl Setup {
    async fn new(expected: &[u8], served: Vec<u8>, ranges: Ranges) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let catalog = serde_json::json!({"models": [{
            "name": NAME,
            "sha256": sha256_hex(expected),
            "bytes": expected.len(),
        }]});
        std::fs::write(dir.path().join("catalog.json"), catalog.to_string()).expect("catalog");
        let mirror = Mirror::start(&[(&format!("models/{FILE}"), served)], ranges).await;
        Self { dir, mirror }
    }

    fn models_dir(&self) -> PathBuf {
        self.dir.path().join("data/models")
    }

    /// Writes a partial download of `bytes`, as an interrupted run leaves it.
    fn leave_part(&self, bytes: &[u8]) {
        std::fs::create_dir_all(self.models_dir()).expect("mkdir");
        std::fs::write(self.models_dir().join(format!("{FILE}.part")), bytes).expect("part");
    }

    async fn run(&self, args: &[&str]) -> Output {
        let catalog = self.dir.path().join("catalog.json");
        webcall(
            self.dir.path(),
            args,
            &[
                ("DATA_DIR", "data"),
                ("WHISPER_MODEL_BASE_URL", &self.mirror.base),
                ("WHISPER_MODEL_CATALOG", catalog.to_str().expect("utf-8")),
            ],
        )
        .output()
        .await
        .expect("run webcall")
    }

    fn installed(&self) -> Option<Vec<u8>> {
        std::fs::read(self.models_dir().join(FILE)).ok()
    }

    /// Every file in the models directory whose name starts with `ggml-`.
    fn ggml_files(&self) -> Vec<String> {
        list_ggml(&self.models_dir())
    }
}

fn list_ggml(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|name| name.starts_with("ggml-"))
        .collect()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn fetch_installs_a_verified_model_that_list_and_verify_then_report() {
    let model = model_bytes(300_000);
    let setup = Setup::new(&model, model.clone(), Ranges::Honour).await;

    let out = setup.run(&["model", "fetch", NAME]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("test-model: downloaded"),
        "result on stdout: {}",
        text(&out.stdout)
    );
    assert_eq!(setup.installed().as_deref(), Some(model.as_slice()));
    assert_eq!(setup.ggml_files(), vec![FILE.to_owned()], "no part left");
    let mode = std::fs::metadata(setup.models_dir())
        .expect("models dir")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
    let served = setup.mirror.served();
    assert_eq!(served.len(), 1);
    assert_eq!(served[0].path, format!("models/{FILE}"));
    assert_eq!((served[0].range.as_deref(), served[0].status), (None, 200));

    let out = setup.run(&["model", "verify"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "test-model: ok");

    let out = setup.run(&["model", "list"]).await;
    assert!(out.status.success());
    let stdout = text(&out.stdout);
    let row = |name: &str| {
        stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("{name} listed: {stdout}"))
            .to_owned()
    };
    assert!(row(NAME).ends_with("yes"), "{stdout}");
    assert!(row("base").contains("multilingual") && row("base").ends_with("no"));
    assert!(row("small.en-q8_0").contains("English only"), "{stdout}");
    assert!(stdout.contains("large-v3-turbo-q5_0"));

    // A second fetch checks what is there and asks the mirror for nothing.
    let out = setup.run(&["model", "fetch", NAME]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("already downloaded"));
    assert_eq!(setup.mirror.served().len(), 1);

    // A model damaged on disk fails verification, with and without its name.
    let mut damaged = model.clone();
    damaged[1000] ^= 0xff;
    std::fs::write(setup.models_dir().join(FILE), &damaged).expect("damage");
    for args in [&["model", "verify"][..], &["model", "verify", NAME][..]] {
        let out = setup.run(args).await;
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            text(&out.stdout).starts_with("test-model: MISMATCH"),
            "{}",
            text(&out.stdout)
        );
    }
}

#[tokio::test]
async fn an_interrupted_download_resumes_with_a_range_request() {
    let model = model_bytes(300_000);
    let setup = Setup::new(&model, model.clone(), Ranges::Honour).await;
    setup.leave_part(&model[..100_000]);

    let out = setup.run(&["model", "fetch", NAME]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("resuming"),
        "{}",
        text(&out.stderr)
    );
    let served = setup.mirror.served();
    assert_eq!(served.len(), 1);
    assert_eq!(served[0].range.as_deref(), Some("bytes=100000-"));
    assert_eq!(served[0].status, 206);
    assert_eq!(setup.installed().as_deref(), Some(model.as_slice()));
    assert_eq!(setup.ggml_files(), vec![FILE.to_owned()]);
}

#[tokio::test]
async fn a_server_that_ignores_the_range_still_gives_the_right_file() {
    let model = model_bytes(300_000);
    let setup = Setup::new(&model, model.clone(), Ranges::Ignore).await;
    setup.leave_part(&model[..100_000]);

    let out = setup.run(&["model", "fetch", NAME]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("ignored the range"),
        "{}",
        text(&out.stderr)
    );
    let served = setup.mirror.served();
    assert_eq!(served[0].range.as_deref(), Some("bytes=100000-"));
    assert_eq!(served[0].status, 200);
    assert_eq!(
        setup.installed().as_deref(),
        Some(model.as_slice()),
        "started over, not appended"
    );
}

#[tokio::test]
async fn a_corrupt_download_is_rejected_and_nothing_is_installed() {
    let model = model_bytes(300_000);
    let mut corrupt = model.clone();
    corrupt[250_000] ^= 0x01;
    let setup = Setup::new(&model, corrupt, Ranges::Honour).await;

    let out = setup.run(&["model", "fetch", NAME]).await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("sha256 mismatch") && stderr.contains(&sha256_hex(&model)),
        "{stderr}"
    );
    assert!(text(&out.stdout).is_empty(), "no result on stdout");
    assert_eq!(setup.ggml_files(), Vec::<String>::new(), "{stderr}");

    // A damaged part from an earlier run is caught too: the hash covers the whole file.
    let setup = Setup::new(&model, model.clone(), Ranges::Honour).await;
    let mut bad_part = model[..100_000].to_vec();
    bad_part[10] ^= 0x01;
    setup.leave_part(&bad_part);
    let out = setup.run(&["model", "fetch", NAME]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("sha256 mismatch"));
    assert_eq!(setup.mirror.served()[0].status, 206);
    assert_eq!(setup.ggml_files(), Vec::<String>::new());
}

#[tokio::test]
async fn a_model_missing_on_the_mirror_names_the_status_and_the_setting() {
    let model = model_bytes(1000);
    let setup = Setup::new(&model, model.clone(), Ranges::Honour).await;
    let catalog = setup.dir.path().join("catalog.json");
    let other =
        serde_json::json!({"models": [{"name": "elsewhere", "sha256": sha256_hex(&model)}]});
    std::fs::write(&catalog, other.to_string()).expect("catalog");

    let out = setup.run(&["model", "fetch", "elsewhere"]).await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("404") && stderr.contains("WHISPER_MODEL_BASE_URL"),
        "{stderr}"
    );
    assert_eq!(setup.ggml_files(), Vec::<String>::new());
}

#[tokio::test]
async fn an_unknown_model_name_exits_2_and_names_close_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    for args in [
        &["model", "fetch", "bsae"][..],
        &["model", "verify", "bsae"][..],
    ] {
        let out = webcall(dir.path(), args, &[("DATA_DIR", "data")])
            .output()
            .await
            .expect("run");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains("\"bsae\"") && stderr.contains("base"),
            "{stderr}"
        );
    }
    assert!(list_ggml(&dir.path().join("data/models")).is_empty());
}

#[tokio::test]
async fn a_whisper_model_name_resolves_under_data_dir_and_serve_says_how_to_fetch_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = webcall(
        dir.path(),
        &["serve"],
        &[
            ("PORT", "0"),
            ("DATA_DIR", "state"),
            ("WHISPER_MODEL", "base.en"),
        ],
    )
    .output()
    .await
    .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("WHISPER_MODEL")
            && stderr.contains("state/models/ggml-base.en.bin")
            && stderr.contains("`webcall model fetch base.en`"),
        "{stderr}"
    );
    assert!(
        !dir.path().join("state/jwt_secret").exists(),
        "stopped before writing anything"
    );
}
