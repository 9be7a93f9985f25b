//! Handing devices and buffer ids out to the kinds of a block's events:
//! per-kind chains and frees by device (2.3+) or one walk over the kinds
//! (2.0–2.2).

use super::block::{coded_as, HAS_DEVICE, IS_OTHER};
use super::chain::chain_u32;
use super::columns::BlockColumns;
use super::packed::{column_values, one_byte_plane};
use super::scratch::DecodeScratch;
use super::DecodeError;
use crate::codec::{col, ColumnLayout};
use crate::varint::unzigzag;
use ttalloc_model::EventTag;

/// How many events of a block use each hand-out list.
#[derive(Clone, Copy)]
pub(super) struct KindCounts {
    /// Events with a device (DeviceOpen..=TraceRelease).
    pub(super) dev: usize,
    pub(super) alloc: usize,
    pub(super) free: usize,
    /// Events `decode_others` decodes (`IS_OTHER`).
    pub(super) other: usize,
}

/// Whether the block keeps a device chain per kind and chains its frees'
/// buffers (2.3) rather than one DEVICE chain and frees relative to allocs
/// (2.0–2.2); a block holding columns of both is corrupt.
pub(super) fn by_kind_layout(cols: &[&[u8]; col::COUNT]) -> Result<bool, DecodeError> {
    let new = [
        col::ALLOC_DEV,
        col::FREE_DEV,
        col::OTHER_DEV,
        col::FREE_CHAIN,
        col::FREE_BY_DEV,
        col::FREE_FAR,
        col::FREE_DEV_NEAR,
    ];
    let old = [col::DEVICE, col::FREE_BUF];
    let has = |ids: &[u16]| ids.iter().any(|&c| !cols[c as usize].is_empty());
    match (has(&old), has(&new)) {
        (true, true) => {
            Err("block holds devices or freed buffers in both its 2.2 and its 2.3 columns".into())
        }
        (_, by_kind) => Ok(by_kind),
    }
}

/// 2.3: every kind has its own device chain and frees chain their buffers,
/// so each list is a prefix sum; only the other kinds' positions take a
/// pass over the kinds (a store per event, no branch).
pub(super) fn hand_out_by_kind(
    cols: &[&[u8]; col::COUNT],
    n: KindCounts,
    s: &mut DecodeScratch,
    out: &mut BlockColumns,
) -> Result<(), DecodeError> {
    let vals = &mut s.vals;
    chain_u32(
        cols[col::ALLOC_DEV as usize],
        n.alloc,
        "alloc device",
        &mut vals.device,
        &mut s.alloc_devices,
    )?;
    let free_dev_codings = [
        (ColumnLayout::V23, col::FREE_DEV),
        (ColumnLayout::V24, col::FREE_DEV_NEAR),
    ];
    if coded_as(cols, &free_dev_codings, "free devices")? == ColumnLayout::V24 {
        // 2.4: against the latest alloc's device; a column of one byte
        // plane (nearly every block) read in place.
        let fd = &mut vals.free_by_device;
        let bytes = cols[col::FREE_DEV_NEAR as usize];
        if let Some(codes) = one_byte_plane(bytes, n.free, "free device")? {
            crate::free_by_device::decode_free_devices_bytes(
                &vals.kinds,
                &s.alloc_devices,
                codes,
                &mut s.free_devices,
            )?;
        } else {
            column_values(bytes, n.free, "free device", &mut fd.dev_codes)?;
            crate::free_by_device::decode_free_devices(
                &vals.kinds,
                &s.alloc_devices,
                &fd.dev_codes,
                &mut s.free_devices,
            )?;
        }
    } else {
        chain_u32(
            cols[col::FREE_DEV as usize],
            n.free,
            "free device",
            &mut vals.device,
            &mut s.free_devices,
        )?;
    }
    let free_codings = [
        (ColumnLayout::V23, col::FREE_CHAIN),
        (ColumnLayout::V24, col::FREE_BY_DEV),
    ];
    if coded_as(cols, &free_codings, "freed buffers")? == ColumnLayout::V24 {
        // 2.4: by the ordinal of their alloc among the device's; a
        // column of one byte plane (nearly every block) read in place.
        let fd = &mut vals.free_by_device;
        let bytes = cols[col::FREE_BY_DEV as usize];
        if let Some(codes) = one_byte_plane(bytes, n.free, "free ordinal")? {
            let n_far = crate::free_by_device::count_far_bytes(codes);
            column_values(cols[col::FREE_FAR as usize], n_far, "far free", &mut fd.far)?;
            crate::free_by_device::decode_free_ids_bytes(
                &s.alloc_devices,
                &vals.alloc_buf,
                &s.free_devices,
                codes,
                &fd.far,
                &mut fd.scratch,
                &mut fd.codes,
                &mut vals.free_ids,
            )?;
        } else {
            column_values(bytes, n.free, "free ordinal", &mut fd.codes)?;
            let n_far = crate::free_by_device::count_far(&fd.codes);
            column_values(cols[col::FREE_FAR as usize], n_far, "far free", &mut fd.far)?;
            crate::free_by_device::decode_free_ids(
                &s.alloc_devices,
                &vals.alloc_buf,
                &s.free_devices,
                &fd.codes,
                &fd.far,
                &mut fd.scratch,
                &mut vals.free_ids,
            )?;
        }
    } else {
        if !cols[col::FREE_FAR as usize].is_empty() {
            return Err("block holds far frees without their free ordinals".into());
        }
        super::chain::chain_u64(
            cols[col::FREE_CHAIN as usize],
            n.free,
            "free buffer",
            &mut vals.free_ids,
        )?;
    }
    other_devices(cols, n, s, &out.tags)
}

