//! [`AllocColumns::at`] and [`FreeColumns::at`] read what `get` builds.

use super::*;
use proptest::prelude::*;

fn alloc() -> impl Strategy<Value = AllocCol> {
    (
        (
            any::<u32>(),
            any::<u64>(),
            0usize..BufferType::ALL.len(),
            0usize..4,
        ),
        (
            proptest::option::of(any::<u64>()),
            any::<u64>(),
            proptest::option::of(any::<u64>()),
            proptest::option::of(any::<u32>()),
        ),
        (
            proptest::option::of(any::<u64>()),
            any::<u32>(),
            any::<u32>(),
        ),
    )
        .prop_map(
            |(
                (device, buffer, bt, layout),
                (address, size, page_size, num_cores),
                (per_bank_size, label, site),
            )| AllocCol {
                device: DeviceId(device),
                buffer: BufferId(buffer),
                buffer_type: BufferType::ALL[bt],
                layout: LAYOUTS[layout],
                address,
                size,
                page_size,
                num_cores,
                per_bank_size,
                label: StringId(label),
                site: SiteId(site),
            },
        )
}

/// The value `at` reads, field by field, as an `AllocCol`.
fn read(a: AllocRef<'_>) -> AllocCol {
    let ext = a.ext();
    AllocCol {
        device: a.device(),
        buffer: a.buffer(),
        buffer_type: a.buffer_type(),
        layout: a.layout(),
        address: a.address(),
        size: a.size(),
        page_size: a.page_size(),
        num_cores: a.num_cores(),
        per_bank_size: ext.per_bank_size,
        label: ext.label,
        site: a.site(),
    }
}

proptest! {
    #[test]
    fn at_reads_the_fields_get_builds(allocs in proptest::collection::vec(alloc(), 0..40)) {
        let mut columns = AllocColumns::default();
        for a in &allocs {
            columns.push(a);
        }
        for (i, a) in allocs.iter().enumerate() {
            prop_assert_eq!(columns.get(i), Some(*a));
            prop_assert_eq!(columns.at(i).map(read), Some(*a));
            let at = columns.at(i).expect("alloc i");
            prop_assert_eq!(BufferType::ALL[at.type_code() as usize], a.buffer_type);
            prop_assert_eq!(at.page_size_or_zero(), a.page_size.unwrap_or(0));
            prop_assert_eq!(at.num_cores_or_zero(), a.num_cores.unwrap_or(0));
        }
        prop_assert!(columns.at(allocs.len()).is_none());
    }
}

proptest! {
    /// `has_ext` says whether any alloc has a 2.1 field; when none has,
    /// every alloc's `ext` is the default (what a reader uses instead).
    #[test]
    fn has_ext_is_whether_any_alloc_has_a_2_1_field(
        allocs in proptest::collection::vec((alloc(), any::<bool>(), any::<bool>()), 0..20),
    ) {
        let mut columns = AllocColumns::default();
        let mut any_ext = false;
        for (a, keep_size, keep_label) in &allocs {
            let mut a = *a;
            if !keep_size {
                a.per_bank_size = None;
            }
            if !keep_label {
                a.label = StringId::EMPTY;
            }
            any_ext |= a.per_bank_size.is_some() || a.label != StringId::EMPTY;
            columns.push(&a);
            prop_assert_eq!(columns.has_ext(), any_ext);
        }
        if !columns.has_ext() {
            for i in 0..columns.len() {
                prop_assert_eq!(columns.at(i).expect("alloc i").ext(), AllocExt::default());
            }
        }
    }
}

proptest! {
    #[test]
    fn free_at_reads_the_fields_get_builds(
        frees in proptest::collection::vec((any::<u32>(), any::<u64>(), any::<u32>()), 0..40),
    ) {
        let mut columns = FreeColumns::default();
        let frees: Vec<FreeCol> = frees
            .into_iter()
            .map(|(device, buffer, site)| FreeCol {
                device: DeviceId(device),
                buffer: BufferId(buffer),
                site: SiteId(site),
            })
            .collect();
        for x in &frees {
            columns.push(x);
        }
        for (i, x) in frees.iter().enumerate() {
            let at = columns.at(i).expect("in the block");
            prop_assert_eq!(columns.get(i), Some(*x));
            prop_assert_eq!((at.device(), at.buffer(), at.site()), (x.device, x.buffer, x.site));
        }
        prop_assert!(columns.at(frees.len()).is_none());
    }
}
