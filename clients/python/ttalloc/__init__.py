"""ttalloc: record tt-metal device-memory events for `ttalloc record`.

Standard library only. Under `ttalloc record` (TTALLOC_SOCKET set) every call
below records one event with the caller's Python stack as its call site;
otherwise every call returns at once.

    import ttalloc
    ttalloc.device_open(0, arch="wormhole_b0", l1_small_size=32768)
    ttalloc.alloc(0, my_buffer_key, "DRAM", 36864, page_size=2048)
    with ttalloc.op("ttnn.matmul"):
        ...
    ttalloc.free(0, my_buffer_key)
    ttalloc.mark("run 2")

The wire format is the native protocol described in recorder/PROTOCOL.md.
Events are batched and sent by a background thread every
TTALLOC_FLUSH_INTERVAL seconds (default 0.2), when a batch is full, on
flush() and at exit. Thread-safe; fork-safe (a forked child opens its own
connection and drops the parent's unsent events).

The package: this file holds the connection state and the hot events
(alloc, free, op scopes), packed inline; _events.py the other kinds through
one table; _connection.py the connection (interning, batching); _sites.py
call sites; _wire.py the protocol's encoding.
"""

import atexit
import functools
import os
import struct
import sys
import threading
import time

__version__ = "0.1.0"
__all__ = [
    "enabled", "device_open", "device_close", "alloc", "alloc_refused", "free", "cb_alloc",
    "cb_free_all", "program_load", "program_unload", "trace_capture",
    "trace_release", "op", "mark", "flush",
]

_SOCKET_PATH = os.environ.get("TTALLOC_SOCKET", "")
# Recording: set at import, cleared for good when the recorder cannot be
# reached or the connection is lost. Every API call tests it first.
_ON = bool(_SOCKET_PATH) and os.environ.get("TT_ALLOC_TRACKING_ENABLED", "1") != "0"
try:
    _FLUSH_INTERVAL = float(os.environ.get("TTALLOC_FLUSH_INTERVAL", "0.2"))
except ValueError:
    _FLUSH_INTERVAL = 0.2

from . import _connection, _sites  # noqa: E402
from ._connection import BATCH_BYTES as _BATCH_BYTES, BATCH_EVENTS as _BATCH_EVENTS  # noqa: E402
from ._wire import (  # noqa: E402
    BT as _BT, BUFFER_ALLOC as _BUFFER_ALLOC, BUFFER_ALLOC2 as _BUFFER_ALLOC2, BUFFER_FREE as _BUFFER_FREE,
    LAY as _LAY, OP_BEGIN as _OP_BEGIN, OP_END as _OP_END, bad as _bad, buffer_type_number as _buffer_type_number,
    layout_number as _layout_number, new_fields as _new_fields,
)

_client = None
_client_lock = threading.Lock()
_skip_frames_under = _sites.skip_frames_under
_stack_key = _sites.stack_key
_time_ns = time.time_ns
_LOCAL_ID_LIMIT = 1 << 40


def _stop_recording():
    global _ON
    _ON = False


def _connect():
    """Returns this process's client, connecting on first use; None when off."""
    global _client, _ON
    with _client_lock:
        if _client is not None:
            return _client
        if not _ON:
            return None
        try:
            c = _connection.connect(_SOCKET_PATH, __version__, _stop_recording)
        except _connection.NotConnected as e:
            _ON = False
            _connection.warn("%s; not recording" % e)
            return None
        _client = c
        if _FLUSH_INTERVAL > 0:
            _connection.start_flusher(c, _FLUSH_INTERVAL)
        _register_mp_finalizer()
        return c


def _register_mp_finalizer():
    # multiprocessing children exit through os._exit, skipping atexit; its
    # finalizers still run, so flush from one of those too.
    mp_util = sys.modules.get("multiprocessing.util")
    if mp_util is not None:
        try:
            mp_util.Finalize(None, _shutdown, exitpriority=0)
        except Exception:
            pass


# ---------------------------------------------------------------- the API
#
# alloc, free and op scopes are most of any trace: they pack their records
# here, with no call layer between the API and the struct (interning and id
# tables inline too), and flush past the same limits as Client.add.

from ._events import (  # noqa: E402,F401  (the rest of the API)
    alloc_refused, cb_alloc, cb_free_all, device_close, device_open, mark, program_load, program_unload,
    trace_capture, trace_release,
)


def enabled():
    """True when running under `ttalloc record` / `ttalloc serve`."""
    return _ON


