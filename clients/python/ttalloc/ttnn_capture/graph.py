"""ttalloc's own graph capture, one per thread, kept out of the program's way.

tt-metal's graph tracking is per thread: each thread has a stack of
captures and every capture on it sees every event of that thread. ttalloc
keeps one capture of its own on top of that stack (raw binding, RunMode
NORMAL: the `ttnn.graph` wrapper would turn on costly argument recording)
and *rotates* it (end, then begin again) at op boundaries, so events stream
to the recorder while the program runs and the graph never grows.

The program's own captures must behave exactly as without ttalloc, and
ttalloc must never end a capture it did not start. So when the program
begins a capture, ttalloc ends its own first, lets the program's capture
go on the stack, and begins its own again on top; when the program ends a
capture, ttalloc ends its own first (it is on top), lets the program's end
pop the program's capture, and begins again. While a NO_DISPATCH capture
of the program's is active nothing is really allocated (every address is
0), so ttalloc keeps no capture of its own then.
"""

import threading

NORMAL = "normal"
NO_DISPATCH = "no_dispatch"


class GraphApi(object):
    """The raw `ttnn._ttnn.graph` functions, saved before ttalloc wraps them."""

    def __init__(self, raw):
        self.begin = raw.begin_graph_capture
        self.end = raw.end_graph_capture
        self.end_to_file = getattr(raw, "end_graph_capture_to_file", None)
        self.normal = raw.RunMode.NORMAL
        self.no_dispatch = getattr(raw.RunMode, "NO_DISPATCH", None)

    def mode_name(self, run_mode):
        if run_mode is None:
            return NORMAL
        if self.no_dispatch is not None and run_mode == self.no_dispatch:
            return NO_DISPATCH
        return NORMAL


class ThreadCapture(object):
    """One thread's view: is ttalloc's capture on the stack, and which of the
    program's captures are below it."""

    __slots__ = ("ours", "user_modes", "op_depth")

    def __init__(self):
        self.ours = False
        self.user_modes = []
        self.op_depth = 0

    def may_capture(self):
        return NO_DISPATCH not in self.user_modes


class GraphSessions(object):
    """ttalloc's captures in every thread, and the program's captures around them."""

    def __init__(self, api, on_nodes):
        self.api = api
        self.on_nodes = on_nodes  # called with the nodes of each ended capture of ours
        self.local = threading.local()
        self.enabled = False  # True once a device is open (tt-metal drops earlier captures)

    def thread(self):
        t = getattr(self.local, "t", None)
        if t is None:
            t = self.local.t = ThreadCapture()
        return t

    def start(self, t=None):
        """Puts ttalloc's capture on this thread's stack if it may have one."""
        t = t or self.thread()
        if self.enabled and not t.ours and t.may_capture():
            self.api.begin(self.api.normal)
            t.ours = True

    def drain(self, t=None, restart=True):
        """Ends ttalloc's capture, hands its nodes on, and begins it again."""
        t = t or self.thread()
        if not t.ours:
            if restart:
                self.start(t)
            return
        nodes = self.api.end()
        t.ours = False
        if restart:
            self.start(t)
        if nodes:
            self.on_nodes(nodes)

    # ---- the program's own captures ----
    def user_begin(self, run_mode, call):
        t = self.thread()
        self.drain(t, restart=False)
        result = call()
        t.user_modes.append(self.api.mode_name(run_mode))
        self.start(t)
        return result

    def user_end(self, call):
        t = self.thread()
        self.drain(t, restart=False)
        try:
            return call()
        finally:
            if t.user_modes:
                t.user_modes.pop()
            self.start(t)
