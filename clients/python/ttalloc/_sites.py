"""Call sites: the caller's Python stack, innermost first, starting at the
first frame outside ttalloc's own package (and, under the ttnn capture,
outside ttnn's)."""

import os
import sys


def _int_env(name, default):
    try:
        return max(0, int(os.environ.get(name, default)))
    except ValueError:
        return default


DEPTH = _int_env("TTALLOC_STACK_DEPTH", 32)
# Call sites start at the innermost frame outside these directories: ttalloc's
# own package, and (under the ttnn capture) ttnn's, so an event is charged to
# the user code that called the op, not to a wrapper.
INTERNAL_DIRS = (os.path.dirname(os.path.abspath(__file__)) + os.sep,)
# The op decorator's wrapper (set by the package once it is defined): a
# ttalloc frame in the middle of user frames, left out of stacks.
WRAPPER_CODE = None


def skip_frames_under(directory):
    """Call sites skip frames of files under `directory` (before the first user frame)."""
    global INTERNAL_DIRS
    d = os.path.join(os.path.abspath(directory), "")
    if d not in INTERNAL_DIRS:
        INTERNAL_DIRS = INTERNAL_DIRS + (d,)


def stack_key():
    """The caller's stack as (id(code), instruction offset, ...), innermost first.

    Keyed by (id(code), instruction offset): hashing a code object hashes
    its bytecode and constants, and reading f_lineno maps the offset through
    the line table, and both dominated the cost. The frames' names and lines
    are computed once per new site instead (_connection.Client.site)."""
    f = sys._getframe(1)
    while f is not None and f.f_code.co_filename.startswith(INTERNAL_DIRS):
        f = f.f_back
    key = []
    n = 0
    while f is not None and n < DEPTH:
        code = f.f_code
        if code is not WRAPPER_CODE:
            key.append(id(code))
            key.append(f.f_lasti)
            n += 1
        f = f.f_back
    return tuple(key)


def stack_codes():
    """The code objects of the same frames stack_key walks (called under the same API call)."""
    f = sys._getframe(1)
    while f is not None and f.f_code.co_filename.startswith(INTERNAL_DIRS):
        f = f.f_back
    codes = []
    while f is not None and len(codes) < DEPTH:
        if f.f_code is not WRAPPER_CODE:
            codes.append(f.f_code)
        f = f.f_back
    return codes


_line_cache = {}


def line_of(code, lasti):
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
