//! Tests with a real whisper model: the one `scripts/make-test-model.sh` converts from the
//! faster-whisper packages with `webcall import-model`. They need
//! `WEBCALL_TEST_WHISPER_MODEL` (CI sets it) and espeak-ng + sox; without the model they print
//! a skip, so the suite runs on a fresh machine, and fail under `WEBCALL_TEST_REQUIRE_ALL=1`.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use transcriber::vad::VadConfig;
use transcriber::whisper::{Whisper, WhisperConfig};

/// Speaks `text` with espeak-ng into a WAV at `rate` Hz.
fn speak(text: &str, rate: u32, dir: &Path, name: &str) -> PathBuf {
    let raw = dir.join(format!("{name}.espeak.wav"));
    let out = dir.join(format!("{name}.wav"));
    let ok = Command::new("espeak-ng")
        .args(["-v", "en-us", "-s", "150", "-w"])
        .arg(&raw)
        .arg(text)
        .status()
        .expect("espeak-ng runs (apt-get install espeak-ng)");
    assert!(ok.success());
    let ok = Command::new("sox")
        .arg(&raw)
        .args(["-r", &rate.to_string(), "-b", "16"])
        .arg(&out)
        .status()
        .expect("sox runs (apt-get install sox)");
    assert!(ok.success());
    out
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("webcall-tx-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

#[test]
fn the_converted_model_transcribes_an_espeak_sentence_with_the_expected_words() {
    let Some(model) = support::model() else {
        return;
    };
    let whisper = Whisper::load(
        &model,
        WhisperConfig {
            language: Some("en".to_owned()),
            languages: vec![],
            threads: 2,
        },
    )
    .expect("the converted model loads");
    let dir = scratch("model");
    let reference = "The quick brown fox jumps over the lazy dog.";
    let wav = speak(reference, 22_050, &dir, "fox");
    let segments = transcriber::file::transcribe_file(&wav, &whisper, VadConfig::default())
        .expect("transcribes");
    let text: Vec<&str> = segments.iter().map(|s| s.text.as_str()).collect();
    let text = text.join(" ");
    let wer = transcriber::wer::wer(reference, &text);
    eprintln!("heard {text:?}, WER {wer:.2}");
    for word in ["quick", "brown", "fox", "lazy", "dog"] {
        assert!(
            transcriber::wer::words(&text).iter().any(|w| w == word),
            "{word:?} missing from {text:?}"
        );
    }
    assert!(wer <= 0.3, "WER {wer} for {text:?}");
    let _ = std::fs::remove_dir_all(dir);
}
