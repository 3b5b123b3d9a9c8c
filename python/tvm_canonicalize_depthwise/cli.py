"""``canonicalize-depthwise [MODEL]``: the patch on the user's model, on and off, checked and timed.

The command imports a ``.tflite`` or ``.onnx`` file with TVM's frontends (without an argument,
the built-in ``data/default.tflite``), lists its depthwise convolutions with the form each is in
and the rewrite ``CanonicalizeDepthwise`` makes, compiles it with the patch on and off, on the
path as imported and, for a model with NHWC convolutions, also converted to NCHW, checks the
outputs against the model's own engine (LiteRT, ONNX Runtime) when installed, and times it.
Each build is compiled in a child process, so that a crash in TVM or LLVM fails that build
only; the report says which.

Exit status: 0 when every build matches the reference, 1 when one does not or a build fails,
2 for unusable input (arguments, a missing or damaged file, a model TVM cannot import).
"""

# TVM and the frontends' packages are imported where needed: the command checks its
# arguments and the model file before paying for them.
# pylint: disable=import-outside-toplevel
import argparse
import dataclasses
import json
import logging
import os
import sys
import tempfile
import warnings

from tvm_canonicalize_depthwise import building, checking, enabled, models, planning, remote
from tvm_canonicalize_depthwise.console import LogMessages, progress, quiet_stderr
from tvm_canonicalize_depthwise.models import ModelError, one_line
from tvm_canonicalize_depthwise.report import difference, measured_paths, print_report

PROG = "canonicalize-depthwise"


class UsageError(Exception):
    """Bad input from the user: reported on one line, exit status 2."""


class _ArgumentParser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def _input_shape(text):
    """Shapes of inputs the model leaves dynamic: tvmc's ``name:[d1,d2,...]`` (several, spaced;
    read by tvmc's own parser), or ``NAME:D1,D2,...``. -> ``[(name, (d1, d2, ...)), ...]``."""
    if "[" in text:
        from tvm.driver.tvmc.shape_parser import parse_shape_string

        parsed = parse_shape_string(text)  # argparse.ArgumentTypeError on bad syntax
        pairs = list(parsed.items())
    else:
        name, sep, dims = text.rpartition(":")
        if not sep or not name:
            raise argparse.ArgumentTypeError(f"{text!r} is not name:[d1,d2,...] or NAME:D1,D2,...")
        try:
            pairs = [(name, [int(d) for d in dims.split(",")])]
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r}: dimensions must be positive integers separated by commas"
            ) from None
    # the builds and the engines need every dimension: tvmc's -1 (any) is not one
    for _, shape in pairs:
        if any(not isinstance(d, int) or d < 1 for d in shape):
            raise argparse.ArgumentTypeError(f"{text!r}: dimensions must be positive integers")
    return [(name, tuple(shape)) for name, shape in pairs]


def _parse_args(argv):
    parser = _ArgumentParser(
        prog=PROG,
        description="Import a TFLite or ONNX model with TVM, list its depthwise convolutions and "
        "what CanonicalizeDepthwise rewrites, compile it with the patch on and off (as imported "
        "and, for NHWC models, converted to NCHW), check the output against the model's own "
        "engine and time it.",
    )
    parser.add_argument(
        "model",
        nargs="?",
        default=None,
        help="a .tflite or .onnx file (default: the built-in small TFLite "
        "network with depth multipliers 1, 2 and 4)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--repeat", type=int, default=30, help="timed runs per build (>= 1)")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="threads the builds run on (default: TVM_NUM_THREADS, else every "
        "core of this machine)",
    )
    parser.add_argument("--target", default=None, help="TVM target (default: host llvm)")
    parser.add_argument(
        "--input-shapes",
        "--input-shape",
        dest="input_shape",
        type=_input_shape,
        action="append",
        default=[],
        metavar="name:[d1,d2,...]",
        help="shapes of inputs the model leaves dynamic, as tvmc takes them "
        "(also NAME:D1,D2,...; repeatable)",
    )
    parser.add_argument(
        "--rpc-tracker",
        metavar="HOST:PORT",
        help="run the builds on a device behind this RPC tracker (needs "
        "--rpc-key and the device's --target)",
    )
    parser.add_argument("--rpc-key", help="the device's key at the RPC tracker")
    parser.add_argument(
        "--cross-compiler",
        help="the C++ compiler that links libraries for "
        "the target (default: <target triple>-g++ for another triple)",
    )
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error(f"--repeat must be at least 1, got {args.repeat}")
    if args.threads is None:
        args.threads = int(os.environ.get("TVM_NUM_THREADS") or os.cpu_count() or 1)
    if args.threads < 1:
        parser.error(f"--threads must be at least 1, got {args.threads}")
    if bool(args.rpc_tracker) != bool(args.rpc_key):
        parser.error("--rpc-tracker and --rpc-key go together")
    if args.rpc_tracker:
        if not args.target:
            parser.error("--rpc-tracker needs --target, the device's target")
        try:
            args.rpc_tracker = remote.parse_tracker(args.rpc_tracker)
        except ValueError as err:
            parser.error(str(err))
    shapes = {}
    for name, shape in (pair for pairs in args.input_shape for pair in pairs):
        if name in shapes:
            parser.error(f"--input-shapes given twice for {name!r}")
        shapes[name] = shape
    args.input_shape = shapes
    return args


