"""Runs TVM's own conv, layout and quantized-conv tests on the installed TVM, patch on and off.

    python tests/scripts/run_tvm_tests.py TVM_CHECKOUT [--mode on|off|both] [--files F ...]
                                          [--json FILE] [--log-dir DIR] [--test-timeout S]

``TVM_CHECKOUT`` is an apache/tvm v0.19.0 source tree, read only: its ``tests/python`` and the
version it declares. The chosen test files (default: :data:`DEFAULT_FILES`) and their sibling
helper modules (such as ``topi/common.py``) are copied into a scratch directory, under the same
relative paths, and pytest runs there with the interpreter running this script, so
``import tvm`` finds the installed TVM (and the patch's start-up hook), never the checkout's
``python/``. TVM's conftest files are not used: the checkout's root one only loads
``tvm.testing.plugin`` (passed here with ``-p``) and shards tests for its CI.

Each mode (``TVM_CANONICALIZE_DEPTHWISE=1`` for "on", ``=0`` for "off") is one pytest process
that also loads this file as a plugin (see :func:`pytest_configure`), which records every
test's start and outcome to a file as it goes. TVM does not survive ``fork``, and some of
these tests abort the interpreter, so when the process dies the test it was running is
recorded as crashed and pytest is started again with every test already recorded deselected.
A test that runs longer than ``--test-timeout`` seconds is killed and counted as crashed too.

Prints a Markdown summary: per mode the passed, failed, skipped and crashed counts, then the
tests whose outcome differs between the modes, and the failed and crashed tests.
"""

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

DEFAULT_FILES = (
    "tests/python/relay/test_op_level2.py",
    "tests/python/relay/test_pass_alter_op_layout.py",
    "tests/python/relay/test_pass_convert_op_layout.py",
    "tests/python/relay/test_pass_fold_scale_axis.py",
    "tests/python/relay/test_op_qnn_conv2d.py",
    "tests/python/relay/test_pass_combine_parallel_conv2d.py",
    "tests/python/topi/test_topi_depthwise_conv2d.py",
    "tests/python/topi/test_topi_group_conv2d.py",
)
SWITCH = "TVM_CANONICALIZE_DEPTHWISE"
MODES = {"on": "1", "off": "0"}
OUTCOMES = ("passed", "failed", "skipped", "crashed")
# Read by the plugin half of this file, inside the pytest process.
RECORD_ENV = "RUN_TVM_TESTS_RECORD"
DONE_ENV = "RUN_TVM_TESTS_DONE"
PLUGIN = os.path.splitext(os.path.basename(__file__))[0]
HERE = os.path.dirname(os.path.abspath(__file__))
# Output lines worth quoting when a process dies.
CRASH_MARKERS = (
    "Fatal Python error",
    "terminate called",
    "what():",
    "LLVM ERROR",
    "Assertion",
    "Check failed",
    "Segmentation fault",
    "Aborted",
)
ERROR_LINE = re.compile(r"[A-Za-z_.]*(Error|Exception|Interrupt)\b: ")  # "TVMError: ..."
FRAME = re.compile(r'File "(.+?)", line (\d+) in (\S+)')  # a frame in a fault handler's stack


# ---------------------------------------------------------------------------------------------
# Plugin half: loaded into the pytest process with ``-p run_tvm_tests``.
def pytest_configure(config):
    """Register the recorder if the driver asked for one (a no-op in any other pytest run)."""
    if os.environ.get(RECORD_ENV):
        config.pluginmanager.register(_make_recorder(), "run_tvm_tests_recorder")


