//! Real work on maps: `world_building`, a tile map from a seeded value-noise heightmap.
//!
//! The height of a tile is fractal value noise: four octaves of random values on a lattice,
//! smoothly interpolated. Heights are cut into five terrain classes. Everything derives from the
//! seed, so the same seed always gives the same map.

use serde::Serialize;
use serde_json::{Value, json};

use super::{
    hash::{mix64, unit},
    params::Params,
    protocol::{Progress, TaskError},
};

/// The largest map side, in tiles.
const MAX_SIDE: u32 = 256;
/// The lattice spacing of the coarsest noise octave, in tiles.
const BASE_CELL: f64 = 12.0;
/// Noise octaves: each adds detail at twice the frequency and half the weight.
const OCTAVES: u32 = 4;

/// A terrain class, from low to high ground.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Terrain {
    /// `~`
    Water,
    /// `.`
    Sand,
    /// `,`
    Grass,
    /// `T`
    Forest,
    /// `^`
    Mountain,
}

/// A generated map.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub(super) struct WorldMap {
    /// Tiles per row.
    pub(super) width: u32,
    /// Rows.
    pub(super) height: u32,
    /// The seed it was generated from.
    pub(super) seed: u64,
    /// One string per row, one character per tile (see [`Terrain::symbol`]).
    pub(super) rows: Vec<String>,
    /// Tiles per terrain class, in [`Terrain::ALL`] order.
    pub(super) counts: [usize; 5],
}

/// Runs `world_building`: a `width`×`height` (32×16) map from `seed` (an integer or a string).
pub(super) fn build(params: &Params<'_>, progress: &mut dyn Progress) -> Result<Value, TaskError> {
    let width = params.u32_or("width", 32, 1..=MAX_SIDE)?;
    let height = params.u32_or("height", 16, 1..=MAX_SIDE)?;
    let seed = params.seed(None)?;
    progress.report(10, "heightmap");
    let map = generate(width, height, seed);
    let counts: serde_json::Map<String, Value> = Terrain::ALL
        .iter()
        .zip(map.counts)
        .map(|(terrain, count)| (terrain.name().to_owned(), count.into()))
        .collect();
    let legend: serde_json::Map<String, Value> =
        Terrain::ALL.iter().map(|terrain| (terrain.symbol().to_string(), terrain.name().into())).collect();
    Ok(json!({
        "width": map.width,
        "height": map.height,
        "seed": map.seed,
        "rows": map.rows,
        "counts": counts,
        "legend": legend,
    }))
}

/// Generates the map of `width`×`height` tiles for `seed`.
pub(super) fn generate(width: u32, height: u32, seed: u64) -> WorldMap {
    let mut counts = [0; 5];
    let rows = (0..height)
        .map(|y| {
            (0..width)
                .map(|x| {
                    let terrain = Terrain::at_height(height_at(f64::from(x), f64::from(y), seed));
                    counts[terrain as usize] += 1;
                    terrain.symbol()
                })
                .collect()
        })
        .collect();
    WorldMap { width, height, seed, rows, counts }
}

/// Fractal value noise at `(x, y)`, in `[0, 1)`.
fn height_at(x: f64, y: f64, seed: u64) -> f64 {
    let (mut total, mut weight, mut frequency, mut amplitude) = (0.0, 0.0, 1.0 / BASE_CELL, 1.0);
    for octave in 0..OCTAVES {
        let octave_seed = mix64(seed ^ u64::from(octave).wrapping_mul(0x9e37_79b9));
        total += amplitude * value_noise(x * frequency, y * frequency, octave_seed);
        weight += amplitude;
        frequency *= 2.0;
        amplitude /= 2.0;
    }
    total / weight
}

/// Smoothly interpolated random lattice values at `(x, y)`, in `[0, 1)`.
fn value_noise(x: f64, y: f64, seed: u64) -> f64 {
    let (cell_x, cell_y) = (x.floor(), y.floor());
    let (ix, iy) = (cell_x as i64, cell_y as i64);
    let (tx, ty) = (smooth(x - cell_x), smooth(y - cell_y));
    let corner = |dx: i64, dy: i64| lattice(ix + dx, iy + dy, seed);
    let top = lerp(corner(0, 0), corner(1, 0), tx);
    let bottom = lerp(corner(0, 1), corner(1, 1), tx);
    lerp(top, bottom, ty)
}

/// The random value at a lattice point.
fn lattice(x: i64, y: i64, seed: u64) -> f64 {
    unit(mix64(seed ^ mix64((x as u64) << 32 ^ (y as u64 & 0xffff_ffff))))
}

/// Smoothstep, so the noise has no creases at cell edges.
fn smooth(t: f64) -> f64 {
    t * t * (3.0 - 2.0 * t)
}

/// Linear interpolation from `a` to `b`.
fn lerp(a: f64, b: f64, t: f64) -> f64 {
    a + (b - a) * t
}

// ===== impl Terrain =====

impl Terrain {
    /// Every class, from low to high ground.
    pub(super) const ALL: [Self; 5] = [Self::Water, Self::Sand, Self::Grass, Self::Forest, Self::Mountain];

    /// The class of a tile at `height` in `[0, 1)`. Fractal noise clusters around 0.5, so the
    /// cuts are closer together there.
    fn at_height(height: f64) -> Self {
        match height {
            h if h < 0.40 => Self::Water,
            h if h < 0.45 => Self::Sand,
            h if h < 0.58 => Self::Grass,
            h if h < 0.68 => Self::Forest,
            _ => Self::Mountain,
        }
    }

    /// The character a tile of this class is drawn with.
    pub(super) fn symbol(self) -> char {
        match self {
            Self::Water => '~',
            Self::Sand => '.',
            Self::Grass => ',',
            Self::Forest => 'T',
            Self::Mountain => '^',
        }
    }

    /// The class's name in results.
    pub(super) fn name(self) -> &'static str {
        match self {
            Self::Water => "water",
            Self::Sand => "sand",
            Self::Grass => "grass",
            Self::Forest => "forest",
            Self::Mountain => "mountain",
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn same_seed_same_map() {
        assert_eq!(generate(40, 20, 7), generate(40, 20, 7));
        assert_ne!(generate(40, 20, 7).rows, generate(40, 20, 8).rows);
    }

    #[test]
    fn map_has_the_requested_shape_and_counts() {
        let map = generate(33, 5, 1);
        assert_eq!(map.rows.len(), 5);
        assert!(map.rows.iter().all(|row| row.chars().count() == 33));
        assert_eq!(map.counts.iter().sum::<usize>(), 33 * 5);
        let waters = map.rows.iter().flat_map(|r| r.chars()).filter(|&c| c == '~');
        assert_eq!(waters.count(), map.counts[Terrain::Water as usize]);
    }

    #[test]
    fn large_maps_use_every_terrain() {
        let map = generate(256, 256, 3);
        for (terrain, count) in Terrain::ALL.iter().zip(map.counts) {
            assert!(count > 256 * 256 / 50, "{terrain:?}: {count} of {:?}", map.counts);
        }
    }

    #[test]
    fn result_names_counts_and_refuses_big_maps() {
        let data = json!({"seed": "atlantis", "width": 8, "height": 4});
        let result = build(&Params::new(&data), &mut Vec::new()).expect("builds");
        let total: u64 = Terrain::ALL.iter().filter_map(|t| result["counts"][t.name()].as_u64()).sum();
        assert_eq!(total, 32);
        assert_eq!(result["legend"]["~"], "water");
        let too_wide = json!({"width": 257});
        assert!(build(&Params::new(&too_wide), &mut Vec::new()).is_err());
    }
}
