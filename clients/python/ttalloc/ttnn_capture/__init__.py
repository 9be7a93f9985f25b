"""Zero-edit capture of ttnn programs under `ttalloc record`.

`sitecustomize` (on the recorded process's PYTHONPATH) calls `activate` the
moment `ttnn` has been imported. From then on every device open/close, buffer
allocation and free, circular buffer, and out-of-memory refusal is recorded
with the Python call site and the ttnn op behind it; the program is not
edited and does not import ttalloc. How: graph.py (ttalloc's own rotating
graph capture), translate.py (graph nodes to events), devices.py (meshes,
chips, memory geometry), install.py (the wrappers), oom.py.

What is not seen, by design of tt-metal's graph tracking: per-chip views
made by `Buffer::create(device, address)`, `mark_as_deallocated`, and the
frees tt-metal does silently when a device closes (the replayer treats those
buffers as outliving their device). Events of threads other than the main
one are recorded up to that thread's last ttnn op (graph tracking is per
thread); `record` warns when that happened.
"""

import atexit
import os

_capture = None


def activate(ttnn):
    """Installs the capture into the imported `ttnn` module (once per process)."""
    global _capture
    if _capture is not None:
        return _capture
    import ttalloc
    if not ttalloc.enabled():
        return None
    from .capture import Capture
    from . import install
    ttalloc._skip_frames_under(os.path.dirname(os.path.abspath(ttnn.__file__)))
    capture = Capture(ttnn)
    install.install_graph(capture, ttnn)
    install.install_devices(capture, ttnn)
    install.install_ops(capture, ttnn)
    _capture = capture
    # Connect now, so `record` can tell "ttnn was imported but no device opened"
    # from "nothing connected".
    ttalloc._connect()
    atexit.register(capture.finish)
    return capture


def flush():
    """Hands what this thread's capture holds to the recorder now (e.g. at the
    end of a test), and returns the buffers live afterwards; [] when the
    capture is off."""
    c = _capture
    if c is None:
        return []
    try:
        c.sessions.drain()
    except Exception:
        pass
    return c.translator.live_buffers()


def live_buffers():
    """The buffers ttalloc saw allocated and not freed, oldest first."""
    c = _capture
    return c.translator.live_buffers() if c is not None else []


def outlived_buffers():
    """Buffers still allocated when their device closed (tt-metal freed them
    silently), oldest first."""
    c = _capture
    return list(c.translator.outlived) if c is not None else []


def reset_peak():
    """Starts a new running peak of live bytes per buffer type (e.g. at the
    start of a test) from what is live now."""
    c = _capture
    if c is not None:
        c.translator.reset_peak()


def peak_bytes():
    """{buffer type name: highest live bytes on one device since
    reset_peak()}; {} when the capture is off."""
    c = _capture
    return c.translator.peak_bytes() if c is not None else {}