def _make_recorder():
    """The recorder plugin object; built here so that this file imports pytest only inside it."""
    import pytest  # pylint: disable=import-outside-toplevel

    class Recorder:
        """Appends one JSON line per event to the file named by :data:`RECORD_ENV`."""

        def __init__(self):
            self._out = open(os.environ[RECORD_ENV], "a", encoding="utf-8")  # noqa: SIM115
            done_file = os.environ.get(DONE_ENV)
            self._done = set()
            if done_file:
                with open(done_file, encoding="utf-8") as f:
                    self._done = set(json.load(f))
            self._phases = {}

        def _write(self, **event):
            self._out.write(json.dumps(event) + "\n")
            self._out.flush()

        def pytest_sessionstart(self, session):  # pylint: disable=unused-argument
            """Record the TVM, the patch's state, the CPU and the Python the session runs."""
            import tvm  # pylint: disable=import-outside-toplevel
            import tvm.relay  # pylint: disable=import-outside-toplevel,unused-import

            try:
                import tvm_canonicalize_depthwise as glue  # pylint: disable=C0415

                patch = "on" if glue.enabled() else "off"
                patch_file = glue.__file__
            except ImportError:
                patch, patch_file = "absent", None
            if not hasattr(tvm.relay.transform, "CanonicalizeDepthwise"):
                patch = "absent"
            self._write(
                event="session",
                tvm_file=tvm.__file__,
                tvm_version=tvm.__version__,
                patch=patch,
                patch_file=patch_file,
                cpu=tvm.target.codegen.llvm_get_system_cpu(),
                llvm=tvm.target.codegen.llvm_version_major(),
                python=sys.executable,
                python_version=platform.python_version(),
            )

        def pytest_collectreport(self, report):
            """Record a module that failed to collect, with its error's last line."""
            if report.failed:  # pytest's message, then the error's own last "E" line
                lines = str(report.longrepr).splitlines()
                errors = [line[1:].strip() for line in lines if line.startswith("E ")]
                self._write(
                    event="collecterror",
                    nodeid=report.nodeid,
                    detail=_one_line(errors[-1] if errors else lines[0] if lines else ""),
                )

        @pytest.hookimpl(tryfirst=True)
        def pytest_collection_modifyitems(self, config, items):
            """Record what was collected and deselect the tests an earlier process finished.

            Runs first so that ``tvm.testing.plugin`` counts fixture uses on what will run.
            """
            self._write(event="collected", nodeids=[item.nodeid for item in items])
            keep = [item for item in items if item.nodeid not in self._done]
            dropped = [item for item in items if item.nodeid in self._done]
            if dropped:
                config.hook.pytest_deselected(items=dropped)
                items[:] = keep

        def pytest_runtest_logstart(self, nodeid, location):  # pylint: disable=unused-argument
            """Record that the test started."""
            self._phases[nodeid] = []
            self._write(event="start", nodeid=nodeid)

        def pytest_runtest_logreport(self, report):
            """Keep the report of each phase of the test."""
            self._phases.setdefault(report.nodeid, []).append(report)

        def pytest_runtest_logfinish(self, nodeid, location):  # pylint: disable=unused-argument
            """Record the test's outcome from its phases' reports."""
            outcome, detail = _outcome(self._phases.pop(nodeid, []))
            self._write(event="finish", nodeid=nodeid, outcome=outcome, detail=detail)

        def pytest_sessionfinish(self, session, exitstatus):  # pylint: disable=unused-argument
            """Record pytest's exit status."""
            self._write(event="sessionfinish", exitstatus=int(exitstatus))

    return Recorder()


def _outcome(reports):
    """A test's outcome from its setup, call and teardown reports, and a one-line reason.

    Any failed phase (an error in setup or teardown included) makes it "failed"; a skip in
    setup or call, an expected failure (xfail) included, makes it "skipped"; an unexpected
    pass of a non-strict xfail is "passed", as pytest counts it.
    """
    for report in reports:
        if report.failed:
            where = "" if report.when == "call" else f"error in {report.when}: "
            return "failed", where + _summary(report)
    for report in reports:
        if report.skipped:
            if hasattr(report, "wasxfail"):
                return "skipped", f"xfail: {report.wasxfail}".rstrip(": ")
            return "skipped", _summary(report)
    if not reports:
        return "failed", "no report"
    return "passed", ""


def _summary(report):
    """One line that says why a report failed or skipped."""
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:  # a skip: (path, line, reason)
        return str(longrepr[2]).removeprefix("Skipped: ")
    crash = getattr(longrepr, "reprcrash", None)
    text = crash.message if crash is not None else str(longrepr or "")
    return _one_line(text)


def _one_line(text, limit=300):
    """The telling line of an error message: its first line or, for an error that carries a
    traceback (TVM's FFI errors), the error line after it, with the line that follows if it
    ends with a colon."""
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    if not lines:
        return ""
    line = lines[0]
    if line.endswith("Traceback (most recent call last):"):
        kind = line.split(":", 1)[0]
        errors = [i for i, l in enumerate(lines[1:], 1) if ERROR_LINE.match(l)]
        if errors:
            i = errors[-1]
            line = " ".join(lines[i : i + 2]) if lines[i].endswith(":") else lines[i]
        elif len(lines) > 1:
            line = f"{kind}: {lines[-1]}"
    return line if len(line) <= limit else line[: limit - 3] + "..."


