//! Typed ids (in the style of `rustc_index`): a `BufferId` can never be passed
//! where a `DeviceId` is expected, and each carries its own width.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! typed_id {
    ($(#[$meta:meta])* $name:ident($inner:ty)) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub $inner);

        impl $name {
            #[inline]
            pub const fn new(v: $inner) -> Self {
                Self(v)
            }
            #[inline]
            pub const fn get(self) -> $inner {
                self.0
            }
            #[inline]
            pub const fn index(self) -> usize {
                self.0 as usize
            }
        }

        impl From<$inner> for $name {
            #[inline]
            fn from(v: $inner) -> Self {
                Self(v)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }
    };
}

typed_id!(
    /// A device (chip) id as tt-metal numbers it.
    DeviceId(u32)
);
typed_id!(
    /// A buffer's identity, unique within a trace and never an address (addresses are reused).
    BufferId(u64)
);
typed_id!(
    /// An interned call stack: a node of the stack prefix tree. `SiteId::UNKNOWN` (0) is the empty stack.
    SiteId(u32)
);
typed_id!(
    /// An interned string. `StringId::EMPTY` (0) is "".
    StringId(u32)
);
typed_id!(
    /// An interned frame `{function, file, line}`.
    FrameId(u32)
);
typed_id!(
    /// A program (kernel binaries) id, unique per device within a trace.
    ProgramId(u64)
);
typed_id!(
    /// A captured trace's id on its device.
    TraceId(u32)
);
typed_id!(
    /// An operating-system process id.
    Pid(u32)
);

impl SiteId {
    /// The empty stack: no call site was recorded.
    pub const UNKNOWN: SiteId = SiteId(0);
}

impl StringId {
    pub const EMPTY: StringId = StringId(0);
}
