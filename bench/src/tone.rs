//! An Opus-encoded sine tone, one 20 ms frame at a time: real Opus payloads with real
//! audio energy, so receivers (and browsers) can check that sound arrived.

use opus::{Application, Channels, Encoder};

pub const SAMPLE_RATE: u32 = 48_000;
pub const FRAME_SAMPLES: usize = 960;
/// The loss a speech source's encoder plans its in-band FEC for.
pub const EXPECTED_LOSS_PERCENT: i32 = 10;

pub struct ToneSource {
    encoder: Encoder,
    frequency: f32,
    phase: f32,
    buf: Vec<u8>,
}

impl ToneSource {
    /// # Errors
    /// When libopus refuses the encoder settings.
    pub fn new(frequency: f32) -> Result<Self, opus::Error> {
        let mut encoder = Encoder::new(SAMPLE_RATE, Channels::Mono, Application::Voip)?;
        encoder.set_inband_fec(true)?;
        Ok(Self {
            encoder,
            frequency,
            phase: 0.0,
            buf: vec![0; 1500],
        })
    }

    /// The next 20 ms frame, encoded.
    ///
    /// # Errors
    /// When libopus fails to encode.
    pub fn next_frame(&mut self) -> Result<Vec<u8>, opus::Error> {
        let step = std::f32::consts::TAU * self.frequency / SAMPLE_RATE as f32;
        let mut pcm = [0i16; FRAME_SAMPLES];
        for sample in &mut pcm {
            *sample = (self.phase.sin() * 8000.0) as i16;
            self.phase = (self.phase + step) % std::f32::consts::TAU;
        }
        let n = self.encoder.encode(&pcm, &mut self.buf)?;
        Ok(self.buf[..n].to_vec())
    }
}

/// Something that produces one Opus frame (20 ms, 48 kHz mono) at a time.
pub trait FrameSource: Send + 'static {
    /// The next frame, encoded.
    ///
    /// # Errors
    /// When libopus fails to encode.
    fn next_frame(&mut self) -> Result<Vec<u8>, opus::Error>;
}

impl FrameSource for ToneSource {
    fn next_frame(&mut self) -> Result<Vec<u8>, opus::Error> {
        ToneSource::next_frame(self)
    }
}

/// No sound at all: the source of a receive-only client, which never sends a frame.
pub struct SilenceSource;

impl FrameSource for SilenceSource {
    fn next_frame(&mut self) -> Result<Vec<u8>, opus::Error> {
        Ok(Vec::new())
    }
}

/// Controls a [`PcmSource`] from outside the client: start playing, see when it started.
#[derive(Debug, Clone, Default)]
pub struct PcmHandle {
    state: std::sync::Arc<std::sync::Mutex<PcmState>>,
}

#[derive(Debug, Default)]
struct PcmState {
    play: bool,
    started: Option<std::time::Instant>,
    finished: Option<std::time::Instant>,
}

impl PcmHandle {
    /// Starts the audio (until then the source sends silence).
    pub fn play(&self) {
        if let Ok(mut s) = self.state.lock() {
            s.play = true;
        }
    }

    /// When the first frame of the audio was encoded.
    pub fn started(&self) -> Option<std::time::Instant> {
        self.state.lock().ok().and_then(|s| s.started)
    }

    /// When the last frame of the audio was encoded.
    pub fn finished(&self) -> Option<std::time::Instant> {
        self.state.lock().ok().and_then(|s| s.finished)
    }
}

/// Opus-encoded PCM (48 kHz mono), e.g. speech from a WAV file: silence until
/// [`PcmHandle::play`], then the audio once, then silence again.
pub struct PcmSource {
    encoder: Encoder,
    pcm: Vec<i16>,
    pos: usize,
    handle: PcmHandle,
    buf: Vec<u8>,
}

impl PcmSource {
    /// # Errors
    /// When libopus refuses the encoder settings.
    pub fn new(pcm: Vec<i16>) -> Result<(Self, PcmHandle), opus::Error> {
        let mut encoder = Encoder::new(SAMPLE_RATE, Channels::Mono, Application::Voip)?;
        encoder.set_inband_fec(true)?;
        // libopus adds FEC only for the loss it expects; a browser's encoder expects what the
        // SFU's receiver reports show. This client reads no reports, so it expects some loss
        // up front, as a browser on a poor link would after its first reports.
        encoder.set_packet_loss_perc(EXPECTED_LOSS_PERCENT)?;
        encoder.set_bitrate(opus::Bitrate::Bits(32_000))?;
        let handle = PcmHandle::default();
        Ok((
            Self {
                encoder,
                pcm,
                pos: 0,
                handle: handle.clone(),
                buf: vec![0; 1500],
            },
            handle,
        ))
    }

    /// Reads a 48 kHz WAV file (16-bit; stereo is mixed down).
    ///
    /// # Errors
    /// When the file can't be read or isn't 48 kHz 16-bit PCM.
    pub fn read_wav(path: &std::path::Path) -> Result<Vec<i16>, std::io::Error> {
        let bad = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
        let mut reader = hound::WavReader::open(path).map_err(|e| bad(e.to_string()))?;
        let spec = reader.spec();
        if spec.sample_rate != SAMPLE_RATE || spec.bits_per_sample != 16 {
            return Err(bad(format!(
                "{}: need 48 kHz 16-bit PCM, got {} Hz {} bit",
                path.display(),
                spec.sample_rate,
                spec.bits_per_sample
            )));
        }
        let channels = usize::from(spec.channels.max(1));
        let samples: Vec<i16> = reader
            .samples::<i16>()
            .collect::<Result<_, _>>()
            .map_err(|e| bad(e.to_string()))?;
        Ok(samples
            .chunks(channels)
            .map(|c| (c.iter().map(|s| i32::from(*s)).sum::<i32>() / channels as i32) as i16)
            .collect())
    }
}

impl FrameSource for PcmSource {
    fn next_frame(&mut self) -> Result<Vec<u8>, opus::Error> {
        let mut frame = [0i16; FRAME_SAMPLES];
        let playing = self.handle.state.lock().map(|s| s.play).unwrap_or(false);
        if playing && self.pos < self.pcm.len() {
            let end = (self.pos + FRAME_SAMPLES).min(self.pcm.len());
            frame[..end - self.pos].copy_from_slice(&self.pcm[self.pos..end]);
            if let Ok(mut s) = self.handle.state.lock() {
                let now = std::time::Instant::now();
                s.started.get_or_insert(now);
                if end == self.pcm.len() {
                    s.finished = Some(now);
                }
            }
            self.pos = end;
        }
        let n = self.encoder.encode(&frame, &mut self.buf)?;
        Ok(self.buf[..n].to_vec())
    }
}