# ---------------------------------------------------------------------------------------------
# Driver half.
def checkout_files(checkout, requested):
    """Check the checkout and the requested files; return their paths relative to it.

    ``requested`` holds paths relative to the checkout or bare file names of
    :data:`DEFAULT_FILES`. Exits with a one-line message if anything is missing.
    """
    checkout = os.path.abspath(checkout)
    if not os.path.isdir(os.path.join(checkout, "tests", "python")):
        sys.exit(
            f"run_tvm_tests.py: {checkout} is not an apache/tvm source checkout "
            "(no tests/python directory)"
        )
    by_name = {os.path.basename(path): path for path in DEFAULT_FILES}
    files = []
    for name in requested or DEFAULT_FILES:
        rel = os.path.relpath(os.path.join(checkout, by_name.get(name, name)), checkout)
        if rel.startswith(os.pardir + os.sep):
            sys.exit(f"run_tvm_tests.py: {name} is not inside the checkout {checkout}")
        rel = rel.replace(os.sep, "/")
        if not os.path.isfile(os.path.join(checkout, rel)):
            sys.exit(f"run_tvm_tests.py: {os.path.join(checkout, rel)} does not exist")
        if rel not in files:
            files.append(rel)
    return files


def checkout_version(checkout):
    """The TVM version the checkout declares (``version.py``, ``python/tvm/_ffi/libinfo.py``),
    or None if it has neither, as a tree of ``tests/python`` alone."""
    for rel in ("version.py", "python/tvm/_ffi/libinfo.py"):
        try:
            with open(os.path.join(checkout, rel), encoding="utf-8") as f:
                for line in f:
                    if line.startswith("__version__"):
                        return line.split("=", 1)[1].strip().strip("\"'")
        except OSError:
            continue
    return None


def stage(checkout, files, scratch):
    """Copy the test files and their directories' helper modules into ``scratch``.

    Helpers are the non-test ``.py`` files beside a test file (``topi/common.py``), but not
    ``conftest.py``. An empty ``pytest.ini`` makes ``scratch`` pytest's root, so that no
    configuration or conftest from outside it applies.
    """
    for rel in files:
        src_dir = os.path.dirname(os.path.join(checkout, rel))
        dst_dir = os.path.join(scratch, os.path.dirname(rel))
        os.makedirs(dst_dir, exist_ok=True)
        shutil.copy(os.path.join(checkout, rel), dst_dir)
        for name in os.listdir(src_dir):
            if name.endswith(".py") and not name.startswith("test_") and name != "conftest.py":
                shutil.copy(os.path.join(src_dir, name), dst_dir)
    with open(os.path.join(scratch, "pytest.ini"), "w", encoding="utf-8") as f:
        f.write("[pytest]\n")


