//! The CTranslate2 Whisper importer (`transcriber::ggml::convert_bytes`, behind
//! `webcall model import`) on an arbitrary `model.bin` with a well-formed vocabulary: it
//! must refuse what it can't convert with an error, never panic, and never allocate more
//! than the file's size warrants. The output is discarded.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

fn vocabulary() -> &'static str {
    static VOCAB: OnceLock<String> = OnceLock::new();
    VOCAB.get_or_init(|| "!\n".repeat(50_257))
}

fuzz_target!(|data: &[u8]| {
    let _ = transcriber::ggml::convert_bytes(data, vocabulary(), || Ok(std::io::sink()));
});
