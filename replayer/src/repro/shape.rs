//! Which `ttnn.allocate_tensor_on_device` call gives a recorded buffer:
//! a shape, dtype, tensor layout and memory config whose buffer has the
//! same type, page size, page count and (sharded) pages per core.
//!
//! Interleaved: a bfloat16 TILE page is 32 x 32 x 2 = 2048 B (float32:
//! 4096 B), so `P` pages are a `[1, 1, 32, 32 * P]` tensor; other page sizes
//! are ROW_MAJOR bfloat16 rows of `page / 2` elements (one row per page).
//! Sharded (TILE pages): `P` pages on `n` cores, `k = P / n` pages per core:
//! height `[32 * P, 32]` in `(32 * k, 32)` shards, width `[32, 32 * P]` in
//! `(32, 32 * k)` shards, block `[32 * k * rows, 32 * cols]` in `(32 * k, 32)`
//! shards on a `cols x rows` grid.

use ttalloc_model::{BufferType, Layout};

/// How to ask ttnn for one buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorRequest {
    pub shape: [u64; 4],
    /// `ttnn.bfloat16`, `ttnn.float32`.
    pub dtype: &'static str,
    /// `ttnn.TILE_LAYOUT` or `ttnn.ROW_MAJOR_LAYOUT`.
    pub layout: &'static str,
    /// A Python expression for the memory config.
    pub memory_config: String,
    /// Why the request is not exactly the recorded buffer (None when it is).
    pub inexact: Option<String>,
}

/// What the trace says about a buffer.
#[derive(Clone, Copy, Debug)]
pub struct RecordedBuffer {
    pub buffer_type: BufferType,
    pub size: u64,
    pub page_size: Option<u64>,
    pub layout: Layout,
    pub num_cores: Option<u32>,
}

const TILE_BF16: u64 = 2048;
const TILE_F32: u64 = 4096;
const GRID_WIDTH: u64 = 8;

fn buffer_type_expr(bt: BufferType) -> Option<&'static str> {
    match bt {
        BufferType::Dram => Some("ttnn.BufferType.DRAM"),
        BufferType::L1 => Some("ttnn.BufferType.L1"),
        BufferType::L1Small => Some("ttnn.BufferType.L1_SMALL"),
        BufferType::Trace | BufferType::SystemMemory => None,
    }
}

