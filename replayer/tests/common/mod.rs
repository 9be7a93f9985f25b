//! Hand-built event streams for the replayer's integration tests.

// Each test binary uses a part of it.
#![allow(dead_code)]

use ttalloc_model::*;
use ttalloc_replayer::{replay_events, ReplayOptions, Report};

/// Builds an event stream (pid 7, no call sites): event `i` has time
/// 1000 + i, and is on device 0 unless [`Stream::on`] said another.
#[derive(Default)]
pub struct Stream {
    pub events: Vec<Event>,
    device: u32,
}

impl Stream {
    /// The events that follow are on `device`.
    pub fn on(&mut self, device: u32) -> &mut Self {
        self.device = device;
        self
    }
    pub fn push(&mut self, kind: EventKind) -> &mut Self {
        let ts = 1_000 + self.events.len() as u64;
        self.events.push(Event {
            ts,
            pid: Pid(7),
            kind,
        });
        self
    }
    pub fn open(&mut self, config: DeviceConfig) -> &mut Self {
        self.push(EventKind::DeviceOpen {
            device: DeviceId(self.device),
            arch: Arch::WormholeB0,
            config: Box::new(config),
        })
    }
    pub fn alloc(&mut self, buffer: u64, buffer_type: BufferType, size: u64) -> &mut Self {
        self.push(EventKind::BufferAlloc {
            device: DeviceId(self.device),
            buffer: BufferId(buffer),
            buffer_type,
            address: None,
            size,
            page_size: Some(2048),
            layout: Layout::Interleaved,
            num_cores: None,
            per_bank_size: None,
            label: StringId::EMPTY,
            site: SiteId::UNKNOWN,
        })
    }
    pub fn free(&mut self, buffer: u64) -> &mut Self {
        self.push(EventKind::BufferFree {
            device: DeviceId(self.device),
            buffer: BufferId(buffer),
            site: SiteId::UNKNOWN,
        })
    }
    /// A static circular buffer on one core.
    pub fn cb(&mut self, address: u64, size: u64) -> &mut Self {
        self.push(EventKind::CbAlloc {
            device: DeviceId(self.device),
            address,
            size,
            cores: Some(1),
            globally_allocated: false,
            site: SiteId::UNKNOWN,
        })
    }
    pub fn cb_free_all(&mut self) -> &mut Self {
        self.push(EventKind::CbFreeAll {
            device: DeviceId(self.device),
        })
    }
    pub fn replay(&self) -> Report {
        replay_events(
            self.events.clone(),
            InternTables::new(),
            &ReplayOptions::default(),
        )
        .expect("replay")
    }
}
