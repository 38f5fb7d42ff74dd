//! What the model tests share: the test model's path, or a skip that CI turns into a failure.

use std::path::PathBuf;

/// The real model (`WEBCALL_TEST_WHISPER_MODEL`, built by `scripts/make-test-model.sh`), or
/// `None` with a printed skip. Under `WEBCALL_TEST_REQUIRE_ALL=1` (`.ci/run` sets it) a
/// missing model is a failure that names the variable.
pub fn model() -> Option<PathBuf> {
    let model = std::env::var_os("WEBCALL_TEST_WHISPER_MODEL").map(PathBuf::from);
    if model.is_none() {
        let why = "WEBCALL_TEST_WHISPER_MODEL is not set (scripts/make-test-model.sh)";
        assert!(
            std::env::var("WEBCALL_TEST_REQUIRE_ALL").as_deref() != Ok("1"),
            "WEBCALL_TEST_REQUIRE_ALL=1 but this test can't run: {why}"
        );
        eprintln!("skipped: {why}");
    }
    model
}
