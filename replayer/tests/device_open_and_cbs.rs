//! Replays of hand-built event streams for two engine rules: what a
//! `DeviceOpen` does to a device already in use, and how circular buffers are
//! placed, released by free-all and checked against L1 buffers. Expected
//! values are worked out beside each test from the events it builds.

mod common;

use common::Stream;
use ttalloc_model::*;
use ttalloc_replayer::Report;

const L1_PER_BANK: u64 = 1 << 20;

/// A 64 KiB L1 bank: far too small for 1 MiB per bank.
fn small_l1() -> DeviceConfig {
    DeviceConfig {
        l1_bank_size: Some(65536),
        ..DeviceConfig::default()
    }
}

/// 1 MiB on each L1 bank of the wormhole_b0 preset (it has room for that).
fn big_l1_request() -> u64 {
    let preset = ttalloc_model::alloc::Device::new(Arch::WormholeB0, &DeviceConfig::default())
        .expect("the preset builds");
    let banks = preset
        .config()
        .l1_banks
        .expect("the preset knows its L1 banks");
    banks as u64 * L1_PER_BANK
}

#[test]
fn a_device_open_before_any_use_configures_the_device() {
    // Control: opened with 64 KiB L1 banks, 1 MiB per bank cannot fit.
    let mut s = Stream::default();
    s.open(small_l1())
        .alloc(1, BufferType::L1, big_l1_request());
    let r = s.replay();
    let oom = r
        .oom
        .as_ref()
        .expect("1 MiB per bank does not fit in 64 KiB");
    assert_eq!(oom.event, 1);
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
}

#[test]
fn a_device_open_after_use_keeps_the_config_in_use_and_says_so() {
    // Event 0 uses device 0 before its open: it is built from the preset.
    // Event 1 asks for 64 KiB L1 banks while a DRAM buffer is live: the
    // device cannot be rebuilt, so it keeps the preset (1 MiB per bank fits:
    // no OOM) and a warning names the open and the config in use.
    let mut s = Stream::default();
    s.alloc(1, BufferType::Dram, 2048)
        .open(small_l1())
        .alloc(2, BufferType::L1, big_l1_request());
    let r = s.replay();
    assert!(r.oom.is_none(), "{:?}", r.oom);
    assert_eq!(r.warnings.len(), 1, "{:?}", r.warnings);
    let w = &r.warnings[0];
    assert!(
        w.starts_with("device 0: the device_open at event 1 ")
            && w.contains("replayed with the wormhole_b0 preset"),
        "{w}"
    );
}

#[test]
fn a_device_open_after_everything_was_freed_reconfigures_the_device() {
    // The early buffer is freed before the open: the device holds nothing,
    // so it is rebuilt with 64 KiB L1 banks and the 1 MiB-per-bank request
    // (event 3) is out of memory, as without the early use.
    let mut s = Stream::default();
    s.alloc(1, BufferType::Dram, 2048)
        .free(1)
        .open(small_l1())
        .alloc(2, BufferType::L1, big_l1_request());
    let r = s.replay();
    assert_eq!(r.oom.as_ref().map(|o| o.event), Some(3), "{:?}", r.oom);
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
}

#[test]
fn circular_buffers_alone_keep_a_device_from_being_reconfigured() {
    // Event 0 uses device 0 (from the preset) for a CB only. The open at
    // event 1 finds it holding that CB: the preset stays (the 1 MiB per
    // bank of event 2 fits) and a warning says so. After the CB's free-all
    // the device holds nothing, and the same open rebuilds it with 64 KiB
    // L1 banks (event 3 is out of memory).
    let mut s = Stream::default();
    s.cb(134_208, 4096)
        .open(small_l1())
        .alloc(1, BufferType::L1, big_l1_request());
    let r = s.replay();
    assert!(r.oom.is_none(), "{:?}", r.oom);
    assert_eq!(r.warnings.len(), 1, "{:?}", r.warnings);
    assert!(
        r.warnings[0].starts_with("device 0: the device_open at event 1 "),
        "{:?}",
        r.warnings
    );
    let mut s = Stream::default();
    s.cb(134_208, 4096)
        .cb_free_all()
        .open(small_l1())
        .alloc(1, BufferType::L1, big_l1_request());
    let r = s.replay();
    assert_eq!(r.oom.as_ref().map(|o| o.event), Some(3), "{:?}", r.oom);
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
}

