"""ttalloc's pytest plugin: device memory per test, and tests that fail when
they leave device buffers behind.

Loaded automatically under `ttalloc record -- pytest ...` (the recorder sets
PYTEST_PLUGINS=ttalloc.pytest_plugin); outside a recorder it does nothing.

- Each test becomes a cycle of the trace: the marker `pytest:begin NODEID`
  starts it, `pytest:end NODEID` ends it (after the test's teardown), so
  `ttalloc replay --cycles test` reports leaks and peaks per test. Fixtures
  of wider scope are set up before the begin marker (pytest sets fixtures up
  widest scope first), so what they hold is no test's leak.
- `--ttalloc-fail-on=KINDS` fails a test that leaves device buffers behind
  (allocated during the test, still allocated after its function-scoped
  fixtures were torn down, or outliving a device closed in its teardown).
  Without it, nothing fails because of ttalloc.
- `@pytest.mark.ttalloc_limit_leaks(bytes, warmups=0)`: allow up to `bytes`
  per run; run the body `warmups` extra times first (caches that fill once).
- `@pytest.mark.ttalloc_limit_peak(bytes, buffer_type="L1")`: fail when the
  highest live bytes of that type on one device during the test exceed it.
- A terminal summary: bytes left behind and peak per buffer type, per test.

Standard library and pytest only.
"""

import os

import pytest

try:
    from _pytest.runner import runtestprotocol
except ImportError:  # pragma: no cover - very old or very new pytest
    runtestprotocol = None

import ttalloc

BEGIN = "pytest:begin "
END = "pytest:end "
WARMUP = "pytest:warmup "

FAIL_KINDS = ("leak", "growth", "oom", "unknown-free", "double-free", "divergence", "any")
TYPE_ORDER = ("DRAM", "L1", "L1_SMALL", "TRACE")
LIMIT_LEAKS = "ttalloc_limit_leaks"
LIMIT_PEAK = "ttalloc_limit_peak"
PROPERTY = "ttalloc"


def parse_fail_on(text):
    """The set of kinds in `leak,oom`; raises ValueError naming a bad one."""
    kinds = set()
    for part in str(text).split(","):
        kind = part.strip()
        if not kind:
            continue
        if kind not in FAIL_KINDS:
            raise ValueError("--ttalloc-fail-on: unknown kind '%s' (expected %s)"
                             % (kind, ", ".join(FAIL_KINDS)))
        kinds.add(kind)
    if not kinds:
        raise ValueError("--ttalloc-fail-on needs at least one kind (%s)" % ", ".join(FAIL_KINDS))
    return kinds


def thousands(n):
    return "{:,}".format(int(n))


def pytest_addoption(parser):
    group = parser.getgroup("ttalloc", "device memory (ttalloc)")
    group.addoption(
        "--ttalloc-fail-on", dest="ttalloc_fail_on", default=None, metavar="KINDS",
        help="fail tests that leave device buffers behind (kinds as `ttalloc replay --fail-on`: "
             "leak, growth, oom, unknown-free, double-free, divergence, any; only `leak` and `any` "
             "are decided per test) and enforce the ttalloc_limit_* markers")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "%s(bytes, warmups=0): allow up to `bytes` of device buffers left behind per run; "
                   "run the body `warmups` extra times first (ttalloc)" % LIMIT_LEAKS)
    config.addinivalue_line(
        "markers", "%s(bytes, buffer_type='L1'): fail when more than `bytes` of that buffer type are "
                   "live on a device during the test (ttalloc)" % LIMIT_PEAK)
    text = config.getoption("ttalloc_fail_on", None)
    try:
        kinds = parse_fail_on(text) if text is not None else None
    except ValueError as e:
        raise pytest.UsageError(str(e))
    tracker = DeviceMemoryTracker(config, kinds)
    config.pluginmanager.register(tracker, "ttalloc-test-memory")


def _leaks_args(bytes, warmups=0):
    return bytes, warmups


def _peak_args(bytes, buffer_type="L1"):
    return bytes, buffer_type


def _count(value, what):
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError("%s must be a non-negative integer, got %r" % (what, value))
    return value


def _bind(item, name, signature, usage):
    m = item.get_closest_marker(name)
    if m is None:
        return None
    try:
        return signature(*m.args, **m.kwargs)
    except TypeError:
        raise ValueError("%s: takes (%s), got (%s)" % (
            usage, usage[usage.index("(") + 1:-1],
            ", ".join([repr(a) for a in m.args] + ["%s=%r" % kv for kv in sorted(m.kwargs.items())])))


