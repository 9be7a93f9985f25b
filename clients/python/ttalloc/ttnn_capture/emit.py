"""The ttalloc events the ttnn capture sends, through the hand API.

The capture's events carry the Python stack of the user code that caused
them: the hand API records the caller's stack skipping ttalloc's and ttnn's
own frames, and the capture emits an op's events from inside its wrapper
of that op, where that stack is the op's call site.
"""

import inspect

import ttalloc


def _accepts(fn, name):
    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


class Emitter(object):
    """Adapts to the hand API of the ttalloc client that is installed."""

    def __init__(self):
        self.extended_alloc = _accepts(ttalloc.alloc, "per_bank_size")
        self.refused = getattr(ttalloc, "alloc_refused", None)

    def alloc(self, device, buffer, buffer_type, size, address=None, page_size=None, layout=0,
              num_cores=None, per_bank_size=None, label=None):
        if self.extended_alloc:
            ttalloc.alloc(device, buffer, buffer_type, size, address=address, page_size=page_size,
                          layout=layout, num_cores=num_cores, per_bank_size=per_bank_size, label=label)
        else:
            ttalloc.alloc(device, buffer, buffer_type, size, address=address, page_size=page_size,
                          layout=layout, num_cores=num_cores)

    def alloc_refused(self, device, buffer_type, size, message, layout=0, num_cores=None, per_bank_size=None):
        if self.refused is not None:
            self.refused(device, buffer_type, size, message, layout=layout, num_cores=num_cores,
                         per_bank_size=per_bank_size)

    free = staticmethod(ttalloc.free)
    cb_alloc = staticmethod(ttalloc.cb_alloc)
    cb_free_all = staticmethod(ttalloc.cb_free_all)
    device_open = staticmethod(ttalloc.device_open)
    device_close = staticmethod(ttalloc.device_close)
    op_begin = staticmethod(ttalloc._op_begin)
    op_end = staticmethod(ttalloc._op_end)
