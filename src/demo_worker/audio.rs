//! Real work on sound: `audio_synthesis`, a tone as a 16-bit PCM mono WAV file.
//!
//! The RIFF header is written by hand: `RIFF` size `WAVE`, a 16-byte `fmt ` chunk (PCM, one
//! channel, 16 bits) and the `data` chunk of little-endian samples.

use std::f64::consts::TAU;

use base64::{Engine, engine::general_purpose::STANDARD};
use serde_json::{Value, json};

use super::{
    params::Params,
    protocol::{Progress, TaskError},
};

/// The longest tone, in milliseconds.
const MAX_DURATION_MS: u64 = 10_000;
/// The sample rates accepted, in hertz.
const SAMPLE_RATES: std::ops::RangeInclusive<u32> = 8_000..=48_000;
/// Peak amplitude, as a fraction of full scale.
const AMPLITUDE: f64 = 0.6;
/// Length of the fade in and out that keeps the tone from clicking, in milliseconds.
const FADE_MS: u64 = 5;
/// Bytes of the RIFF, `fmt ` and `data` headers together.
const HEADER_BYTES: usize = 44;

/// The shape of one period of the tone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Waveform {
    /// A pure tone.
    Sine,
    /// Full on, full off.
    Square,
    /// Linear up, linear down.
    Triangle,
    /// Linear up, then a drop.
    Sawtooth,
}

/// Runs `audio_synthesis`: `frequency_hz` (440) for `duration_ms` (500) at `sample_rate`
/// (16000), with `waveform` `sine` (default), `square`, `triangle` or `sawtooth`.
pub(super) fn synthesize_tone(params: &Params<'_>, progress: &mut dyn Progress) -> Result<Value, TaskError> {
    let duration_ms = params.uint_or("duration_ms", 500, 0..=MAX_DURATION_MS)?;
    let sample_rate = params.u32_or("sample_rate", 16_000, SAMPLE_RATES)?;
    let nyquist = f64::from(sample_rate) / 2.0;
    let frequency = params.number_or("frequency_hz", 440.0, 1.0..=nyquist)?;
    let waveform = Waveform::parse(params.str("waveform")?.unwrap_or("sine"))?;
    progress.report(10, "synthesizing");
    let samples = synthesize(frequency, duration_ms, sample_rate, waveform);
    progress.report(70, "encoding");
    let wav = encode_wav(&samples, sample_rate);
    Ok(json!({
        "format": "wav",
        "sample_rate": sample_rate,
        "duration_ms": duration_ms,
        "frequency_hz": frequency,
        "waveform": waveform.name(),
        "samples": samples.len(),
        "peak": samples.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0),
        "bytes": wav.len(),
        "wav_base64": STANDARD.encode(&wav),
    }))
}

/// Samples `duration_ms` of a `frequency` Hz tone at `sample_rate`, faded in and out.
pub(super) fn synthesize(frequency: f64, duration_ms: u64, sample_rate: u32, waveform: Waveform) -> Vec<i16> {
    let count = u64::from(sample_rate) * duration_ms / 1000;
    let fade = (u64::from(sample_rate) * FADE_MS / 1000).clamp(1, count.div_ceil(2).max(1));
    let peak = AMPLITUDE * f64::from(i16::MAX);
    (0..count)
        .map(|n| {
            let phase = (n as f64 * frequency / f64::from(sample_rate)).fract();
            let envelope = (n.min(count - 1 - n) as f64 / fade as f64).min(1.0);
            (waveform.at(phase) * envelope * peak).round() as i16
        })
        .collect()
}

/// Wraps samples in a WAV file: 16-bit PCM, one channel.
pub(super) fn encode_wav(samples: &[i16], sample_rate: u32) -> Vec<u8> {
    const CHANNELS: u16 = 1;
    const BITS: u16 = 16;
    const BLOCK_ALIGN: u16 = CHANNELS * BITS / 8;
    // A WAV file is limited to 4 GiB; ten seconds at 48 kHz is under 1 MiB.
    let data_bytes = u32::try_from(samples.len() * 2).unwrap_or(u32::MAX);
    let mut wav = Vec::with_capacity(HEADER_BYTES + samples.len() * 2);
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + data_bytes).to_le_bytes());
    wav.extend_from_slice(b"WAVE");
    wav.extend_from_slice(b"fmt ");
    wav.extend_from_slice(&16u32.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes()); // PCM
    wav.extend_from_slice(&CHANNELS.to_le_bytes());
    wav.extend_from_slice(&sample_rate.to_le_bytes());
    wav.extend_from_slice(&(sample_rate * u32::from(BLOCK_ALIGN)).to_le_bytes());
    wav.extend_from_slice(&BLOCK_ALIGN.to_le_bytes());
    wav.extend_from_slice(&BITS.to_le_bytes());
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&data_bytes.to_le_bytes());
    for sample in samples {
        wav.extend_from_slice(&sample.to_le_bytes());
    }
    wav
}

