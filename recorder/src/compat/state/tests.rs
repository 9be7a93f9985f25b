use super::*;

struct Ids;
impl IdSource for Ids {
    fn buffer_id(&mut self, local: u64) -> BufferId {
        BufferId(1000 + local)
    }
    fn program_id(&mut self, local: u64) -> ProgramId {
        ProgramId(2000 + local)
    }
}

fn msg(t: MsgType, device: i32, size: u64, bt: u8, id: u64) -> Message {
    Message {
        msg_type: t as u8,
        device_id: device,
        size,
        buffer_type: bt,
        process_id: 7,
        buffer_id: id,
        ..Default::default()
    }
}

fn query(r: &mut Registry, device: i32) -> (u64, u64, u64, u64) {
    let m = r
        .apply(&msg(MsgType::Query, device, 0, 0, 0), 7, &mut Ids)
        .reply
        .unwrap();
    assert_eq!(m.msg_type, MsgType::Response as u8);
    assert_eq!(m.device_id, device);
    (
        m.dram_allocated,
        m.l1_allocated,
        m.l1_small_allocated,
        m.trace_allocated,
    )
}

#[test]
fn refcounted_keys_free_bytes_only_at_zero() {
    let mut r = Registry::new(Numbering::TtMetal);
    let a = r.apply(&msg(MsgType::Alloc, 0, 4096, 0, 0x100), 7, &mut Ids);
    assert!(matches!(
        a.events[..],
        [EventKind::BufferAlloc {
            address: Some(0x100),
            size: 4096,
            buffer_type: BufferType::Dram,
            ..
        }]
    ));
    // Same key again: no new event, count 2.
    assert!(r
        .apply(&msg(MsgType::Alloc, 0, 4096, 0, 0x100), 7, &mut Ids)
        .events
        .is_empty());
    // Same address on another device is another buffer.
    r.apply(&msg(MsgType::Alloc, 1, 512, 1, 0x100), 7, &mut Ids);
    assert_eq!(query(&mut r, 0), (4096, 0, 0, 0));
    assert_eq!(query(&mut r, 1), (0, 512, 0, 0));
    assert!(r
        .apply(&msg(MsgType::Free, 0, 0, 0, 0x100), 7, &mut Ids)
        .events
        .is_empty());
    assert_eq!(query(&mut r, 0), (4096, 0, 0, 0));
    let f = r.apply(&msg(MsgType::Free, 0, 0, 0, 0x100), 7, &mut Ids);
    let alloc_id = match a.events[0] {
        EventKind::BufferAlloc { buffer, .. } => buffer,
        _ => unreachable!(),
    };
    assert_eq!(
        f.events,
        [EventKind::BufferFree {
            device: DeviceId(0),
            buffer: alloc_id,
            site: SiteId::UNKNOWN
        }]
    );
    assert_eq!(query(&mut r, 0), (0, 0, 0, 0));
    assert_eq!(r.active_allocations(), 1);
}

#[test]
fn unknown_free_is_a_free_of_a_never_allocated_id() {
    let mut r = Registry::new(Numbering::TtMetal);
    let a = r.apply(&msg(MsgType::Alloc, 0, 64, 1, 0x40), 7, &mut Ids);
    let f = r.apply(&msg(MsgType::Free, 0, 0, 0, 0x80), 7, &mut Ids);
    let (
        EventKind::BufferAlloc {
            buffer: allocated, ..
        },
        EventKind::BufferFree { buffer: freed, .. },
    ) = (&a.events[0], &f.events[0])
    else {
        panic!("{a:?} {f:?}")
    };
    assert_ne!(allocated, freed);
    assert_eq!(r.unknown_frees, 1);
    assert!(
        f.lines[0].contains("Deallocation for unknown buffer: process 7 buffer 0x80 on device 0"),
        "{:?}",
        f.lines
    );
    assert_eq!(query(&mut r, 0), (0, 64, 0, 0));
}

#[test]
fn numberings_differ_on_2_3_4() {
    for (numbering, v, want) in [
        (Numbering::TtMetal, 2, Some(BufferType::SystemMemory)),
        (Numbering::TtMetal, 3, Some(BufferType::L1Small)),
        (Numbering::TtMetal, 4, Some(BufferType::Trace)),
        (Numbering::PythonDemo, 2, Some(BufferType::L1Small)),
        (Numbering::PythonDemo, 3, Some(BufferType::Trace)),
        (Numbering::PythonDemo, 4, None),
    ] {
        assert_eq!(numbering.buffer_type(v), want, "{numbering:?} {v}");
    }
    let mut r = Registry::new(Numbering::PythonDemo);
    r.apply(&msg(MsgType::Alloc, 0, 100, 3, 1), 7, &mut Ids);
    r.apply(&msg(MsgType::Alloc, 0, 10, 2, 2), 7, &mut Ids);
    assert_eq!(query(&mut r, 0), (0, 0, 10, 100));
    let bad = r.apply(&msg(MsgType::Alloc, 0, 10, 4, 3), 7, &mut Ids);
    assert!(bad.rejected && bad.events.is_empty());
    assert!(bad.lines[0].contains("--compat-types"));
    let mut r = Registry::new(Numbering::TtMetal);
    r.apply(&msg(MsgType::Alloc, 0, 100, 3, 1), 7, &mut Ids);
    r.apply(&msg(MsgType::Alloc, 0, 10, 4, 2), 7, &mut Ids);
    assert_eq!(query(&mut r, 0), (0, 0, 100, 10));
    assert_eq!(
        "python-demo".parse::<Numbering>(),
        Ok(Numbering::PythonDemo)
    );
    assert!("x".parse::<Numbering>().is_err());
}

