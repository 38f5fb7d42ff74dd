//! 48 kHz -> 16 kHz with rubato's FFT resampler (a proper anti-aliasing low-pass; plain
//! decimation would fold 8-24 kHz energy into the speech band).

use rubato::{FftFixedIn, Resampler as _};

use crate::Error;

/// 20 ms at 48 kHz: one Opus frame in, 320 samples out.
const CHUNK_IN: usize = 960;

/// A streaming resampler: push any amount of 48 kHz audio, get 16 kHz audio back.
pub struct Resampler {
    inner: FftFixedIn<f32>,
    pending: Vec<f32>,
    /// Output samples still to drop: the filter's delay, so output time 0 is input time 0.
    delay: usize,
    from: u32,
}

impl std::fmt::Debug for Resampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resampler")
            .field("from", &self.from)
            .finish_non_exhaustive()
    }
}

impl Resampler {
    /// A resampler from `from` Hz to 16 kHz.
    ///
    /// # Errors
    /// [`Error::Resample`] for a rate rubato can't handle.
    pub fn new(from: u32) -> Result<Self, Error> {
        let chunk = (from as usize / 50).max(1);
        let inner = FftFixedIn::new(from as usize, crate::WHISPER_RATE as usize, chunk, 1, 1)
            .map_err(|e| Error::Resample(e.to_string()))?;
        let delay = inner.output_delay();
        Ok(Self {
            inner,
            pending: Vec::with_capacity(CHUNK_IN * 2),
            delay,
            from,
        })
    }

    /// Appends 16 kHz output for `input` to `out`. Audio shorter than one 20 ms chunk waits
    /// for the next call.
    ///
    /// # Errors
    /// [`Error::Resample`] (not expected with fixed-size chunks).
    pub fn process(&mut self, input: &[f32], out: &mut Vec<f32>) -> Result<(), Error> {
        self.pending.extend_from_slice(input);
        let need = self.inner.input_frames_next();
        let mut used = 0;
        while self.pending.len() - used >= need {
            let chunk = &self.pending[used..used + need];
            let res = self
                .inner
                .process(&[chunk], None)
                .map_err(|e| Error::Resample(e.to_string()))?;
            used += need;
            let produced = res.into_iter().next().unwrap_or_default();
            let skip = self.delay.min(produced.len());
            self.delay -= skip;
            out.extend_from_slice(&produced[skip..]);
        }
        self.pending.drain(..used);
        Ok(())
    }

    /// Flushes buffered input (padded with silence) at the end of a stream.
    ///
    /// # Errors
    /// As [`Resampler::process`].
    pub fn finish(&mut self, out: &mut Vec<f32>) -> Result<(), Error> {
        let need = self.inner.input_frames_next();
        let pad = need - self.pending.len() % need + need * 2;
        self.process(&vec![0.0; pad], out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_at_48k_becomes_a_second_at_16k_with_the_tone_kept() {
        let mut r = Resampler::new(48_000).expect("resampler");
        let tone: Vec<f32> = (0..48_000)
            .map(|i| (i as f32 * 1_000.0 * std::f32::consts::TAU / 48_000.0).sin() * 0.5)
            .collect();
        let mut out = Vec::new();
        for chunk in tone.chunks(700) {
            r.process(chunk, &mut out).expect("process");
        }
        assert!((15_500..=16_000).contains(&out.len()), "{}", out.len());
        let rms = (out[2_000..14_000].iter().map(|s| s * s).sum::<f32>() / 12_000.0).sqrt();
        assert!((rms - 0.5 / 2f32.sqrt()).abs() < 0.02, "rms {rms}");
    }

    #[test]
    fn a_tone_above_8k_is_filtered_out_not_aliased() {
        let mut r = Resampler::new(48_000).expect("resampler");
        let tone: Vec<f32> = (0..48_000)
            .map(|i| (i as f32 * 12_000.0 * std::f32::consts::TAU / 48_000.0).sin() * 0.5)
            .collect();
        let mut out = Vec::new();
        r.process(&tone, &mut out).expect("process");
        let rms = (out[2_000..14_000].iter().map(|s| s * s).sum::<f32>() / 12_000.0).sqrt();
        assert!(rms < 0.01, "rms {rms}");
    }
}
