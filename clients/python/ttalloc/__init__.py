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
"""

import atexit
import functools
import os
import socket
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
_ON = bool(_SOCKET_PATH) and os.environ.get("TT_ALLOC_TRACKING_ENABLED", "1") != "0"


def _int_env(name, default):
    try:
        return max(0, int(os.environ.get(name, default)))
    except ValueError:
        return default


_DEPTH = _int_env("TTALLOC_STACK_DEPTH", 32)
try:
    _FLUSH_INTERVAL = float(os.environ.get("TTALLOC_FLUSH_INTERVAL", "0.2"))
except ValueError:
    _FLUSH_INTERVAL = 0.2
_BATCH_EVENTS = 1024
_BATCH_BYTES = 60000
_LOCAL_ID_LIMIT = 1 << 40

# ---- wire format (recorder/PROTOCOL.md) ----
_MAGIC = 0x4C415454  # "TTAL"
_VERSION = (1, 1)
_HDR = struct.Struct("<IHHI")
_F_HELLO, _F_STRINGS, _F_FRAMES, _F_STACKS, _F_EVENTS, _F_GOODBYE = 1, 2, 3, 4, 5, 6
_FRAME = struct.Struct("<III")
_STACK = struct.Struct("<II")
_U32 = struct.Struct("<I")

_BUFFER_TYPES = {"DRAM": 0, "L1": 1, "SYSTEM_MEMORY": 2, "L1_SMALL": 3, "TRACE": 4}
_LAYOUTS = {"INTERLEAVED": 0, "HEIGHT_SHARDED": 1, "WIDTH_SHARDED": 2, "BLOCK_SHARDED": 3}
_ARCHS = {"unknown": 0, "grayskull": 1, "wormhole_b0": 2, "wormhole": 2, "blackhole": 3, "quasar": 4}
# Order fixed by the protocol: bit i of the presence mask is key i.
_CONFIG_KEYS = (
    "dram_banks", "dram_bank_size", "dram_alignment", "dram_unreserved_base",
    "l1_banks", "l1_bank_size", "l1_alignment", "l1_unreserved_base",
    "l1_small_size", "trace_region_size", "worker_l1_size",
)


_MAX_STRING = 16384  # characters; frames must stay under the recorder's 1 MiB limit


def _str_bytes(s):
    # Always valid UTF-8 (the recorder checks): undecodable bytes in file
    # names or argv arrive as surrogate escapes and are spelled out instead.
    b = s[:_MAX_STRING].encode("utf-8", "backslashreplace")
    return _U32.pack(len(b)) + b


def _warn(msg):
    try:
        sys.stderr.write("ttalloc: warning: %s\n" % msg)
        sys.stderr.flush()
    except Exception:
        pass


def _this_file():
    return _warn.__code__.co_filename


_OWN_FILE = _this_file()
# Call sites start at the innermost frame outside these directories: ttalloc's
# own package, and (under the ttnn capture) ttnn's, so an event is charged to
# the user code that called the op, not to a wrapper.
_INTERNAL_DIRS = (os.path.dirname(_OWN_FILE) + os.sep,)


def _skip_frames_under(directory):
    """Call sites skip frames of files under `directory` (before the first user frame)."""
    global _INTERNAL_DIRS
    d = os.path.join(os.path.abspath(directory), "")
    if d not in _INTERNAL_DIRS:
        _INTERNAL_DIRS = _INTERNAL_DIRS + (d,)


class _Client:
    """One process's connection. All mutation happens under `lock`."""

    def __init__(self, sock):
        self.lock = threading.Lock()
        self.sock = sock
        self.dead = False
        self.closed = False
        self.events = bytearray()
        self.nevents = 0
        self.str_defs = bytearray()
        self.nstr_defs = 0
        self.frame_defs = bytearray()
        self.nframe_defs = 0
        self.stack_defs = bytearray()
        self.nstack_defs = 0
        self.strings = {"": 0}
        self.frames = {}
        self.nodes = {}
        self.sites = {(): 0}
        self.code_refs = {}
        self.nstacks = 1
        self.buffers = {}
        self.programs = {}
        self.next_id = 1
        self.last_flush = time.monotonic()

    # ---- interning ----
    def string(self, s):
        sid = self.strings.get(s)
        if sid is None:
            sid = len(self.strings)
            self.strings[s] = sid
            self.str_defs += _str_bytes(s)
            self.nstr_defs += 1
        return sid

    def site(self, key):
        """Site id of a stack key (id(code), instruction offset, ... innermost first)."""
        sid = self.sites.get(key)
        if sid is not None:
            return sid
        codes = _stack_codes()
        parent = 0
        for i in range(len(key) - 2, -1, -2):
            code = codes[i // 2]
            # Keep the code object alive so its id is never reused for another.
            self.code_refs[key[i]] = code
            line = _line_of(code, key[i + 1])
            fk = (key[i], line)
            fid = self.frames.get(fk)
            if fid is None:
                fn = self.string(getattr(code, "co_qualname", code.co_name))
                fl = self.string(code.co_filename)
                fid = len(self.frames)
                self.frames[fk] = fid
                self.frame_defs += _FRAME.pack(fn, fl, line)
                self.nframe_defs += 1
            nk = (parent, fid)
            nid = self.nodes.get(nk)
            if nid is None:
                nid = self.nstacks
                self.nstacks += 1
                self.nodes[nk] = nid
                self.stack_defs += _STACK.pack(parent, fid)
                self.nstack_defs += 1
            parent = nid
        self.sites[key] = parent
        return parent

    def new_id(self):
        i = self.next_id
        self.next_id = (i + 1) % _LOCAL_ID_LIMIT or 1
        return i

    # ---- sending ----
    def add(self, record):
        self.events += record
        self.nevents += 1
        if self.nevents >= _BATCH_EVENTS or len(self.events) >= _BATCH_BYTES or len(self.str_defs) >= _BATCH_BYTES:
            self.flush_locked()

    def flush_locked(self):
        if self.dead:
            return
        out = bytearray()
        if self.nstr_defs:
            out += _HDR.pack(len(self.str_defs), _F_STRINGS, 0, self.nstr_defs) + self.str_defs
            self.str_defs = bytearray()
            self.nstr_defs = 0
        if self.nframe_defs:
            out += _HDR.pack(len(self.frame_defs), _F_FRAMES, 0, self.nframe_defs) + self.frame_defs
            self.frame_defs = bytearray()
            self.nframe_defs = 0
        if self.nstack_defs:
            out += _HDR.pack(len(self.stack_defs), _F_STACKS, 0, self.nstack_defs) + self.stack_defs
            self.stack_defs = bytearray()
            self.nstack_defs = 0
        if self.nevents:
            out += _HDR.pack(len(self.events), _F_EVENTS, 0, self.nevents) + self.events
            self.events = bytearray()
            self.nevents = 0
        self.last_flush = time.monotonic()
        if not out:
            return
        try:
            self.sock.sendall(out)
        except OSError as e:
            self.fail("lost the connection to the recorder (%s); recording stopped in process %d" % (e, os.getpid()))
            return

    def fail(self, msg):
        global _ON
        self.dead = True
        _ON = False
        _warn(msg)

    def goodbye_locked(self):
        if self.closed:
            return
        self.flush_locked()
        self.closed = True
        if not self.dead:
            try:
                self.sock.sendall(_HDR.pack(8, _F_GOODBYE, 0, 0) + struct.pack("<Ii", 0, 0))
            except OSError:
                pass
        try:
            self.sock.close()
        except OSError:
            pass
        self.dead = True


_client = None
_client_lock = threading.Lock()


def _connect():
    """Returns this process's client, connecting on first use; None when off."""
    global _client, _ON
    with _client_lock:
        if _client is not None:
            return _client
        if not _ON:
            return None
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(_SOCKET_PATH)
        except OSError as e:
            _ON = False
            _warn("cannot connect to the recorder at %s (%s); not recording" % (_SOCKET_PATH, e))
            return None
        c = _Client(s)
        argv = list(getattr(sys, "orig_argv", None) or [sys.executable] + sys.argv)
        if len(argv) > 32:
            argv = argv[:31] + ["... (%d more arguments)" % (len(argv) - 31)]
        hello = bytearray(struct.pack("<IHHIIQ", _MAGIC, _VERSION[0], _VERSION[1], os.getpid(), os.getppid(), time.time_ns()))
        hello += _str_bytes("ttalloc-python") + _str_bytes(__version__) + _U32.pack(len(argv))
        for a in argv:
            hello += _str_bytes(str(a))
        try:
            s.sendall(_HDR.pack(len(hello), _F_HELLO, 0, 0) + hello)
        except OSError as e:
            _ON = False
            _warn("cannot talk to the recorder at %s (%s); not recording" % (_SOCKET_PATH, e))
            return None
        _client = c
        if _FLUSH_INTERVAL > 0:
            t = threading.Thread(target=_flusher, args=(c,), name="ttalloc-flush", daemon=True)
            t.start()
        _register_mp_finalizer()
        return c


def _flusher(c):
    while True:
        time.sleep(_FLUSH_INTERVAL)
        with c.lock:
            if c.closed or c.dead:
                return
            if c.nevents and time.monotonic() - c.last_flush >= _FLUSH_INTERVAL:
                c.flush_locked()


def _register_mp_finalizer():
    # multiprocessing children exit through os._exit, skipping atexit; its
    # finalizers still run, so flush from one of those too.
    mp_util = sys.modules.get("multiprocessing.util")
    if mp_util is not None:
        try:
            mp_util.Finalize(None, _shutdown, exitpriority=0)
        except Exception:
            pass


def _stack_key():
    # Keyed by (id(code), instruction offset): hashing a code object hashes
    # its bytecode and constants, and reading f_lineno maps the offset through
    # the line table, and both dominated the cost. The frames' names and lines
    # are computed once per new site instead (Client.site).
    f = sys._getframe(1)
    while f is not None and f.f_code.co_filename.startswith(_INTERNAL_DIRS):
        f = f.f_back
    key = []
    n = 0
    while f is not None and n < _DEPTH:
        code = f.f_code
        if code is not _WRAPPER_CODE:
            key.append(id(code))
            key.append(f.f_lasti)
            n += 1
        f = f.f_back
    return tuple(key)


def _stack_codes():
    """The code objects of the same frames _stack_key walks (called under the same API call)."""
    f = sys._getframe(1)
    while f is not None and f.f_code.co_filename.startswith(_INTERNAL_DIRS):
        f = f.f_back
    codes = []
    while f is not None and len(codes) < _DEPTH:
        if f.f_code is not _WRAPPER_CODE:
            codes.append(f.f_code)
        f = f.f_back
    return codes


_line_cache = {}


def _line_of(code, lasti):
    """The source line of instruction offset `lasti` in `code`."""
    starts = _line_cache.get(code)
    if starts is None:
        import dis
        starts = [(off, line) for off, line in dis.findlinestarts(code) if line is not None]
        _line_cache[code] = starts
    line = code.co_firstlineno
    for off, ln in starts:
        if off > lasti:
            break
        line = ln
    return line if line and line > 0 else 0


# ---------------------------------------------------------------- the encoder
#
# One table row per event kind (recorder/PROTOCOL.md): its wire code, the API
# function that sends it, its record layout after the common header {u8 kind,
# u8 flags, u16 0, u32 device, u64 ts}, the arguments a failed pack is blamed
# on and the body slots the client fills under its lock (call site, interned
# string, buffer/program id). One builder, _encoder, makes every row's encoder.
# Hot paths avoid helper calls: table lookups for names, struct's own range
# checks for integers (turned into a ValueError naming the argument).


def _encoder(code, api, body_fmt, checked=(), site_at=-1, string_at=-1, id_at=-1, ids=None, takes_id=False):
    """Builds the function that queues one event of a kind: `emit(flags,
    device, site_key, obj, body)` packs the common header, then `body` (in
    wire order; a list when the kind has slots to fill, else the arguments
    themselves), after filling under the client's lock the body's slots for the call site (`site_at`, the id of the stack `site_key`), an
    interned string (`string_at`; None is 0) and an object's local id
    (`id_at`: a new id kept in the client's `ids` table under `obj`, or with
    `takes_id` the id `obj` had, which leaves the table). A failed pack is a
    ValueError naming the first of `checked` ((argument, bits, body slot))
    that is not an integer of its width."""
    pack = struct.Struct("<BBHIQ" + body_fmt).pack
    checked = (("device", 32, -1),) + checked
    fills = site_at >= 0 or string_at >= 0 or id_at >= 0
    new_id = id_at >= 0 and not takes_id

    def emit(flags, device, site_key, obj, body):
        c = _client or _connect()
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
                raise _bad(api, e, *[(name, device if at < 0 else body[at], bits)
                                     for name, bits, at in checked]) from None
            if new_id:
                c.new_id()
                table[obj] = local
            c.add(rec)

    def emit_plain(flags, device, site_key, obj, *body):
        # `emit` for kinds with no slot to fill: the hot path of op_end.
        c = _client or _connect()
        if c is None:
            return
        with c.lock:
            ts = _time_ns()  # under the lock: a connection's timestamps never go back
            try:
                rec = pack(code, flags, 0, device, ts, *body)
            except struct.error as e:
                raise _bad(api, e, *[(name, device if at < 0 else body[at], bits)
                                     for name, bits, at in checked]) from None
            c.add(rec)

    def emit_text(flags, device, site_key, obj, text):
        # `emit` for kinds whose body is one string (op_begin, marker).
        c = _client or _connect()
        if c is None:
            return
        with c.lock:
            ts = _time_ns()  # under the lock: a connection's timestamps never go back
            try:
                rec = pack(code, flags, 0, device, ts, c.string(text))
            except struct.error as e:
                raise _bad(api, e, ("device", device, 32)) from None
            c.add(rec)

    if not fills:
        return emit_plain
    if body_fmt == "I" and string_at == 0:
        return emit_text
    return emit


_time_ns = time.time_ns
_ALLOC_CHECKED = (("size", 64, 1), ("address", 64, 2), ("page_size", 64, 3), ("num_cores", 32, 4))
_device_open = _encoder(2, "device_open", "BBBBI11Q")
_device_close = _encoder(3, "device_close", "")
_alloc = _encoder(4, "alloc", "QQQQIIBBH", _ALLOC_CHECKED, site_at=5, id_at=0, ids="buffers")
# protocol 1.1: BUFFER_ALLOC + u64 per_bank_size, u32 label string, u32 pad
_alloc2 = _encoder(16, "alloc", "QQQQIIBBHQII", _ALLOC_CHECKED, site_at=5, string_at=10, id_at=0, ids="buffers")
_free = _encoder(5, "free", "QI", site_at=1, id_at=0, ids="buffers", takes_id=True)
_cb_alloc = _encoder(6, "cb_alloc", "QQII", (("address", 64, 0), ("size", 64, 1), ("cores", 32, 2)), site_at=3)
_cb_free_all = _encoder(7, "cb_free_all", "")
_program_load = _encoder(8, "program_load", "QQI", (("binary_size", 64, 1),), site_at=2, id_at=0, ids="programs")
_program_unload = _encoder(9, "program_unload", "Q", id_at=0, ids="programs", takes_id=True)
_trace_capture = _encoder(10, "trace_capture", "IQI", (("trace_id", 32, 0), ("size", 64, 1)), site_at=2)
_trace_release = _encoder(11, "trace_release", "I", (("trace_id", 32, 0),))
_op_begin_event = _encoder(12, "op", "I", string_at=0)
_op_end_event = _encoder(13, "op", "")
_marker = _encoder(14, "mark", "I", string_at=0)
_alloc_refused = _encoder(15, "alloc_refused", "QQQIIIBBH", (("size", 64, 0), ("page_size", 64, 1),
                                                             ("per_bank_size", 64, 2), ("num_cores", 32, 3)),
                          site_at=4, string_at=5)


def _buffer_type(t):
    if isinstance(t, int) and not isinstance(t, bool):
        if 0 <= t <= 4:
            return t
    elif isinstance(t, str):
        v = _BUFFER_TYPES.get(t.upper().replace("BUFFERTYPE::", ""))
        if v is not None:
            return v
    raise ValueError("ttalloc: buffer_type must be DRAM, L1, SYSTEM_MEMORY, L1_SMALL, TRACE or 0-4, not %r" % (t,))


def _layout(l):
    if isinstance(l, int) and not isinstance(l, bool) and 0 <= l <= 3:
        return l
    if isinstance(l, str):
        v = _LAYOUTS.get(l.upper().replace("TENSORMEMORYLAYOUT::", ""))
        if v is not None:
            return v
    raise ValueError("ttalloc: layout must be interleaved, height_sharded, width_sharded or block_sharded, not %r" % (l,))


def _u64(v, what):
    v = int(v)
    if not 0 <= v < (1 << 64):
        raise ValueError("ttalloc: %s %d out of range" % (what, v))
    return v


_BT = dict(_BUFFER_TYPES)
_BT.update({k.lower(): v for k, v in _BUFFER_TYPES.items()})
_BT.update({v: v for v in _BUFFER_TYPES.values()})
_LAY = dict(_LAYOUTS)
_LAY.update({k.lower(): v for k, v in _LAYOUTS.items()})
_LAY.update({v: v for v in _LAYOUTS.values()})


def _bad(fn, e, *args):
    """The ValueError for a failed pack: names the first argument that is not
    an integer of its width, as (name, value, bits); only on the error path."""
    for name, value, bits in args:
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool):
            return ValueError("ttalloc.%s: %s must be an integer, not %r" % (fn, name, value))
        if not 0 <= value < (1 << bits):
            return ValueError("ttalloc.%s: %s %d is out of range (0 to 2**%d - 1)" % (fn, name, value, bits))
    return ValueError("ttalloc.%s: %s" % (fn, e))


