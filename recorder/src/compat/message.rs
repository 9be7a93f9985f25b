//! The allocation server's 112-byte `AllocMessage` (tt-metal memory-monitor
//! branch): packed little-endian, no length prefix, one message after the
//! other on a stream socket.
//!
//! | offset | field |
//! |---|---|
//! | 0 | type u8, then 3 bytes padding |
//! | 4 | device_id i32 |
//! | 8 | size u64 |
//! | 16 | buffer_type u8, then 3 bytes padding |
//! | 20 | process_id i32 |
//! | 24 | buffer_id u64 (the C++ client sends the buffer's address) |
//! | 32 | timestamp u64 (ns since the epoch; 0 on FREE) |
//! | 40 | dram, l1, l1_small, trace allocated: 4 x u64 (responses) |
//! | 72 | total_dram_size, total_l1_size: 2 x u64 (device info) |
//! | 88 | arch_type, num_dram_channels, dram_size_per_channel, l1_size_per_core, is_available, num_devices: 6 x u32 |

/// Size of one message on the wire.
pub const MESSAGE_SIZE: usize = 112;

/// Message types. 8-11 come from the later branch versions (whose struct is
/// 128 bytes; their header, bytes 0-39, is the same).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum MsgType {
    Alloc = 1,
    Free = 2,
    Query = 3,
    Response = 4,
    DumpRemaining = 5,
    DeviceInfoQuery = 6,
    DeviceInfoResponse = 7,
    CbAlloc = 8,
    CbFree = 9,
    KernelLoad = 10,
    KernelUnload = 11,
    /// `tt_smi`'s request to list kernels; acknowledged, nothing to record.
    DumpKernels = 12,
}

impl MsgType {
    pub fn from_u8(v: u8) -> Option<MsgType> {
        use MsgType::*;
        Some(match v {
            1 => Alloc,
            2 => Free,
            3 => Query,
            4 => Response,
            5 => DumpRemaining,
            6 => DeviceInfoQuery,
            7 => DeviceInfoResponse,
            8 => CbAlloc,
            9 => CbFree,
            10 => KernelLoad,
            11 => KernelUnload,
            12 => DumpKernels,
            _ => return None,
        })
    }

    /// Types a client sends (responses only ever go server -> client).
    pub fn is_request(self) -> bool {
        !matches!(self, MsgType::Response | MsgType::DeviceInfoResponse)
    }
}

/// One decoded message (all fields, requests and responses alike).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Message {
    pub msg_type: u8,
    pub device_id: i32,
    pub size: u64,
    pub buffer_type: u8,
    pub process_id: i32,
    pub buffer_id: u64,
    pub timestamp: u64,
    pub dram_allocated: u64,
    pub l1_allocated: u64,
    pub l1_small_allocated: u64,
    pub trace_allocated: u64,
    pub total_dram_size: u64,
    pub total_l1_size: u64,
    pub arch_type: u32,
    pub num_dram_channels: u32,
    pub dram_size_per_channel: u32,
    pub l1_size_per_core: u32,
    pub is_available: u32,
    pub num_devices: u32,
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

impl Message {
    pub fn kind(&self) -> Option<MsgType> {
        MsgType::from_u8(self.msg_type)
    }

    /// Decodes the fields without any validation (see [`StreamDecoder`]).
    pub fn decode(b: &[u8; MESSAGE_SIZE]) -> Message {
        Message {
            msg_type: b[0],
            device_id: u32_at(b, 4) as i32,
            size: u64_at(b, 8),
            buffer_type: b[16],
            process_id: u32_at(b, 20) as i32,
            buffer_id: u64_at(b, 24),
            timestamp: u64_at(b, 32),
            dram_allocated: u64_at(b, 40),
            l1_allocated: u64_at(b, 48),
            l1_small_allocated: u64_at(b, 56),
            trace_allocated: u64_at(b, 64),
            total_dram_size: u64_at(b, 72),
            total_l1_size: u64_at(b, 80),
            arch_type: u32_at(b, 88),
            num_dram_channels: u32_at(b, 92),
            dram_size_per_channel: u32_at(b, 96),
            l1_size_per_core: u32_at(b, 100),
            is_available: u32_at(b, 104),
            num_devices: u32_at(b, 108),
        }
    }

