//! The bundled demo worker: `workerpool demo-worker`.
//!
//! A long-lived child process that speaks the JSON-lines protocol of the contract (§4) on
//! stdin/stdout, one JSON object per line, and serves every default task type.
//!
//! - `{"ping":N}` is answered with `{"pong":N}`.
//! - `{"id","type","data","attempt"}` is answered with any number of
//!   `{"id","progress","stage"}` lines, then exactly one `{"id","result"}` or
//!   `{"id","error","retryable"}` line.
//!
//! Tasks run one at a time, in the order they arrive. Nothing but protocol lines is written to
//! stdout, each flushed as soon as it is written; diagnostics go to stderr. A malformed line is
//! logged and, when its `id` can be recovered, failed with a non-retryable
//! `invalid task line: …` error; the worker keeps serving. End of input exits with status 0.
//!
//! # Control ops
//!
//! An op in `data.op` wins over the type's real work:
//!
//! | op | fields (default) | answer |
//! |---|---|---|
//! | `echo` | any | `{"echo": data, "pid"}` |
//! | `sleep` | `ms` | `{"slept_ms", "pid"}` |
//! | `env` | none | `{"CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES", "WORKERPOOL_SIMULATED_GPU_DIR", "pid"}` (each a string, or null when unset) |
//! | `spin` | `ms` | `{"spun_ms", "iterations", "pid"}`, one CPU kept busy |
//! | `alloc` | `mb`, `hold_ms` (0) | `{"allocated_mb", "pid"}`, every page made resident |
//! | `gpu_alloc` | `mb`, `ms` (0) | `{"device", "bytes", "held_ms", "simulated", "pid"}` (and `device_name` on a real device): `mb` MiB held on the first device in `CUDA_VISIBLE_DEVICES` through the CUDA driver, or, with `WORKERPOOL_SIMULATED_GPU_DIR` set, recorded in that directory's usage file `<pid>` as `<uuid> <bytes>` while held; without a driver the error `gpu_alloc: no CUDA driver (…)` |
//! | `crash` | `code` (3), `until_attempt` | none: a line on stderr, then exit with `code` (only on attempts up to `until_attempt`; later ones answer `recovered_on_attempt`) |
//! | `fail` | `retryable` (true), `message` ("requested failure"), `until_attempt` | the error line (only on attempts up to `until_attempt`) |
//! | `progress` | `steps` (5), `step_ms` (10) | progress at `100*i/steps`, then `{"steps", "pid"}` |
//! | `mute` | none | `{"muted": true, "pid"}`; from then on pings go unanswered (a hung worker) |
//!
//! An unknown op, a field of the wrong JSON type, or a value past its bound is a non-retryable
//! error that names the field and what was expected.
//!
//! # Real work per type
//!
//! | type | fields (default, bound) | result |
//! |---|---|---|
//! | `text_processing` | `text` ("", 1 MiB) | chars, words, lines, sentences, average word length, top words |
//! | `content_analysis` | `text` ("", 1 MiB) | lexicon sentiment, keywords, reading time, flags |
//! | `image_generation` | `width`, `height` (64, 1024), `seed` or `prompt` | a PNG, base64 |
//! | `audio_synthesis` | `frequency_hz` (440), `duration_ms` (500, 10000), `sample_rate` (16000), `waveform` (sine) | a 16-bit mono WAV, base64 |
//! | `video_generation` | `frames` (8, 120), `width`×`height` (64×48, 512), `fps` (12), `seed` | per-frame PNG sizes and checksums |
//! | `world_building` | `width`×`height` (32×16, 256), `seed` | terrain rows, counts per terrain |
//!
//! Every result carries the worker's `pid`. Any other type without an op echoes its data.

mod audio;
mod content;
mod gpu;
mod hash;
mod image;
mod ops;
mod params;
mod protocol;
mod serve;
mod text;
mod world;

pub use serve::run;
