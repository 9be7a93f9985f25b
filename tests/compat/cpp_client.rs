//! A client that speaks tt-metal's allocation-server protocol the way its
//! C++ `AllocationClient` does.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub(crate) const MSG: usize = 112;

/// tt-metal's `AllocMessage` (allocation_client.cpp), built the way its
/// `send_*_message` functions do: zeroed, then the fields they set.
#[derive(Default, Clone, Copy)]
pub(crate) struct AllocMessage {
    pub(crate) kind: u8,
    pub(crate) device_id: i32,
    pub(crate) size: u64,
    pub(crate) buffer_type: u8,
    pub(crate) process_id: i32,
    pub(crate) buffer_id: u64,
    pub(crate) timestamp: u64,
}

impl AllocMessage {
    pub(crate) fn bytes(&self) -> [u8; MSG] {
        let mut b = [0u8; MSG]; // memset(&msg, 0, sizeof(msg))
        b[0] = self.kind;
        b[4..8].copy_from_slice(&self.device_id.to_le_bytes());
        b[8..16].copy_from_slice(&self.size.to_le_bytes());
        b[16] = self.buffer_type;
        b[20..24].copy_from_slice(&self.process_id.to_le_bytes());
        b[24..32].copy_from_slice(&self.buffer_id.to_le_bytes());
        b[32..40].copy_from_slice(&self.timestamp.to_le_bytes());
        b
    }
}

/// A client that behaves like tt-metal's `AllocationClient`: one connection,
/// one blocking send of the whole struct per message.
pub(crate) struct CppClient {
    sock: UnixStream,
    pid: i32,
}

pub(crate) fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

impl CppClient {
    pub(crate) fn connect(path: &Path) -> CppClient {
        let sock = UnixStream::connect(path).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        CppClient {
            sock,
            pid: std::process::id() as i32,
        }
    }
    pub(crate) fn send(&mut self, m: AllocMessage) {
        // send() in a loop until all bytes are out = write_all.
        self.sock.write_all(&m.bytes()).unwrap();
    }
    pub(crate) fn alloc(&mut self, device: i32, size: u64, buffer_type: u8, address: u64) {
        let pid = self.pid;
        self.send(AllocMessage {
            kind: 1,
            device_id: device,
            size,
            buffer_type,
            process_id: pid,
            buffer_id: address,
            timestamp: now_ns(),
        });
    }
    pub(crate) fn free(&mut self, device: i32, address: u64) {
        let pid = self.pid;
        self.send(AllocMessage {
            kind: 2,
            device_id: device,
            process_id: pid,
            buffer_id: address,
            ..Default::default()
        });
    }
    pub(crate) fn request(&mut self, kind: u8, device: i32) -> [u8; MSG] {
        self.send(AllocMessage {
            kind,
            device_id: device,
            ..Default::default()
        });
        let mut b = [0u8; MSG];
        self.sock.read_exact(&mut b).unwrap();
        b
    }
    /// QUERY: (type, dram, l1, l1_small, trace).
    pub(crate) fn query(&mut self, device: i32) -> (u8, u64, u64, u64, u64) {
        let b = self.request(3, device);
        let u = |at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap());
        assert_eq!(i32::from_le_bytes(b[4..8].try_into().unwrap()), device);
        (b[0], u(40), u(48), u(56), u(64))
    }
}
