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
_ECHO_DIR = os.environ.get("TTALLOC_ECHO", "")
_BATCH_EVENTS = 1024
_BATCH_BYTES = 60000
_LOCAL_ID_LIMIT = 1 << 40

# ---- wire format (recorder/PROTOCOL.md) ----
_MAGIC = 0x4C415454  # "TTAL"
_VERSION = (1, 1)
_HDR = struct.Struct("<IHHI")
_F_HELLO, _F_STRINGS, _F_FRAMES, _F_STACKS, _F_EVENTS, _F_GOODBYE = 1, 2, 3, 4, 5, 6
_K_DEVICE_OPEN, _K_DEVICE_CLOSE, _K_ALLOC, _K_FREE = 2, 3, 4, 5
_K_CB_ALLOC, _K_CB_FREE_ALL, _K_PROG_LOAD, _K_PROG_UNLOAD = 6, 7, 8, 9
_K_TRACE_CAPTURE, _K_TRACE_RELEASE, _K_OP_BEGIN, _K_OP_END, _K_MARKER = 10, 11, 12, 13, 14
_K_ALLOC_REFUSED, _K_ALLOC2 = 15, 16  # protocol 1.1
_E_PLAIN = struct.Struct("<BBHIQ")
_E_U32 = struct.Struct("<BBHIQI")
_E_DEVICE_OPEN = struct.Struct("<BBHIQBBBBI11Q")
_E_ALLOC = struct.Struct("<BBHIQQQQQIIBBH")
_E_ALLOC2 = struct.Struct("<BBHIQQQQQIIBBHQII")  # BUFFER_ALLOC + per_bank_size, label, pad
_E_ALLOC_REFUSED = struct.Struct("<BBHIQQQQIIIBBH")
_E_FREE = struct.Struct("<BBHIQQI")
_E_CB = struct.Struct("<BBHIQQQII")
_E_PROG_LOAD = struct.Struct("<BBHIQQQI")
_E_PROG_UNLOAD = struct.Struct("<BBHIQQ")
_E_TRACE_CAPTURE = struct.Struct("<BBHIQIQI")
_FRAME = struct.Struct("<III")
_STACK = struct.Struct("<II")
_U32 = struct.Struct("<I")

_BUFFER_TYPES = {"DRAM": 0, "L1": 1, "SYSTEM_MEMORY": 2, "L1_SMALL": 3, "TRACE": 4}
_BUFFER_TYPE_NAMES = {v: k for k, v in _BUFFER_TYPES.items()}
_LAYOUTS = {"INTERLEAVED": 0, "HEIGHT_SHARDED": 1, "WIDTH_SHARDED": 2, "BLOCK_SHARDED": 3}
_LAYOUT_NAMES = {v: k for k, v in _LAYOUTS.items()}
_ARCHS = {"unknown": 0, "grayskull": 1, "wormhole_b0": 2, "wormhole": 2, "blackhole": 3, "quasar": 4}
# Order fixed by the protocol: bit i of the presence mask is key i.
_CONFIG_KEYS = (
    "dram_banks", "dram_bank_size", "dram_alignment", "dram_unreserved_base",
    "l1_banks", "l1_bank_size", "l1_alignment", "l1_unreserved_base",
    "l1_small_size", "trace_region_size", "worker_l1_size",
)
_KIND_NAMES = {
    2: "device_open", 3: "device_close", 4: "buffer_alloc", 5: "buffer_free", 6: "cb_alloc",
    7: "cb_free_all", 8: "program_load", 9: "program_unload", 10: "trace_capture",
    11: "trace_release", 12: "op_begin", 13: "op_end", 14: "marker", 15: "alloc_refused",
}


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
        self.echo = None
        self.echo_pending = []
        self.string_list = [""]
        self.frame_list = []
        self.node_list = [None]

    # ---- interning ----
    def string(self, s):
        sid = self.strings.get(s)
        if sid is None:
            sid = len(self.strings)
            self.strings[s] = sid
            self.str_defs += _str_bytes(s)
            self.nstr_defs += 1
            if self.echo is not None:
                self.string_list.append(s)
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
                if self.echo is not None:
                    self.frame_list.append((fn, fl, line))
            nk = (parent, fid)
            nid = self.nodes.get(nk)
            if nid is None:
                nid = self.nstacks
                self.nstacks += 1
                self.nodes[nk] = nid
                self.stack_defs += _STACK.pack(parent, fid)
                self.nstack_defs += 1
                if self.echo is not None:
                    self.node_list.append(nk)
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
        if self.echo_pending:
            self.write_echo()

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

    # ---- test hook: TTALLOC_ECHO=DIR writes what was sent to DIR/<pid>.jsonl ----
    def resolve_site(self, sid):
        frames = []
        while sid:
            parent, fid = self.node_list[sid]
            fn, fl, line = self.frame_list[fid]
            frames.append([self.string_list[fn], self.string_list[fl], line])
            sid = parent
        return frames

    def write_echo(self):
        import json
        lines = []
        for e in self.echo_pending:
            e = dict(e)
            if "site" in e:
                e["site"] = self.resolve_site(e["site"])
            lines.append(json.dumps(e, sort_keys=True))
        self.echo_pending = []
        self.echo.write("\n".join(lines) + "\n")
        self.echo.flush()


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
        if _ECHO_DIR:
            try:
                c.echo = open(os.path.join(_ECHO_DIR, "%d.jsonl" % os.getpid()), "a")
            except OSError:
                c.echo = None
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


