"""Every event kind but the hot ones (alloc, free, op scopes: packed inline
in the package's __init__), through one table-driven encoder, and the API
functions that send them.

One table row per event kind (recorder/PROTOCOL.md): its wire code, the API
function that sends it, its record layout after the common header {u8 kind,
u8 flags, u16 0, u32 device, u64 ts}, the arguments a failed pack is blamed
on and the body slots the client fills under its lock (call site, interned
string, buffer/program id). One builder, _encoder, makes every row's encoder.
"""

import struct
import time

import ttalloc as _pkg  # the connection state: _ON, _client, _connect (read at call time)

from . import _sites
from ._wire import (
    ARCHS, BT, CONFIG_KEYS, EVENT_HEAD, LAY, bad, buffer_type_number, layout_number, new_fields, u64,
)

_time_ns = time.time_ns
_stack_key = _sites.stack_key


def _encoder(code, api, body_fmt, checked=(), site_at=-1, string_at=-1, id_at=-1, ids=None, takes_id=False):
    """Builds the function that queues one event of a kind: `emit(flags,
    device, site_key, obj, body)` packs the common header, then the list
    `body` (in wire order), after filling under the client's lock the body's
    slots for the call site (`site_at`, the id of the stack `site_key`), an
    interned string (`string_at`; None is 0) and an object's local id
    (`id_at`: a new id kept in the client's `ids` table under `obj`, or with
    `takes_id` the id `obj` had, which leaves the table). A failed pack is a
    ValueError naming the first of `checked` ((argument, bits, body slot))
    that is not an integer of its width."""
    pack = struct.Struct(EVENT_HEAD + body_fmt).pack
    checked = (("device", 32, -1),) + checked
    new_id = id_at >= 0 and not takes_id

    def emit(flags, device, site_key, obj, body):
        c = _pkg._client or _pkg._connect()
        if c is None:
            return
        with c.lock:
            ts = _time_ns()  # under the lock: a connection's timestamps never go back
            if site_at >= 0:
                body[site_at] = c.site(site_key)
            if string_at >= 0:
                text = body[string_at]
                body[string_at] = 0 if text is None else c.string(text)
            if id_at >= 0:
                table = c.buffers if ids == "buffers" else c.programs
                if takes_id:
                    local = table.pop(obj, None)
                    if local is None:
                        local = c.new_id()  # ends an object never started here: recorded as such
                else:
                    local = c.next_id
                body[id_at] = local
            try:
                rec = pack(code, flags, 0, device, ts, *body)
            except struct.error as e:
                raise bad(api, e, *[(name, device if at < 0 else body[at], bits)
                                    for name, bits, at in checked]) from None
            if new_id:
                c.new_id()
                table[obj] = local
            c.add(rec)

    return emit


_device_open = _encoder(2, "device_open", "BBBBI11Q")
_device_close = _encoder(3, "device_close", "")
_cb_alloc = _encoder(6, "cb_alloc", "QQII", (("address", 64, 0), ("size", 64, 1), ("cores", 32, 2)), site_at=3)
_cb_free_all = _encoder(7, "cb_free_all", "")
_program_load = _encoder(8, "program_load", "QQI", (("binary_size", 64, 1),), site_at=2, id_at=0, ids="programs")
_program_unload = _encoder(9, "program_unload", "Q", id_at=0, ids="programs", takes_id=True)
_trace_capture = _encoder(10, "trace_capture", "IQI", (("trace_id", 32, 0), ("size", 64, 1)), site_at=2)
_trace_release = _encoder(11, "trace_release", "I", (("trace_id", 32, 0),))
_marker = _encoder(14, "mark", "I", string_at=0)
_alloc_refused = _encoder(15, "alloc_refused", "QQQIIIBBH", (("size", 64, 0), ("page_size", 64, 1),
                                                             ("per_bank_size", 64, 2), ("num_cores", 32, 3)),
                          site_at=4, string_at=5)


def device_open(device, arch="wormhole_b0", **config):
    if not _pkg._ON:
        return
    a = ARCHS.get(str(arch).lower().replace("-", "_"))
    if a is None:
        raise ValueError("ttalloc: unknown arch %r" % (arch,))
    mask = 0
    vals = [0] * len(CONFIG_KEYS)
    for k, v in config.items():
        try:
            i = CONFIG_KEYS.index(k)
        except ValueError:
            raise ValueError("ttalloc: unknown device config key %r (known: %s)" % (k, ", ".join(CONFIG_KEYS))) from None
        if v is None:
            continue
        mask |= 1 << i
        vals[i] = u64(v, k)
    _device_open(0, device, None, None, [a, 0, 0, 0, mask] + vals)


def device_close(device):
    if _pkg._ON:
        _device_close(0, device, None, None, [])


def alloc_refused(device, buffer_type, size, message, page_size=None, layout="interleaved", num_cores=None,
                  per_bank_size=None):
    """tt-metal refused an allocation (out of memory); `message` is its text
    (`Out of Memory: Not enough space to allocate ...`)."""
    if not _pkg._ON:
        return
    key = _stack_key()
    bt = BT.get(buffer_type)
    if bt is None:
        bt = buffer_type_number(buffer_type)
    lay = LAY.get(layout)
    if lay is None:
        lay = layout_number(layout)
    if not isinstance(message, str):
        raise ValueError("ttalloc.alloc_refused: message must be a string, not %r" % (message,))
    per_bank_size, _ = new_fields("alloc_refused", per_bank_size, None)
    flags = 0
    if page_size is not None:
        flags = 1
    if num_cores is not None:
        flags |= 2
    if per_bank_size is not None:
        flags |= 4
    _alloc_refused(flags, device, key, None, [size, page_size or 0, per_bank_size or 0, num_cores or 0, 0, message,
                                              bt, lay, 0])


def cb_alloc(device, address, size, cores=None, globally_allocated=False):
    if not _pkg._ON:
        return
    flags = 2 if globally_allocated else 0
    if cores is not None:
        flags |= 1
    _cb_alloc(flags, device, _stack_key(), None, [address, size, cores or 0, 0])


def cb_free_all(device):
    if _pkg._ON:
        _cb_free_all(0, device, None, None, [])


def program_load(device, program, binary_size):
    if _pkg._ON:
        _program_load(0, device, _stack_key(), (device, program), [0, binary_size, 0])


def program_unload(device, program):
    if _pkg._ON:
        _program_unload(0, device, None, (device, program), [0])


def trace_capture(device, trace_id, size):
    if _pkg._ON:
        _trace_capture(0, device, _stack_key(), None, [trace_id, size, 0])


def trace_release(device, trace_id):
    if _pkg._ON:
        _trace_release(0, device, None, None, [trace_id])


def mark(label):
    if _pkg._ON:
        _marker(0, 0, None, None, [str(label)])