/// 2.3+: the device of every other kind (into `s.other_dev`, in the order
/// of `s.other_pos`; those without one get 0) from their chain.
pub(super) fn other_devices(
    cols: &[&[u8]; col::COUNT],
    n: KindCounts,
    s: &mut DecodeScratch,
    tags: &[u8],
) -> Result<(), DecodeError> {
    chain_u32(
        cols[col::OTHER_DEV as usize],
        n.dev - n.alloc - n.free,
        "other device",
        &mut s.vals.device,
        &mut s.devices,
    )?;
    // `s.other_pos` holds the other kinds' positions (`decode_columns`).
    debug_assert_eq!(s.other_pos.len(), n.other);
    if n.dev - n.alloc - n.free == n.other {
        // Every other kind has a device (no process start or exit in the
        // block: nearly every block), so the chain is theirs, in order.
        std::mem::swap(&mut s.other_dev, &mut s.devices);
        return Ok(());
    }
    // The other kinds that have a device take the next one of their chain
    // (`n.dev - n.alloc - n.free` of them, so the chain has one slot to spare).
    s.devices.push(0);
    s.other_dev.clear();
    let mut kd = 0usize;
    let devices = &s.devices;
    // (One extend of a known length: no capacity check per event.)
    s.other_dev.extend(s.other_pos.iter().map(|&pos| {
        let d = devices[kd];
        kd += HAS_DEVICE[tags[pos as usize] as usize] as usize;
        d
    }));
    s.devices.pop();
    Ok(())
}