def leak_limit(item):
    """(allowed bytes, warmups) from the item's ttalloc_limit_leaks marker, or
    None; ValueError naming the marker when its arguments are wrong."""
    usage = "@pytest.mark.%s(bytes, warmups=0)" % LIMIT_LEAKS
    bound = _bind(item, LIMIT_LEAKS, _leaks_args, usage)
    if bound is None:
        return None
    return _count(bound[0], usage + ": bytes"), _count(bound[1], usage + ": warmups")


def peak_limit(item):
    """(allowed bytes, buffer type name) from the ttalloc_limit_peak marker,
    or None; ValueError naming the marker when its arguments are wrong."""
    usage = "@pytest.mark.%s(bytes, buffer_type='L1')" % LIMIT_PEAK
    bound = _bind(item, LIMIT_PEAK, _peak_args, usage)
    if bound is None:
        return None
    buffer_type = str(bound[1]).upper()
    if buffer_type not in TYPE_ORDER:
        raise ValueError("%s: buffer_type must be one of %s, got %r"
                         % (usage, ", ".join(TYPE_ORDER), bound[1]))
    return _count(bound[0], usage + ": bytes"), buffer_type


class RunningTest(object):
    """What is known about the test running now."""

    def __init__(self, item):
        self.item = item
        self.begun = False
        self.warmups = (leak_limit(item) or (0, 0))[1]
        self.watermark = 0          # buffers with a higher serial were allocated by this test
        self.outlived_before = 0    # outlived buffers known when the test began
        self.exempt = set()         # serials allocated by fixtures of wider scope during the test
        self.left = []              # LiveBuffers left behind (after the end)
        self.peak = {}              # buffer type name -> bytes


class DeviceMemoryTracker(object):
    """The plugin proper (one per pytest process)."""

    def __init__(self, config, kinds):
        self.config = config
        self.kinds = kinds
        self.on = ttalloc.enabled()
        self.run = None
        self.rows = []              # (node id, left by type, peak by type), for the summary

    # ---- the capture ----
    def capture(self):
        from ttalloc import ttnn_capture
        return ttnn_capture

    def flush(self):
        """Everything allocated so far reported; the live buffers."""
        if not self.on:
            return []
        try:
            return self.capture().flush()
        except Exception as e:
            self.broken(e)
            return []

    def broken(self, error):
        """ttalloc must never break the test run: it stops measuring instead."""
        self.on = False
        import sys
        sys.stderr.write("ttalloc: warning: the pytest plugin stops measuring (process %d): %s: %s\n"
                         % (os.getpid(), type(error).__name__, error))

    def begin(self, run):
        if run.begun or not self.on:
            return
        try:
            self.begin_measuring(run)
        except Exception as e:
            self.broken(e)

    def begin_measuring(self, run):
        cap = self.capture()
        live = cap.flush()
        run.watermark = max([b.serial for b in live + cap.outlived_buffers()] + [run.watermark])
        run.outlived_before = len(cap.outlived_buffers())
        cap.reset_peak()
        ttalloc.mark(BEGIN + run.item.nodeid)
        run.begun = True

    def end(self, run):
        self.begin(run)  # a test whose setup failed early still gets its (empty) cycle
        if not self.on:
            return
        try:
            self.end_measuring(run)
        except Exception as e:
            self.broken(e)

    def end_measuring(self, run):
        cap = self.capture()
        live = cap.flush()
        newly_outlived = cap.outlived_buffers()[run.outlived_before:]
        run.left = [b for b in live + newly_outlived
                    if b.serial > run.watermark and b.serial not in run.exempt]
        run.peak = cap.peak_bytes()
        ttalloc.mark(END + run.item.nodeid)
        ttalloc.flush()

    # ---- hooks ----
    @pytest.hookimpl(trylast=True)  # after -k/-m deselection
    def pytest_collection_modifyitems(self, items):
        """Wrong marker arguments of a selected test are a usage error before any test runs."""
        for item in items:
            try:
                leak_limit(item)
                peak_limit(item)
            except ValueError as e:
                raise pytest.UsageError("%s: %s" % (item.nodeid, e))

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(self, item, nextitem):
        """pytest's own protocol, except that the reports are logged after the
        teardown: a test that passed but left buffers behind fails as a test
        (`N failed`), not as a teardown error."""
        if runtestprotocol is None:
            return None
        self.run = RunningTest(item)
        ihook = item.ihook
        ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
        try:
            reports = runtestprotocol(item, nextitem=nextitem, log=False)
        finally:
            run, self.run = self.run, None
            self.end(run)
        self.judge(item, run, reports)
        for rep in reports:
            ihook.pytest_runtest_logreport(report=rep)
        ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
        return True

    @pytest.hookimpl(hookwrapper=True)
    def pytest_fixture_setup(self, fixturedef, request):
        run = self.run
        if run is None or not self.on:
            yield
            return
        if fixturedef.scope == "function":
            if not run.warmups:
                self.begin(run)
            yield
            return
        if not run.begun:  # the usual order: before the test's own fixtures
            yield
            return
        # A fixture of wider scope set up while the test runs: not the test's.
        before = max([b.serial for b in self.flush()] + [0])
        yield
        for b in self.flush():
            if b.serial > before:
                run.exempt.add(b.serial)

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_call(self, item):
        run = self.run
        if run is not None and self.on:
            for i in range(run.warmups):
                ttalloc.mark("%s%s %d" % (WARMUP, item.nodeid, i + 1))
                item.runtest()
            self.begin(run)
        yield

    # ---- verdicts ----
    def judge(self, item, run, reports):
        left = bytes_by_type(run.left)
        for rep in reports:
            rep.user_properties.append((PROPERTY, {"left": left, "peak": dict(run.peak)}))
        call = next((r for r in reports if r.when == "call"), None)
        if self.kinds is None or call is None or not self.on:
            return
        problems = []
        limit = leak_limit(item)
        if limit is not None or "leak" in self.kinds or "any" in self.kinds:
            allowed = limit[0] if limit is not None else 0
            if sum(left.values()) > allowed:
                problems.append(leak_message(run.left, allowed))
        plimit = peak_limit(item)
        if plimit is not None:
            allowed, bt = plimit
            peak = run.peak.get(bt, 0)
            if peak > allowed:
                problems.append("%s B %s peak exceeds the limit of %s B"
                                % (thousands(peak), bt, thousands(allowed)))
        if not problems:
            return
        text = "\n".join(problems)
        if call.passed:
            call.outcome = "failed"
            call.longrepr = text
        else:
            call.sections.append(("ttalloc", text))

    # ---- the summary ----
    def pytest_runtest_logreport(self, report):
        if report.when != "teardown":
            return
        for name, value in report.user_properties:
            if name == PROPERTY and isinstance(value, dict):
                self.rows.append((report.nodeid, value.get("left") or {}, value.get("peak") or {}))
                return

    def pytest_terminal_summary(self, terminalreporter):
        if not self.rows:
            return
        tr = terminalreporter
        tr.write_sep("=", "ttalloc: device memory per test")
        for line in summary_table(self.rows):
            tr.write_line(line)
        trace = os.environ.get("TTALLOC_TRACE")
        if trace:
            tr.write_line("trace: %s  (ttalloc replay %s --cycles test)" % (trace, trace))


