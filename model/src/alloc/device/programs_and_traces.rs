//! Program binaries and traces: loaded and captured through the allocator,
//! released, and put back where a replay had placed them (checkpoints).

use super::*;

impl Device {
    /// Loads program binaries: DRAM, interleaved in `PROGRAM_PAGE_SIZE` pages, top-down.
    pub fn load_program(
        &mut self,
        program: ProgramId,
        binary_size: u64,
    ) -> Result<Placement, AllocError> {
        self.load_program_paged(program, binary_size, Some(PROGRAM_PAGE_SIZE))
    }

    /// [`Device::load_program`] with a known page size.
    pub fn load_program_paged(
        &mut self,
        program: ProgramId,
        binary_size: u64,
        page_size: Option<u64>,
    ) -> Result<Placement, AllocError> {
        self.check_new_program(program)?;
        let p = self.managers[0].allocate(binary_size, page_size, None, false)?;
        self.hold_program(program, binary_size, p);
        Ok(p)
    }

    fn check_new_program(&self, program: ProgramId) -> Result<(), AllocError> {
        if self.programs.contains_key(&program) {
            return Err(AllocError::AlreadyLive {
                owner: Owner::Program(program),
            });
        }
        Ok(())
    }

    /// Program binaries live in DRAM.
    fn hold_program(&mut self, program: ProgramId, binary_size: u64, p: Placement) {
        self.programs.insert(
            program,
            Live {
                buffer_type: BufferType::Dram,
                address: p.address,
                size: binary_size,
                per_bank: p.per_bank,
                num_banks: p.num_banks,
            },
        );
        self.last_program = Some(program);
    }

    pub fn unload_program(&mut self, program: ProgramId) -> Option<Released> {
        let live = self.programs.remove(&program)?;
        self.managers[0].deallocate(live.address);
        if self.last_program == Some(program) {
            self.last_program = None;
        }
        Some(live.released(Owner::Program(program)))
    }

    /// Captures a trace of `size` bytes: in the TRACE region bottom-up, or,
    /// when the device has no trace region, in DRAM top-down; interleaved in
    /// pages of [`trace_page_size`].
    pub fn capture_trace(&mut self, trace: TraceId, size: u64) -> Result<Placement, AllocError> {
        let s = if self.managers[3].bank_size() > 0 {
            3
        } else {
            0
        };
        let page = trace_page_size(size, self.managers[s].num_banks());
        self.capture_trace_paged(trace, size, Some(page))
    }

    /// [`Device::capture_trace`] with a known page size.
    pub fn capture_trace_paged(
        &mut self,
        trace: TraceId,
        size: u64,
        page_size: Option<u64>,
    ) -> Result<Placement, AllocError> {
        self.check_new_trace(trace)?;
        let (s, bottom_up) = if self.managers[3].bank_size() > 0 {
            (3, true)
        } else {
            (0, false)
        };
        let p = self.managers[s].allocate(size, page_size, None, bottom_up)?;
        self.hold_trace(trace, size, s, p);
        Ok(p)
    }

    fn check_new_trace(&self, trace: TraceId) -> Result<(), AllocError> {
        if self.traces.contains_key(&trace) {
            return Err(AllocError::AlreadyLive {
                owner: Owner::Trace(trace),
            });
        }
        Ok(())
    }

    /// A trace placed by bank manager `s` (TRACE, or DRAM without a trace region).
    fn hold_trace(&mut self, trace: TraceId, size: u64, s: usize, p: Placement) {
        self.traces.insert(
            trace,
            Live {
                buffer_type: self.managers[s].buffer_type(),
                address: p.address,
                size,
                per_bank: p.per_bank,
                num_banks: p.num_banks,
            },
        );
    }

    pub fn release_trace(&mut self, trace: TraceId) -> Option<Released> {
        let live = self.traces.remove(&trace)?;
        let s = slot(live.buffer_type).expect("traces live on the device");
        self.managers[s].deallocate(live.address);
        Some(live.released(Owner::Trace(trace)))
    }
}

/// Program binaries and traces put back where a replay had placed them
/// (restoring a checkpoint: see `restore`).
impl Device {
    pub(in crate::alloc) fn load_program_at(
        &mut self,
        program: ProgramId,
        binary_size: u64,
        address: u64,
    ) -> Result<(), AllocError> {
        self.check_new_program(program)?;
        let m = &mut self.managers[0];
        let p = m
            .allocate_at(binary_size, Some(PROGRAM_PAGE_SIZE), None, address)
            .ok_or(AllocError::AddressTaken {
                buffer_type: BufferType::Dram,
                address,
                per_bank: 0,
                blocking: None,
            })?;
        self.hold_program(program, binary_size, p);
        Ok(())
    }

    pub(in crate::alloc) fn capture_trace_at(
        &mut self,
        trace: TraceId,
        size: u64,
        address: u64,
    ) -> Result<(), AllocError> {
        self.check_new_trace(trace)?;
        let s = if self.managers[3].bank_size() > 0 {
            3
        } else {
            0
        };
        let m = &mut self.managers[s];
        let page = trace_page_size(size, m.num_banks());
        let p = m
            .allocate_at(size, Some(page), None, address)
            .ok_or(AllocError::AddressTaken {
                buffer_type: m.buffer_type(),
                address,
                per_bank: 0,
                blocking: None,
            })?;
        self.hold_trace(trace, size, s, p);
        Ok(())
    }
}
