//! One simulated device per device id: opened, reopened from a spare,
//! rebuilt on a new config, and closed (its live objects outlive it).

use super::*;
pub(super) use table::{DevIx, Devices};

mod table;

impl Dev {
    /// Bytes per type a tracker believes live on this device: resident,
    /// or outlived it.
    pub(super) fn tracked(&self) -> PerType {
        std::array::from_fn(|s| self.resident[s] + self.outlived[s])
    }

    /// Device `id` as first seen: not open, nothing counted.
    pub(super) fn new(id: DeviceId) -> Dev {
        Dev {
            id,
            sim: None,
            opened_with: None,
            spare: None,
            outlived: [0; 4],
            resident: [0; 4],
            peak: [Peak::default(); 4],
            cycle_peak: [0; 4],
            objects: 0,
            cb_peak: None,
        }
    }
}

impl Engine<'_> {
    /// The index in `devs` of device `id` (a new entry the first time).
    #[inline]
    pub(super) fn dev_index(&mut self, id: DeviceId) -> crate::Result<DevIx> {
        match self.devs.find(id) {
            Some(ix) => Ok(ix),
            None => Ok(self.dev_index_slow(id)),
        }
    }

    #[cold]
    fn dev_index_slow(&mut self, id: DeviceId) -> DevIx {
        if let Some(ix) = self.devs.position(|d| d.id == id) {
            return ix;
        }
        self.devs.push(Dev::new(id))
    }

    /// The device's simulator: reopened as it was if the trace closed it,
    /// opened from the preset if the trace never opened it.
    #[inline]
    pub(super) fn sim(&mut self, dev: DevIx) -> crate::Result<&mut Sim> {
        if self.devs[dev].sim.is_none() {
            self.open_for_use(dev)?;
        }
        Ok(self.devs[dev].sim.as_mut().expect("opened above"))
    }

    /// Device `dev`, its model opened as [`Engine::sim`] does.
    #[inline]
    pub(super) fn open_dev(&mut self, dev: DevIx) -> crate::Result<&mut Dev> {
        if self.devs[dev].sim.is_none() {
            self.open_for_use(dev)?;
        }
        Ok(&mut self.devs[dev])
    }

    /// Opens a device used while not open (see [`Engine::sim`]).
    #[cold]
    fn open_for_use(&mut self, dev: DevIx) -> crate::Result<()> {
        match self.devs[dev].spare.take() {
            // Used again after its close without a new DeviceOpen: as it was.
            Some((arch, config, sim)) => {
                self.devs[dev].sim = Some(sim);
                self.devs[dev].opened_with = Some((arch, config));
                Ok(())
            }
            None => self.open(dev, self.setup.arch, &DeviceConfig::default()),
        }
    }

    pub(super) fn open(
        &mut self,
        dev: DevIx,
        arch: Arch,
        recorded: &DeviceConfig,
    ) -> crate::Result<()> {
        let arch = if arch == Arch::Unknown {
            self.setup.arch
        } else {
            arch
        };
        let mut config = recorded.clone();
        config.overlay(self.setup.overrides);
        if let Some((a, c, sim)) = self.devs[dev].spare.take() {
            if a == arch && c == config {
                self.devs[dev].sim = Some(sim);
                self.devs[dev].opened_with = Some((arch, config));
                return Ok(());
            }
        }
        let sim = match Sim::open(arch, &config) {
            Ok(sim) => sim,
            // A recorded config the model cannot build: replay this device
            // from the preset (with the user's overrides) and say so.
            Err(recorded_error) if *recorded != DeviceConfig::default() => {
                // First keep the recorded layout but let the model derive the
                // bank sizes; failing that, the preset.
                let mut derived = recorded.clone();
                derived.dram_bank_size = None;
                derived.l1_bank_size = None;
                derived.overlay(self.setup.overrides);
                let (sim, what) = match Sim::open(arch, &derived) {
                    Ok(sim) => (sim, "the bank sizes derived from the recorded layout"),
                    Err(_) => {
                        derived = self.setup.overrides.clone();
                        let sim = Sim::open(arch, &derived).map_err(|message| {
                            crate::ReplayError::DeviceConfig {
                                device: self.devs[dev].id,
                                message,
                            }
                        })?;
                        (sim, "the preset")
                    }
                };
                let warning = format!(
                    "device {}: the recorded config is not usable ({recorded_error}); replayed with {what}",
                    self.devs[dev].id
                );
                if !self.f.warnings.contains(&warning) {
                    self.f.warnings.push(warning);
                }
                sim
            }
            Err(message) => {
                return Err(crate::ReplayError::DeviceConfig {
                    device: self.devs[dev].id,
                    message,
                })
            }
        };
        self.devs[dev].sim = Some(sim);
        // Spares are keyed by what was asked for, whatever it was built from.
        self.devs[dev].opened_with = Some((arch, config));
        Ok(())
    }

    /// A `DeviceOpen`. A device already open (used before its open, or
    /// opened twice) is rebuilt with the new config when it holds nothing;
    /// otherwise it keeps its config, and the report says which.
    pub(super) fn device_open(
        &mut self,
        ord: u64,
        dev: DevIx,
        arch: Arch,
        config: &DeviceConfig,
    ) -> crate::Result<()> {
        let Some(sim) = self.devs[dev].sim.as_ref() else {
            return self.open(dev, arch, config);
        };
        let wanted_arch = if arch == Arch::Unknown {
            self.setup.arch
        } else {
            arch
        };
        let mut wanted = config.clone();
        wanted.overlay(self.setup.overrides);
        if self.devs[dev].opened_with.as_ref() == Some(&(wanted_arch, wanted)) {
            return Ok(());
        }
        if sim.holds_nothing() {
            self.devs[dev].sim = None;
            self.devs[dev].opened_with = None;
            return self.open(dev, arch, config);
        }
        let in_use = match &self.devs[dev].opened_with {
            Some((a, c)) if *c == *self.setup.overrides => format!("the {a} preset"),
            Some((a, c)) => {
                let keys: Vec<String> = c.known().iter().map(|(k, v)| format!("{k}={v}")).collect();
                format!("the {a} preset with {}", keys.join(", "))
            }
            None => "the config it was opened with".into(),
        };
        self.f.warnings.push(format!(
            "device {}: the device_open at event {ord} asks for another config, but the device \
             already holds memory allocated before it; replayed with {in_use}",
            self.devs[dev].id
        ));
        Ok(())
    }

    pub(super) fn close(&mut self, ord: u64, dev: DevIx) {
        if self.devs[dev].objects > 0 {
            for slot in self.live.on_device(dev.stored()) {
                // Objects the model never placed are gone with the device.
                if self.live.get(slot).flags & FAILED != 0 {
                    self.live.remove_slot(slot);
                } else {
                    self.live.outlive(slot, ord);
                }
            }
            let d = &mut self.devs[dev];
            d.objects = 0;
            // What was resident is tracked still (it outlived the device).
            for (o, r) in d.outlived.iter_mut().zip(&mut d.resident) {
                *o += std::mem::take(r);
            }
        }
        let d = &mut self.devs[dev];
        if let Some(mut sim) = d.sim.take() {
            sim.close();
            if let Some((arch, config)) = d.opened_with.take() {
                d.spare = Some((arch, config, sim));
            }
        }
    }

    /// Resident bytes per type of every device seen so far (for observers).
    pub(crate) fn resident_by_device(&self) -> impl Iterator<Item = (DeviceId, &PerType)> {
        self.devs.iter().map(|d| (d.id, &d.resident))
    }

    /// `resident_sites` by device id (for observers).
    pub(crate) fn resident_sites_of(&self, device: DeviceId, slot: usize) -> Vec<(SiteId, u64)> {
        match self.devs.position(|d| d.id == device) {
            Some(dev) => self.resident_sites(dev, slot),
            None => Vec::new(),
        }
    }

    /// Sites and bytes of the objects resident in `slot` of device `dev`.
    pub(super) fn resident_sites(&self, dev: DevIx, slot: usize) -> Vec<(SiteId, u64)> {
        let mut by_site: FastMap<SiteId, u64> = FastMap::default();
        for live in self.live.iter() {
            if live.dev as usize == dev.get()
                && live.slot as usize == slot
                && live.flags & RESIDENT != 0
            {
                *by_site.entry(live.site).or_default() += live.size;
            }
        }
        let mut v: Vec<_> = by_site.into_iter().collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        v
    }
}