#[test]
fn the_same_device_open_twice_is_not_a_change() {
    let mut s = Stream::default();
    s.open(small_l1())
        .alloc(1, BufferType::Dram, 2048)
        .open(small_l1())
        .alloc(2, BufferType::L1, big_l1_request());
    let r = s.replay();
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    assert_eq!(r.oom.as_ref().map(|o| o.event), Some(3));
}

/// One 64 KiB L1 bank above a 4 KiB reserved area: L1 is [4096, 69632), and
/// L1 buffers are placed top-down from 69632.
fn tiny_l1() -> DeviceConfig {
    DeviceConfig {
        l1_banks: Some(1),
        l1_bank_size: Some(65536),
        l1_alignment: Some(16),
        l1_unreserved_base: Some(4096),
        l1_small_size: Some(0),
        worker_l1_size: Some(4096 + 65536),
        ..DeviceConfig::default()
    }
}

/// A program's CBs [4096, 36864), then (after a free-all or not) an L1
/// buffer of 49152 B at [20480, 69632), then the next program's 4096 B CB at
/// 4096.
fn cbs_then_a_low_l1_buffer(free_all: bool) -> Report {
    let mut s = Stream::default();
    s.open(tiny_l1()).cb(4096, 32768);
    if free_all {
        s.cb_free_all();
    }
    s.alloc(1, BufferType::L1, 49152).cb(4096, 4096);
    s.replay()
}

#[test]
fn circular_buffers_count_until_their_free_all() {
    // Released: the CB region is [4096, 8192), below the buffer at 20480.
    let released = cbs_then_a_low_l1_buffer(true);
    assert_eq!(released.cb_clashes, 0, "{:?}", released.first_cb_clash);
    // Peak per core: the 32768 B CB alone; after the free-all only 4096 B.
    assert_eq!(released.cb_peak_per_core["0"], 32768);

    // Not released: the first program's CB still ends at 36864 > 20480.
    let kept = cbs_then_a_low_l1_buffer(false);
    assert_eq!(kept.cb_clashes, 1);
    let clash = kept.first_cb_clash.as_ref().unwrap();
    assert_eq!(clash.event, 3);
    assert!(
        clash.message.contains("L1 buffer allocated at 20480")
            && clash.message.contains("region ends at 36864"),
        "{}",
        clash.message
    );
    assert_eq!(kept.cb_peak_per_core["0"], 32768 + 4096);
}

#[test]
fn a_circular_buffer_without_an_address_is_placed_after_the_others() {
    // An L1 buffer of 53248 B sits at [16384, 69632). CBs recorded at
    // address 0 (graph captures) are placed from the unreserved base: the
    // first at [4096, 12288), the second at [12288, 20480), which reaches
    // into the buffer. Taken at address 0 both would end at 8192: no clash.
    let mut s = Stream::default();
    s.open(tiny_l1())
        .alloc(1, BufferType::L1, 53248)
        .cb(0, 8192)
        .cb(0, 8192);
    let r = s.replay();
    assert_eq!(r.cb_clashes, 1, "{r:?}");
    let clash = r.first_cb_clash.as_ref().unwrap();
    assert_eq!(clash.event, 3);
    assert!(
        clash.message.contains("L1 buffer allocated at 16384")
            && clash.message.contains("region ends at 20480"),
        "{}",
        clash.message
    );
    assert_eq!(r.cb_peak_per_core["0"], 16384);
}
