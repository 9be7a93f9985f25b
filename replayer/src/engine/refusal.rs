//! Replaying an allocation tt-metal refused (`AllocRefused`, format 2.1):
//! the model attempts the same request. Refused by the model too, it is the
//! out-of-memory finding, now with tt-metal's own message beside the
//! model's; placed by the model, it is a divergence, and the model frees it
//! again at once (nothing was allocated on the device).

use super::{DevIx, Engine};
use crate::findings::{type_slot, PlacedRefusal};
use crate::sim::{AllocFailure, Req};
use ttalloc_model::{BufferId, SiteId, StringId};

/// The id the model's attempt uses: never a recorded buffer id (recorders
/// hand out ids below 2^40 per connection, prefixed by a connection number).
const PROBE: BufferId = BufferId(u64::MAX);

impl Engine<'_> {
    pub(super) fn refused(
        &mut self,
        ord: u64,
        dev: DevIx,
        req: &Req,
        message: StringId,
        site: SiteId,
    ) -> crate::Result<()> {
        // SYSTEM_MEMORY is host memory: nothing for the model to refuse.
        let Some(slot) = type_slot(req.buffer_type) else {
            return Ok(());
        };
        let device = self.devs[dev].id;
        let sim = self.sim(dev)?;
        match sim.alloc(PROBE, req) {
            Ok(address) => {
                sim.free(PROBE);
                self.f.divergences += 1;
                self.f.placed_refusals += 1;
                self.f.first_placed_refusal.get_or_insert(PlacedRefusal {
                    event: ord,
                    device,
                    buffer_type: req.buffer_type,
                    size: req.size,
                    model_address: address,
                    message,
                    site,
                });
            }
            Err(AllocFailure::Oom(oom)) => {
                let first = self.f.oom.is_none();
                self.out_of_memory(ord, dev, slot, req.buffer_type, req.size, oom, site);
                if first {
                    if let Some(o) = self.f.oom.as_mut() {
                        o.recorded_message = Some(message);
                    }
                }
            }
            Err(other) => self.rejected(other.reason()),
        }
        Ok(())
    }
}
