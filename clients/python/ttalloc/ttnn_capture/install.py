"""Puts the capture's wrappers into ttnn: op classes, device open/close, graph capture.

A wrapper never changes what the wrapped call returns or raises; if the
capture itself fails, the call still runs.
"""

import functools
import sys


def _replace_everywhere(original, wrapper):
    """Every alias of `original` in ttnn's modules now refers to `wrapper`."""
    for name, module in list(sys.modules.items()):
        if module is None or not (name == "ttnn" or name.startswith("ttnn.")):
            continue
        try:
            attrs = vars(module)
        except TypeError:
            continue
        for attr, value in list(attrs.items()):
            if value is original:
                try:
                    setattr(module, attr, wrapper)
                except Exception:
                    pass


def _devices_in(result):
    if result is None:
        return []
    if isinstance(result, dict):
        return list(result.values())
    if isinstance(result, (list, tuple)):
        return list(result)
    return [result]


def _quietly(fn, *args):
    try:
        fn(*args)
    except Exception as e:  # the capture must never break the program
        from .capture import _warn
        _warn("ttnn capture: %s: %s" % (type(e).__name__, e))


def wrap_open(capture, original):
    @functools.wraps(original)
    def open_device(*args, **kwargs):
        result = original(*args, **kwargs)
        for mesh in _devices_in(result):
            _quietly(capture.opened, mesh)
        return result
    return open_device


def wrap_close(capture, original):
    @functools.wraps(original)
    def close_device(*args, **kwargs):
        meshes = _devices_in(args[0] if args else kwargs.get("device", kwargs.get("mesh_device")))
        for mesh in meshes:
            _quietly(capture.closing, mesh)
        try:
            return original(*args, **kwargs)
        finally:
            for mesh in meshes:
                _quietly(capture.closed, mesh)
    return close_device


def wrap_submesh(capture, original):
    @functools.wraps(original)
    def create_submesh(self, *args, **kwargs):
        result = original(self, *args, **kwargs)
        parent = None
        try:
            parent = int(self.id())
        except Exception:
            pass
        for sub in _devices_in(result):
            _quietly(capture.opened, sub, parent)
        return result
    return create_submesh


def install_devices(capture, ttnn):
    dev = ttnn._ttnn.device
    multi = getattr(ttnn._ttnn, "multi_device", None)
    for module, names, make in (
        (dev, ("open_device", "CreateDevice", "CreateDevices"), wrap_open),
        (dev, ("close_device", "CloseDevice", "CloseDevices"), wrap_close),
        (multi, ("open_mesh_device",), wrap_open),
        (multi, ("close_mesh_device",), wrap_close),
    ):
        for name in names:
            original = getattr(module, name, None) if module is not None else None
            if original is None:
                continue
            wrapper = make(capture, original)
            setattr(module, name, wrapper)
            _replace_everywhere(original, wrapper)
    mesh_cls = getattr(ttnn, "MeshDevice", None)
    for name in ("create_submesh", "create_submeshes"):
        original = getattr(mesh_cls, name, None) if mesh_cls is not None else None
        if original is not None:
            try:
                setattr(mesh_cls, name, wrap_submesh(capture, original))
            except Exception:
                pass


def install_ops(capture, ttnn):
    """Wraps `__call__` of ttnn's operation classes at class level (as tt-metal's own
    trace-allocation tracker does): every registered op goes through it."""
    decorators = sys.modules.get("ttnn.decorators")
    for cls_name in ("FastOperation", "Operation"):
        cls = getattr(decorators, cls_name, None) if decorators is not None else None
        if cls is None:
            continue
        original = cls.__call__

        def make(original):
            @functools.wraps(original)
            def __call__(self, *args, **kwargs):
                name = getattr(self, "python_fully_qualified_name", None) or "ttnn.op"
                return capture.call_op(name, lambda: original(self, *args, **kwargs), args)
            return __call__

        cls.__call__ = make(original)
    # Tensor methods that allocate or free outside any registered op.
    tensor_cls = getattr(ttnn, "Tensor", None)
    for method in ("to", "deallocate", "cpu"):
        original = getattr(tensor_cls, method, None) if tensor_cls is not None else None
        if original is None:
            continue

        def make_method(original, name):
            @functools.wraps(original)
            def method(self, *args, **kwargs):
                return capture.call_op(name, lambda: original(self, *args, **kwargs), (self,) + args)
            return method

        try:
            setattr(tensor_cls, method, make_method(original, "ttnn.Tensor." + method))
        except Exception:
            pass


def install_graph(capture, ttnn):
    """The program's own graph captures go around ttalloc's (see graph.py)."""
    raw = ttnn._ttnn.graph
    sessions = capture.sessions
    begin, end, end_to_file = raw.begin_graph_capture, raw.end_graph_capture, \
        getattr(raw, "end_graph_capture_to_file", None)

    @functools.wraps(begin)
    def begin_graph_capture(*args, **kwargs):
        mode = args[0] if args else kwargs.get("run_mode", kwargs.get("mode"))
        return sessions.user_begin(mode, lambda: begin(*args, **kwargs))

    @functools.wraps(end)
    def end_graph_capture(*args, **kwargs):
        return sessions.user_end(lambda: end(*args, **kwargs))

    raw.begin_graph_capture = begin_graph_capture
    raw.end_graph_capture = end_graph_capture
    _replace_everywhere(begin, begin_graph_capture)
    _replace_everywhere(end, end_graph_capture)
    if end_to_file is not None:
        @functools.wraps(end_to_file)
        def end_graph_capture_to_file(*args, **kwargs):
            return sessions.user_end(lambda: end_to_file(*args, **kwargs))

        raw.end_graph_capture_to_file = end_graph_capture_to_file
        _replace_everywhere(end_to_file, end_graph_capture_to_file)
