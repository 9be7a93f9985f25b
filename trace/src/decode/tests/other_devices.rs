//! The other kinds' devices (2.3+: a chain of their own), in blocks where
//! every other kind has one and where some (process starts and exits) have
//! none.

use super::circular_buffers::block_of;
use super::*;
use ttalloc_model::{ProgramId, StringId};

fn cb(device: u32) -> EventKind {
    EventKind::CbAlloc {
        device: DeviceId(device),
        address: 0x4000,
        size: 2048,
        cores: None,
        globally_allocated: false,
        site: SiteId(2),
    }
}

fn load(device: u32) -> EventKind {
    EventKind::ProgramLoad {
        device: DeviceId(device),
        program: ProgramId(9),
        binary_size: 100,
        site: SiteId(3),
    }
}

#[test]
fn every_other_kind_gets_its_own_device_with_or_without_deviceless_kinds() {
    use crate::codec::ColumnLayout::{V23, V24, V25};
    let start = EventKind::ProcessStart {
        ppid: Pid(1),
        argv: StringId(4),
    };
    let exit = EventKind::ProcessExit { status: Some(0) };
    let with_devices = vec![cb(1), load(3), cb(2), EventKind::OpEnd, load(0), cb(3)];
    let mut mixed = vec![start.clone(), cb(1), load(3)];
    mixed.extend([exit, cb(2), start, EventKind::OpEnd, load(0), cb(3)]);
    for layout in [V23, V24, V25] {
        for kinds in [&with_devices, &mixed] {
            let cols = decode(&block_of(layout, kinds)).unwrap();
            let mut got = Vec::new();
            cols.for_each_event(|_, e| got.push(e.kind));
            assert_eq!(&got, kinds, "{layout:?}");
        }
    }
}