#[test]
fn device_info_counts_devices_seen() {
    let mut r = Registry::new(Numbering::TtMetal);
    let info = |r: &mut Registry, d| {
        r.apply(&msg(MsgType::DeviceInfoQuery, d, 0, 0, 0), 7, &mut Ids)
            .reply
            .unwrap()
    };
    assert_eq!(info(&mut r, -1).num_devices, 0);
    r.apply(&msg(MsgType::Alloc, 3, 1, 0, 1), 7, &mut Ids);
    let all = info(&mut r, -1);
    assert_eq!((all.msg_type, all.num_devices, all.is_available), (7, 4, 1));
    // Details of one device are unknown: the monitor uses its defaults.
    let one = info(&mut r, 2);
    assert_eq!((one.msg_type, one.device_id, one.is_available), (7, 2, 0));
    assert_eq!((one.total_dram_size, one.num_devices), (0, 0));
}

#[test]
fn cbs_and_kernels() {
    let mut r = Registry::new(Numbering::TtMetal);
    let a = r.apply(&msg(MsgType::CbAlloc, 0, 4096, 0, 0x19000), 7, &mut Ids);
    assert!(matches!(
        a.events[..],
        [EventKind::CbAlloc {
            address: 0x19000,
            size: 4096,
            ..
        }]
    ));
    r.apply(&msg(MsgType::CbAlloc, 0, 2048, 0, 0x1a000), 7, &mut Ids);
    assert!(r
        .apply(&msg(MsgType::CbFree, 0, 4096, 0, 0x19000), 7, &mut Ids)
        .events
        .is_empty());
    let last = r.apply(&msg(MsgType::CbFree, 0, 2048, 0, 0x1a000), 7, &mut Ids);
    assert_eq!(
        last.events,
        [EventKind::CbFreeAll {
            device: DeviceId(0)
        }]
    );
    assert_eq!(r.counters(0).cb, 0);

    let l = r.apply(&msg(MsgType::KernelLoad, 1, 900, 0, 5), 7, &mut Ids);
    let EventKind::ProgramLoad {
        program,
        binary_size: 900,
        device: DeviceId(1),
        ..
    } = l.events[0]
    else {
        panic!("{l:?}")
    };
    assert!(r
        .apply(&msg(MsgType::KernelLoad, 1, 900, 0, 5), 7, &mut Ids)
        .events
        .is_empty());
    assert_eq!(r.counters(1).kernel, 900);
    assert!(r
        .apply(&msg(MsgType::KernelUnload, 1, 900, 0, 5), 7, &mut Ids)
        .events
        .is_empty());
    let u = r.apply(&msg(MsgType::KernelUnload, 1, 900, 0, 5), 7, &mut Ids);
    assert_eq!(
        u.events,
        [EventKind::ProgramUnload {
            device: DeviceId(1),
            program
        }]
    );
}

#[test]
fn dead_owner_entries_leave_the_registry() {
    let mut r = Registry::new(Numbering::TtMetal);
    r.apply(&msg(MsgType::Alloc, 0, 100, 0, 1), 7, &mut Ids);
    r.apply(&msg(MsgType::Alloc, 0, 50, 1, 2), 8, &mut Ids);
    assert_eq!(r.drop_owner(7), (1, 100));
    assert_eq!(query(&mut r, 0), (0, 50, 0, 0));
    assert_eq!(r.active_allocations(), 1);
    let stats = r.statistics();
    assert!(stats.contains("  Device 0:\n    Buffers: 1\n    DRAM: 0 bytes (0 KB)\n    L1: 50 bytes (0.0488281 KB)\n    Total: 50 bytes\n"), "{stats}");
    assert!(stats.ends_with("  Active allocations: 1\n"), "{stats}");
    let dump = r.dump_remaining().join("\n");
    assert!(dump.contains("Device 0:\n  L1: 1 buffers, 4.76837e-05 MB total\n    - Buffer 0x2: 0.0488281 KB (PID 8, ref_count=1)"), "{dump}");
}

#[test]
fn g_format_matches_iostream() {
    for (v, s) in [
        (36.0, "36"),
        (22.5, "22.5"),
        (1234.5678, "1234.57"),
        (0.0488281, "0.0488281"),
        (1e7, "1e+07"),
        (123456.7, "123457"),
        (0.0, "0"),
        (0.0000476837, "4.76837e-05"),
        (0.0001, "0.0001"),
    ] {
        assert_eq!(fmt_g(v), s, "{v}");
    }
}