    pub fn encode(&self) -> [u8; MESSAGE_SIZE] {
        let mut b = [0u8; MESSAGE_SIZE];
        b[0] = self.msg_type;
        b[4..8].copy_from_slice(&self.device_id.to_le_bytes());
        b[8..16].copy_from_slice(&self.size.to_le_bytes());
        b[16] = self.buffer_type;
        b[20..24].copy_from_slice(&self.process_id.to_le_bytes());
        b[24..32].copy_from_slice(&self.buffer_id.to_le_bytes());
        b[32..40].copy_from_slice(&self.timestamp.to_le_bytes());
        let u64s = [
            self.dram_allocated,
            self.l1_allocated,
            self.l1_small_allocated,
            self.trace_allocated,
            self.total_dram_size,
            self.total_l1_size,
        ];
        for (i, v) in u64s.iter().enumerate() {
            b[40 + 8 * i..48 + 8 * i].copy_from_slice(&v.to_le_bytes());
        }
        let u32s = [
            self.arch_type,
            self.num_dram_channels,
            self.dram_size_per_channel,
            self.l1_size_per_core,
            self.is_available,
            self.num_devices,
        ];
        for (i, v) in u32s.iter().enumerate() {
            b[88 + 4 * i..92 + 4 * i].copy_from_slice(&v.to_le_bytes());
        }
        b
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn alloc(device: i32, size: u64, bt: u8, pid: i32, addr: u64) -> Message {
        Message {
            msg_type: MsgType::Alloc as u8,
            device_id: device,
            size,
            buffer_type: bt,
            process_id: pid,
            buffer_id: addr,
            timestamp: 1_700_000_000_000_000_000,
            ..Default::default()
        }
    }

    #[test]
    fn layout_matches_the_python_struct_format() {
        // '=BxxxiQBxxxiQQQQQQQQIIIIII' with type=1, device=3, size=0x1122,
        // buffer_type=4, pid=77, buffer_id=0xdead, ts=5, counters 6..9,
        // totals 10, 11, then 12..17.
        let m = Message {
            msg_type: 1,
            device_id: 3,
            size: 0x1122,
            buffer_type: 4,
            process_id: 77,
            buffer_id: 0xdead,
            timestamp: 5,
            dram_allocated: 6,
            l1_allocated: 7,
            l1_small_allocated: 8,
            trace_allocated: 9,
            total_dram_size: 10,
            total_l1_size: 11,
            arch_type: 12,
            num_dram_channels: 13,
            dram_size_per_channel: 14,
            l1_size_per_core: 15,
            is_available: 16,
            num_devices: 17,
        };
        let b = m.encode();
        assert_eq!(b.len(), 112);
        assert_eq!(b[0], 1);
        assert_eq!(&b[4..8], &3i32.to_le_bytes());
        assert_eq!(&b[8..16], &0x1122u64.to_le_bytes());
        assert_eq!(b[16], 4);
        assert_eq!(&b[20..24], &77i32.to_le_bytes());
        assert_eq!(&b[24..32], &0xdeadu64.to_le_bytes());
        assert_eq!(&b[64..72], &9u64.to_le_bytes());
        assert_eq!(&b[80..88], &11u64.to_le_bytes());
        assert_eq!(&b[88..92], &12u32.to_le_bytes());
        assert_eq!(&b[108..112], &17u32.to_le_bytes());
        assert_eq!(Message::decode(&b), m);
        let neg = Message {
            msg_type: 6,
            device_id: -1,
            ..Default::default()
        };
        assert_eq!(Message::decode(&neg.encode()).device_id, -1);
    }
}
