//! An Opus-encoded sine tone, one 20 ms frame at a time: real Opus payloads with real
//! audio energy, so receivers (and browsers) can check that sound arrived.

use opus::{Application, Channels, Encoder};

pub const SAMPLE_RATE: u32 = 48_000;
pub const FRAME_SAMPLES: usize = 960;

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