# ---------------------------------------------------------------- the API
#
# Hot paths avoid helper calls: table lookups for names, struct's own range
# checks for integers (turned into ValueError), the echo dict built only when
# the TTALLOC_ECHO test hook is on.

_time_ns = time.time_ns
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
    c = _client or _connect()
    if c is None:
        return
    with c.lock:
        ts = _time_ns()  # under the lock: a connection's timestamps never go back
        try:
            rec = _E_DEVICE_OPEN.pack(_K_DEVICE_OPEN, 0, 0, device, ts, a, 0, 0, 0, mask, *vals)
        except struct.error as e:
            raise _bad("device_open", e, ("device", device, 32)) from None
        c.add(rec)
        if c.echo is not None:
            c.echo_pending.append({"kind": "device_open", "device": device, "arch": a,
                                   "config": {k: vals[i] for i, k in enumerate(_CONFIG_KEYS) if mask >> i & 1}})


def _simple(kind, device):
    c = _client or _connect()
    if c is None:
        return
    with c.lock:
        ts = _time_ns()  # under the lock: a connection's timestamps never go back
        try:
            rec = _E_PLAIN.pack(kind, 0, 0, device, ts)
        except struct.error as e:
            raise _bad(_KIND_NAMES[kind], e, ("device", device, 32)) from None
        c.add(rec)
        if c.echo is not None:
            c.echo_pending.append({"kind": _KIND_NAMES[kind], "device": device})


