//! How a client numbers buffer types (tt-metal's or the Python demo's).

use ttalloc_model::BufferType;

/// How a client numbers buffer types.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Numbering {
    /// tt-metal's `BufferType`: 0 DRAM, 1 L1, 2 SYSTEM_MEMORY, 3 L1_SMALL, 4 TRACE.
    #[default]
    TtMetal,
    /// The Python demo client's: 0 DRAM, 1 L1, 2 L1_SMALL, 3 TRACE.
    PythonDemo,
}

impl Numbering {
    pub fn buffer_type(self, v: u8) -> Option<BufferType> {
        match self {
            Numbering::TtMetal => BufferType::from_u8(v),
            Numbering::PythonDemo => match v {
                0 => Some(BufferType::Dram),
                1 => Some(BufferType::L1),
                2 => Some(BufferType::L1Small),
                3 => Some(BufferType::Trace),
                _ => None,
            },
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Numbering::TtMetal => "tt-metal",
            Numbering::PythonDemo => "python-demo",
        }
    }
}

impl std::str::FromStr for Numbering {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().replace('_', "-").as_str() {
            "tt-metal" | "ttmetal" | "tt-metalium" => Ok(Numbering::TtMetal),
            "python-demo" | "python" | "demo" => Ok(Numbering::PythonDemo),
            _ => Err(format!(
                "unknown buffer-type numbering '{s}' (expected tt-metal or python-demo)"
            )),
        }
    }
}
