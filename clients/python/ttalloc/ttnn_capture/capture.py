"""The ttnn capture: what happens at each op, device open/close and graph call."""

import os
import sys
import threading

from . import devices as devices_mod
from . import oom
from .emit import Emitter
from .graph import GraphApi, GraphSessions
from .translate import Translator


class Capture(object):
    def __init__(self, ttnn):
        self.ttnn = ttnn
        self.emit = Emitter()
        self.registry = devices_mod.DeviceRegistry()
        from .. import _sites
        self.translator = Translator(self.emit, self.registry.chips_of, lambda: _sites.INTERNAL_DIRS)
        self.api = GraphApi(ttnn._ttnn.graph)
        self.sessions = GraphSessions(self.api, self.translator.nodes)
        self.main_thread = threading.main_thread()
        self.other_thread_ops = 0
        self.devices_opened = 0
        self.chip_banks = {}  # chip id -> {buffer type number: bank count}, from its open
        # Closed meshes stay referenced until exit: a MeshDevice destroyed
        # while a graph capture begun after its close is active crashes
        # tt-metal (its cached programs report their CB frees to a processor
        # that no longer knows the device). finish() ends ttalloc's capture
        # first, then lets them go.
        self.closed_meshes = []
        self.mesh_objects = {}

    # ---- ops ----
    def call_op(self, name, call, args):
        """Runs one top-level ttnn op; its events become an op scope `name`."""
        t = self.sessions.thread()
        if t.op_depth or not self.sessions.enabled:
            return call()
        if threading.current_thread() is not self.main_thread:
            self.other_thread_ops += 1
        t.op_depth = 1
        try:
            # One rotation per op, after it: what happened since the previous
            # op (frees by `del`, ...) lands in this op's scope, a price worth
            # half the rotations (each costs an end_graph_capture's JSON).
            self.sessions.start(t)
            try:
                result = call()
            except BaseException as e:
                self.end_op(t, name, e, args)
                raise
            self.end_op(t, name, None, args)
            return result
        finally:
            t.op_depth = 0

    def end_op(self, t, name, error, args):
        self.emit.op_begin(name)
        try:
            self.sessions.drain(t)
            if error is not None:
                refusal = oom.parse(error)
                if refusal is not None:
                    self.refused(refusal, args)
        finally:
            self.emit.op_end()

    def refused(self, refusal, args):
        mesh = self.mesh_of(args)
        chips = self.registry.chips_of(mesh) if mesh is not None else None
        if not chips:
            only = self.registry.only_mesh()
            chips = only.chips if only is not None else None
        if chips:
            # tt-metal names the banks the request spans: every bank of its
            # type when interleaved, one per shard when sharded. The layout
            # the model needs to refuse it the same way follows from that.
            layout, num_cores = 0, None
            total = self.chip_banks.get(chips[0], {}).get(refusal.buffer_type)
            if refusal.buffer_type == oom.L1_SMALL or (total is not None and refusal.banks < total):
                layout, num_cores = oom.HEIGHT_SHARDED, refusal.banks
            # Lockstep: every chip of the mesh refused the same request; one
            # event, on the mesh's first chip, says so once.
            self.emit.alloc_refused(chips[0], refusal.buffer_type, refusal.size, refusal.message,
                                    layout=layout, num_cores=num_cores, per_bank_size=refusal.per_bank)

    def mesh_of(self, args):
        for a in args:
            for attr in ("device", None):
                try:
                    d = a.device() if attr else a
                except Exception:
                    continue
                mid = devices_mod.mesh_id_of(d) if d is not None and hasattr(d, "get_device_ids") else None
                if mid is not None and self.registry.chips_of(mid):
                    return mid
        return None

    # ---- devices ----
    def opened(self, mesh, owner=None):
        mid = devices_mod.mesh_id_of(mesh)
        chips = devices_mod.chip_ids_of(mesh)
        if mid is None or not chips:
            return
        self.sessions.drain()
        if owner is None:
            arch = devices_mod.arch_name(mesh)
            config = devices_mod.read_config(self.ttnn, mesh)
            banks = devices_mod.banks_by_type(config)
            for chip in chips:
                self.emit.device_open(chip, arch=arch, **config)
                self.chip_banks[chip] = banks
            self.devices_opened += 1
        self.registry.add(mid, chips, owner)
        self.mesh_objects[mid] = mesh
        self.sessions.enabled = True
        t = self.sessions.thread()
        # tt-metal's start-up drops a capture begun before the first open: restart ours.
        if t.ours:
            self.sessions.drain(t)
        else:
            self.sessions.start(t)

    def closing(self, mesh):
        self.sessions.drain()

    def closed(self, mesh):
        mid = devices_mod.mesh_id_of(mesh)
        self.sessions.drain()
        if mid is None or self.registry.chips_of(mid) is None:
            return
        chips = self.registry.chips_of(mid)
        self.closed_meshes.append(mesh)
        for gone in self.registry.remove(mid):
            self.translator.forget_mesh(gone)
            obj = self.mesh_objects.pop(gone, None)
            if obj is not None:
                self.closed_meshes.append(obj)
        for chip in chips:
            self.emit.device_close(chip)

    # ---- the end ----
    def finish(self):
        """At exit: what the main thread's capture still holds, and what was missed."""
        try:
            self.sessions.drain(restart=False)
        except Exception:
            pass
        self.sessions.enabled = False
        self.closed_meshes = []
        self.mesh_objects = {}
        if self.other_thread_ops:
            _warn("%d ttnn op call(s) ran on threads other than the main thread; their events were "
                  "recorded up to each thread's last op" % self.other_thread_ops)


def _warn(msg):
    try:
        sys.stderr.write("ttalloc: warning: %s (process %d)\n" % (msg, os.getpid()))
    except Exception:
        pass
