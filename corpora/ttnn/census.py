"""Counts what tt-metal's own graph capture sees while a corpus program runs.

    python census.py PROGRAM.py

A cross-check for the hand-reasoned numbers in each README, not their source:
it starts one RunMode.NORMAL capture right after the program's first device
open returns (a capture begun earlier is dropped by tt-metal's start-up), ends
it at exit, and prints the node counts and every buffer_allocate /
buffer_deallocate / circular_buffer_allocate in order. It also counts the
ttnn operation calls (ttnn.decorators.FastOperation.__call__, top level only).
Output goes to stderr so the program's own stdout stays as it is.
"""

import atexit
import runpy
import sys
from collections import Counter

import ttnn
import ttnn.decorators

graph = ttnn._ttnn.graph
state = {"capturing": False, "depth": 0, "ops": Counter()}


def start_capture_after(open_function):
    def opened(*args, **kwargs):
        device = open_function(*args, **kwargs)
        if not state["capturing"]:
            graph.begin_graph_capture(graph.RunMode.NORMAL)
            state["capturing"] = True
        return device

    return opened


for name in ("open_device", "open_mesh_device"):
    setattr(ttnn, name, start_capture_after(getattr(ttnn, name)))

operation_call = ttnn.decorators.FastOperation.__call__


def counted_call(self, *args, **kwargs):
    if state["depth"] == 0:
        state["ops"][self.python_fully_qualified_name] += 1
    state["depth"] += 1
    try:
        return operation_call(self, *args, **kwargs)
    finally:
        state["depth"] -= 1


ttnn.decorators.FastOperation.__call__ = counted_call


def report():
    if not state["capturing"]:
        print("census: no device was opened", file=sys.stderr)
        return
    nodes = graph.end_graph_capture()
    print(f"census: nodes {dict(sorted(Counter(n['node_type'] for n in nodes).items()))}", file=sys.stderr)
    print(f"census: top-level ttnn operations {dict(state['ops'])}", file=sys.stderr)
    for node in nodes:
        kind = node["node_type"]
        if kind in ("buffer_allocate", "buffer_deallocate", "circular_buffer_allocate", "circular_buffer_deallocate_all"):
            params = node["params"]
            fields = ("type", "address", "size", "max_size_per_bank", "num_cores", "device_id", "core_range_set")
            print(f"census: {kind} " + " ".join(f"{k}={params[k]}" for k in fields if k in params), file=sys.stderr)


atexit.register(report)
program = sys.argv[1]
sys.argv = sys.argv[1:]
runpy.run_path(program, run_name="__main__")