def bytes_by_type(buffers):
    """{type name: bytes}, counting a mesh buffer once per chip it occupies."""
    out = {}
    for b in buffers:
        n = b.size * max(1, len(b.chips or ()))
        out[b.buffer_type_name] = out.get(b.buffer_type_name, 0) + n
    return out


def describe(b):
    label = b.label or ("%s buffer" % b.buffer_type_name)
    where = (" at %s" % b.where) if b.where else ""
    return label + where


def leak_message(left, allowed):
    """`16,384 B L1 left behind: L1 tensor [1,1,32,256] bfloat16 TILE at test_x.py:14`,
    one line per buffer type."""
    lines = []
    by_type = {}
    for b in left:
        by_type.setdefault(b.buffer_type_name, []).append(b)
    for bt in sorted(by_type, key=type_rank):
        bufs = by_type[bt]
        total = sum(b.size * max(1, len(b.chips or ())) for b in bufs)
        lines.append("%s B %s left behind: %s" % (thousands(total), bt, "; ".join(describe(b) for b in bufs)))
    if allowed:
        lines.append("(ttalloc_limit_leaks allows %s B)" % thousands(allowed))
    return "\n".join(lines)


def type_rank(name):
    return TYPE_ORDER.index(name) if name in TYPE_ORDER else len(TYPE_ORDER)


def summary_table(rows):
    """The summary's lines: test, bytes left behind and peak per buffer type."""
    types = sorted({t for _, left, peak in rows for t in list(left) + list(peak)}, key=type_rank)
    if not types:
        types = ["DRAM", "L1"]
    head = ["test"] + ["left %s" % t for t in types] + ["peak %s" % t for t in types]
    body = []
    for nodeid, left, peak in rows:
        body.append([nodeid] + [thousands(left.get(t, 0)) for t in types]
                    + [thousands(peak.get(t, 0)) for t in types])
    widths = [max(len(r[i]) for r in [head] + body) for i in range(len(head))]

    def fmt(r):
        return "  ".join(r[0].ljust(widths[0]) if i == 0 else r[i].rjust(widths[i])
                         for i in range(len(r))).rstrip()
    return [fmt(head)] + [fmt(r) for r in body]
