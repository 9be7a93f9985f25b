//! The workload's vocabulary: ttnn op names and Python-looking call sites.

use ttalloc_model::{BufferType, InternTables, Layout, SiteId};

use super::rng::Rng;
use super::{NUM_ALLOC_SITES, TILE_PAGE};

pub(super) struct SiteSpec {
    pub(super) id: SiteId,
    pub(super) buffer_type: BufferType,
    pub(super) layout: Layout,
    /// Typical size in bytes (a multiple of the tile page).
    pub(super) size: u64,
    pub(super) num_cores: Option<u32>,
    /// Freed before the op ends (an intermediate) rather than an output.
    pub(super) intermediate: bool,
}

pub(super) const OPS: [&str; 20] = [
    "ttnn.matmul",
    "ttnn.linear",
    "ttnn.add",
    "ttnn.multiply",
    "ttnn.softmax",
    "ttnn.layer_norm",
    "ttnn.rms_norm",
    "ttnn.gelu",
    "ttnn.silu",
    "ttnn.embedding",
    "ttnn.reshape",
    "ttnn.permute",
    "ttnn.concat",
    "ttnn.to_memory_config",
    "ttnn.to_device",
    "ttnn.from_device",
    "ttnn.experimental.rotary_embedding",
    "ttnn.transformer.scaled_dot_product_attention",
    "ttnn.all_gather",
    "ttnn.typecast",
];

const MODULES: [(&str, &str); 6] = [
    ("forward", "models/demos/llama3/tt/llama_attention.py"),
    ("forward", "models/demos/llama3/tt/llama_mlp.py"),
    ("forward", "models/demos/llama3/tt/llama_decoder.py"),
    ("forward", "models/demos/llama3/tt/llama_model.py"),
    ("prepare_inputs", "models/demos/llama3/tt/llama_common.py"),
    ("forward", "models/demos/llama3/tt/llama_embedding.py"),
];

/// The allocating call sites, `NUM_ALLOC_SITES` of them in `LeakSite::site`
/// order, with their usual buffer shape (drawn from `rng`).
pub(super) fn alloc_sites(rng: &mut Rng, t: &mut InternTables) -> Vec<SiteSpec> {
    let mut sites = Vec::with_capacity(NUM_ALLOC_SITES);
    for i in 0..NUM_ALLOC_SITES {
        let op = i % OPS.len();
        let (mfunc, mfile) = MODULES[(i / 3) % MODULES.len()];
        let op_func = OPS[op].rsplit('.').next().unwrap_or("op");
        let op_file = format!("ttnn/ttnn/operations/{op_func}.py");
        let inner = [
            (
                "allocate_tensor_on_device",
                "ttnn/ttnn/operations/core.py",
                120 + (i % 3) as u32 * 17,
            ),
            ("create_device_tensor", "ttnn/ttnn/operations/core.py", 240),
            ("empty", "ttnn/ttnn/operations/creation.py", 88),
        ][i % 3];
        let mut frames: Vec<(&str, &str, u32)> =
            vec![inner, ("__call__", &op_file, 40 + (i % 7) as u32)];
        frames.push((mfunc, mfile, 100 + (i * 13 % 400) as u32));
        if i % 2 == 0 {
            frames.push(("forward", "models/demos/llama3/tt/llama_decoder.py", 77));
        }
        frames.push(("run_llama3_demo", "models/demos/llama3/demo/demo.py", 512));
        frames.push((
            "test_llama_demo",
            "models/demos/llama3/tests/test_demo.py",
            33 + (i % 4) as u32,
        ));
        if i % 5 == 0 {
            frames.push(("pytest_pyfunc_call", "_pytest/python.py", 159));
        }
        let id = t.intern_stack_str(&frames);
        let dram = rng.chance(70);
        let (buffer_type, layout, size, num_cores) = if dram {
            // Log-uniform 32 KB .. 64 MB in tile pages.
            let exp = rng.range(15, 26);
            let size = ((1u64 << exp) + rng.below(1 << exp)) / TILE_PAGE * TILE_PAGE;
            (
                BufferType::Dram,
                Layout::Interleaved,
                size.max(16 * TILE_PAGE),
                None,
            )
        } else {
            let exp = rng.range(15, 21);
            let size = ((1u64 << exp) + rng.below(1 << exp)) / TILE_PAGE * TILE_PAGE;
            let layout = Layout::from_u8(rng.below(4) as u8).unwrap_or(Layout::Interleaved);
            let cores = if layout.is_sharded() {
                Some([8u32, 16, 32, 64][rng.below(4) as usize])
            } else {
                None
            };
            (BufferType::L1, layout, size.max(16 * TILE_PAGE), cores)
        };
        sites.push(SiteSpec {
            id,
            buffer_type,
            layout,
            size,
            num_cores,
            intermediate: i % 3 == 2,
        });
    }
    sites
}

/// The freeing call sites: `deallocate` in a decoder layer, `__del__`,
/// `deallocate` in attention, and the end-of-cycle `synchronize_device`.
pub(super) fn free_sites(t: &mut InternTables) -> Vec<SiteId> {
    vec![
        t.intern_stack_str(&[
            ("deallocate", "ttnn/ttnn/operations/core.py", 310),
            ("forward", "models/demos/llama3/tt/llama_decoder.py", 90),
            ("run_llama3_demo", "models/demos/llama3/demo/demo.py", 512),
        ]),
        t.intern_stack_str(&[
            ("__del__", "ttnn/ttnn/types.py", 52),
            ("run_llama3_demo", "models/demos/llama3/demo/demo.py", 530),
        ]),
        t.intern_stack_str(&[
            ("deallocate", "ttnn/ttnn/operations/core.py", 310),
            ("forward", "models/demos/llama3/tt/llama_attention.py", 260),
            ("forward", "models/demos/llama3/tt/llama_decoder.py", 70),
            ("run_llama3_demo", "models/demos/llama3/demo/demo.py", 512),
        ]),
        t.intern_stack_str(&[
            ("synchronize_device", "ttnn/ttnn/device.py", 140),
            (
                "test_llama_demo",
                "models/demos/llama3/tests/test_demo.py",
                60,
            ),
        ]),
    ]
}