def _device(args, target):
    """``(device, cross_compiler)`` for ``--rpc-tracker``, else ``(None, None)``."""
    if not args.rpc_tracker:
        if args.cross_compiler:
            raise UsageError("--cross-compiler is for a device (--rpc-tracker)")
        return None, None
    device = remote.Device(args.rpc_tracker, args.rpc_key)
    try:
        cross_compiler = remote.cross_compiler_for(target, args.cross_compiler)
        device.check()
    except (ValueError, remote.RemoteError) as err:
        raise UsageError(str(err)) from None
    return device, cross_compiler


def _label(key, paths):
    path_id, patch_on = key
    label = next(path.label for path in paths if path.id == path_id)
    return f"patch {'on' if patch_on else 'off'}, {label}"


def run(args):
    """Import, describe, compile, check and time the model; returns the report as a dict.

    Raises :class:`ModelError` or :class:`UsageError` for unusable input, and anything else
    for a failure past that point.
    """
    path = args.model if args.model is not None else models.DEFAULT_MODEL
    model = models.read_model(path)
    shapes = models.resolve_shapes(model, args.input_shape)
    feeds = models.random_inputs(model, shapes)

    os.environ.setdefault("TOPHUB_LOCATION", "NONE")
    # TVM's thread pool reads it when it starts (here, and in the compile processes, whose
    # host-target decisions read it too)
    os.environ["TVM_NUM_THREADS"] = str(args.threads)
    import tvm

    try:
        target = tvm.target.Target(args.target or planning.host_target())
    except Exception as err:  # pylint: disable=broad-except
        raise UsageError(f"--target {args.target!r}: {one_line(err)}") from None
    device, cross_compiler = _device(args, target)

    # Frontend warnings and TVM's "not tuned" notices go to the report, not to the terminal.
    notices = LogMessages(logging.WARNING)
    logging.getLogger().addHandler(notices)
    for name in ("strategy", "autotvm", "te_compiler"):
        logging.getLogger(name).setLevel(logging.ERROR)
    with warnings.catch_warnings(), quiet_stderr():
        warnings.simplefilter("ignore")
        mod = planning.import_model(model, shapes)
        try:
            convs, depthwise, rewrites = planning.describe_depthwise(mod)
        except Exception as err:  # pylint: disable=broad-except
            raise ModelError(
                f"{model.path}: TVM cannot type the imported model: " f"{one_line(err)}"
            ) from None
    target, target_note = planning.build_target(mod, target)
    paths = planning.plan_paths(mod, progress)

    builds, runs = {}, {}
    with tempfile.TemporaryDirectory(prefix="canonicalize-depthwise-") as workdir:
        for path_ in paths:
            for patch_on in (True, False):
                if path_.error is not None:
                    builds[(path_.id, patch_on)] = building.Build(error=path_.error)
                    continue
                progress(f"compiling (patch {'on' if patch_on else 'off'}, {path_.label})...")
                builds[(path_.id, patch_on)] = building.compile_in_child(
                    path_.mod, target, patch_on, workdir, cross_compiler, local=device is None
                )
        for key, build in list(builds.items()):
            if build.error is not None:
                continue
            if device is None:
                runs[key] = checking.run_here(build, feeds)
                continue
            progress(f"running on {device} ({_label(key, paths)})...")
            try:
                runs[key] = checking.run_on(device, build, feeds, args.repeat)
            except remote.RemoteError as err:
                builds[key] = dataclasses.replace(build, error=str(err))
        if not runs:
            raise RuntimeError(
                "no build succeeded: "
                + "; ".join(f"{_label(key, paths)}: {build.error}" for key, build in builds.items())
            )

        def patch_off_as_imported():
            key = ("as_imported", False) if ("as_imported", False) in runs else next(iter(runs))
            return f"TVM, {_label(key, paths)}", runs[key].outputs

        reference, expected = checking.reference_outputs(model, feeds, patch_off_as_imported)
        latencies = checking.time_here(runs, args.repeat)
        if any(run.module is not None for run in runs.values()):
            progress("timing each op with the debug executor...")
        shares = {
            key: checking.depthwise_share(builds[key], run, feeds, args.repeat)
            for key, run in runs.items()
        }
        report = measured_paths(
            paths, builds, runs, latencies, shares, expected, checking.tolerance(expected)
        )
    report.update(
        {
            "model": model.path,
            "format": model.kind,
            "default_model": model.is_default,
            "inputs": [
                {"name": name, "shape": list(shapes[name]), "dtype": dtype}
                for name, _, dtype in model.inputs
            ],
            "reference": reference,
            "target": str(target),
            "target_note": target_note,
            "device": str(device) if device else "this machine",
            "threads": args.threads,
            "convolutions": convs,
            "depthwise": depthwise,
            "rewritten": sum(conv["rewritten"] for conv in depthwise),
            "pass_rewrites": rewrites,
            "notices": sorted(set(notices.messages)),
        }
    )
    return report


def _error(message):
    print(f"{PROG}: error: {message}", file=sys.stderr)


def main(argv=None):
    """Entry point of ``canonicalize-depthwise``; returns the exit code."""
    argv = sys.argv[1:] if argv is None else argv
    args = _parse_args(argv)
    try:
        enabled()
    except ValueError as err:
        _error(str(err))
        return 2
    try:
        report = run(args)
    except (ModelError, UsageError) as err:
        _error(str(err))
        return 2
    except KeyboardInterrupt:
        _error("interrupted")
        return 1
    except Exception as err:  # pylint: disable=broad-except
        _error(one_line(err))
        return 1
    if args.json:
        print(json.dumps(report))
    else:
        print_report(report)
    if report["max_abs_err"] > report["tolerance"]:
        _error(difference(report))
        return 1
    if report["failed_builds"]:
        _error(f"{report['failed_builds']} build(s) failed; see the report")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
