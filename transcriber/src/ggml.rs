//! faster-whisper (CTranslate2) Whisper model folder -> whisper.cpp ggml model file.
//!
//! Input: a folder with `model.bin` (CTranslate2 `WhisperSpec`) and `vocabulary.txt`.
//! Output: the file whisper.cpp 1.8 loads: magic, 11 hyper-parameters, the Slaney mel
//! filterbank (computed here, as librosa does for 16 kHz, n_fft 400), the 50,257 ordinary
//! tokens as raw bytes, then the 245 tensors (for base) under whisper.cpp's names. 2-D
//! weights, the token embedding and conv kernels are f16; conv biases become `(n_state, 1)`
//! f32; positional embeddings and 1-D tensors are f32. CTranslate2 fuses Q/K/V (self
//! attention) and K/V (cross attention) along rows; they are split here, and the all-zero
//! key bias is dropped because whisper.cpp has none.
//!
//! Production deployments should download the official ggml models instead; this exists so a
//! machine with only a package index can build a real model for tests.

use std::collections::HashMap;
use std::io::{BufWriter, Write};
use std::path::Path;

use crate::Error;

const GGML_MAGIC: u32 = 0x6767_6d6c;
const CT2_FLOAT32: u8 = 0;
const CT2_FLOAT16: u8 = 4;
/// Ordinary (non-special) tokens; whisper.cpp adds the special and timestamp tokens.
const ORDINARY_TOKENS: usize = 50_257;
const N_FFT: usize = 400;
const SAMPLE_RATE: f64 = 16_000.0;
/// Whisper models have 80 mel bins (128 for large-v3); far more is a broken file.
const MAX_MELS: usize = 1024;

#[derive(Debug)]
struct Var<'a> {
    dims: Vec<usize>,
    dtype: u8,
    data: &'a [u8],
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|end| *end <= self.buf.len())
            .ok_or_else(|| Error::Format("model.bin ends early".to_owned()))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, Error> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, Error> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, Error> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    /// A uint16-length-prefixed, NUL-terminated string.
    fn name(&mut self) -> Result<String, Error> {
        let n = usize::from(self.u16()?);
        let raw = self.take(n)?;
        let raw = raw.strip_suffix(&[0]).unwrap_or(raw);
        String::from_utf8(raw.to_vec()).map_err(|_| Error::Format("non-UTF-8 name".to_owned()))
    }
}

fn parse_ct2(buf: &[u8]) -> Result<HashMap<String, Var<'_>>, Error> {
    let mut r = Reader { buf, pos: 0 };
    let version = r.u32()?;
    if !(5..=6).contains(&version) {
        return Err(Error::Format(format!(
            "CTranslate2 binary version {version} (expected 5 or 6)"
        )));
    }
    let spec = r.name()?;
    if spec != "WhisperSpec" {
        return Err(Error::Format(format!("a {spec}, not a WhisperSpec")));
    }
    let _revision = r.u32()?;
    let count = r.u32()?;
    let mut vars = HashMap::new();
    for _ in 0..count {
        let name = r.name()?;
        let rank = r.u8()?;
        let dims = (0..rank)
            .map(|_| r.u32().map(|d| d as usize))
            .collect::<Result<Vec<_>, _>>()?;
        let dtype = r.u8()?;
        let bytes = r.u32()? as usize;
        let data = r.take(bytes)?;
        vars.insert(name, Var { dims, dtype, data });
    }
    // Aliases (decoder/projection/weight -> decoder/embeddings/weight) name nothing we need.
    Ok(vars)
}

/// GPT-2's byte-to-unicode table, inverted: the token strings in vocabulary.txt spell each
/// byte as a printable character.
fn unicode_to_byte() -> HashMap<char, u8> {
    let mut printable: Vec<u32> = (u32::from('!')..=u32::from('~')).collect();
    printable.extend(0xA1..=0xAC);
    printable.extend(0xAE..=0xFF);
    let mut map = HashMap::new();
    let mut extra = 0;
    for b in 0..=255u32 {
        let c = if printable.contains(&b) {
            b
        } else {
            extra += 1;
            255 + extra
        };
        if let Some(c) = char::from_u32(c) {
            map.insert(c, b as u8);
        }
    }
    map
}

