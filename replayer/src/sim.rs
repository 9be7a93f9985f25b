//! The one place that speaks to the allocator model (`ttalloc_model::alloc`):
//! the engine sees only this small adapter, so the model's API can evolve
//! without touching the bookkeeping.

pub use ttalloc_model::alloc::Handle;
use ttalloc_model::alloc::{AllocError, AllocRequest, CbClash, Device, Held, Owner, RestoreError};
use ttalloc_model::{Arch, BufferId, BufferType, DeviceConfig, Layout, ProgramId, TraceId};

/// An allocation request as recorded. Page size and core count are plain
/// values, 0 when not recorded: the model takes a page size of 0 as
/// unknown and a core count of 0 as none, the same as `None` (see
/// [`Sim::request`]), and an `Option` of each was built, carried through
/// the stack and unpacked again on every allocation.
#[derive(Clone, Copy, Debug)]
pub struct Req {
    pub buffer_type: BufferType,
    pub size: u64,
    /// 0: unknown.
    pub page_size: u64,
    pub layout: Layout,
    /// 0: none recorded.
    pub num_cores: u32,
    /// What tt-metal reserved per bank, when recorded: the model reserves exactly that.
    pub per_bank_size: Option<u64>,
}

/// The model's out-of-memory, with its message and fragmentation figures.
#[derive(Clone, Debug)]
pub struct Oom {
    pub message: String,
    pub free: Option<u64>,
    pub largest_free_block: Option<u64>,
    pub fragmentation: bool,
    /// Banks (cores, for a sharded buffer) it would have spread over.
    pub num_banks: u32,
}

#[derive(Clone, Debug)]
pub enum AllocFailure {
    Oom(Oom),
    /// The id is already live on this device.
    AlreadyLive,
    /// Refused for another reason (an unsupported request).
    Rejected(String),
}

impl AllocFailure {
    /// Why, in words.
    pub fn reason(self) -> String {
        match self {
            AllocFailure::Oom(oom) => oom.message,
            AllocFailure::AlreadyLive => "the id is already live on this device".into(),
            AllocFailure::Rejected(why) => why,
        }
    }
}

impl From<AllocError> for AllocFailure {
    // Cold and out of line: inlined into every allocation, building this
    // (a String and a dozen fields) cost the replay's hot path a large
    // stack frame even when nothing failed.
    #[cold]
    #[inline(never)]
    fn from(e: AllocError) -> Self {
        match e {
            AllocError::OutOfMemory(oom) => AllocFailure::Oom(Oom {
                message: oom.to_string(),
                free: Some(oom.free),
                largest_free_block: Some(oom.largest_free),
                fragmentation: oom.is_fragmentation(),
                num_banks: oom.num_banks,
            }),
            AllocError::AlreadyLive { .. } => AllocFailure::AlreadyLive,
            other => AllocFailure::Rejected(other.to_string()),
        }
    }
}

pub struct Sim {
    device: Device,
}

impl Sim {
    /// A device from the architecture's preset with `config`'s known fields
    /// on top (the model derives the dependent sizes, as hardware does).
    pub fn open(arch: Arch, config: &DeviceConfig) -> Result<Sim, String> {
        let device = Device::new(arch, config).map_err(|e| e.to_string())?;
        Ok(Sim { device })
    }

    /// The device's config, every field resolved.
    pub fn config(&self) -> &DeviceConfig {
        self.device.config()
    }

    /// The model's request for `req`. A page size or core count of 0 goes
    /// in as `None`: the model treats `Some(0)` as `None` for both (an
    /// unknown page, no shard count), so this is the request as recorded
    /// for every input. Inlined, the `Option`s fold away where the model
    /// unpacks them (`unwrap_or(0)` of a nonzero-or-`None` is the value).
    #[inline(always)]
    pub(crate) fn request(req: &Req) -> AllocRequest {
        AllocRequest {
            buffer_type: req.buffer_type,
            size: req.size,
            page_size: (req.page_size != 0).then_some(req.page_size),
            layout: req.layout,
            num_cores: (req.num_cores != 0).then_some(req.num_cores),
            bottom_up: None,
            per_bank_size: req.per_bank_size,
        }
    }

    /// [`Sim::restore`] for a caller that keeps its own ids: each held
    /// buffer's handle (see [`Sim::alloc_placed`]), in `held`'s order.
    pub fn restore_placed(
        &mut self,
        held: &[Held],
    ) -> Result<Vec<(BufferId, Handle)>, RestoreError> {
        self.device.restore_placed(held)
    }

    /// The block table of one buffer type (tests compare restored devices).
    #[cfg(test)]
    pub fn memory_view(&self, bt: BufferType) -> Vec<ttalloc_model::alloc::BlockView> {
        self.device.memory_view(bt)
    }

