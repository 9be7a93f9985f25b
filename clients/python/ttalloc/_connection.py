"""One process's connection to the recorder: interning of strings, frames
and stacks, batching of event records, and the frames that carry them."""

import os
import socket
import struct
import sys
import threading
import time

from . import _sites
from ._wire import (
    F_EVENTS, F_FRAMES, F_GOODBYE, F_HELLO, F_STACKS, F_STRINGS, FRAME, HDR, MAGIC, STACK, U32, VERSION,
    str_bytes,
)

# A batch is sent when it holds this many events or bytes (or on a timer).
BATCH_EVENTS = 1024
BATCH_BYTES = 60000
_LOCAL_ID_LIMIT = 1 << 40


def warn(msg):
    try:
        sys.stderr.write("ttalloc: warning: %s\n" % msg)
        sys.stderr.flush()
    except Exception:
        pass


class Client:
    """One process's connection. All mutation happens under `lock`.

    The API's hot paths (alloc, free, op scopes) append to `events` and
    bump `nevents` themselves, then flush past the batch limits exactly
    as `add` does."""

    def __init__(self, sock, on_fail):
        self.lock = threading.Lock()
        self.sock = sock
        # Called once the connection is lost: recording stops in the process.
        self.on_fail = on_fail
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
            self.str_defs += str_bytes(s)
            self.nstr_defs += 1
        return sid

    def site(self, key):
        """Site id of a stack key (id(code), instruction offset, ... innermost first)."""
        sid = self.sites.get(key)
        if sid is not None:
            return sid
        codes = _sites.stack_codes()
        parent = 0
        for i in range(len(key) - 2, -1, -2):
            code = codes[i // 2]
            # Keep the code object alive so its id is never reused for another.
            self.code_refs[key[i]] = code
            line = _sites.line_of(code, key[i + 1])
            fk = (key[i], line)
            fid = self.frames.get(fk)
            if fid is None:
                fn = self.string(getattr(code, "co_qualname", code.co_name))
                fl = self.string(code.co_filename)
                fid = len(self.frames)
                self.frames[fk] = fid
                self.frame_defs += FRAME.pack(fn, fl, line)
                self.nframe_defs += 1
            nk = (parent, fid)
            nid = self.nodes.get(nk)
            if nid is None:
                nid = self.nstacks
                self.nstacks += 1
                self.nodes[nk] = nid
                self.stack_defs += STACK.pack(parent, fid)
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
        if self.nevents >= BATCH_EVENTS or len(self.events) >= BATCH_BYTES or len(self.str_defs) >= BATCH_BYTES:
            self.flush_locked()

    def flush_locked(self):
        if self.dead:
            return
        out = bytearray()
        if self.nstr_defs:
            out += HDR.pack(len(self.str_defs), F_STRINGS, 0, self.nstr_defs) + self.str_defs
            self.str_defs = bytearray()
            self.nstr_defs = 0
        if self.nframe_defs:
            out += HDR.pack(len(self.frame_defs), F_FRAMES, 0, self.nframe_defs) + self.frame_defs
            self.frame_defs = bytearray()
            self.nframe_defs = 0
        if self.nstack_defs:
            out += HDR.pack(len(self.stack_defs), F_STACKS, 0, self.nstack_defs) + self.stack_defs
            self.stack_defs = bytearray()
            self.nstack_defs = 0
        if self.nevents:
            out += HDR.pack(len(self.events), F_EVENTS, 0, self.nevents) + self.events
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
        self.dead = True
        self.on_fail()
        warn(msg)

    def goodbye_locked(self):
        if self.closed:
            return
        self.flush_locked()
        self.closed = True
        if not self.dead:
            try:
                self.sock.sendall(HDR.pack(8, F_GOODBYE, 0, 0) + struct.pack("<Ii", 0, 0))
            except OSError:
                pass
        try:
            self.sock.close()
        except OSError:
            pass
        self.dead = True


class NotConnected(Exception):
    """The recorder could not be reached; the message says why."""


def connect(path, client_version, on_fail):
    """Connects to the recorder at `path` and says HELLO; raises NotConnected."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
    except OSError as e:
        s.close()
        raise NotConnected("cannot connect to the recorder at %s (%s)" % (path, e)) from None
    argv = list(getattr(sys, "orig_argv", None) or [sys.executable] + sys.argv)
    if len(argv) > 32:
        argv = argv[:31] + ["... (%d more arguments)" % (len(argv) - 31)]
    hello = bytearray(struct.pack("<IHHIIQ", MAGIC, VERSION[0], VERSION[1], os.getpid(), os.getppid(),
                                  time.time_ns()))
    hello += str_bytes("ttalloc-python") + str_bytes(client_version) + U32.pack(len(argv))
    for a in argv:
        hello += str_bytes(str(a))
    try:
        s.sendall(HDR.pack(len(hello), F_HELLO, 0, 0) + hello)
    except OSError as e:
        s.close()
        raise NotConnected("cannot talk to the recorder at %s (%s)" % (path, e)) from None
    return Client(s, on_fail)


def start_flusher(c, interval):
    """Sends `c`'s events at least every `interval` seconds, until it closes."""
    def run():
        while True:
            time.sleep(interval)
            with c.lock:
                if c.closed or c.dead:
                    return
                if c.nevents and time.monotonic() - c.last_flush >= interval:
                    c.flush_locked()

    threading.Thread(target=run, name="ttalloc-flush", daemon=True).start()