/// Decodes one vocabulary entry to the token's bytes.
///
/// # Errors
/// [`Error::Format`] for a character outside GPT-2's byte alphabet.
pub fn token_bytes(token: &str) -> Result<Vec<u8>, Error> {
    thread_local! {
        static MAP: HashMap<char, u8> = unicode_to_byte();
    }
    MAP.with(|map| {
        token
            .chars()
            .map(|c| {
                map.get(&c)
                    .copied()
                    .ok_or_else(|| Error::Format(format!("token character {c:?}")))
            })
            .collect()
    })
}

fn hz_to_mel(f: f64) -> f64 {
    let f_sp = 200.0 / 3.0;
    let min_log_hz = 1000.0;
    let min_log_mel = min_log_hz / f_sp;
    let logstep = 6.4f64.ln() / 27.0;
    if f >= min_log_hz {
        min_log_mel + (f / min_log_hz).ln() / logstep
    } else {
        f / f_sp
    }
}

fn mel_to_hz(m: f64) -> f64 {
    let f_sp = 200.0 / 3.0;
    let min_log_hz = 1000.0;
    let min_log_mel = min_log_hz / f_sp;
    let logstep = 6.4f64.ln() / 27.0;
    if m >= min_log_mel {
        min_log_hz * (logstep * (m - min_log_mel)).exp()
    } else {
        f_sp * m
    }
}

/// librosa's `filters.mel(sr=16000, n_fft=400, n_mels)` (Slaney scale and norm): `n_mels`
/// rows of 201 weights, row-major.
pub fn mel_filters(n_mels: usize) -> Vec<f32> {
    let bins = N_FFT / 2 + 1;
    let fft_freqs: Vec<f64> = (0..bins)
        .map(|i| i as f64 * SAMPLE_RATE / N_FFT as f64)
        .collect();
    let (lo, hi) = (hz_to_mel(0.0), hz_to_mel(SAMPLE_RATE / 2.0));
    let mel_f: Vec<f64> = (0..n_mels + 2)
        .map(|i| mel_to_hz(lo + (hi - lo) * i as f64 / (n_mels + 1) as f64))
        .collect();
    let mut out = Vec::with_capacity(n_mels * bins);
    for i in 0..n_mels {
        let (d0, d1) = (mel_f[i + 1] - mel_f[i], mel_f[i + 2] - mel_f[i + 1]);
        let enorm = 2.0 / (mel_f[i + 2] - mel_f[i]);
        for f in &fft_freqs {
            let lower = (f - mel_f[i]) / d0;
            let upper = (mel_f[i + 2] - f) / d1;
            out.push((lower.min(upper).max(0.0) * enorm) as f32);
        }
    }
    out
}

/// IEEE half from single precision, rounding to nearest even.
fn f32_to_f16(x: f32) -> u16 {
    let bits = x.to_bits();
    let sign = ((bits >> 16) & 0x8000) as u16;
    let exp = ((bits >> 23) & 0xff) as i32;
    let man = bits & 0x7f_ffff;
    if exp == 0xff {
        return sign | 0x7c00 | if man != 0 { 0x200 } else { 0 };
    }
    let e = exp - 127 + 15;
    if e >= 0x1f {
        return sign | 0x7c00;
    }
    if e <= 0 {
        if e < -10 {
            return sign;
        }
        let man = man | 0x80_0000;
        let shift = (14 - e) as u32;
        let half = man >> shift;
        let rem = man & ((1 << shift) - 1);
        let mid = 1 << (shift - 1);
        let round = u32::from(rem > mid || (rem == mid && half & 1 == 1));
        return sign | (half + round) as u16;
    }
    let half = ((e as u32) << 10) | (man >> 13);
    let rem = man & 0x1fff;
    let round = u32::from(rem > 0x1000 || (rem == 0x1000 && half & 1 == 1));
    sign | (half + round) as u16
}

fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h & 0x8000) << 16;
    let exp = u32::from((h >> 10) & 0x1f);
    let man = u32::from(h & 0x3ff);
    let bits = match (exp, man) {
        (0, 0) => sign,
        (0, _) => {
            // Subnormal: normalise.
            let mut e = 127 - 15 + 1;
            let mut m = man;
            while m & 0x400 == 0 {
                m <<= 1;
                e -= 1;
            }
            sign | (e << 23) | ((m & 0x3ff) << 13)
        }
        (0x1f, _) => sign | 0x7f80_0000 | (man << 13),
        _ => sign | ((exp + 127 - 15) << 23) | (man << 13),
    };
    f32::from_bits(bits)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Out {
    F32,
    F16,
}

