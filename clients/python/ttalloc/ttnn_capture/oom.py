"""tt-metal's out-of-memory errors, as the allocator words them.

`RuntimeError` text from any wrapped call; the allocator's own line starts
with `Out of Memory:` (the same text is in tt-metal's TT_FATAL log line):
`Out of Memory: Not enough space to allocate {size} B {TYPE} buffer across
{n} banks, where each bank needs to store {per_bank} B[, but bank size is
...]`. TT_FATAL adds a full stop after the allocator's text; the message
recorded is the allocator's, without it (the model words it the same way).
"""

import re

_LINE = re.compile(r"Out of Memory:[^\n]*")
_REQUEST = re.compile(
    r"allocate (\d+) B (DRAM|L1_SMALL|L1|TRACE|SYSTEM_MEMORY) buffer across (\d+) banks?, "
    r"where each bank needs to store (\d+) B")
_TYPES = {"DRAM": 0, "L1": 1, "SYSTEM_MEMORY": 2, "L1_SMALL": 3, "TRACE": 4}
L1_SMALL = _TYPES["L1_SMALL"]  # sharded only (tt-metal's validate_num_banks)
HEIGHT_SHARDED = 1  # the trace's layout number; any sharded layout spans one bank per shard


class Refusal(object):
    __slots__ = ("message", "size", "buffer_type", "banks", "per_bank")

    def __init__(self, message, size, buffer_type, banks, per_bank):
        self.message = message
        self.size = size
        self.buffer_type = buffer_type
        self.banks = banks
        self.per_bank = per_bank


def parse(exc):
    """The refused request in an exception's text, or None if it is no OOM."""
    try:
        text = str(exc)
    except Exception:
        return None
    line = _LINE.search(text)
    if line is None:
        return None
    message = line.group(0).rstrip()
    if message.endswith("B)."):
        message = message[:-1]
    m = _REQUEST.search(message)
    if m is None:
        return None
    return Refusal(message, int(m.group(1)), _TYPES[m.group(2)], int(m.group(3)), int(m.group(4)))
