//! What the transcriber produces.

/// Who is speaking on a track: the call's participant and the user behind it. The
/// transcriber only carries these through; the caller decides what they mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Speaker {
    pub participant: u64,
    pub user: i64,
}

/// One transcribed utterance. `start_ms`/`end_ms` are on the track's own clock: milliseconds
/// since the first audio of that track (or of the file).
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub speaker: Speaker,
    pub start_ms: u64,
    pub end_ms: u64,
    pub text: String,
}
