"""Turns the nodes of ttalloc's graph captures into ttalloc events.

A graph identifies a buffer only within one capture (its `buffer` node), and
ttalloc rotates its capture between ops, so a buffer allocated in one capture
and freed in a later one gets a fresh node there. Buffers are therefore
joined by (mesh device id, buffer type, address), which tt-metal's allocator
keeps unique among live buffers. Buffer nodes carry the *mesh* id (a new one
per open); a mesh buffer is one allocation per chip in lockstep, so it
becomes one event per chip. Circular-buffer nodes carry the chip id.
"""

import os
import re
import sys
import threading

_BUFFER_TYPES = {"DRAM": 0, "L1": 1, "SYSTEM_MEMORY": 2, "L1_SMALL": 3, "TRACE": 4}
_LAYOUTS = {"INTERLEAVED": 0, "HEIGHT_SHARDED": 1, "WIDTH_SHARDED": 2, "BLOCK_SHARDED": 3}
_CORE_RANGE = re.compile(r"\(?x?=?(\d+)[,-]y?=?(\d+)\)?\s*-\s*\(?x?=?(\d+)[,-]y?=?(\d+)\)?")


def _int(v, default=None):
    if v is None:
        return default
    if isinstance(v, int):
        return v
    try:
        return int(str(v).strip(), 0)
    except ValueError:
        return default


def buffer_type_of(params):
    bt = _int(params.get("buffer_type"))
    if bt is not None and 0 <= bt <= 4:
        return bt
    name = str(params.get("type", "")).upper().replace("BUFFERTYPE::", "")
    return _BUFFER_TYPES.get(name)


def layout_of(params):
    name = str(params.get("layout", "INTERLEAVED")).upper().replace("TENSORMEMORYLAYOUT::", "")
    return _LAYOUTS.get(name, 0)


def count_cores(core_range_set):
    """Cores in a core-range-set string such as `{[0-0 - 7-7]}` or
    `{[(x=0,y=0) - (x=0,y=7)]}`; None when it cannot be read."""
    total = 0
    found = False
    for m in _CORE_RANGE.finditer(str(core_range_set)):
        x0, y0, x1, y1 = (int(g) for g in m.groups())
        total += (abs(x1 - x0) + 1) * (abs(y1 - y0) + 1)
        found = True
    return total if found else None


def tensor_label(buffer_type, tensor_params):
    """`L1 tensor [1,1,32,256] bfloat16 TILE`, from a graph `tensor` node."""
    bt = {v: k for k, v in _BUFFER_TYPES.items()}.get(buffer_type, "device")
    shape = str(tensor_params.get("shape", ""))
    m = re.search(r"\[([^\]]*)\]", shape)
    dims = "[" + ",".join(d.strip() for d in m.group(1).split(",")) + "]" if m else ""
    dtype = str(tensor_params.get("dtype", "")).split("::")[-1].lower()
    layout = str(tensor_params.get("layout", "")).split("::")[-1]
    parts = [bt, "tensor"] + [p for p in (dims, dtype, layout) if p]
    return " ".join(parts)


class LiveBuffer(object):
    """A buffer ttalloc reported allocated and not yet freed (what in-process
    checks such as the pytest plugin look at)."""

    __slots__ = ("key", "chips", "mesh", "buffer_type", "size", "address", "label", "where", "serial")

    def __init__(self, key, chips, mesh, buffer_type, size, address, label, where, serial):
        self.key = key
        self.chips = chips
        self.mesh = mesh
        self.buffer_type = buffer_type
        self.size = size
        self.address = address
        self.label = label
        self.where = where      # "file.py:14" of the innermost user frame, or ""
        self.serial = serial    # allocation order within the process

    @property
    def buffer_type_name(self):
        return _TYPE_NAMES.get(self.buffer_type, str(self.buffer_type))


_TYPE_NAMES = {v: k for k, v in _BUFFER_TYPES.items()}


def user_frame_location(internal_dirs):
    """`file.py:line` of the innermost frame outside ttalloc's and ttnn's code."""
    f = sys._getframe(1)
    while f is not None and f.f_code.co_filename.startswith(internal_dirs):
        f = f.f_back
    if f is None:
        return ""
    return "%s:%d" % (os.path.basename(f.f_code.co_filename), f.f_lineno)


