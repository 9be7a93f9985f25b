"""The native protocol's encoding (recorder/PROTOCOL.md): frame and record
layouts, the names the API accepts for enum fields, and the checks that turn
a bad argument into a ValueError naming it."""

import struct

MAGIC = 0x4C415454  # "TTAL"
VERSION = (1, 1)
HDR = struct.Struct("<IHHI")
F_HELLO, F_STRINGS, F_FRAMES, F_STACKS, F_EVENTS, F_GOODBYE = 1, 2, 3, 4, 5, 6
FRAME = struct.Struct("<III")
STACK = struct.Struct("<II")
U32 = struct.Struct("<I")

# Every event record starts {u8 kind, u8 flags, u16 0, u32 device, u64 ts}.
EVENT_HEAD = "<BBHIQ"
# The hot kinds' records, packed inline by the API (the others go through
# the table in _events.py).
BUFFER_ALLOC = struct.Struct(EVENT_HEAD + "QQQQIIBBH")  # kind 4
# protocol 1.1: BUFFER_ALLOC + u64 per_bank_size, u32 label string, u32 pad
BUFFER_ALLOC2 = struct.Struct(EVENT_HEAD + "QQQQIIBBHQII")  # kind 16
BUFFER_FREE = struct.Struct(EVENT_HEAD + "QI")  # kind 5
OP_BEGIN = struct.Struct(EVENT_HEAD + "I")  # kind 12
OP_END = struct.Struct(EVENT_HEAD)  # kind 13

BUFFER_TYPES = {"DRAM": 0, "L1": 1, "SYSTEM_MEMORY": 2, "L1_SMALL": 3, "TRACE": 4}
LAYOUTS = {"INTERLEAVED": 0, "HEIGHT_SHARDED": 1, "WIDTH_SHARDED": 2, "BLOCK_SHARDED": 3}
ARCHS = {"unknown": 0, "grayskull": 1, "wormhole_b0": 2, "wormhole": 2, "blackhole": 3, "quasar": 4}
# Order fixed by the protocol: bit i of the presence mask is key i.
CONFIG_KEYS = (
    "dram_banks", "dram_bank_size", "dram_alignment", "dram_unreserved_base",
    "l1_banks", "l1_bank_size", "l1_alignment", "l1_unreserved_base",
    "l1_small_size", "trace_region_size", "worker_l1_size",
)

# Fast lookups of the common spellings (upper, lower, the number itself);
# anything else goes through buffer_type_number() / layout_number().
BT = dict(BUFFER_TYPES)
BT.update({k.lower(): v for k, v in BUFFER_TYPES.items()})
BT.update({v: v for v in BUFFER_TYPES.values()})
LAY = dict(LAYOUTS)
LAY.update({k.lower(): v for k, v in LAYOUTS.items()})
LAY.update({v: v for v in LAYOUTS.values()})

MAX_STRING = 16384  # characters; frames must stay under the recorder's 1 MiB limit


def str_bytes(s):
    # Always valid UTF-8 (the recorder checks): undecodable bytes in file
    # names or argv arrive as surrogate escapes and are spelled out instead.
    b = s[:MAX_STRING].encode("utf-8", "backslashreplace")
    return U32.pack(len(b)) + b


def buffer_type_number(t):
    if isinstance(t, int) and not isinstance(t, bool):
        if 0 <= t <= 4:
            return t
    elif isinstance(t, str):
        v = BUFFER_TYPES.get(t.upper().replace("BUFFERTYPE::", ""))
        if v is not None:
            return v
    raise ValueError("ttalloc: buffer_type must be DRAM, L1, SYSTEM_MEMORY, L1_SMALL, TRACE or 0-4, not %r" % (t,))


def layout_number(l):
    if isinstance(l, int) and not isinstance(l, bool) and 0 <= l <= 3:
        return l
    if isinstance(l, str):
        v = LAYOUTS.get(l.upper().replace("TENSORMEMORYLAYOUT::", ""))
        if v is not None:
            return v
    raise ValueError("ttalloc: layout must be interleaved, height_sharded, width_sharded or block_sharded, not %r" % (l,))


def u64(v, what):
    v = int(v)
    if not 0 <= v < (1 << 64):
        raise ValueError("ttalloc: %s %d out of range" % (what, v))
    return v


def bad(fn, e, *args):
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


def new_fields(fn, per_bank_size, label):
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