    /// Every program binary, trace and buffer the device holds, with its address.
    pub fn held_addresses(&self) -> impl Iterator<Item = (Owner, u64)> + '_ {
        self.device.live_all().map(|r| (r.owner, r.address))
    }

    /// Places a buffer; returns its address.
    #[inline]
    pub fn alloc(&mut self, buffer: BufferId, req: &Req) -> Result<u64, AllocFailure> {
        self.device
            .allocate(buffer, &Self::request(req))
            .map(|p| p.address)
            .map_err(Into::into)
    }

    /// Places a buffer for a caller that keeps its own table of live ids
    /// (the model indexes nothing by id: no hash operation); returns its
    /// address and the handle that frees it ([`Sim::free_placed`]). The id
    /// must not be live on this device; [`Sim::free`] and
    /// [`Sim::address_of`] do not see buffers placed this way.
    /// Inlined into its caller: as a call, its prologue, the request's
    /// copy and the result written through memory cost ~30 instructions
    /// of an allocation's ~270 (the failure's conversion stays out of line).
    #[inline(always)]
    pub fn alloc_placed(
        &mut self,
        buffer: BufferId,
        req: &Req,
    ) -> Result<(u64, Handle), AllocFailure> {
        match self.device.allocate_placed(buffer, &Self::request(req)) {
            Ok(p) => Ok((p.placement.address, p.handle)),
            Err(e) => Err(e.into()),
        }
    }

    /// [`Sim::alloc_placed`] of a device buffer whose bank manager the
    /// caller knows: `slot` is `manager_slot(req.buffer_type)` (the
    /// engine's type slot), so the model does not look it up again.
    #[inline(always)]
    pub fn alloc_placed_in(
        &mut self,
        slot: usize,
        buffer: BufferId,
        req: &Req,
    ) -> Result<(u64, Handle), AllocFailure> {
        match self
            .device
            .allocate_placed_in(slot, buffer, &Self::request(req))
        {
            Ok(p) => Ok((p.placement.address, p.handle)),
            Err(e) => Err(e.into()),
        }
    }

    /// [`Sim::alloc_at`] for a caller that keeps its own ids: the handle, or
    /// `None` if the range is not free.
    pub fn alloc_placed_at(&mut self, buffer: BufferId, req: &Req, address: u64) -> Option<Handle> {
        self.device
            .allocate_placed_at(buffer, &Self::request(req), address)
            .ok()
            .map(|p| p.handle)
    }

    /// Frees a buffer by its handle (no lookup); false if it was freed already.
    #[inline]
    pub fn free_placed(&mut self, handle: Handle) -> bool {
        self.device.discard_placed(handle)
    }

    /// Where a buffer placed with [`Sim::alloc_placed`] is.
    pub fn address_of_placed(&self, handle: Handle) -> Option<u64> {
        self.device.live_placed(handle).map(|r| r.address)
    }

    #[inline]
    pub fn free(&mut self, buffer: BufferId) -> bool {
        self.device.deallocate(buffer).is_some()
    }

    /// Records a circular buffer and checks it (`Device::cb_alloc`), telling
    /// only whether it fits (true); the clash, if any, is
    /// [`Sim::cb_clash_now`] until the next change.
    #[inline(always)]
    pub fn cb_alloc_fits(
        &mut self,
        address: u64,
        size: u64,
        cores: Option<u32>,
        global: bool,
    ) -> bool {
        self.device.cb_alloc_fits(address, size, cores, global)
    }

    /// Places a circular buffer whose address was not recorded where the
    /// program's CB allocator would (`Device::cb_place`), then checks it as
    /// [`Sim::cb_alloc_fits`] does.
    pub fn cb_place_fits(&mut self, size: u64, cores: Option<u32>) -> bool {
        self.device.cb_place_fits(size, cores)
    }

    /// The clash of the static CB region as it stands, for a CB with `cores`.
    pub fn cb_clash_now(&self, cores: Option<u32>) -> Option<CbClash> {
        self.device.cb_clash_now(cores)
    }

    /// Bytes per core of the statically allocated circular buffers since the
    /// last free-all (globally allocated ones live inside an L1 buffer).
    pub fn cb_bytes(&self) -> u64 {
        self.device.cb_static_bytes()
    }

    /// True when nothing at all is placed: no buffer, program binary, trace
    /// or circular buffer.
    pub fn holds_nothing(&self) -> bool {
        self.device.live_all().next().is_none() && self.device.cb_count() == 0
    }

    pub fn cb_free_all(&mut self) {
        self.device.cb_free_all();
    }

    pub fn load_program(&mut self, program: u64, binary_size: u64) -> Result<(), AllocFailure> {
        self.device
            .load_program(ProgramId(program), binary_size)
            .map(|_| ())
            .map_err(Into::into)
    }

    pub fn unload_program(&mut self, program: u64) {
        self.device.unload_program(ProgramId(program));
    }

    pub fn capture_trace(&mut self, trace: u32, size: u64) -> Result<(), AllocFailure> {
        self.device
            .capture_trace(TraceId(trace), size)
            .map(|_| ())
            .map_err(Into::into)
    }

    pub fn release_trace(&mut self, trace: u32) {
        self.device.release_trace(TraceId(trace));
    }

    /// Closes the device (tt-metal's `deallocate_all`): everything is
    /// released and the simulator is as empty as a new one.
    pub fn close(&mut self) {
        self.device.close();
    }
}