class Translator(object):
    """Keeps the live buffers ttalloc has reported and emits events for nodes."""

    def __init__(self, emit, chips_of, internal_dirs=lambda: ()):
        self.emit = emit            # ttalloc's hand API (module)
        self.chips_of = chips_of    # mesh id -> list of chip ids (None if unknown)
        self.internal_dirs = internal_dirs
        self.lock = threading.Lock()
        self.live = {}              # (mesh, buffer type, address) -> LiveBuffer
        self.next_key = 1
        self.unmatched_frees = 0
        self.outlived = []          # LiveBuffers still allocated when their device closed
        self.mesh_bytes = {}        # (mesh, buffer type) -> live bytes (per chip)
        self.peak = {}              # buffer type -> highest mesh_bytes since reset_peak()

    def forget_mesh(self, mesh):
        """tt-metal frees a closed device's buffers without telling anyone."""
        with self.lock:
            for k in [k for k in self.live if k[0] == mesh]:
                self.outlived.append(self.live.pop(k))
            for k in [k for k in self.mesh_bytes if k[0] == mesh]:
                del self.mesh_bytes[k]

    def reset_peak(self):
        """Starts a new running peak from what is live now."""
        with self.lock:
            self.peak = {}
            for (mesh, bt), n in self.mesh_bytes.items():
                self.peak[bt] = max(self.peak.get(bt, 0), n)

    def peak_bytes(self):
        """{buffer type name: highest live bytes on one device since reset_peak()}."""
        with self.lock:
            return {_TYPE_NAMES.get(bt, str(bt)): n for bt, n in self.peak.items()}

    def _count(self, mesh, bt, delta):
        k = (mesh, bt)
        n = self.mesh_bytes.get(k, 0) + delta
        self.mesh_bytes[k] = n
        if n > self.peak.get(bt, 0):
            self.peak[bt] = n

    def live_buffers(self):
        """The buffers live now, oldest first."""
        with self.lock:
            return sorted(self.live.values(), key=lambda b: b.serial)

    def nodes(self, nodes):
        by_counter = {}
        for n in nodes:
            c = n.get("counter")
            if c is not None:
                by_counter[c] = n
        with self.lock:
            for n in nodes:
                kind = n.get("node_type")
                handler = _HANDLERS.get(kind)
                if handler is not None:
                    handler(self, n, n.get("params") or {}, by_counter)

    # ---- node handlers (called under self.lock) ----
    def _buffer_allocate(self, node, p, by_counter):
        bt = buffer_type_of(p)
        address = _int(p.get("address"))
        size = _int(p.get("size"))
        mesh = _int(p.get("device_id"))
        if bt is None or size is None or mesh is None:
            return
        chips = self.chips_of(mesh)
        if not chips:
            return
        key = (mesh, bt, address)
        stale = self.live.pop(key, None)
        if stale is not None:  # its free happened where ttalloc could not see it
            self._count(mesh, bt, -stale.size)
            for chip in stale.chips:
                self.emit.free(chip, stale.key)
        label = None
        for c in _connections(node):
            buf = by_counter.get(c)
            if buf is not None and buf.get("node_type") == "buffer":
                for t in _connections(buf):
                    tn = by_counter.get(t)
                    if tn is not None and tn.get("node_type") == "tensor":
                        label = tensor_label(bt, tn.get("params") or {})
                        break
                break
        bkey = self.next_key
        self.next_key += 1
        self.live[key] = LiveBuffer(bkey, chips, mesh, bt, size, address, label,
                                    user_frame_location(self.internal_dirs()), bkey)
        self._count(mesh, bt, size)
        page = _int(p.get("page_size"))
        cores = _int(p.get("num_cores"))
        per_bank = _int(p.get("max_size_per_bank"))
        layout = layout_of(p)
        for chip in chips:
            self.emit.alloc(chip, bkey, bt, size, address=address, page_size=page or None, layout=layout,
                            num_cores=cores if cores else None, per_bank_size=per_bank, label=label)

    def _buffer_deallocate(self, node, p, by_counter):
        bt = buffer_type_of(p)
        key = (_int(p.get("device_id")), bt, _int(p.get("address")))
        entry = self.live.pop(key, None)
        if entry is None:
            self.unmatched_frees += 1
            return
        self._count(entry.mesh, entry.buffer_type, -entry.size)
        for chip in entry.chips:
            self.emit.free(chip, entry.key)

    def _cb_allocate(self, node, p, by_counter):
        chip = _int(p.get("device_id"))
        address = _int(p.get("address"))
        size = _int(p.get("size"))
        if chip is None or address is None or size is None:
            return
        glob = str(p.get("globally_allocated", "0")).lower() in ("1", "true")
        self.emit.cb_alloc(chip, address, size, cores=count_cores(p.get("core_range_set", "")),
                           globally_allocated=glob)

    def _cb_deallocate_all(self, node, p, by_counter):
        dev = _int(p.get("device_id"))
        if dev is None:
            return
        for chip in self.chips_of(dev) or [dev]:
            self.emit.cb_free_all(chip)


def _connections(node):
    c = node.get("connections")
    return c if isinstance(c, list) else ()


_HANDLERS = {
    "buffer_allocate": Translator._buffer_allocate,
    "buffer_deallocate": Translator._buffer_deallocate,
    "circular_buffer_allocate": Translator._cb_allocate,
    "circular_buffer_deallocate_all": Translator._cb_deallocate_all,
}