def project_commit(session):
    """The commit of the git work tree the patch was imported from, with "+changes" if its
    ``python/`` differs from it; None for a patch installed from a wheel or if git is missing."""
    if not session or not session.get("patch_file"):
        return None
    package = os.path.dirname(session["patch_file"])
    where = os.path.dirname(package)  # python/
    try:
        subprocess.run(
            ["git", "-C", package, "ls-files", "--error-unmatch", "__init__.py"],
            capture_output=True,
            check=True,
        )  # tracked: not a copy in a venv
        head = subprocess.run(
            ["git", "-C", where, "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        changes = subprocess.run(
            ["git", "-C", where, "status", "--porcelain", "--", "."],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("+changes" if changes else "")


def read_events(path):
    """The recorder's events, skipping a last line cut short by a crash."""
    events = []
    if not os.path.exists(path):
        return events
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    return events


def crash_detail(returncode, timed_out, log_path, log_start, scratch):
    """Why the process died: the signal or exit status, the innermost frame of the test files in
    the stack Python's fault handler printed, and telling lines of the output."""
    if timed_out is not None:
        return f"timed out after {timed_out:.0f} s"
    if returncode < 0:
        try:
            reason = signal.Signals(-returncode).name
        except ValueError:
            reason = f"signal {-returncode}"
    else:
        reason = f"exit status {returncode}"
    with open(log_path, encoding="utf-8", errors="replace") as f:
        f.seek(log_start)
        tail = f.read().splitlines()[-200:]
    frames = [FRAME.search(line) for line in tail]
    frames = [m for m in frames if m and m.group(1).startswith(scratch + os.sep)]
    if frames:  # most recent call first
        path, line, func = frames[0].groups()
        reason += f" in {os.path.relpath(path, scratch)}:{line} ({func})"
    quoted = []
    for line in tail:
        starts = [line.find(marker) for marker in CRASH_MARKERS if marker in line]
        if starts:  # from the marker on: pytest's progress dots may precede it
            line = _one_line(line[min(starts) :], 200)
            if line not in quoted:
                quoted.append(line)
    return "; ".join([reason] + quoted[-3:])


class ModeRun:
    """Runs the staged tests in one mode, restarting pytest after each crash."""

    def __init__(self, mode, checkout, scratch, files, python, log_path, test_timeout):
        self.mode = mode
        self.checkout = checkout
        self.scratch = scratch
        self.files = files
        self.python = python
        self.log_path = log_path
        self.test_timeout = test_timeout
        self.record = os.path.join(scratch, f"record-{mode}.jsonl")
        self.done_file = os.path.join(scratch, f"done-{mode}.json")
        self.results = {}  # nodeid -> {"outcome", "detail"}
        self.collected = []
        self.session = None
        self.restarts = 0
        self.commits = []  # the project's commit when the mode started and when it ended
        self.seconds = 0.0

    def env(self):
        """The pytest process's environment: this mode's switch, no network, no PYTHONPATH
        but this file's directory (for ``-p run_tvm_tests``)."""
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", SWITCH)}
        env.update(
            {
                SWITCH: MODES[self.mode],
                "TOPHUB_LOCATION": "NONE",
                "PYTHONPATH": HERE,
                RECORD_ENV: self.record,
                DONE_ENV: self.done_file,
            }
        )
        env.setdefault("TVM_NUM_THREADS", "2")
        return env

    def command(self):
        """The pytest command line, run in the scratch directory."""
        return [
            self.python,
            "-m",
            "pytest",
            "-c",
            "pytest.ini",
            "--rootdir",
            ".",
            "-p",
            "tvm.testing.plugin",
            "-p",
            PLUGIN,
            "-p",
            "no:cacheprovider",
            "-q",
            "--tb=short",
            "--continue-on-collection-errors",
            *self.files,
        ]

    def run(self):
        """Run until every collected test has an outcome; return self."""
        start = time.monotonic()
        while True:
            with open(self.done_file, "w", encoding="utf-8") as f:
                json.dump(sorted(self.results), f)
            finished, alive = self._run_once()
            if not self.commits and self.session:
                self.commits.append(project_commit(self.session))
            remaining = [n for n in self.collected if n not in self.results]
            if alive or not remaining:
                break
            if not finished:
                sys.exit(
                    f"run_tvm_tests.py: pytest ({self.mode}) died before running a test; "
                    f"see {self.log_path}"
                )
            self.restarts += 1
        self.seconds = time.monotonic() - start
        self.commits.append(project_commit(self.session))
        return self

    def _run_once(self):
        """One pytest process. Returns (tests it finished, whether it ended by itself)."""
        offset = len(read_events(self.record))
        with open(self.log_path, "a", encoding="utf-8") as log:
            log_start = log.tell()
            log.write(f"\n==== {self.mode}: {' '.join(self.command())}\n")
            log.flush()
            proc = subprocess.Popen(
                self.command(),
                cwd=self.scratch,
                env=self.env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            timed_out = self._wait(proc)
        events = read_events(self.record)[offset:]
        pending, finished, ended = None, 0, False
        for event in events:
            kind = event["event"]
            if kind == "session":
                self._check_session(event)
            elif kind == "collected":
                self._collect(event["nodeids"])
            elif kind == "collecterror":
                self._collect([event["nodeid"]])
                detail = "collection error: " + self._clean(event["detail"])
                self.results[event["nodeid"]] = {"outcome": "failed", "detail": detail}
            elif kind == "start":
                pending = event["nodeid"]
            elif kind == "finish":
                self.results[event["nodeid"]] = {
                    "outcome": event["outcome"],
                    "detail": self._clean(event["detail"]),
                }
                pending, finished = None, finished + 1
            elif kind == "sessionfinish":
                ended = True
        if ended and timed_out is None and proc.returncode in (0, 1):
            return finished, True
        if pending is not None:
            detail = crash_detail(
                proc.returncode, timed_out, self.log_path, log_start, self.scratch
            )
            self.results[pending] = {"outcome": "crashed", "detail": detail}
            finished += 1
        elif ended:
            return finished, True  # died on the way out, after every test had finished
        return finished, False

    def _clean(self, detail):
        """A reason without the scratch directory's name, the same from run to run."""
        return detail.replace(self.scratch + os.sep, "")

    def _collect(self, nodeids):
        """Add the tests (or files that failed to collect) not yet known, in order."""
        known = set(self.collected)
        self.collected += [n for n in nodeids if n not in known]

    def _wait(self, proc):
        """Wait for ``proc``; kill it if one test runs past the timeout. Returns the elapsed
        time of the test killed, or None."""
        last_size, last_change = -1, time.monotonic()
        while True:
            try:
                proc.wait(timeout=2)
                return None
            except subprocess.TimeoutExpired:
                pass
            except BaseException:  # Ctrl-C: the process is in a session of its own
                os.killpg(proc.pid, signal.SIGKILL)
                raise
            if not self.test_timeout:
                continue
            size = os.path.getsize(self.record) if os.path.exists(self.record) else 0
            now = time.monotonic()
            if size != last_size:
                last_size, last_change = size, now
            elif now - last_change > self.test_timeout:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                return now - last_change

    def _check_session(self, event):
        """Make sure the process used the installed TVM, with the patch in this mode's state."""
        self.session = event
        if os.path.realpath(event["tvm_file"]).startswith(os.path.realpath(self.checkout) + os.sep):
            sys.exit(
                f"run_tvm_tests.py: the tests imported the checkout's TVM "
                f"({event['tvm_file']}), not the installed one"
            )
        if event["patch"] != self.mode:
            sys.exit(
                f"run_tvm_tests.py: with {SWITCH}={MODES[self.mode]} the patch is "
                f"{event['patch']} in {event['python']} (expected {self.mode})"
            )

    def counts(self, files=None):
        """Outcome counts, over every test or over those of ``files``."""
        counts = dict.fromkeys(OUTCOMES, 0)
        for nodeid in self.collected:
            if files is None or nodeid.split("::")[0] in files:
                counts[self.results.get(nodeid, {"outcome": "crashed"})["outcome"]] += 1
        return counts


def differences(runs):
    """Tests whose outcome differs between the "off" and "on" runs, as (nodeid, off, on)."""
    off, on = runs["off"], runs["on"]
    missing = {"outcome": "not collected", "detail": ""}
    nodeids = list(dict.fromkeys(off.collected + on.collected))
    return [
        (n, off.results.get(n, missing), on.results.get(n, missing))
        for n in nodeids
        if off.results.get(n, missing)["outcome"] != on.results.get(n, missing)["outcome"]
    ]


def markdown(args, runs, checkout, version):
    """The summary as Markdown lines."""
    session = next(run.session for run in runs.values())
    modes = list(runs)
    lines = [
        "# TVM's own tests, patch on and off",
        "",
        f"- date: {datetime.date.today().isoformat()}",
        f"- checkout: `{checkout}` (TVM {version or 'version unknown'})",
        f"- installed TVM: `{session['tvm_file']}` ({session['tvm_version']}), "
        f"LLVM {session['llvm']}, host CPU `{session['cpu']}`",
        f"- python: `{session['python']}` ({session['python_version']})",
        f"- files: {', '.join('`' + f + '`' for f in args.files_resolved)}",
        "",
        "| mode | passed | failed | skipped | crashed | total | pytest restarts | minutes "
        "| project commit |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for mode in modes:
        run = runs[mode]
        c = run.counts()
        commits = " -> ".join(dict.fromkeys(str(commit) for commit in run.commits))
        lines.append(
            f"| {mode} | {c['passed']} | {c['failed']} | {c['skipped']} | "
            f"{c['crashed']} | {sum(c.values())} | {run.restarts} | "
            f"{run.seconds / 60:.1f} | {commits} |"
        )
    lines += [
        "",
        "Per file (" + " / ".join(f"{m}: passed-failed-skipped-crashed" for m in modes) + "):",
        "",
        "| file | " + " | ".join(modes) + " |",
        "| --- |" + " --- |" * len(modes),
    ]
    for rel in args.files_resolved:
        cells = ["-".join(str(v) for v in runs[m].counts({rel}).values()) for m in modes]
        lines.append(f"| `{rel}` | " + " | ".join(cells) + " |")
    if "on" in runs and "off" in runs:
        diff = differences(runs)
        lines += ["", f"## Outcome differences, off -> on ({len(diff)})", ""]
        if diff:
            lines += ["| test | off | on | on: reason |", "| --- | --- | --- | --- |"]
            for nodeid, off, on in diff:
                lines.append(
                    f"| `{nodeid}` | {off['outcome']} | {on['outcome']} | "
                    f"{_cell(on['detail'] or off['detail'])} |"
                )
        else:
            lines.append("None.")
    for outcome in ("failed", "crashed"):
        for mode in modes:
            run = runs[mode]
            hits = [
                n
                for n in run.collected
                if run.results.get(n, {"outcome": "crashed"})["outcome"] == outcome
            ]
            lines += ["", f"## {outcome.capitalize()}, patch {mode} ({len(hits)})", ""]
            if hits:
                lines += ["| test | reason |", "| --- | --- |"]
                lines += [
                    f"| `{n}` | {_cell(run.results.get(n, {}).get('detail', 'not run'))} |"
                    for n in hits
                ]
            else:
                lines.append("None.")
    return lines


def _cell(text):
    """Text made safe for a Markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ") or "-"


def to_json(runs, checkout, version):
    """The full results as a JSON-able dict."""
    out = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "checkout": checkout,
        "checkout_version": version,
        "modes": {},
    }
    for mode, run in runs.items():
        out["modes"][mode] = {
            "session": run.session,
            "counts": run.counts(),
            "restarts": run.restarts,
            "project_commits": run.commits,
            "seconds": round(run.seconds, 1),
            "tests": {
                n: run.results.get(n, {"outcome": "crashed", "detail": "not run"})
                for n in run.collected
            },
        }
    if "on" in runs and "off" in runs:
        out["differences"] = [{"test": n, "off": off, "on": on} for n, off, on in differences(runs)]
    return out


def parse_args(argv):
    """Command-line options."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkout", help="an apache/tvm v0.19.0 source checkout (read only)")
    ap.add_argument(
        "--mode",
        choices=("on", "off", "both"),
        default="both",
        help="run with the patch on, off, or both (default)",
    )
    ap.add_argument(
        "--files",
        nargs="+",
        metavar="FILE",
        help="test files, relative to the checkout or as bare names "
        "(default: the eight conv/layout/qnn files)",
    )
    ap.add_argument("--json", metavar="FILE", help="also write the full results here")
    ap.add_argument(
        "--log-dir",
        metavar="DIR",
        help="keep pytest's output here (default: a scratch dir, removed)",
    )
    ap.add_argument(
        "--test-timeout",
        type=float,
        default=3600,
        metavar="S",
        help="kill a test running longer than this and count it crashed "
        "(default 3600; 0: never)",
    )
    ap.add_argument(
        "--python",
        default=sys.executable,
        help="the interpreter with TVM and the patch installed (default: this one)",
    )
    return ap.parse_args(argv)


def main(argv):
    """Runs the checkout's tests in each mode and prints the report (Markdown, and JSON)."""
    args = parse_args(argv)
    checkout = os.path.abspath(args.checkout)
    args.files_resolved = checkout_files(checkout, args.files)
    version = checkout_version(checkout)
    modes = ["off", "on"] if args.mode == "both" else [args.mode]
    scratch = tempfile.mkdtemp(prefix="run_tvm_tests-")
    try:
        stage(checkout, args.files_resolved, scratch)
        log_dir = os.path.abspath(args.log_dir) if args.log_dir else scratch
        os.makedirs(log_dir, exist_ok=True)
        runs = {}
        for mode in modes:
            log_path = os.path.join(log_dir, f"pytest-{mode}.log")
            open(log_path, "w", encoding="utf-8").close()
            kept = f", pytest's output in {log_path}" if args.log_dir else ""
            print(f"run_tvm_tests.py: patch {mode}{kept}", file=sys.stderr)
            runs[mode] = ModeRun(
                mode,
                checkout,
                scratch,
                args.files_resolved,
                args.python,
                log_path,
                args.test_timeout,
            ).run()
        installed = next(iter(runs.values())).session["tvm_version"]
        if version and version != installed:
            print(
                f"run_tvm_tests.py: warning: the checkout is TVM {version}, the installed TVM "
                f"{installed}",
                file=sys.stderr,
            )
        print("\n".join(markdown(args, runs, checkout, version)))
        if args.json:
            with open(args.json, "w", encoding="utf-8") as f:
                json.dump(to_json(runs, checkout, version), f, indent=1)
                f.write("\n")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
