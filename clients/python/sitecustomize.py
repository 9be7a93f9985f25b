"""ttalloc's site hook: under `ttalloc record` / `ttalloc serve`, every Python
process captures ttnn's device-memory events the moment it imports `ttnn`,
with no edit to the program.

`ttalloc record` puts this file's directory first on PYTHONPATH, so Python
imports it at start-up instead of any other `sitecustomize`; it therefore
loads the next one on the path itself, so a site's own customisation keeps
working. `TTALLOC_TTNN=0` turns the ttnn capture off (the hand API in
`ttalloc` still works).
"""

import os
import sys


def _chain_load_next_sitecustomize():
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        import importlib.machinery
        import importlib.util
    except Exception:
        return
    for entry in list(sys.path):
        try:
            if not entry or os.path.abspath(entry) == here:
                continue
            spec = importlib.machinery.PathFinder.find_spec("sitecustomize", [entry])
        except Exception:
            continue
        if spec is None or spec.loader is None:
            continue
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except Exception as e:  # the site's hook failing must not stop ours, nor the program
            sys.stderr.write("ttalloc: warning: %s raised %s: %s\n" % (spec.origin, type(e).__name__, e))
        return


class _TtnnImportHook(object):
    """A one-shot meta-path finder: when `ttnn` is first imported, lets the
    normal finders locate it and runs ttalloc's capture right after the
    package's own code has run."""

    def find_spec(self, name, path=None, target=None):
        if name != "ttnn":
            return None
        try:
            sys.meta_path.remove(self)
        except ValueError:
            pass
        import importlib.util
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        loader = spec.loader
        original_exec = loader.exec_module

        def exec_module(module):
            original_exec(module)
            try:
                loader.exec_module = original_exec
            except Exception:
                pass
            _activate(module)

        try:
            loader.exec_module = exec_module
        except Exception:
            return spec
        return spec


def _activate(ttnn_module):
    try:
        from ttalloc import ttnn_capture
        ttnn_capture.activate(ttnn_module)
    except Exception as e:  # never break the recorded program
        sys.stderr.write("ttalloc: warning: ttnn capture is off in process %d: %s: %s\n"
                         % (os.getpid(), type(e).__name__, e))


_chain_load_next_sitecustomize()
if os.environ.get("TTALLOC_SOCKET") and os.environ.get("TTALLOC_TTNN", "1") != "0" \
        and os.environ.get("TT_ALLOC_TRACKING_ENABLED", "1") != "0":
    if "ttnn" in sys.modules:
        _activate(sys.modules["ttnn"])
    else:
        sys.meta_path.insert(0, _TtnnImportHook())
