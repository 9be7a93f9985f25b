//! Looking at a device: what is live and the statistics of its bank
//! managers, and for diagnostics who holds an address and the block table
//! of a bank manager with owners (scans, not for replay loops).

use super::*;

impl Device {
    /// Is a buffer allocated by id live?
    pub fn is_live(&self, buffer: BufferId) -> bool {
        self.buffers.contains_id(buffer)
    }

    /// A live buffer allocated by id, as it would be released now.
    pub fn live(&self, buffer: BufferId) -> Option<Released> {
        self.buffers
            .by_id(&self.managers, buffer)
            .map(|e| e.live.released(Owner::Buffer(e.buffer)))
    }

    /// A live buffer by handle, as it would be released now.
    pub fn live_placed(&self, handle: Handle) -> Option<Released> {
        self.buffers
            .get(&self.managers, handle)
            .map(|e| e.live.released(Owner::Buffer(e.buffer)))
    }

    /// Everything still live — buffers (by id or placed), programs, traces —
    /// as `close()` would release it (in no particular order).
    pub fn live_all(&self) -> impl Iterator<Item = Released> + '_ {
        self.buffers
            .iter(&self.managers)
            .map(|e| e.live.released(Owner::Buffer(e.buffer)))
            .chain(
                self.programs
                    .iter()
                    .map(|(p, l)| l.released(Owner::Program(*p))),
            )
            .chain(
                self.traces
                    .iter()
                    .map(|(t, l)| l.released(Owner::Trace(*t))),
            )
    }

    /// Live buffers (not programs or traces): every allocated block but
    /// the programs' and traces' (one each), and the host buffers. Counted
    /// from what the device keeps anyway: a count of its own cost every
    /// allocation and free an update.
    pub fn num_live_buffers(&self) -> usize {
        let allocated: usize = self
            .managers
            .iter()
            .map(|m| m.free_list().num_allocated())
            .sum();
        allocated - self.programs.len() - self.traces.len() + self.system_buffers
    }

    /// A bank manager's statistics (per bank). For SYSTEM_MEMORY: the host
    /// bytes tracked, with no capacity.
    pub fn stats(&self, bt: BufferType) -> Statistics {
        match slot(bt) {
            Some(s) => self.managers[s].statistics(),
            None => Statistics {
                allocated: self.system_bytes.min(u64::MAX as u128) as u64,
                num_allocated_blocks: self.system_buffers,
                ..Statistics::default()
            },
        }
    }

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
