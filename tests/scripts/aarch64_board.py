"""An emulated aarch64 board: TVM's runtime and RPC server under QEMU user-mode emulation.

    python tests/scripts/aarch64_board.py setup
    python tests/scripts/aarch64_board.py serve [--tracker HOST:PORT] [--key KEY]

``setup`` installs what the host needs from Debian (``qemu-user-static``, the aarch64 cross
compiler; root and the package registry required) and caches a board in ``AARCH64_BOARD_DIR``
(default ``~/.cache/tvm-canonicalize-depthwise/aarch64-board``): Debian's arm64 CPython 3.11
unpacked into a sysroot (no root file system, no binfmt) and the aarch64 wheel of the same TVM
with its dependencies. It is idempotent and takes about a minute the first time.

``serve`` starts TVM's RPC tracker on 127.0.0.1 (unless ``--tracker`` names one), and an RPC
server on the board registered with it under ``--key``; Ctrl-C (or SIGTERM) stops both. The
host then cross-compiles for ``llvm -mtriple=aarch64-linux-gnu -mattr=+neon``, links with
``tvm.contrib.cc.cross_compiler("aarch64-linux-gnu-g++")`` and uses the tracker exactly as
with a real board (``docs/arm.md``).

The board loads only ``libtvm_runtime.so`` (``TVM_USE_RUNTIME_LIB=1``): what a device needs.
Under emulation TVM's RPC server hangs now and then after some sessions, so tests run many
modules in one emulated process (:meth:`Board.run_modules`, the ``run-modules`` command on the
board) and keep the RPC path to a few bounded sessions.
"""

import argparse
import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

HOST_TOOLS = {
    "qemu-aarch64-static": "qemu-user-static",
    "aarch64-linux-gnu-gcc": "gcc-aarch64-linux-gnu",
    "aarch64-linux-gnu-g++": "g++-aarch64-linux-gnu",
}
CROSS_CXX = "aarch64-linux-gnu-g++"
# the guest's CPython (Debian bookworm's, as the host's TVM wheel is for 3.11) and the shared
# libraries TVM's runtime links
GUEST_PACKAGES = ("python3.11-minimal", "libpython3.11-stdlib", "libstdc++6", "libgomp1")
# the same versions as the host's environment (setup.py)
GUEST_WHEELS = (
    "xtc-tvm-python-bindings==0.19.0.12",
    "numpy==2.4.6",
    "ml_dtypes==0.7.0",
    "psutil==7.2.2",
    "scipy==1.17.1",
    "attrs==26.1.0",
    "cloudpickle==3.1.3",
    "decorator==5.3.2",
    "typing_extensions==4.16.0",
    "tornado==6.6.1",
    "packaging==26.4",
)
DEFAULT_KEY = "aarch64-qemu"
LOOPBACK = "127.0.0.1"


class BoardUnavailable(RuntimeError):
    """The board cannot be set up on this machine (the message says why)."""


def default_dir():
    """Where the board is cached: ``$AARCH64_BOARD_DIR``, else under ``~/.cache``."""
    return Path(
        os.environ.get("AARCH64_BOARD_DIR")
        or Path.home() / ".cache" / "tvm-canonicalize-depthwise" / "aarch64-board"
    )


def _run(cmd, **kwargs):
    result = subprocess.run(cmd, capture_output=True, text=True, check=False, **kwargs)
    if result.returncode != 0:
        raise BoardUnavailable(f"`{' '.join(cmd)}` failed: {result.stderr.strip()[-800:]}")
    return result.stdout


def _install_host_tools():
    arm64 = "arm64" in _run(["dpkg", "--print-foreign-architectures"]).split()
    missing = sorted({pkg for tool, pkg in HOST_TOOLS.items() if not shutil.which(tool)})
    if arm64 and not missing:
        return
    if os.geteuid() != 0:
        raise BoardUnavailable(
            f"needs root to install {missing or ''} and the arm64 architecture with apt-get"
        )
    if not arm64:
        _run(["dpkg", "--add-architecture", "arm64"])
    _run(["apt-get", "update", "-q"])
    if missing:
        _run(
            ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing],
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )


