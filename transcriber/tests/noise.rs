//! The transcriber in a noisy room, with the real model (`WEBCALL_TEST_WHISPER_MODEL`; without
//! it these print a notice and pass).
//!
//! Noise sources, all made here: fan (brown noise low-passed at 600 Hz, sox), babble (six
//! espeak-ng voices talking over each other, reversed so they carry no words, sox), keyboard
//! (decaying clicks at ~8 keys/s, generated below) and music (a plucked arpeggio over a sine
//! chord, sox). Speech: espeak-ng sentences. Mixes are made at an exact SNR over the speech's
//! active level.
//!
//! - `noise_and_music_alone_give_no_segments` (in CI): 60 s of fan, keyboard and music alone,
//!   through the default VAD (earshot), must produce zero segments (the VAD and the
//!   hallucination guard together); so must fan and music through the energy VAD. Babble
//!   alone is printed, not asserted: it is speech (six voices, reversed), whisper hears words
//!   in it whatever the VAD says, and docs/transcription.md reports what it produces.
//! - `vad_comparison_in_noise` (`--ignored`): the table in docs/transcription.md: WER of the
//!   speech mixed with each noise at 20/10/5 dB and segments hallucinated on noise alone, per
//!   VAD.

mod support;

use std::path::Path;
use std::process::Command;

use transcriber::vad::{Detector, VadConfig};
use transcriber::whisper::{Whisper, WhisperConfig};

const RATE: u32 = 16_000;
const SENTENCES: &[&str] = &[
    "Good morning everyone, let us begin the meeting.",
    "I will send you the report this afternoon.",
    "The new schedule starts on Monday next week.",
    "Can you share your screen so we can see the numbers?",
    "We should ask the customer before we change the design.",
];

fn run(cmd: &mut Command) {
    let ok = cmd
        .status()
        .expect("espeak-ng and sox run (apt-get install espeak-ng sox)");
    assert!(ok.success(), "{cmd:?}");
}

fn read(path: &Path) -> Vec<f32> {
    let (samples, rate) = transcriber::file::read_wav(path).expect("reads the WAV");
    assert_eq!(rate, RATE, "{}", path.display());
    samples
}

fn write(path: &Path, samples: &[f32]) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).expect("creates the WAV");
    for s in samples {
        w.write_sample((s.clamp(-1.0, 1.0) * 32_767.0) as i16)
            .expect("writes");
    }
    w.finalize().expect("finalizes");
}

/// espeak-ng says `text` (voice `voice`), as 16 kHz mono.
fn espeak(dir: &Path, name: &str, voice: &str, text: &str, reverse: bool) -> Vec<f32> {
    let raw = dir.join(format!("{name}.raw.wav"));
    let out = dir.join(format!("{name}.wav"));
    run(Command::new("espeak-ng")
        .args(["-v", voice, "-s", "155", "-w"])
        .arg(&raw)
        .arg(text));
    let mut sox = Command::new("sox");
    sox.arg(&raw)
        .args(["-r", "16000", "-c", "1", "-b", "16"])
        .arg(&out);
    if reverse {
        sox.arg("reverse");
    }
    run(&mut sox);
    read(&out)
}

/// Sentences with a second of silence around each.
fn speech(dir: &Path) -> Vec<f32> {
    let second = vec![0.0; RATE as usize];
    let mut out = second.clone();
    for (i, text) in SENTENCES.iter().enumerate() {
        out.extend(espeak(dir, &format!("s{i}"), "en-us", text, false));
        out.extend(&second);
    }
    out
}

/// `seconds` of `samples` repeated.
fn looped(samples: &[f32], seconds: usize) -> Vec<f32> {
    samples
        .iter()
        .copied()
        .cycle()
        .take(seconds * RATE as usize)
        .collect()
}

fn sox_synth(dir: &Path, name: &str, args: &[&str]) -> Vec<f32> {
    let out = dir.join(format!("{name}.wav"));
    run(Command::new("sox")
        .args(["-n", "-r", "16000", "-c", "1", "-b", "16"])
        .arg(&out)
        .args(args));
    read(&out)
}

fn fan(dir: &Path) -> Vec<f32> {
    sox_synth(
        dir,
        "fan",
        &["synth", "60", "brownnoise", "lowpass", "600", "vol", "0.5"],
    )
}

fn babble(dir: &Path) -> Vec<f32> {
    let text = "The weather report says the train will be late again today and everyone in \
                the office is talking about lunch plans and the new project schedule";
    let voices: Vec<Vec<f32>> = (1..=6)
        .map(|i| espeak(dir, &format!("b{i}"), &format!("en-us+m{i}"), text, true))
        .collect();
    let len = voices.iter().map(Vec::len).max().unwrap_or(0);
    let mut mixed = vec![0.0f32; len];
    for (i, v) in voices.iter().enumerate() {
        // Each voice starts at a different point, so they talk over each other.
        let offset = i * len / 7;
        for (j, s) in v.iter().enumerate() {
            mixed[(j + offset) % len] += s / 3.0;
        }
    }
    looped(&mixed, 60)
}

