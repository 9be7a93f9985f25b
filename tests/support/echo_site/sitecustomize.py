"""Test harness of tests/record (not shipped): with TTALLOC_ECHO=DIR, every
event a program asks the ttalloc client for is also written to
DIR/<pid>.jsonl, one JSON object a line, in the shape the test builds from
the trace (`echo_shape` in tests/record/workloads.rs).

Put this directory on PYTHONPATH under `ttalloc record`: the client bundle's
own sitecustomize loads this one. It wraps the client's API functions and
works each event out from the call's arguments and the caller's Python stack
(function, file, line; innermost first), not from what the client encoded, so
the test compares the trace with what the program asked for. It reads only
the client's local ids (which buffer or program id it gave an object).
"""

import json
import os
import sys

_DIR = os.environ.get("TTALLOC_ECHO", "")
_HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "")
_TYPES = ("DRAM", "L1", "SYSTEM_MEMORY", "L1_SMALL", "TRACE")
_LAYOUTS = ("INTERLEAVED", "HEIGHT_SHARDED", "WIDTH_SHARDED", "BLOCK_SHARDED")
_ARCHS = {"unknown": 0, "grayskull": 1, "wormhole_b0": 2, "wormhole": 2, "blackhole": 3, "quasar": 4}


def _name(value, names, prefix):
    if isinstance(value, int):
        return names[value]
    return value.upper().replace(prefix, "")


def _install(ttalloc):
    # The client's call sites start outside ttalloc's package: skip ours too.
    ttalloc._skip_frames_under(_HERE)
    out = {}

    def write(event):
        f = out.get(os.getpid())
        if f is None:
            f = out[os.getpid()] = open(os.path.join(_DIR, "%d.jsonl" % os.getpid()), "a")
        f.write(json.dumps(event, sort_keys=True) + "\n")
        f.flush()

    def site():
        """The caller's stack, innermost first, as the client should record it."""
        f = sys._getframe(1)
        sites = ttalloc._sites
        while f is not None and f.f_code.co_filename.startswith(sites.INTERNAL_DIRS):
            f = f.f_back
        frames = []
        while f is not None and len(frames) < sites.DEPTH:
            code = f.f_code
            if code is not sites.WRAPPER_CODE:
                frames.append([getattr(code, "co_qualname", code.co_name), code.co_filename, f.f_lineno])
            f = f.f_back
        return frames

    def local_id(table, key):
        """The id the client holds for `key`, else the one it hands out next."""
        c = ttalloc._client
        if c is None:
            return 1
        held = getattr(c, table).get(key)
        return c.next_id if held is None else held

    def wrap(name, echo):
        api = getattr(ttalloc, name)

        def wrapper(*args, **kwargs):
            if not ttalloc.enabled():
                return api(*args, **kwargs)
            event = echo(*args, **kwargs)
            api(*args, **kwargs)
            if ttalloc.enabled():
                write(event)

        setattr(ttalloc, name, wrapper)

    def device_open(device, arch="wormhole_b0", **config):
        return {"kind": "device_open", "device": device, "arch": _ARCHS[str(arch).lower().replace("-", "_")],
                "config": {k: int(v) for k, v in config.items() if v is not None}}

    def alloc(device, buffer, buffer_type, size, address=None, page_size=None, layout="interleaved",
              num_cores=None, per_bank_size=None, label=None):
        return {"kind": "buffer_alloc", "device": device, "buffer": local_id("buffers", None),
                "buffer_type": _name(buffer_type, _TYPES, "BUFFERTYPE::"), "size": size, "address": address,
                "page_size": page_size, "layout": _name(layout, _LAYOUTS, "TENSORMEMORYLAYOUT::"),
                "num_cores": num_cores, "per_bank_size": per_bank_size, "label": label or None, "site": site()}

    def alloc_refused(device, buffer_type, size, message, page_size=None, layout="interleaved", num_cores=None,
                      per_bank_size=None):
        return {"kind": "alloc_refused", "device": device, "buffer_type": _name(buffer_type, _TYPES, "BUFFERTYPE::"),
                "size": size, "page_size": page_size, "layout": _name(layout, _LAYOUTS, "TENSORMEMORYLAYOUT::"),
                "num_cores": num_cores, "per_bank_size": per_bank_size, "message": message, "site": site()}

    def free(device, buffer):
        return {"kind": "buffer_free", "device": device, "buffer": local_id("buffers", (device, buffer)),
                "site": site()}

    def cb_alloc(device, address, size, cores=None, globally_allocated=False):
        return {"kind": "cb_alloc", "device": device, "address": address, "size": size, "cores": cores,
                "globally_allocated": bool(globally_allocated), "site": site()}

    def program_load(device, program, binary_size):
        return {"kind": "program_load", "device": device, "program": local_id("programs", None),
                "binary_size": binary_size, "site": site()}

    def program_unload(device, program):
        return {"kind": "program_unload", "device": device, "program": local_id("programs", (device, program))}

    def trace_capture(device, trace_id, size):
        return {"kind": "trace_capture", "device": device, "trace_id": trace_id, "size": size, "site": site()}

    wrap("device_open", device_open)
    wrap("device_close", lambda device: {"kind": "device_close", "device": device})
    wrap("alloc", alloc)
    wrap("alloc_refused", alloc_refused)
    wrap("free", free)
    wrap("cb_alloc", cb_alloc)
    wrap("cb_free_all", lambda device: {"kind": "cb_free_all", "device": device})
    wrap("program_load", program_load)
    wrap("program_unload", program_unload)
    wrap("trace_capture", trace_capture)
    wrap("trace_release", lambda device, trace_id: {"kind": "trace_release", "device": device, "trace_id": trace_id})
    wrap("mark", lambda label: {"kind": "marker", "label": str(label)})
    # `with ttalloc.op(...)` and `@ttalloc.op(...)` reach these module globals.
    wrap("_op_begin", lambda name: {"kind": "op_begin", "name": name})
    wrap("_op_end", lambda: {"kind": "op_end"})


if _DIR:
    import ttalloc as _ttalloc

    _install(_ttalloc)