def _guest_debs():
    """The arm64 packages the guest's CPython needs (virtual ones and tools left out)."""
    listing = _run(
        [
            "apt-cache",
            "depends",
            "--recurse",
            "--no-recommends",
            "--no-suggests",
            "--no-conflicts",
            "--no-breaks",
            "--no-replaces",
            "--no-enhances",
            *(f"{pkg}:arm64" for pkg in GUEST_PACKAGES),
        ]
    )
    names = {
        line.strip()
        for line in listing.splitlines()
        if line.endswith(":arm64") and not line.startswith((" ", "<"))
    }
    return sorted(names - {"dpkg:arm64", "tar:arm64", "install-info:arm64"})


def _stamp():
    return json.dumps({"packages": GUEST_PACKAGES, "wheels": GUEST_WHEELS})


class Board:
    """A board cached in ``root`` by :func:`setup`."""

    def __init__(self, root):
        self.root = Path(root)
        self.sysroot = self.root / "sysroot"
        self.site = self.root / "site"
        self.python = self.root / "python3"

    def env(self, threads=1, extra=None):
        """The environment of a process on the board (``threads``: TVM's thread pool)."""
        keep = {k: v for k, v in os.environ.items() if k in ("HOME", "PATH", "LANG", "TMPDIR")}
        return {
            **keep,
            "PYTHONPATH": str(self.site),
            "PYTHONNOUSERSITE": "1",
            "TVM_USE_RUNTIME_LIB": "1",
            "TVM_NUM_THREADS": str(threads),
            **(extra or {}),
        }

    def run(self, args, timeout, threads=1):
        """Run the board's Python with ``args``; returns its stdout, raises on failure."""
        result = subprocess.run(
            [str(self.python), *map(str, args)],
            env=self.env(threads),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"on the board: {result.stderr.strip()[-3000:]}")
        return result.stdout

    def run_modules(self, jobs, timeout, threads=1):
        """Run exported graph-executor libraries on the board in one emulated process.

        ``jobs``: a list of ``(library, inputs_npz, outputs_npz)`` paths; each library is run
        once on its inputs and its outputs written. Returns the per-job errors (None: ran)."""
        if not jobs:
            return []
        manifest = Path(jobs[0][2]).parent / "manifest.json"
        manifest.write_text(json.dumps([[str(p) for p in job] for job in jobs]))
        out = self.run([__file__, "run-modules", manifest], timeout, threads)
        return json.loads(out.strip().splitlines()[-1])

    @contextlib.contextmanager
    def serve(self, tracker_address, key=DEFAULT_KEY, threads=1, timeout=120):
        """An RPC server on the board registered with the tracker at ``tracker_address`` (host,
        port) under ``key``; stopped on exit."""
        port = _free_port()
        cmd = [
            str(self.python),
            "-m",
            "tvm.exec.rpc_server",
            f"--host={LOOPBACK}",
            f"--port={port}",
            f"--port-end={port + 1}",
            f"--tracker={tracker_address[0]}:{tracker_address[1]}",
            f"--key={key}",
        ]
        server = subprocess.Popen(
            cmd,
            env=self.env(threads),
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            _wait_for(
                lambda: _registered(tracker_address, key) or server.poll() is not None,
                timeout,
                f"the board's RPC server registering as {key!r}",
            )
            if server.poll() is not None:
                raise RuntimeError(
                    f"the board's RPC server exited: " f"{server.stderr.read().decode()[-2000:]}"
                )
            yield server
        finally:
            _stop(server)


def setup(root=None):
    """Install and cache the board (idempotent; safe from concurrent processes)."""
    board = Board(root or default_dir())
    board.root.mkdir(parents=True, exist_ok=True)
    with open(board.root / ".lock", "w", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        stamp = board.root / "ready"
        _install_host_tools()
        if stamp.exists() and stamp.read_text() == _stamp() and board.python.exists():
            return board
        debs = board.root / "debs"
        for path in (debs, board.sysroot, board.site):
            shutil.rmtree(path, ignore_errors=True)
            path.mkdir(parents=True)
        _run(["apt-get", "download", *_guest_debs()], cwd=debs)
        for deb in sorted(debs.glob("*.deb")):
            _run(["dpkg", "-x", str(deb), str(board.sysroot)])
        _run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
                "--target",
                str(board.site),
                "--python-version",
                "3.11",
                "--implementation",
                "cp",
                "--only-binary=:all:",
                "--no-deps",
                "--platform",
                "manylinux_2_28_aarch64",
                "--platform",
                "manylinux2014_aarch64",
                "--platform",
                "linux_aarch64",
                *GUEST_WHEELS,
            ]
        )
        # TVM's RPC server re-runs sys.executable for its workers: this wrapper is that
        # executable, so every process it starts is emulated too
        board.python.write_text(
            "#!/bin/sh\n"
            f'exec qemu-aarch64-static -L "{board.sysroot}" -0 "$0" '
            f'"{board.sysroot}/usr/bin/python3.11" "$@"\n'
        )
        board.python.chmod(0o755)
        board.run(["-c", "import tvm.runtime"], timeout=300)
        stamp.write_text(_stamp())
    return board


