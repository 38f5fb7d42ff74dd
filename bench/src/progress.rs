//! Progress bars on stderr while a load run joins and measures, so a long sweep shows where it
//! is. Hidden when stderr is not a terminal (CI, `scripts/side-by-side.sh` logs): the JSON on
//! stdout is the result either way.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

fn bar(len: u64, message: &str, template: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr())
        .with_message(message.to_owned());
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.enable_steady_tick(Duration::from_millis(250));
    bar
}

/// Participants joined (or connected) out of `total`.
pub fn participants(message: &str, total: usize) -> ProgressBar {
    bar(
        total as u64,
        message,
        "{msg:>12} [{bar:30}] {pos}/{len} participants {elapsed}",
    )
}

/// The measurement window, in seconds.
pub fn window(seconds: u64) -> ProgressBar {
    bar(seconds, "measuring", "{msg:>12} [{bar:30}] {pos}/{len} s")
}