def device_close(device):
    if not _ON:
        return
    _simple(_K_DEVICE_CLOSE, device)


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
    extended = per_bank_size is not None or label is not None
    if extended:
        per_bank_size, label = _new_fields("alloc", per_bank_size, label)
        if per_bank_size is not None:
            flags |= 8
        if label is not None:
            flags |= 16
        extended = flags & 24 != 0
    c = _client or _connect()
    if c is None:
        return
    with c.lock:
        ts = _time_ns()  # under the lock: a connection's timestamps never go back
        bid = c.next_id
        try:
            if extended:
                rec = _E_ALLOC2.pack(_K_ALLOC2, flags, 0, device, ts, bid, size, address or 0, page_size or 0,
                                     num_cores or 0, c.site(key), bt, lay, 0, per_bank_size or 0,
                                     c.string(label) if label is not None else 0, 0)
            else:
                rec = _E_ALLOC.pack(_K_ALLOC, flags, 0, device, ts, bid, size, address or 0, page_size or 0,
                                    num_cores or 0, c.site(key), bt, lay, 0)
        except struct.error as e:
            raise _bad("alloc", e, ("device", device, 32), ("size", size, 64), ("address", address, 64),
                       ("page_size", page_size, 64), ("num_cores", num_cores, 32)) from None
        c.next_id = bid + 1 if bid + 1 < _LOCAL_ID_LIMIT else 1
        c.buffers[(device, buffer)] = bid
        c.add(rec)
        if c.echo is not None:
            c.echo_pending.append({"kind": "buffer_alloc", "device": device, "buffer": bid,
                                   "buffer_type": _BUFFER_TYPE_NAMES[bt], "size": size, "address": address,
                                   "page_size": page_size, "layout": _LAYOUT_NAMES[lay],
                                   "num_cores": num_cores, "per_bank_size": per_bank_size, "label": label,
                                   "site": c.sites[key]})


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
    c = _client or _connect()
    if c is None:
        return
    with c.lock:
        ts = _time_ns()  # under the lock: a connection's timestamps never go back
        try:
            rec = _E_ALLOC_REFUSED.pack(_K_ALLOC_REFUSED, flags, 0, device, ts, size, page_size or 0,
                                        per_bank_size or 0, num_cores or 0, c.site(key), c.string(message),
                                        bt, lay, 0)
        except struct.error as e:
            raise _bad("alloc_refused", e) from None
        c.add(rec)
        if c.echo is not None:
            c.echo_pending.append({"kind": "alloc_refused", "device": device,
                                   "buffer_type": _BUFFER_TYPE_NAMES[bt], "size": size,
                                   "page_size": page_size, "layout": _LAYOUT_NAMES[lay], "num_cores": num_cores,
                                   "per_bank_size": per_bank_size, "message": message, "site": c.sites[key]})


def free(device, buffer):
    if not _ON:
        return
    key = _stack_key()
    c = _client or _connect()
    if c is None:
        return
    with c.lock:
        ts = _time_ns()  # under the lock: a connection's timestamps never go back
        bid = c.buffers.pop((device, buffer), None)
        if bid is None:
            bid = c.new_id()  # a free of a buffer never allocated here: recorded as such
        try:
            rec = _E_FREE.pack(_K_FREE, 0, 0, device, ts, bid, c.site(key))
        except struct.error as e:
            raise _bad("free", e, ("device", device, 32)) from None
        c.add(rec)
        if c.echo is not None:
            c.echo_pending.append({"kind": "buffer_free", "device": device, "buffer": bid, "site": c.sites[key]})


def cb_alloc(device, address, size, cores=None, globally_allocated=False):
    if not _ON:
        return
    key = _stack_key()
    flags = 2 if globally_allocated else 0
    if cores is not None:
        flags |= 1
    c = _client or _connect()
    if c is None:
        return
    with c.lock:
        ts = _time_ns()  # under the lock: a connection's timestamps never go back
        try:
            rec = _E_CB.pack(_K_CB_ALLOC, flags, 0, device, ts, address, size, cores or 0, c.site(key))
        except struct.error as e:
            raise _bad("cb_alloc", e, ("device", device, 32), ("address", address, 64), ("size", size, 64),
                       ("cores", cores, 32)) from None
        c.add(rec)
        if c.echo is not None:
            c.echo_pending.append({"kind": "cb_alloc", "device": device, "address": address, "size": size,
                                   "cores": cores, "globally_allocated": bool(globally_allocated),
                                   "site": c.sites[key]})


def cb_free_all(device):
    if not _ON:
        return
    _simple(_K_CB_FREE_ALL, device)