def _new_fields(fn, per_bank_size, label):
    """Checks alloc's protocol 1.1 arguments; returns (per_bank_size, label)."""
    if per_bank_size is not None:
        if isinstance(per_bank_size, bool) or not isinstance(per_bank_size, int):
            raise ValueError("ttalloc.%s: per_bank_size must be an integer, not %r" % (fn, per_bank_size))
        if not 0 <= per_bank_size < (1 << 64):
            raise ValueError("ttalloc.%s: per_bank_size %d out of range" % (fn, per_bank_size))
    if label is not None:
        if not isinstance(label, str):
            raise ValueError("ttalloc.%s: label must be a string, not %r" % (fn, label))
        if label == "":
            label = None
    return per_bank_size, label


# ---------------------------------------------------------------- the API


def enabled():
    """True when running under `ttalloc record` / `ttalloc serve`."""
    return _ON


def device_open(device, arch="wormhole_b0", **config):
    if not _ON:
        return
    a = _ARCHS.get(str(arch).lower().replace("-", "_"))
    if a is None:
        raise ValueError("ttalloc: unknown arch %r" % (arch,))
    mask = 0
    vals = [0] * len(_CONFIG_KEYS)
    for k, v in config.items():
        try:
            i = _CONFIG_KEYS.index(k)
        except ValueError:
            raise ValueError("ttalloc: unknown device config key %r (known: %s)" % (k, ", ".join(_CONFIG_KEYS))) from None
        if v is None:
            continue
        mask |= 1 << i
        vals[i] = _u64(v, k)
    _device_open(0, device, None, None, a, 0, 0, 0, mask, *vals)