def alloc(device, buffer, buffer_type, size, address=None, page_size=None, layout="interleaved", num_cores=None,
          per_bank_size=None, label=None):
    """A buffer allocation. `per_bank_size`: the bytes tt-metal reserved in
    each bank (its `max_size_per_bank`); `label`: a readable name such as
    `L1 tensor [1,1,32,256] bfloat16 TILE`. Either one makes the client send
    protocol 1.1's BUFFER_ALLOC2 instead of BUFFER_ALLOC."""
    if not _ON:
        return
    key = _stack_key()
    bt = _BT.get(buffer_type)
    if bt is None:
        bt = _buffer_type_number(buffer_type)
    lay = _LAY.get(layout)
    if lay is None:
        lay = _layout_number(layout)
    flags = 0
    if address is not None:
        flags = 1
    else:
        address = 0
    if page_size is not None:
        flags |= 2
    else:
        page_size = 0
    if num_cores is not None:
        flags |= 4
    else:
        num_cores = 0
    if per_bank_size is not None or label is not None:
        per_bank_size, label = _new_fields("alloc", per_bank_size, label)
        if per_bank_size is not None:
            flags |= 8
        if label is not None:
            flags |= 16
    c = _client or _connect()
    if c is None:
        return
    with c.lock:
        ts = _time_ns()  # under the lock: a connection's timestamps never go back
        site = c.sites.get(key)
        if site is None:
            site = c.site(key)
        local = c.next_id
        try:
            if flags & 24:
                text = 0
                if label is not None:
                    text = c.strings.get(label)
                    if text is None:
                        text = c.string(label)
                rec = _BUFFER_ALLOC2.pack(16, flags, 0, device, ts, local, size, address, page_size, num_cores, site,
                                          bt, lay, 0, per_bank_size or 0, text, 0)
            else:
                rec = _BUFFER_ALLOC.pack(4, flags, 0, device, ts, local, size, address, page_size, num_cores, site,
                                         bt, lay, 0)
        except struct.error as e:
            raise _bad("alloc", e, ("device", device, 32), ("size", size, 64), ("address", address, 64),
                       ("page_size", page_size, 64), ("num_cores", num_cores, 32)) from None
        c.next_id = (local + 1) % _LOCAL_ID_LIMIT or 1
        c.buffers[(device, buffer)] = local
        c.events += rec
        c.nevents += 1
        if c.nevents >= _BATCH_EVENTS or len(c.events) >= _BATCH_BYTES or len(c.str_defs) >= _BATCH_BYTES:
            c.flush_locked()


def free(device, buffer):
    if not _ON:
        return
    key = _stack_key()
    c = _client or _connect()
    if c is None:
        return
    with c.lock:
        ts = _time_ns()
        site = c.sites.get(key)
        if site is None:
            site = c.site(key)
        local = c.buffers.pop((device, buffer), None)
        if local is None:
            local = c.new_id()  # frees a buffer never allocated here: recorded as such
        try:
            rec = _BUFFER_FREE.pack(5, 0, 0, device, ts, local, site)
        except struct.error as e:
            raise _bad("free", e, ("device", device, 32)) from None
        c.events += rec
        c.nevents += 1
        if c.nevents >= _BATCH_EVENTS or len(c.events) >= _BATCH_BYTES or len(c.str_defs) >= _BATCH_BYTES:
            c.flush_locked()


def _op_begin(name):
    """Opens an op scope named `name` (a str)."""
    c = _client or _connect()
    if c is None:
        return
    with c.lock:
        ts = _time_ns()
        text = c.strings.get(name)
        if text is None:
            text = c.string(name)
        c.events += _OP_BEGIN.pack(12, 0, 0, 0, ts, text)
        c.nevents += 1
        if c.nevents >= _BATCH_EVENTS or len(c.events) >= _BATCH_BYTES or len(c.str_defs) >= _BATCH_BYTES:
            c.flush_locked()


def _op_end():
    """Closes the innermost op scope."""
    c = _client or _connect()
    if c is None:
        return
    with c.lock:
        c.events += _OP_END.pack(13, 0, 0, 0, _time_ns())
        c.nevents += 1
        if c.nevents >= _BATCH_EVENTS or len(c.events) >= _BATCH_BYTES:
            c.flush_locked()


class _Op(object):
    """An op scope: `with ttalloc.op("ttnn.matmul"):` or `@ttalloc.op("name")`."""

    __slots__ = ("name",)

    def __init__(self, name):
        self.name = name if type(name) is str else str(name)

    def __enter__(self):
        if _ON:
            _op_begin(self.name)
        return self

    def __exit__(self, *exc):
        if _ON:
            _op_end()
        return False

    def __call__(self, fn):
        if not _ON:
            return fn
        name = self.name

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            if not _ON:
                return fn(*args, **kwargs)
            _op_begin(name)
            try:
                return fn(*args, **kwargs)
            finally:
                if _ON:
                    _op_end()

        return wrapper


_NOOP_OP = _Op("")
# The op decorator's wrapper frame is ttalloc's, not the caller's: stacks skip it.
_WRAPPER_CODE = next(c for c in _Op.__call__.__code__.co_consts if getattr(c, "co_name", "") == "wrapper")
_sites.WRAPPER_CODE = _WRAPPER_CODE


# Scopes are stateless (a name): one per name serves every `with op(name)`.
_OPS = {}
_OPS_KEPT = 4096  # names beyond this many (made up per call, say) get a new scope each time


def op(name):
    """An op scope, as a context manager or a decorator."""
    if not _ON:
        return _NOOP_OP
    scope = _OPS.get(name)
    if scope is None:
        scope = _Op(name)
        if len(_OPS) < _OPS_KEPT and type(name) is str:
            _OPS[name] = scope
    return scope


def flush():
    """Sends everything buffered now (blocks until the recorder has it in its socket)."""
    c = _client
    if c is None:
        return
    with c.lock:
        c.flush_locked()


def _shutdown():
    c = _client
    if c is None:
        return
    with c.lock:
        c.goodbye_locked()


atexit.register(_shutdown)


def _before_fork():
    c = _client
    if c is not None:
        c.lock.acquire()


def _after_fork_parent():
    c = _client
    if c is not None:
        c.lock.release()


def _after_fork_child():
    # The child must not send on the parent's connection nor the parent's
    # unsent events: drop them and connect afresh on the next event.
    global _client, _client_lock
    c = _client
    _client = None
    _client_lock = threading.Lock()
    if c is not None:
        try:
            c.sock.close()
        except OSError:
            pass


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_parent,
                        after_in_child=_after_fork_child)
