//! `by_site_fast` (groups of 8 allocs, AVX2) against `by_site_loop` (the
//! portable two-pass loop).

use super::*;
use proptest::prelude::*;

/// One alloc: its SIZE_RECENT place byte, its site, its stored flags
/// (used when the place lacks the repeat bit), core count and new size.
type Alloc = (u8, u32, u8, u64, u64);

/// Mostly repeats of recent sizes (the fast groups); some stored flags,
/// some new sizes, both, so that groups of each kind come up.
fn place() -> impl Strategy<Value = u8> {
    prop_oneof![
        16 => (0u8..4).prop_map(|p| p | SiteFlags::REPEAT),
        1 => 0u8..=RecentSizes::NEW,
        1 => Just(RecentSizes::NEW | SiteFlags::REPEAT),
    ]
}

fn alloc(sites: u32) -> impl Strategy<Value = Alloc> {
    (
        place(),
        0..sites,
        any::<u8>(),
        0u64..=u32::MAX as u64,
        any::<u64>(),
    )
}

/// The columns `by_site` checks, with their slack slots.
struct Columns {
    places: Vec<u8>,
    sites: Vec<u32>,
    flags_new: Vec<u8>,
    cores_new: Vec<u64>,
    size_new: Vec<u64>,
}

fn columns(allocs: &[Alloc]) -> Columns {
    let places: Vec<u8> = allocs.iter().map(|a| a.0).collect();
    let sites: Vec<u32> = allocs.iter().map(|a| a.1).collect();
    let stored: Vec<&Alloc> = allocs
        .iter()
        .filter(|a| a.0 & SiteFlags::REPEAT == 0)
        .collect();
    let flags_new: Vec<u8> = stored.iter().map(|a| a.2).collect();
    let mut cores_new: Vec<u64> = stored
        .iter()
        .filter(|a| a.2 & FLAG_CORES != 0)
        .map(|a| a.3)
        .collect();
    cores_new.push(0);
    let mut size_new: Vec<u64> = allocs
        .iter()
        .filter(|a| a.0 & RecentSizes::NEW != 0)
        .map(|a| a.4)
        .collect();
    size_new.push(0);
    Columns {
        places,
        sites,
        flags_new,
        cores_new,
        size_new,
    }
}

/// What a loop made: the rows, its counts, and the tables after it.
type Decoded = (
    Vec<u8>,
    Vec<u32>,
    Vec<u64>,
    [usize; 2],
    u8,
    SiteFlags,
    RecentSizes,
);

fn decode(allocs: &[Alloc], fast: Option<bool>) -> Decoded {
    let c = columns(allocs);
    let cols = SiteCols {
        places: &c.places,
        sites: &c.sites,
        flags_new: &c.flags_new,
        cores_new: &c.cores_new,
        size_new: &c.size_new,
    };
    let n = allocs.len();
    let (mut flags, mut cores, mut sizes) = (vec![0u8; n], vec![0u32; n], vec![0u64; n]);
    let (mut table, mut cache) = (SiteFlags::default(), RecentSizes::default());
    let rows = (&mut flags[..], &mut cores[..], &mut sizes[..]);
    let counts = match fast {
        // SAFETY: the columns are as `SiteCols` says (made so above).
        None => unsafe { by_site_loop(cols, &mut table, &mut cache, rows) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the caller checked the CPU; with NARROW every site is
        // below the slots (the caller's strategy).
        Some(true) => unsafe { by_site_fast::<true>(cols, &mut table, &mut cache, rows) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the caller checked the CPU.
        Some(false) => unsafe { by_site_fast::<false>(cols, &mut table, &mut cache, rows) },
        #[cfg(not(target_arch = "x86_64"))]
        Some(_) => unreachable!("no fast loop here"),
    };
    (
        flags,
        cores,
        sizes,
        [counts.n_addr, counts.n_page],
        counts.max_bt,
        table,
        cache,
    )
}

proptest! {
    #[test]
    fn groups_decode_what_the_portable_loop_does(
        allocs in prop_oneof![
            // Sites below the slots (read unmasked or masked) ...
            proptest::collection::vec(alloc(40), 0..300),
            proptest::collection::vec(alloc(RecentSizes::SLOTS as u32), 0..300),
            // ... and past them, clashing with the ones below.
            proptest::collection::vec(
                prop_oneof![alloc(8), (alloc(8), 0u32..3).prop_map(|(a, k)| {
                    (a.0, a.1 + k * RecentSizes::SLOTS as u32, a.2, a.3, a.4)
                })],
                0..300,
            ),
        ],
    ) {
        if !crate::decode::fast_cpu() {
            return Ok(());
        }
        let want = decode(&allocs, None);
        let narrow = allocs.iter().all(|a| (a.1 as usize) < RecentSizes::SLOTS);
        let got = decode(&allocs, Some(false));
        prop_assert!(got == want, "masked: {got:?}\nwant {want:?}");
        if narrow {
            let got = decode(&allocs, Some(true));
            prop_assert!(got == want, "unmasked: {got:?}\nwant {want:?}");
        }
    }
}