struct Writer<W: Write> {
    w: W,
    tensors: usize,
}

impl<W: Write> Writer<W> {
    fn i32(&mut self, v: i32) -> Result<(), Error> {
        Ok(self.w.write_all(&v.to_le_bytes())?)
    }

    /// Writes `data` (a CT2 variable's elements `range`, with logical `dims`) as `name`.
    fn tensor(
        &mut self,
        name: &str,
        var: &Var<'_>,
        rows: Option<(usize, usize)>,
        dims: &[usize],
        out: Out,
    ) -> Result<(), Error> {
        let width = match var.dtype {
            CT2_FLOAT16 => 2,
            CT2_FLOAT32 => 4,
            other => {
                return Err(Error::Format(format!(
                    "{name}: CTranslate2 dtype {other} (only float16 and float32 models)"
                )))
            }
        };
        let elements = |dims: &[usize]| dims.iter().try_fold(1usize, |n, d| n.checked_mul(*d));
        let total = elements(&var.dims)
            .map(|n| n.max(1))
            .filter(|n| n.checked_mul(width) == Some(var.data.len()))
            .ok_or_else(|| Error::Format(format!("{name}: size does not match its shape")))?;
        let row_len = total / var.dims.first().copied().unwrap_or(1).max(1);
        let (from, to) = rows.unwrap_or((0, var.dims.first().copied().unwrap_or(1)));
        // No overflow: a row is at most the whole variable. A split (fused Q/K/V, K/V) past
        // the variable's rows is a broken file.
        let row_bytes = row_len * width;
        let slice = from
            .checked_mul(row_bytes)
            .zip(to.checked_mul(row_bytes))
            .and_then(|(a, b)| var.data.get(a..b))
            .ok_or_else(|| Error::Format(format!("{name}: rows {from}..{to} out of range")))?;
        if elements(dims).and_then(|n| n.checked_mul(width)) != Some(slice.len()) {
            return Err(Error::Format(format!("{name}: bad split")));
        }
        self.i32(dims.len() as i32)?;
        self.i32(name.len() as i32)?;
        self.i32(match out {
            Out::F32 => 0,
            Out::F16 => 1,
        })?;
        for d in dims.iter().rev() {
            self.i32(*d as i32)?;
        }
        self.w.write_all(name.as_bytes())?;
        match (var.dtype, out) {
            (CT2_FLOAT16, Out::F16) | (CT2_FLOAT32, Out::F32) => self.w.write_all(slice)?,
            (CT2_FLOAT16, Out::F32) => {
                for c in slice.chunks_exact(2) {
                    let v = f16_to_f32(u16::from_le_bytes([c[0], c[1]]));
                    self.w.write_all(&v.to_le_bytes())?;
                }
            }
            _ => {
                for c in slice.chunks_exact(4) {
                    let v = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                    self.w.write_all(&f32_to_f16(v).to_le_bytes())?;
                }
            }
        }
        self.tensors += 1;
        Ok(())
    }
}

/// What [`convert`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Converted {
    pub tensors: usize,
    pub audio_layers: usize,
    pub text_layers: usize,
    pub multilingual: bool,
}

fn scalar_u16(vars: &HashMap<String, Var<'_>>, name: &str) -> Result<usize, Error> {
    let v = vars
        .get(name)
        .ok_or_else(|| Error::Format(format!("missing {name}")))?;
    match v.data {
        [a, b, ..] => Ok(usize::from(u16::from_le_bytes([*a, *b]))),
        _ => Err(Error::Format(format!("{name}: not a scalar"))),
    }
}

/// Converts the faster-whisper folder `from` into the ggml file `out`.
///
/// # Errors
/// [`Error::Io`] for unreadable or unwritable files, [`Error::Format`] for a model this
/// converter does not understand.
pub fn convert(from: &Path, out: &Path) -> Result<Converted, Error> {
    let bin = std::fs::read(from.join("model.bin"))?;
    let vocab = std::fs::read_to_string(from.join("vocabulary.txt"))?;
    convert_bytes(&bin, &vocab, || Ok(std::fs::File::create(out)?))
}

