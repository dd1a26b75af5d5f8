//! Real work on pictures: `image_generation` (one PNG) and `video_generation` (a PNG sequence).
//!
//! Pixels are drawn procedurally in 8-bit RGB and encoded with the `png` crate.

use std::f64::consts::TAU;

use base64::{Engine, engine::general_purpose::STANDARD};
use serde_json::{Value, json};

use super::{
    hash::{fnv1a64, mix64, unit},
    params::Params,
    protocol::{Progress, TaskError},
};

/// The largest image side, in pixels.
const MAX_IMAGE_SIDE: u32 = 1024;
/// The largest video frame side, in pixels.
const MAX_FRAME_SIDE: u32 = 512;
/// The most frames of a video.
const MAX_FRAMES: u64 = 120;
/// The highest frame rate of a video.
const MAX_FPS: u64 = 60;

/// Runs `image_generation`: `width`×`height` (64×64), seeded by `seed` or `prompt`.
pub(super) fn generate_image(params: &Params<'_>, progress: &mut dyn Progress) -> Result<Value, TaskError> {
    let width = params.u32_or("width", 64, 1..=MAX_IMAGE_SIDE)?;
    let height = params.u32_or("height", 64, 1..=MAX_IMAGE_SIDE)?;
    let seed = params.seed(Some("prompt"))?;
    progress.report(10, "rendering");
    let pixels = render_image(width, height, seed);
    progress.report(60, "encoding");
    let png = encode_png(width, height, &pixels)?;
    Ok(json!({
        "format": "png",
        "width": width,
        "height": height,
        "seed": seed,
        "bytes": png.len(),
        "png_base64": STANDARD.encode(&png),
    }))
}

/// Runs `video_generation`: `frames` (8) frames of `width`×`height` (64×48) at `fps` (12).
///
/// The frames are not returned, only their sizes and FNV-1a checksums.
pub(super) fn generate_video(params: &Params<'_>, progress: &mut dyn Progress) -> Result<Value, TaskError> {
    let frames = params.uint_or("frames", 8, 1..=MAX_FRAMES)?;
    let width = params.u32_or("width", 64, 1..=MAX_FRAME_SIDE)?;
    let height = params.u32_or("height", 48, 1..=MAX_FRAME_SIDE)?;
    let fps = params.uint_or("fps", 12, 1..=MAX_FPS)?;
    let seed = params.seed(Some("prompt"))?;
    let mut frame_bytes = Vec::new();
    let mut checksums = Vec::new();
    for index in 0..frames {
        let pixels = render_frame(width, height, seed, index as f64 / frames as f64);
        let png = encode_png(width, height, &pixels)?;
        frame_bytes.push(png.len());
        checksums.push(format!("{:016x}", fnv1a64(&png)));
        let done = u8::try_from(100 * (index + 1) / frames).unwrap_or(100);
        progress.report(done, &format!("frame {}/{frames}", index + 1));
    }
    Ok(json!({
        "format": "png-sequence",
        "frames": frames,
        "width": width,
        "height": height,
        "fps": fps,
        "duration_ms": frames * 1000 / fps,
        "seed": seed,
        "frame_bytes": frame_bytes,
        "frame_checksums": checksums,
        "total_bytes": frame_bytes.iter().sum::<usize>(),
    }))
}

/// Draws a still: a colour gradient under seeded concentric rings, with a little grain.
pub(super) fn render_image(width: u32, height: u32, seed: u64) -> Vec<u8> {
    let tint = colour(mix64(seed));
    let centre_x = unit(mix64(seed ^ 1)) * f64::from(width);
    let centre_y = unit(mix64(seed ^ 2)) * f64::from(height);
    let spacing = 3.0 + unit(mix64(seed ^ 3)) * f64::from(width.max(height)) / 6.0;
    let mut pixels = Vec::with_capacity(width as usize * height as usize * 3);
    for y in 0..height {
        for x in 0..width {
            let base = [scale(x, width), scale(y, height), 255 - scale(x + y, width + height)];
            let distance = (f64::from(x) - centre_x).hypot(f64::from(y) - centre_y);
            let on_ring = ((distance / spacing) as u64).is_multiple_of(2);
            let grain = (mix64(seed ^ (u64::from(y) << 32 | u64::from(x))) & 0x0f) as u8;
            let pixel = if on_ring { blend(base, tint) } else { base };
            pixels.extend(pixel.map(|channel| channel.saturating_add(grain)));
        }
    }
    pixels
}