fn keyboard() -> Vec<f32> {
    // A fixed linear congruential generator: the same clicks every run.
    let mut state: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) as f32 / (1u64 << 31) as f32
    };
    let n = 60 * RATE as usize;
    let mut out = vec![0.0f32; n];
    let mut at = 0usize;
    loop {
        // ~8 keys a second: exponential gaps.
        at += (-(1.0 - next()).ln() / 8.0 * RATE as f32) as usize + 1;
        if at + 4_000 >= n {
            break;
        }
        let amp = 0.2 + 0.3 * next();
        // The key's press, then its softer release 60-120 ms later.
        for k in 0..320 {
            out[at + k] += amp * (-(k as f32) / 40.0).exp() * (2.0 * next() - 1.0);
        }
        let release = at + ((0.06 + 0.06 * next()) * RATE as f32) as usize;
        for k in 0..160 {
            out[release + k] += 0.4 * amp * (-(k as f32) / 30.0).exp() * (2.0 * next() - 1.0);
        }
    }
    out
}

fn music(dir: &Path) -> Vec<f32> {
    let notes = ["C4", "E4", "G4", "C5", "A3", "F4", "D4", "B3"];
    let mut phrase = Vec::new();
    for note in notes {
        phrase.extend(sox_synth(
            dir,
            &format!("n{note}"),
            &["synth", "0.25", "pluck", note],
        ));
    }
    let pad = sox_synth(
        dir,
        "pad",
        &[
            "synth", "60", "sine", "220", "sine", "277", "sine", "330", "remix", "-", "vol", "0.15",
        ],
    );
    looped(&phrase, 60)
        .iter()
        .zip(pad.iter().chain(std::iter::repeat(&0.0)))
        .map(|(a, b)| a + b)
        .collect()
}

/// RMS of the 20 ms frames above -50 dBFS (the speech, not its pauses).
fn active_rms(samples: &[f32]) -> f32 {
    let frames: Vec<f32> = samples
        .chunks(320)
        .map(|f| f.iter().map(|s| s * s).sum::<f32>() / f.len() as f32)
        .filter(|p| *p > 1e-5)
        .collect();
    (frames.iter().sum::<f32>() / frames.len().max(1) as f32).sqrt()
}

/// espeak-ng's speech level here (active RMS, about -18 dBFS) minus 5 dB: noise as loud as in
/// the hardest mix. "Noise alone" is the noise track of a 5 dB mix without the speech.
const NOISE_ALONE_DBFS: f32 = -23.0;

/// `samples` scaled to an RMS of `dbfs`.
fn at_level(samples: &[f32], dbfs: f32) -> Vec<f32> {
    let rms = (samples.iter().map(|s| s * s).sum::<f32>() / samples.len().max(1) as f32).sqrt();
    let gain = 10f32.powf(dbfs / 20.0) / rms.max(1e-9);
    samples.iter().map(|s| s * gain).collect()
}

fn mix(speech: &[f32], noise: &[f32], snr_db: f32) -> Vec<f32> {
    let noise_rms = (noise.iter().map(|s| s * s).sum::<f32>() / noise.len() as f32).sqrt();
    let gain = active_rms(speech) / noise_rms / 10f32.powf(snr_db / 20.0);
    speech
        .iter()
        .zip(noise.iter().cycle())
        .map(|(s, n)| s + n * gain)
        .collect()
}

fn vad(detector: Detector) -> VadConfig {
    VadConfig {
        detector,
        ..VadConfig::default()
    }
}

fn detectors() -> [Detector; 2] {
    [
        Detector::Energy,
        Detector::from_name("earshot").expect("earshot"),
    ]
}

fn load(model: &Path) -> Whisper {
    Whisper::load(
        model,
        WhisperConfig {
            language: Some("en".to_owned()),
            languages: vec![],
            threads: 2,
        },
    )
    .expect("the model loads")
}

fn transcribe(
    whisper: &Whisper,
    dir: &Path,
    name: &str,
    samples: &[f32],
    vad: VadConfig,
) -> Vec<String> {
    let path = dir.join(format!("{name}.mix.wav"));
    write(&path, samples);
    transcriber::file::transcribe_file(&path, whisper, vad)
        .expect("transcribes")
        .into_iter()
        .map(|s| s.text)
        .collect()
}