// ===== impl Waveform =====

impl Waveform {
    /// The waveform called `name`.
    fn parse(name: &str) -> Result<Self, TaskError> {
        match name {
            "sine" => Ok(Self::Sine),
            "square" => Ok(Self::Square),
            "triangle" => Ok(Self::Triangle),
            "sawtooth" => Ok(Self::Sawtooth),
            _ => Err(TaskError::invalid(format!(
                "field 'waveform' must be one of sine, square, triangle, sawtooth, got '{name}'"
            ))),
        }
    }

    /// The name it is called by.
    fn name(self) -> &'static str {
        match self {
            Self::Sine => "sine",
            Self::Square => "square",
            Self::Triangle => "triangle",
            Self::Sawtooth => "sawtooth",
        }
    }

    /// The wave's value in `[-1, 1]` at `phase` in `[0, 1)` of a period.
    fn at(self, phase: f64) -> f64 {
        match self {
            Self::Sine => (phase * TAU).sin(),
            Self::Square if phase < 0.5 => 1.0,
            Self::Square => -1.0,
            Self::Triangle => 1.0 - 4.0 * (phase - 0.5).abs(),
            Self::Sawtooth => 2.0 * phase - 1.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn u16_at(bytes: &[u8], at: usize) -> u16 {
        u16::from_le_bytes([bytes[at], bytes[at + 1]])
    }

    fn u32_at(bytes: &[u8], at: usize) -> u32 {
        u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
    }

    #[test]
    fn wav_header_describes_the_samples() {
        let samples = synthesize(440.0, 250, 8_000, Waveform::Sine);
        assert_eq!(samples.len(), 2_000);
        let wav = encode_wav(&samples, 8_000);
        assert_eq!(wav.len(), HEADER_BYTES + 4_000);
        assert_eq!(&wav[0..4], b"RIFF");
        assert_eq!(u32_at(&wav, 4) as usize, wav.len() - 8);
        assert_eq!(&wav[8..16], b"WAVEfmt ");
        assert_eq!(u32_at(&wav, 16), 16);
        assert_eq!(u16_at(&wav, 20), 1, "pcm");
        assert_eq!(u16_at(&wav, 22), 1, "mono");
        assert_eq!(u32_at(&wav, 24), 8_000, "sample rate");
        assert_eq!(u32_at(&wav, 28), 16_000, "byte rate");
        assert_eq!(u16_at(&wav, 32), 2, "block align");
        assert_eq!(u16_at(&wav, 34), 16, "bits");
        assert_eq!(&wav[36..40], b"data");
        assert_eq!(u32_at(&wav, 40), 4_000);
        assert_eq!(i16::from_le_bytes([wav[44], wav[45]]), samples[0]);
    }

    #[test]
    fn tone_fades_in_and_reaches_its_amplitude() {
        let samples = synthesize(100.0, 100, 16_000, Waveform::Square);
        assert_eq!(samples[0], 0);
        let peak = samples.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0);
        assert_eq!(peak, (AMPLITUDE * f64::from(i16::MAX)).round() as u16);
        assert!(synthesize(440.0, 0, 16_000, Waveform::Sine).is_empty());
        assert_eq!(synthesize(440.0, 1, 1_000, Waveform::Sine), [0]);
    }

    #[test]
    fn frequency_above_nyquist_is_refused() {
        let data = json!({"frequency_hz": 9_000, "sample_rate": 16_000});
        let error = synthesize_tone(&Params::new(&data), &mut Vec::new()).err();
        assert_eq!(
            error.map(|e| e.message),
            Some("field 'frequency_hz' must be at most 8000, got 9000".to_owned())
        );
    }
}
