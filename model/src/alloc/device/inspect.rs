//! Looking at a device for diagnostics: who holds an address, and the
//! block table of a bank manager with owners (scans, not for replay loops).

use super::*;

impl Device {
    /// Who holds the allocated block starting at `address` in `bt`'s banks
    /// (a scan over everything live: for diagnostics, not for replay loops).
    pub fn owner_at(&self, bt: BufferType, address: u64) -> Option<Owner> {
        let hit = |l: &Live| l.buffer_type == bt && l.address == address;
        self.buffers
            .iter(&self.managers)
            .find(|e| hit(&e.live))
            .map(|e| Owner::Buffer(e.buffer))
            .or_else(|| {
                self.programs
                    .iter()
                    .find(|(_, l)| hit(l))
                    .map(|(p, _)| Owner::Program(*p))
            })
            .or_else(|| {
                self.traces
                    .iter()
                    .find(|(_, l)| hit(l))
                    .map(|(t, _)| Owner::Trace(*t))
            })
    }

    /// The block table of one bank manager in address order, with owners.
    pub fn memory_view(&self, bt: BufferType) -> Vec<BlockView> {
        let Some(s) = slot(bt) else { return Vec::new() };
        let mut owners: FastMap<u64, Owner> = FastMap::default();
        let on = |l: &Live| l.buffer_type == bt;
        owners.extend(
            self.buffers
                .iter(&self.managers)
                .filter(|e| on(&e.live))
                .map(|e| (e.live.address, Owner::Buffer(e.buffer))),
        );
        owners.extend(
            self.programs
                .iter()
                .filter(|(_, l)| on(l))
                .map(|(p, l)| (l.address, Owner::Program(*p))),
        );
        owners.extend(
            self.traces
                .iter()
                .filter(|(_, l)| on(l))
                .map(|(t, l)| (l.address, Owner::Trace(*t))),
        );
        self.managers[s]
            .blocks()
            .map(|b| BlockView {
                address: b.address,
                size: b.size,
                allocated: b.allocated,
                owner: if b.allocated {
                    owners.get(&b.address).copied()
                } else {
                    None
                },
            })
            .collect()
    }
}