/// Draws one video frame at `phase` (0 to 1 over the clip): scrolling diagonal stripes and a
/// ball that crosses the frame on a sine path.
pub(super) fn render_frame(width: u32, height: u32, seed: u64, phase: f64) -> Vec<u8> {
    const STRIPE: f64 = 6.0;
    let dark = colour(mix64(seed));
    let light = blend(dark, [255, 255, 255]);
    let ball = colour(mix64(!seed));
    let ball_x = phase * f64::from(width);
    let ball_y = f64::from(height) * (0.5 + (phase * TAU).sin() / 3.0);
    let radius = (f64::from(width.min(height)) / 6.0).max(1.0);
    let mut pixels = Vec::with_capacity(width as usize * height as usize * 3);
    for y in 0..height {
        for x in 0..width {
            let (fx, fy) = (f64::from(x), f64::from(y));
            let pixel = if (fx - ball_x).hypot(fy - ball_y) <= radius {
                ball
            } else if (((fx + fy + phase * 2.0 * STRIPE) / STRIPE) as u64).is_multiple_of(2) {
                light
            } else {
                dark
            };
            pixels.extend(pixel);
        }
    }
    pixels
}

/// Encodes 8-bit RGB pixels as a PNG file.
pub(super) fn encode_png(width: u32, height: u32, rgb: &[u8]) -> Result<Vec<u8>, TaskError> {
    let failed = |error: png::EncodingError| TaskError::invalid(format!("png encoding: {error}"));
    let mut bytes = Vec::new();
    let mut encoder = png::Encoder::new(&mut bytes, width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_compression(png::Compression::Fast);
    let mut writer = encoder.write_header().map_err(failed)?;
    writer.write_image_data(rgb).map_err(failed)?;
    writer.finish().map_err(failed)?;
    Ok(bytes)
}

/// An RGB colour from the low bytes of a hash.
fn colour(hash: u64) -> [u8; 3] {
    let [r, g, b, ..] = hash.to_le_bytes();
    [r, g, b]
}

/// `value / max` mapped to `0..=255`.
fn scale(value: u32, max: u32) -> u8 {
    u8::try_from(u64::from(value) * 255 / u64::from(max.max(1))).unwrap_or(u8::MAX)
}

/// The mean of two colours.
fn blend(a: [u8; 3], b: [u8; 3]) -> [u8; 3] {
    [0, 1, 2].map(|i| a[i].midpoint(b[i]))
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use serde_json::json;

    use super::*;

    /// Decodes a PNG, returning its size and RGB pixels.
    fn decode(png: &[u8]) -> (u32, u32, Vec<u8>) {
        let decoder = png::Decoder::new(Cursor::new(png));
        let mut reader = decoder.read_info().expect("a valid png header");
        let mut pixels = vec![0; reader.output_buffer_size().expect("a sane size")];
        let info = reader.next_frame(&mut pixels).expect("a valid png frame");
        assert_eq!(info.color_type, png::ColorType::Rgb);
        pixels.truncate(info.buffer_size());
        (info.width, info.height, pixels)
    }

    #[test]
    fn encoded_image_decodes_to_the_same_pixels() {
        let pixels = render_image(37, 21, 9);
        assert_eq!(pixels.len(), 37 * 21 * 3);
        let png = encode_png(37, 21, &pixels).expect("encodes");
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(decode(&png), (37, 21, pixels));
    }

    #[test]
    fn seeds_change_the_picture_and_repeat_it() {
        assert_eq!(render_image(16, 16, 1), render_image(16, 16, 1));
        assert_ne!(render_image(16, 16, 1), render_image(16, 16, 2));
        assert_ne!(render_frame(16, 16, 1, 0.0), render_frame(16, 16, 1, 0.5));
    }

    #[test]
    fn image_result_carries_a_decodable_png() {
        let data = json!({"width": 20, "height": 10, "prompt": "a red fox"});
        let mut reports = Vec::new();
        let result = generate_image(&Params::new(&data), &mut reports).expect("generates");
        let png = STANDARD.decode(result["png_base64"].as_str().unwrap_or_default()).expect("base64");
        assert_eq!(result["bytes"].as_u64(), Some(png.len() as u64));
        assert_eq!(decode(&png).0, 20);
        assert_eq!(reports.len(), 2);
    }

    #[test]
    fn video_reports_every_frame() {
        let data = json!({"frames": 4, "width": 8, "height": 6});
        let mut reports = Vec::new();
        let result = generate_video(&Params::new(&data), &mut reports).expect("generates");
        assert_eq!(result["frame_bytes"].as_array().map(Vec::len), Some(4));
        assert_eq!(reports.last(), Some(&(100, "frame 4/4".to_owned())));
        let sum: u64 = result["frame_bytes"].as_array().into_iter().flatten().filter_map(Value::as_u64).sum();
        assert_eq!(result["total_bytes"].as_u64(), Some(sum));
    }

    #[test]
    fn oversized_images_are_refused() {
        let data = json!({"width": MAX_IMAGE_SIDE + 1});
        let error = generate_image(&Params::new(&data), &mut Vec::new()).err();
        assert_eq!(
            error.map(|e| (e.message, e.retryable)),
            Some(("field 'width' must be at most 1024, got 1025".to_owned(), false))
        );
    }
}