def device_close(device):
    if _ON:
        _device_close(0, device, None, None)


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
        bt = _buffer_type(buffer_type)
    lay = _LAY.get(layout)
    if lay is None:
        lay = _layout(layout)
    flags = 0
    if address is not None:
        flags = 1
    if page_size is not None:
        flags |= 2
    if num_cores is not None:
        flags |= 4
    if per_bank_size is not None or label is not None:
        per_bank_size, label = _new_fields("alloc", per_bank_size, label)
        if per_bank_size is not None:
            flags |= 8
        if label is not None:
            flags |= 16
    if flags & 24:
        _alloc2(flags, device, key, (device, buffer), [0, size, address or 0, page_size or 0, num_cores or 0, 0, bt,
                                                       lay, 0, per_bank_size or 0, label, 0])
    else:
        _alloc(flags, device, key, (device, buffer), [0, size, address or 0, page_size or 0, num_cores or 0, 0, bt,
                                                     lay, 0])


def alloc_refused(device, buffer_type, size, message, page_size=None, layout="interleaved", num_cores=None,
                  per_bank_size=None):
    """tt-metal refused an allocation (out of memory); `message` is its text
    (`Out of Memory: Not enough space to allocate ...`)."""
    if not _ON:
        return
    key = _stack_key()
    bt = _BT.get(buffer_type)
    if bt is None:
        bt = _buffer_type(buffer_type)
    lay = _LAY.get(layout)
    if lay is None:
        lay = _layout(layout)
    if not isinstance(message, str):
        raise ValueError("ttalloc.alloc_refused: message must be a string, not %r" % (message,))
    per_bank_size, _ = _new_fields("alloc_refused", per_bank_size, None)
    flags = 0
    if page_size is not None:
        flags = 1
    if num_cores is not None:
        flags |= 2
    if per_bank_size is not None:
        flags |= 4
    _alloc_refused(flags, device, key, None, [size, page_size or 0, per_bank_size or 0, num_cores or 0, 0, message,
                                              bt, lay, 0])


