"""Which devices are open: mesh ids, their chips, and each chip's memory layout.

Every way to open or close a device ends in a handful of functions of
`ttnn._ttnn` (`device.open_device`, `device.close_device`,
`device.CreateDevice(s)`, `device.CloseDevice(s)`,
`multi_device.open_mesh_device`, `multi_device.close_mesh_device`); ttnn's
Python modules call some of them through the module attribute and keep
aliases of others, so ttalloc wraps the originals and replaces every alias
of them in ttnn's modules. A device in ttnn 0.8x is a MeshDevice; graph
capture names it by its mesh id (`.id()`, new on every open) while a chip
keeps its chip id (`.get_device_ids()`), which is what the trace records.
"""

import threading

# get_memory_view's buffer types, and the config keys their geometry fills.
_VIEWS = (
    ("DRAM", "dram_banks", "dram_bank_size"),
    ("L1", "l1_banks", "l1_bank_size"),
    ("L1_SMALL", None, "l1_small_size"),
    ("TRACE", None, "trace_region_size"),
)


def arch_name(mesh):
    try:
        return str(mesh.arch()).split(".")[-1].lower()
    except Exception:
        return "unknown"


def read_config(ttnn, mesh):
    """The allocator geometry tt-metal reports for `mesh` (the same on every chip)."""
    config = {}
    view = getattr(ttnn, "get_memory_view", None)
    types = getattr(ttnn, "BufferType", None)
    if view is not None and types is not None:
        for name, banks_key, size_key in _VIEWS:
            try:
                v = view(mesh, getattr(types, name))
            except Exception:
                continue
            if banks_key is not None:
                config[banks_key] = int(v.num_banks)
            config[size_key] = int(v.total_bytes_per_bank) if int(v.num_banks) else 0
    dev = getattr(getattr(ttnn, "_ttnn", None), "device", None)
    for key, fn in (("dram_alignment", "get_dram_alignment"), ("l1_alignment", "get_l1_alignment")):
        try:
            config[key] = int(getattr(dev, fn)())
        except Exception:
            pass
    return config


def banks_by_type(config):
    """Bank counts by the trace's buffer-type number (0 DRAM, 1 L1, 4 TRACE,
    which lives in the DRAM banks) from `read_config`'s result."""
    banks = {}
    if "dram_banks" in config:
        banks[0] = banks[4] = config["dram_banks"]
    if "l1_banks" in config:
        banks[1] = config["l1_banks"]
    return banks


class MeshInfo(object):
    __slots__ = ("mesh_id", "chips", "owner")

    def __init__(self, mesh_id, chips, owner):
        self.mesh_id = mesh_id
        self.chips = chips
        self.owner = owner  # the mesh whose open opened the chips (itself, or a submesh's parent)


class DeviceRegistry(object):
    """Open meshes by mesh id; chips are opened and closed with the mesh that owns them."""

    def __init__(self):
        self.lock = threading.Lock()
        self.meshes = {}

    def chips_of(self, mesh_id):
        m = self.meshes.get(mesh_id)
        return m.chips if m is not None else None

    def add(self, mesh_id, chips, owner=None):
        with self.lock:
            self.meshes[mesh_id] = MeshInfo(mesh_id, list(chips), mesh_id if owner is None else owner)

    def remove(self, mesh_id):
        """Forgets the mesh and its submeshes; returns the ids forgotten."""
        with self.lock:
            gone = [k for k, m in self.meshes.items() if k == mesh_id or m.owner == mesh_id]
            for k in gone:
                del self.meshes[k]
            return gone

    def any_open(self):
        return bool(self.meshes)

    def only_mesh(self):
        with self.lock:
            owners = [m for m in self.meshes.values() if m.owner == m.mesh_id]
            return owners[0] if len(owners) == 1 else None


def mesh_id_of(mesh):
    try:
        return int(mesh.id())
    except Exception:
        return None


def chip_ids_of(mesh):
    try:
        return [int(c) for c in mesh.get_device_ids()]
    except Exception:
        pass
    for attr in ("get_device_id", "id"):
        try:
            return [int(getattr(mesh, attr)())]
        except Exception:
            continue
    return []