/// [`convert`] on the contents of `model.bin` and `vocabulary.txt`. `open` is called for the
/// output once the model's shape has been read, so a model refused that early leaves no file.
///
/// # Errors
/// [`Error::Format`] for a model this converter does not understand, whatever `open` or
/// writing to its output returns.
pub fn convert_bytes<W: Write>(
    bin: &[u8],
    vocab: &str,
    open: impl FnOnce() -> Result<W, Error>,
) -> Result<Converted, Error> {
    let vars = parse_ct2(bin)?;
    let get = |name: &str| {
        vars.get(name)
            .ok_or_else(|| Error::Format(format!("missing {name}")))
    };
    let layers = |prefix: &str| {
        (0..)
            .take_while(|n| vars.contains_key(&format!("{prefix}/layer_{n}/ffn/linear_0/weight")))
            .count()
    };
    let (n_audio_layer, n_text_layer) = (layers("encoder"), layers("decoder"));
    let conv1 = get("encoder/conv1/weight")?;
    let emb = get("decoder/embeddings/weight")?;
    let enc_pos = get("encoder/position_encodings/encodings")?;
    let dec_pos = get("decoder/position_encodings/encodings")?;
    let dim = |v: &Var<'_>, i: usize| v.dims.get(i).copied().unwrap_or(0);
    let (n_state, n_mels) = (dim(conv1, 0), dim(conv1, 1));
    let n_vocab = dim(emb, 0);
    let n_text_state = dim(emb, 1);
    let hparams = [
        n_vocab,
        dim(enc_pos, 0),
        n_state,
        scalar_u16(&vars, "encoder/num_heads")?,
        n_audio_layer,
        dim(dec_pos, 0),
        n_text_state,
        scalar_u16(&vars, "decoder/num_heads")?,
        n_text_layer,
        n_mels,
        1, // ftype: mostly f16
    ];
    if n_audio_layer == 0 || n_text_layer == 0 || n_state == 0 || n_mels == 0 {
        return Err(Error::Format("no encoder or decoder layers".to_owned()));
    }
    // The filterbank is computed (n_mels x 201 floats) before any tensor is checked against
    // its data, so a forged shape would otherwise size it.
    if n_mels > MAX_MELS {
        return Err(Error::Format(format!(
            "{n_mels} mel bins (at most {MAX_MELS})"
        )));
    }

    let mut w = Writer {
        w: BufWriter::new(open()?),
        tensors: 0,
    };
    w.i32(GGML_MAGIC as i32)?;
    for h in hparams {
        w.i32(h as i32)?;
    }
    w.i32(n_mels as i32)?;
    w.i32((N_FFT / 2 + 1) as i32)?;
    for v in mel_filters(n_mels) {
        w.w.write_all(&v.to_le_bytes())?;
    }
    // Split on '\n' only: token 50256 is an empty line and a real token.
    let tokens: Vec<&str> = vocab.split('\n').take(ORDINARY_TOKENS).collect();
    if tokens.len() < ORDINARY_TOKENS {
        return Err(Error::Format(format!(
            "vocabulary.txt has {} tokens, expected at least {ORDINARY_TOKENS}",
            tokens.len()
        )));
    }
    w.i32(ORDINARY_TOKENS as i32)?;
    for t in tokens {
        let bytes = token_bytes(t)?;
        w.i32(bytes.len() as i32)?;
        w.w.write_all(&bytes)?;
    }

    use Out::{F16, F32};
    let s = n_state;
    w.tensor("encoder.conv1.weight", conv1, None, &conv1.dims, F16)?;
    let b1 = get("encoder/conv1/bias")?;
    w.tensor("encoder.conv1.bias", b1, None, &[s, 1], F32)?;
    let c2 = get("encoder/conv2/weight")?;
    w.tensor("encoder.conv2.weight", c2, None, &c2.dims, F16)?;
    let b2 = get("encoder/conv2/bias")?;
    w.tensor("encoder.conv2.bias", b2, None, &[s, 1], F32)?;
    w.tensor(
        "encoder.positional_embedding",
        enc_pos,
        None,
        &enc_pos.dims,
        F32,
    )?;

    // (ggml name, CT2 name) for a layer norm / linear.
    let norm = |w: &mut Writer<_>, to: &str, from: &str| -> Result<(), Error> {
        let g = get(&format!("{from}/gamma"))?;
        let b = get(&format!("{from}/beta"))?;
        w.tensor(&format!("{to}.weight"), g, None, &g.dims, F32)?;
        w.tensor(&format!("{to}.bias"), b, None, &b.dims, F32)
    };
    let linear = |w: &mut Writer<_>,
                  to: &str,
                  from: &str,
                  rows: Option<(usize, usize)>,
                  bias: bool|
     -> Result<(), Error> {
        let wt = get(&format!("{from}/weight"))?;
        let cols = dim(wt, 1);
        let n = rows.map_or(dim(wt, 0), |(a, b)| b - a);
        w.tensor(&format!("{to}.weight"), wt, rows, &[n, cols], F16)?;
        if bias {
            let b = get(&format!("{from}/bias"))?;
            w.tensor(&format!("{to}.bias"), b, rows, &[n], F32)?;
        }
        Ok(())
    };
    let attn = |w: &mut Writer<_>, to: &str, qkv: &str, out: &str| -> Result<(), Error> {
        linear(w, &format!("{to}.query"), qkv, Some((0, s)), true)?;
        linear(w, &format!("{to}.key"), qkv, Some((s, 2 * s)), false)?;
        linear(w, &format!("{to}.value"), qkv, Some((2 * s, 3 * s)), true)?;
        linear(w, &format!("{to}.out"), out, None, true)
    };
    let mlp = |w: &mut Writer<_>, to: &str, from: &str| -> Result<(), Error> {
        linear(
            w,
            &format!("{to}.mlp.0"),
            &format!("{from}/ffn/linear_0"),
            None,
            true,
        )?;
        linear(
            w,
            &format!("{to}.mlp.2"),
            &format!("{from}/ffn/linear_1"),
            None,
            true,
        )
    };
    for n in 0..n_audio_layer {
        let (to, from) = (format!("encoder.blocks.{n}"), format!("encoder/layer_{n}"));
        norm(
            &mut w,
            &format!("{to}.attn_ln"),
            &format!("{from}/self_attention/layer_norm"),
        )?;
        attn(
            &mut w,
            &format!("{to}.attn"),
            &format!("{from}/self_attention/linear_0"),
            &format!("{from}/self_attention/linear_1"),
        )?;
        norm(
            &mut w,
            &format!("{to}.mlp_ln"),
            &format!("{from}/ffn/layer_norm"),
        )?;
        mlp(&mut w, &to, &from)?;
    }
    norm(&mut w, "encoder.ln_post", "encoder/layer_norm")?;

    w.tensor("decoder.token_embedding.weight", emb, None, &emb.dims, F16)?;
    w.tensor(
        "decoder.positional_embedding",
        dec_pos,
        None,
        &dec_pos.dims,
        F32,
    )?;
    let ts = n_text_state;
    for n in 0..n_text_layer {
        let (to, from) = (format!("decoder.blocks.{n}"), format!("decoder/layer_{n}"));
        norm(
            &mut w,
            &format!("{to}.attn_ln"),
            &format!("{from}/self_attention/layer_norm"),
        )?;
        attn(
            &mut w,
            &format!("{to}.attn"),
            &format!("{from}/self_attention/linear_0"),
            &format!("{from}/self_attention/linear_1"),
        )?;
        norm(
            &mut w,
            &format!("{to}.cross_attn_ln"),
            &format!("{from}/attention/layer_norm"),
        )?;
        let ca = format!("{to}.cross_attn");
        linear(
            &mut w,
            &format!("{ca}.query"),
            &format!("{from}/attention/linear_0"),
            None,
            true,
        )?;
        let kv = format!("{from}/attention/linear_1");
        linear(&mut w, &format!("{ca}.key"), &kv, Some((0, ts)), false)?;
        linear(
            &mut w,
            &format!("{ca}.value"),
            &kv,
            Some((ts, 2 * ts)),
            true,
        )?;
        linear(
            &mut w,
            &format!("{ca}.out"),
            &format!("{from}/attention/linear_2"),
            None,
            true,
        )?;
        norm(
            &mut w,
            &format!("{to}.mlp_ln"),
            &format!("{from}/ffn/layer_norm"),
        )?;
        mlp(&mut w, &to, &from)?;
    }
    norm(&mut w, "decoder.ln", "decoder/layer_norm")?;
    w.w.flush()?;
    Ok(Converted {
        tensors: w.tensors,
        audio_layers: n_audio_layer,
        text_layers: n_text_layer,
        multilingual: n_vocab >= 51_865,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One CTranslate2 variable: name, dims, dtype, data.
    type Ct2Var = (String, Vec<u32>, u8, Vec<u8>);

    /// The smallest WhisperSpec the importer converts: one encoder and one decoder layer of
    /// width 2, 2 mel bins, 3 vocabulary rows (`fuzz/seeds/ct2_import/tiny_whisper.bin`).
    fn tiny_whisper() -> Vec<Ct2Var> {
        let (s, mels) = (2u32, 2u32);
        let mut vars: Vec<Ct2Var> = Vec::new();
        let mut t = |name: &str, dims: &[u32], dtype: u8| {
            let width = if dtype == CT2_FLOAT16 { 2 } else { 4 };
            let n = dims.iter().product::<u32>() as usize * width;
            let data = (0..n).map(|i| (i * 7 % 251) as u8).collect();
            vars.push((name.to_owned(), dims.to_vec(), dtype, data));
        };
        let (f16, f32) = (CT2_FLOAT16, CT2_FLOAT32);
        t("encoder/conv1/weight", &[s, mels, 3], f16);
        t("encoder/conv1/bias", &[s], f32);
        t("encoder/conv2/weight", &[s, s, 3], f16);
        t("encoder/conv2/bias", &[s], f32);
        t("encoder/position_encodings/encodings", &[2, s], f32);
        t("decoder/embeddings/weight", &[3, s], f16);
        t("decoder/position_encodings/encodings", &[2, s], f32);
        let norms = [
            "encoder/layer_norm",
            "decoder/layer_norm",
            "encoder/layer_0/self_attention/layer_norm",
            "encoder/layer_0/ffn/layer_norm",
            "decoder/layer_0/self_attention/layer_norm",
            "decoder/layer_0/attention/layer_norm",
            "decoder/layer_0/ffn/layer_norm",
        ];
        for norm in norms {
            t(&format!("{norm}/gamma"), &[s], f32);
            t(&format!("{norm}/beta"), &[s], f32);
        }
        let linears = [
            ("encoder/layer_0/self_attention/linear_0", 3 * s, s),
            ("encoder/layer_0/self_attention/linear_1", s, s),
            ("encoder/layer_0/ffn/linear_0", 4 * s, s),
            ("encoder/layer_0/ffn/linear_1", s, 4 * s),
            ("decoder/layer_0/self_attention/linear_0", 3 * s, s),
            ("decoder/layer_0/self_attention/linear_1", s, s),
            ("decoder/layer_0/attention/linear_0", s, s),
            ("decoder/layer_0/attention/linear_1", 2 * s, s),
            ("decoder/layer_0/attention/linear_2", s, s),
            ("decoder/layer_0/ffn/linear_0", 4 * s, s),
            ("decoder/layer_0/ffn/linear_1", s, 4 * s),
        ];
        for (linear, rows, cols) in linears {
            t(&format!("{linear}/weight"), &[rows, cols], f16);
            t(&format!("{linear}/bias"), &[rows], f32);
        }
        for heads in ["encoder/num_heads", "decoder/num_heads"] {
            vars.push((heads.to_owned(), vec![], 2, 1u16.to_le_bytes().to_vec()));
        }
        vars
    }

    /// `vars` as a version 6 `model.bin`.
    fn model_bin(vars: &[Ct2Var]) -> Vec<u8> {
        let name = |out: &mut Vec<u8>, s: &str| {
            out.extend_from_slice(&(s.len() as u16 + 1).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
            out.push(0);
        };
        let mut out = 6u32.to_le_bytes().to_vec();
        name(&mut out, "WhisperSpec");
        out.extend_from_slice(&1u32.to_le_bytes());
        out.extend_from_slice(&(vars.len() as u32).to_le_bytes());
        for (var, dims, dtype, data) in vars {
            name(&mut out, var);
            out.push(dims.len() as u8);
            for d in dims {
                out.extend_from_slice(&d.to_le_bytes());
            }
            out.push(*dtype);
            out.extend_from_slice(&(data.len() as u32).to_le_bytes());
            out.extend_from_slice(data);
        }
        out
    }

    /// Converts `vars` with a well-formed vocabulary into memory.
    fn import(vars: &[Ct2Var]) -> Result<(Converted, Vec<u8>), Error> {
        let vocab = "!\n".repeat(ORDINARY_TOKENS);
        let mut out = Vec::new();
        let converted = convert_bytes(&model_bin(vars), &vocab, || Ok(&mut out))?;
        Ok((converted, out))
    }

    fn with_dims(name: &str, dims: &[u32]) -> Vec<Ct2Var> {
        let mut vars = tiny_whisper();
        let var = vars.iter_mut().find(|v| v.0 == name).expect("variable");
        var.1 = dims.to_vec();
        vars
    }

    #[test]
    fn the_smallest_whisper_spec_converts_to_a_ggml_file() {
        let (converted, out) = import(&tiny_whisper()).expect("converts");
        assert_eq!(
            converted,
            Converted {
                tensors: 5 + 15 + 2 + 2 + 24 + 2,
                audio_layers: 1,
                text_layers: 1,
                multilingual: false,
            }
        );
        assert_eq!(out[..4], GGML_MAGIC.to_le_bytes());
    }

    #[test]
    fn a_forged_mel_bin_count_is_an_error_not_an_out_of_memory_abort() {
        // Found by `cargo fuzz run ct2_import`: the filterbank was sized from conv1's second
        // dimension (here 4e9 x 201 floats) before conv1 was checked against its data.
        let vars = with_dims("encoder/conv1/weight", &[2, 4_000_000_000, 3]);
        let err = import(&vars).expect_err("refused");
        assert!(err.to_string().contains("mel bins"), "{err}");
    }

    #[test]
    fn a_fused_attention_split_past_its_rows_is_an_error_not_a_panic() {
        // Found by `cargo fuzz run ct2_import`: Q/K/V are split from a variable that has
        // fewer rows than three times the width, and the split indexed past its data.
        let name = "encoder/layer_0/self_attention/linear_0/weight";
        let mut vars = with_dims(name, &[2, 2]);
        vars.iter_mut().find(|v| v.0 == name).expect("variable").3 = vec![0; 2 * 2 * 2];
        let err = import(&vars).expect_err("refused");
        assert!(err.to_string().contains("out of range"), "{err}");
    }

    #[test]
    fn a_shape_whose_element_count_overflows_is_an_error_not_a_panic() {
        let vars = with_dims("encoder/conv1/bias", &[u32::MAX; 3]);
        let err = import(&vars).expect_err("refused");
        assert!(
            err.to_string().contains("does not match its shape"),
            "{err}"
        );
    }

    #[test]
    fn gpt2_byte_alphabet_round_trips_spaces_and_utf8() {
        assert_eq!(token_bytes("Ġhello").expect("decodes"), b" hello");
        assert_eq!(token_bytes("Ċ").expect("decodes"), b"\n");
        // "п" in UTF-8 is d0 bf, spelled "Ð¿".
        assert_eq!(token_bytes("Ð¿").expect("decodes"), "п".as_bytes());
        assert!(token_bytes("").expect("empty").is_empty());
    }

    #[test]
    fn mel_filters_match_librosa_slaney_shape() {
        let m = mel_filters(80);
        assert_eq!(m.len(), 80 * 201);
        // Slaney-normalised triangles: every filter has weight, area-normalised so the
        // narrow low filters peak highest; the first bin of the first filter is 0.
        assert_eq!(m[0], 0.0);
        let peak = |row: usize| {
            m[row * 201..(row + 1) * 201]
                .iter()
                .cloned()
                .fold(0.0, f32::max)
        };
        assert!((0..80).all(|r| peak(r) > 0.0));
        assert!(peak(0) > peak(79));
        // librosa.filters.mel(sr=16000, n_fft=400, n_mels=80)[0][1] = 0.02486259
        assert!((m[1] - 0.024_862_59).abs() < 1e-6, "{}", m[1]);
    }

    #[test]
    fn half_precision_round_trips() {
        for v in [0.0f32, 1.0, -2.5, 0.000_061_035_156, 65_504.0, 1e-7] {
            let back = f16_to_f32(f32_to_f16(v));
            assert!((back - v).abs() <= v.abs() * 1e-3 + 1e-7, "{v} -> {back}");
        }
    }
}