/// 2.0–2.2: one device chain over every event that has a device (events of
/// one op share it, so deltas are mostly 0) and frees relative to the
/// latest alloc before them: one walk over the kinds hands devices to
/// allocs, frees and the other kinds and resolves a free's buffer (= id of
/// the latest alloc before it in the block − distance).
pub(super) fn hand_out_by_walk(
    cols: &[&[u8]; col::COUNT],
    n: KindCounts,
    s: &mut DecodeScratch,
    out: &mut BlockColumns,
) -> Result<(), DecodeError> {
    let vals = &mut s.vals;
    chain_u32(
        cols[col::DEVICE as usize],
        n.dev,
        "device",
        &mut vals.device,
        &mut s.devices,
    )?;
    column_values(
        cols[col::FREE_BUF as usize],
        n.free,
        "free buffer",
        &mut vals.free_buf,
    )?;
    for v in vals.free_buf.iter_mut() {
        *v = unzigzag(*v) as u64;
    }
    // Branch-free (the kind sequence is unpredictable): every list gets a
    // store per event, into a slack slot past its end when the event is
    // not of its kind.
    let (n_dev, n_alloc, n_free, n_other) = (n.dev, n.alloc, n.free, n.other);
    s.devices.push(0);
    vals.alloc_buf.push(0);
    vals.free_buf.push(0);
    s.alloc_devices.resize(n_alloc + 1, 0);
    s.free_devices.resize(n_free + 1, 0);
    vals.free_ids.resize(n_free + 1, 0);
    s.other_pos.resize(n_other + 1, 0);
    s.other_dev.resize(n_other + 1, 0);
    {
        let devices = &s.devices[..];
        let alloc_ids = &vals.alloc_buf[..];
        let dist = &vals.free_buf[..];
        let alloc_devices = &mut s.alloc_devices[..];
        let free_devices = &mut s.free_devices[..];
        let free_ids = &mut vals.free_ids[..];
        let other_pos = &mut s.other_pos[..];
        let other_dev = &mut s.other_dev[..];
        let (mut kd, mut ka, mut kf, mut ko) = (0usize, 0usize, 0usize, 0usize);
        let mut latest = 0u64;
        debug_assert!(devices.len() == n_dev + 1 && alloc_ids.len() == n_alloc + 1);
        debug_assert!(dist.len() == n_free + 1 && free_ids.len() == n_free + 1);
        debug_assert!(alloc_devices.len() == n_alloc + 1 && free_devices.len() == n_free + 1);
        debug_assert!(other_pos.len() == n_other + 1 && other_dev.len() == n_other + 1);
        for (pos, &t) in out.tags.iter().enumerate() {
            // SAFETY: the counts are those of `out.tags` (kind words), so before any
            // event each counter is at most the number of its kind in the
            // block: `kd <= n_dev`, `ka <= n_alloc`, `kf <= n_free`,
            // `ko <= n_other` (`n_dev` counts exactly the kinds `HAS_DEVICE`
            // marks, `n_other` exactly those `IS_OTHER` marks), and every
            // list indexed by a counter has one slot more than that count.
            unsafe {
                let d = *devices.get_unchecked(kd);
                let is_alloc = t == EventTag::BufferAlloc as u8;
                let is_free = t == EventTag::BufferFree as u8;
                *alloc_devices.get_unchecked_mut(ka) = d;
                // Branch-free select (an alloc replaces `latest`).
                let keep = (is_alloc as u64).wrapping_sub(1);
                latest = (latest & keep) | (*alloc_ids.get_unchecked(ka) & !keep);
                ka += is_alloc as usize;
                *free_devices.get_unchecked_mut(kf) = d;
                *free_ids.get_unchecked_mut(kf) = latest.wrapping_sub(*dist.get_unchecked(kf));
                kf += is_free as usize;
                *other_pos.get_unchecked_mut(ko) = pos as u32;
                *other_dev.get_unchecked_mut(ko) = d;
                ko += IS_OTHER[t as usize] as usize;
                kd += HAS_DEVICE[t as usize] as usize;
            }
        }
    }
    s.devices.pop();
    vals.alloc_buf.pop();
    vals.free_buf.pop();
    s.alloc_devices.truncate(n_alloc);
    s.free_devices.truncate(n_free);
    vals.free_ids.truncate(n_free);
    s.other_pos.truncate(n_other);
    s.other_dev.truncate(n_other);
    Ok(())
}