/// What the speech-in-noise tests start from: the model, a scratch dir, the clean speech and
/// the words it says.
fn speech_setup(model: &Path) -> (Whisper, tempfile::TempDir, Vec<f32>, String) {
    let whisper = load(model);
    let dir = scratch();
    let clean = speech(dir.path());
    (whisper, dir, clean, SENTENCES.join(" "))
}

fn scratch() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

#[test]
fn noise_and_music_alone_give_no_segments() {
    let Some(model) = support::model() else {
        return;
    };
    let whisper = load(&model);
    let dir = scratch();
    let d = dir.path();
    let sources = [
        ("fan", fan(d)),
        ("babble", babble(d)),
        ("keyboard", keyboard()),
        ("music", music(d)),
    ];
    let mut heard = Vec::new();
    for (name, noise) in &sources {
        let noise = at_level(noise, NOISE_ALONE_DBFS);
        for detector in detectors() {
            let must_be_silent = match detector {
                Detector::Earshot { .. } => *name != "babble",
                Detector::Energy => ["fan", "music"].contains(name),
            };
            // The pairs that may hear something (babble to either VAD, typing to the energy
            // one) are whisper's minutes of work with nothing to assert: the comparison
            // below measures them.
            if !must_be_silent {
                continue;
            }
            let texts = transcribe(&whisper, d, name, &noise, vad(detector));
            eprintln!("{name} alone, {} VAD: {texts:?}", detector.name());
            if !texts.is_empty() {
                heard.push(format!("{name}/{}: {texts:?}", detector.name()));
            }
        }
    }
    assert!(
        heard.is_empty(),
        "captions invented from non-speech: {heard:#?}"
    );
}

/// The CI guard for the comparison below: speech in fan and keyboard noise at 10 dB SNR with
/// the default VAD (earshot) stays readable. Measured 0.16 and 0.20 WER (docs/transcription.md);
/// 0.35 leaves room for the machine and still fails when noise handling breaks.
#[test]
fn speech_in_fan_and_keyboard_noise_at_10_db_stays_readable() {
    let Some(model) = support::model() else {
        return;
    };
    let (whisper, dir, clean, reference) = speech_setup(&model);
    let d = dir.path();
    let earshot = Detector::from_name("earshot").expect("earshot");
    for (name, noise) in [("fan", fan(d)), ("keyboard", keyboard())] {
        let mixed = mix(&clean, &noise, 10.0);
        let heard = transcribe(&whisper, d, name, &mixed, vad(earshot)).join(" ");
        let wer = transcriber::wer::wer(&reference, &heard);
        eprintln!("{name} at 10 dB: WER {wer:.2}: {heard:?}");
        assert!(wer <= 0.35, "{name} at 10 dB SNR: WER {wer:.2}: {heard:?}");
    }
}

#[test]
#[ignore = "slow (~10 min on 2 cores): the VAD comparison for docs/transcription.md"]
fn vad_comparison_in_noise() {
    let Some(model) = support::model() else {
        return;
    };
    let (whisper, dir, clean, reference) = speech_setup(&model);
    let d = dir.path();
    let sources = [
        ("fan", fan(d)),
        ("babble", babble(d)),
        ("keyboard", keyboard()),
    ];
    let mut rows = vec![
        "| noise | SNR | energy WER | earshot WER |".to_owned(),
        "| --- | --- | --- | --- |".to_owned(),
    ];
    let score = |texts: &[String]| transcriber::wer::wer(&reference, &texts.join(" "));
    let mut cells = Vec::new();
    for detector in detectors() {
        cells.push(score(&transcribe(
            &whisper,
            d,
            "clean",
            &clean,
            vad(detector),
        )));
    }
    rows.push(format!("| none | - | {:.2} | {:.2} |", cells[0], cells[1]));
    for (name, noise) in &sources {
        for snr in [20.0, 10.0, 5.0] {
            let mixed = mix(&clean, noise, snr);
            let cells: Vec<f64> = detectors()
                .into_iter()
                .map(|detector| score(&transcribe(&whisper, d, name, &mixed, vad(detector))))
                .collect();
            rows.push(format!(
                "| {name} | {snr} dB | {:.2} | {:.2} |",
                cells[0], cells[1]
            ));
        }
    }
    rows.push(String::new());
    rows.push("| alone (60 s) | energy segments | earshot segments |".to_owned());
    rows.push("| --- | --- | --- |".to_owned());
    let music = music(d);
    for (name, noise) in sources.iter().chain(std::iter::once(&("music", music))) {
        let counts: Vec<usize> = detectors()
            .into_iter()
            .map(|detector| {
                let noise = at_level(noise, NOISE_ALONE_DBFS);
                transcribe(&whisper, d, name, &noise, vad(detector)).len()
            })
            .collect();
        rows.push(format!("| {name} | {} | {} |", counts[0], counts[1]));
    }
    println!("{}", rows.join("\n"));
}