def _free_port():
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def _wait_for(ready, timeout, what):
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.5)


def _registered(tracker_address, key):
    from tvm import rpc  # pylint: disable=import-outside-toplevel

    try:
        summary = rpc.connect_tracker(*tracker_address).summary()
    except Exception:  # pylint: disable=broad-except  # the tracker is still starting
        return False
    return summary.get("queue_info", {}).get(key, {}).get("free", 0) > 0


def _stop(process, grace=10):
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@contextlib.contextmanager
def tracker(timeout=60):
    """TVM's RPC tracker on a free loopback port, run by the host's Python; yields
    ``(host, port)`` and stops it on exit."""
    port = _free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tvm.exec.rpc_tracker",
            f"--host={LOOPBACK}",
            f"--port={port}",
            f"--port-end={port + 1}",
        ],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        def listening():
            with socket.socket() as sock:
                return sock.connect_ex((LOOPBACK, port)) == 0

        _wait_for(lambda: listening() or process.poll() is not None, timeout, "the RPC tracker")
        if process.poll() is not None:
            raise RuntimeError("the RPC tracker exited at start")
        yield LOOPBACK, port
    finally:
        _stop(process)


def _run_modules_on_board(manifest):
    """Runs on the board: each job of ``manifest`` in this process (see Board.run_modules)."""
    import numpy as np  # pylint: disable=import-outside-toplevel
    import tvm  # pylint: disable=import-outside-toplevel
    from tvm.contrib import graph_executor  # pylint: disable=import-outside-toplevel

    errors = []
    for library, inputs, outputs in json.loads(Path(manifest).read_text()):
        try:
            module = graph_executor.GraphModule(
                tvm.runtime.load_module(library)["default"](tvm.cpu())
            )
            with np.load(inputs) as arrays:
                module.set_input(**{name: arrays[name] for name in arrays.files})
            module.run()
            np.savez(
                outputs, *[module.get_output(i).numpy() for i in range(module.get_num_outputs())]
            )
            errors.append(None)
        except Exception as error:  # pylint: disable=broad-except
            errors.append(str(error).strip().splitlines()[-1] if str(error) else repr(error))
    print(json.dumps(errors))


def main(argv=None):
    """The command line: set up the board, or serve it behind an RPC tracker."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("setup", help="install and cache the board")
    serve = commands.add_parser("serve", help="run the board behind an RPC tracker")
    serve.add_argument(
        "--tracker", help="HOST:PORT of a running tracker (default: start one " "on 127.0.0.1)"
    )
    serve.add_argument("--key", default=DEFAULT_KEY, help="the device key (default %(default)s)")
    serve.add_argument("--threads", type=int, default=2, help="TVM threads on the board")
    run = commands.add_parser("run-modules", help=argparse.SUPPRESS)
    run.add_argument("manifest")
    args = parser.parse_args(argv)
    if args.command == "run-modules":
        _run_modules_on_board(args.manifest)
        return 0
    try:
        board = setup()
    except BoardUnavailable as error:
        print(f"aarch64_board: {error}", file=sys.stderr)
        return 2
    if args.command == "setup":
        print(f"aarch64 board ready in {board.root}")
        return 0
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with contextlib.ExitStack() as stack:
        if args.tracker:
            host, _, port = args.tracker.rpartition(":")
            address = (host, int(port))
        else:
            address = stack.enter_context(tracker())
        stack.enter_context(board.serve(address, args.key, threads=args.threads))
        print(
            f"board {args.key!r} registered with the tracker at {address[0]}:{address[1]}; "
            "Ctrl-C stops it",
            flush=True,
        )
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