/// The request for `b`, or why none can be made (TRACE and system-memory
/// buffers are not tensors).
pub fn request_for(b: &RecordedBuffer) -> Result<TensorRequest, String> {
    let bt = buffer_type_expr(b.buffer_type).ok_or_else(|| {
        format!(
            "a {} buffer is not made by allocating a tensor",
            b.buffer_type
        )
    })?;
    let mut notes: Vec<String> = Vec::new();
    let page = match b.page_size {
        Some(p) if p > 0 => p,
        _ => {
            notes.push("the page size was not recorded: 2048 B tiles assumed".into());
            TILE_BF16
        }
    };
    if !b.size.is_multiple_of(page) {
        notes.push(format!(
            "{} B is not a whole number of {page} B pages: rounded up",
            b.size
        ));
    }
    let pages = b.size.div_ceil(page).max(1);
    let (dtype, layout, row) = if page == TILE_BF16 {
        ("ttnn.bfloat16", "ttnn.TILE_LAYOUT", None)
    } else if page == TILE_F32 {
        ("ttnn.float32", "ttnn.TILE_LAYOUT", None)
    } else if page.is_multiple_of(2) {
        ("ttnn.bfloat16", "ttnn.ROW_MAJOR_LAYOUT", Some(page / 2))
    } else {
        notes.push(format!(
            "an odd page size ({page} B) has no bfloat16 row: {} B rows used",
            page + 1
        ));
        (
            "ttnn.bfloat16",
            "ttnn.ROW_MAJOR_LAYOUT",
            Some(page.div_ceil(2)),
        )
    };
    let (shape, memory_config) = if !b.layout.is_sharded() {
        let shape = match row {
            None => [1, 1, 32, 32 * pages],
            Some(w) => [1, 1, pages, w],
        };
        (
            shape,
            format!("ttnn.MemoryConfig(ttnn.TensorMemoryLayout.INTERLEAVED, {bt})"),
        )
    } else {
        if row.is_some() {
            notes.push(format!(
                "sharded {page} B pages: written as 2048 B tiles, {} pages",
                b.size.div_ceil(TILE_BF16)
            ));
        }
        let pages = if row.is_some() {
            b.size.div_ceil(TILE_BF16).max(1)
        } else {
            pages
        };
        let n = match b.num_cores {
            Some(n) if n > 0 => n as u64,
            _ => {
                notes.push("the core count was not recorded: one core assumed".into());
                1
            }
        };
        let (k, cores) = if pages.is_multiple_of(n) {
            (pages / n, n)
        } else {
            let k = pages.div_ceil(n);
            notes.push(format!(
                "{pages} pages do not split evenly over {n} cores: {k} per core on {} cores",
                pages.div_ceil(k)
            ));
            (k, pages.div_ceil(k))
        };
        let (name, shape, shard, grid) = match b.layout {
            Layout::HeightSharded => (
                "HEIGHT_SHARDED",
                [1, 1, 32 * pages, 32],
                (32 * k, 32),
                format!("cores({cores})"),
            ),
            Layout::WidthSharded => (
                "WIDTH_SHARDED",
                [1, 1, 32, 32 * pages],
                (32, 32 * k),
                format!("cores({cores})"),
            ),
            _ => {
                let (cols, rows) = if cores <= GRID_WIDTH {
                    (cores, 1)
                } else if cores.is_multiple_of(GRID_WIDTH) {
                    (GRID_WIDTH, cores / GRID_WIDTH)
                } else {
                    notes.push(format!(
                        "{cores} cores make no rectangle 8 wide: {} used",
                        cores.div_ceil(GRID_WIDTH) * GRID_WIDTH
                    ));
                    (GRID_WIDTH, cores.div_ceil(GRID_WIDTH))
                };
                (
                    "BLOCK_SHARDED",
                    [1, 1, 32 * k * rows, 32 * cols],
                    (32 * k, 32),
                    format!("grid({cols}, {rows})"),
                )
            }
        };
        (
            shape,
            format!(
                "sharded(ttnn.TensorMemoryLayout.{name}, {bt}, {grid}, ({}, {}))",
                shard.0, shard.1
            ),
        )
    };
    let (dtype, layout) = if b.layout.is_sharded() {
        ("ttnn.bfloat16", "ttnn.TILE_LAYOUT")
    } else {
        (dtype, layout)
    };
    Ok(TensorRequest {
        shape,
        dtype,
        layout,
        memory_config,
        inexact: (!notes.is_empty()).then(|| notes.join("; ")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buf(
        bt: BufferType,
        size: u64,
        page: Option<u64>,
        layout: Layout,
        cores: Option<u32>,
    ) -> RecordedBuffer {
        RecordedBuffer {
            buffer_type: bt,
            size,
            page_size: page,
            layout,
            num_cores: cores,
        }
    }

    #[test]
    fn interleaved_tiles_and_rows() {
        // 8 MiB of 2048 B tiles = 4096 pages: one tile row of 4096 tiles.
        let r = request_for(&buf(
            BufferType::L1,
            8 << 20,
            Some(2048),
            Layout::Interleaved,
            None,
        ))
        .unwrap();
        assert_eq!(r.shape, [1, 1, 32, 32 * 4096]);
        assert_eq!((r.dtype, r.layout), ("ttnn.bfloat16", "ttnn.TILE_LAYOUT"));
        assert!(r.inexact.is_none());
        // 100 rows of 640 B: bfloat16 rows of 320 elements.
        let r = request_for(&buf(
            BufferType::Dram,
            64_000,
            Some(640),
            Layout::Interleaved,
            None,
        ))
        .unwrap();
        assert_eq!(r.shape, [1, 1, 100, 320]);
        assert_eq!(r.layout, "ttnn.ROW_MAJOR_LAYOUT");
        assert!(r.inexact.is_none());
        // A size that is no whole number of pages says so.
        let r = request_for(&buf(
            BufferType::Dram,
            3000,
            Some(2048),
            Layout::Interleaved,
            None,
        ))
        .unwrap();
        assert!(r.inexact.unwrap().contains("rounded up"));
    }

    #[test]
    fn sharded_layouts_keep_pages_per_core() {
        // 16 pages on 8 cores, height: 2 tiles per shard.
        let r = request_for(&buf(
            BufferType::L1,
            32768,
            Some(2048),
            Layout::HeightSharded,
            Some(8),
        ))
        .unwrap();
        assert_eq!(r.shape, [1, 1, 512, 32]);
        assert!(r.memory_config.contains("HEIGHT_SHARDED") && r.memory_config.contains("(64, 32)"));
        assert!(r.memory_config.contains("cores(8)"));
        // 64 pages on 4 cores, block: 1x4 grid, 16 tiles per core.
        let r = request_for(&buf(
            BufferType::L1,
            131072,
            Some(2048),
            Layout::BlockSharded,
            Some(4),
        ))
        .unwrap();
        assert_eq!(r.shape, [1, 1, 512, 128]);
        assert!(r.memory_config.contains("grid(4, 1)") && r.memory_config.contains("(512, 32)"));
        assert!(r.inexact.is_none());
        // 6 pages on 4 cores cannot split evenly.
        let r = request_for(&buf(
            BufferType::L1,
            12288,
            Some(2048),
            Layout::HeightSharded,
            Some(4),
        ))
        .unwrap();
        assert!(r.inexact.unwrap().contains("do not split evenly"));
        assert!(request_for(&buf(
            BufferType::Trace,
            2048,
            None,
            Layout::Interleaved,
            None
        ))
        .is_err());
    }
}