def program_load(device, program, binary_size):
    if not _ON:
        return
    key = _stack_key()
    c = _client or _connect()
    if c is None:
        return
    with c.lock:
        ts = _time_ns()  # under the lock: a connection's timestamps never go back
        pid = c.next_id
        try:
            rec = _E_PROG_LOAD.pack(_K_PROG_LOAD, 0, 0, device, ts, pid, binary_size, c.site(key))
        except struct.error as e:
            raise _bad("program_load", e, ("device", device, 32), ("binary_size", binary_size, 64)) from None
        c.new_id()
        c.programs[(device, program)] = pid
        c.add(rec)
        if c.echo is not None:
            c.echo_pending.append({"kind": "program_load", "device": device, "program": pid,
                                   "binary_size": binary_size, "site": c.sites[key]})


def program_unload(device, program):
    if not _ON:
        return
    c = _client or _connect()
    if c is None:
        return
    with c.lock:
        ts = _time_ns()  # under the lock: a connection's timestamps never go back
        pid = c.programs.pop((device, program), None)
        if pid is None:
            pid = c.new_id()
        try:
            rec = _E_PROG_UNLOAD.pack(_K_PROG_UNLOAD, 0, 0, device, ts, pid)
        except struct.error as e:
            raise _bad("program_unload", e, ("device", device, 32)) from None
        c.add(rec)
        if c.echo is not None:
            c.echo_pending.append({"kind": "program_unload", "device": device, "program": pid})


def trace_capture(device, trace_id, size):
    if not _ON:
        return
    key = _stack_key()
    c = _client or _connect()
    if c is None:
        return
    with c.lock:
        ts = _time_ns()  # under the lock: a connection's timestamps never go back
        try:
            rec = _E_TRACE_CAPTURE.pack(_K_TRACE_CAPTURE, 0, 0, device, ts, trace_id, size, c.site(key))
        except struct.error as e:
            raise _bad("trace_capture", e, ("device", device, 32), ("trace_id", trace_id, 32),
                       ("size", size, 64)) from None
        c.add(rec)
        if c.echo is not None:
            c.echo_pending.append({"kind": "trace_capture", "device": device, "trace_id": trace_id, "size": size,
                                   "site": c.sites[key]})


def trace_release(device, trace_id):
    if not _ON:
        return
    c = _client or _connect()
    if c is None:
        return
    with c.lock:
        ts = _time_ns()  # under the lock: a connection's timestamps never go back
        try:
            rec = _E_U32.pack(_K_TRACE_RELEASE, 0, 0, device, ts, trace_id)
        except struct.error as e:
            raise _bad("trace_release", e, ("device", device, 32), ("trace_id", trace_id, 32)) from None
        c.add(rec)
        if c.echo is not None:
            c.echo_pending.append({"kind": "trace_release", "device": device, "trace_id": trace_id})


def _op_begin(name):
    c = _client or _connect()
    if c is None:
        return
    with c.lock:
        ts = _time_ns()  # under the lock: a connection's timestamps never go back
        c.add(_E_U32.pack(_K_OP_BEGIN, 0, 0, 0, ts, c.string(name)))
        if c.echo is not None:
            c.echo_pending.append({"kind": "op_begin", "name": name})


def _op_end():
    c = _client or _connect()
    if c is None:
        return
    with c.lock:
        ts = _time_ns()  # under the lock: a connection's timestamps never go back
        c.add(_E_PLAIN.pack(_K_OP_END, 0, 0, 0, ts))
        if c.echo is not None:
            c.echo_pending.append({"kind": "op_end"})


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
    if not _ON:
        return
    c = _client or _connect()
    if c is None:
        return
    label = str(label)
    with c.lock:
        ts = _time_ns()
        c.add(_E_U32.pack(_K_MARKER, 0, 0, 0, ts, c.string(label)))
        if c.echo is not None:
            c.echo_pending.append({"kind": "marker", "label": label})


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
        if c.echo is not None:
            try:
                c.echo.close()
            except OSError:
                pass
            c.echo = None


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
        if c.echo is not None:
            try:
                c.echo.close()
            except OSError:
                pass


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_parent,
                        after_in_child=_after_fork_child)