def free(device, buffer):
    if _ON:
        _free(0, device, _stack_key(), (device, buffer), [0, 0])


def cb_alloc(device, address, size, cores=None, globally_allocated=False):
    if not _ON:
        return
    flags = 2 if globally_allocated else 0
    if cores is not None:
        flags |= 1
    _cb_alloc(flags, device, _stack_key(), None, [address, size, cores or 0, 0])


def cb_free_all(device):
    if _ON:
        _cb_free_all(0, device, None, None)


def program_load(device, program, binary_size):
    if _ON:
        _program_load(0, device, _stack_key(), (device, program), [0, binary_size, 0])


def program_unload(device, program):
    if _ON:
        _program_unload(0, device, None, (device, program), [0])


def trace_capture(device, trace_id, size):
    if _ON:
        _trace_capture(0, device, _stack_key(), None, [trace_id, size, 0])


def trace_release(device, trace_id):
    if _ON:
        _trace_release(0, device, None, None, trace_id)


# _op_begin(name) and _op_end(): partials (called in C), as ops are the hottest events.
_op_begin = functools.partial(_op_begin_event, 0, 0, None, None)
_op_end = functools.partial(_op_end_event, 0, 0, None, None)


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


def op(name):
    """An op scope, as a context manager or a decorator."""
    return _Op(name) if _ON else _NOOP_OP


def mark(label):
    if _ON:
        _marker(0, 0, None, None, str(label))


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
