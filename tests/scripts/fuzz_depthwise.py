"""The extended differential-fuzzing campaign of depthwise conv2d (CI runs a bounded share).

    .venv/bin/python tests/scripts/fuzz_depthwise.py --examples 10000 --jobs 2 \
        --record docs/fuzzing.md

Draws ``--examples`` random depthwise convolutions (``tests/python/relay/depthwise_fuzz.py``),
split over ``--jobs`` worker processes with seeds ``seed``, ``seed + 1``, ...; each example is
checked as in CI: the pass, patch-on builds for AVX2, AVX-512 and aarch64, NumPy on what this
host runs, and stock TVM wherever the patch fails to build. A failing example is shrunk by
Hypothesis, recorded, and the worker goes on with the next seed. Prints the seed, the count,
the failures and the duration; ``--record`` writes them to a Markdown file. ``--minutes``
bounds the time: the workers then stop drawing and the report says how many were checked.
Exits 1 if any example failed or the time ran out first, 2 on bad arguments.
"""

import argparse
import collections
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
FUZZ_DIR = HERE.parent / "python" / "relay"


def _worker(seed, examples, out_path, deadline):
    """Run ``examples`` examples from ``seed`` on, or until the epoch time ``deadline``; write
    counts and failures to ``out_path``."""
    sys.path[:0] = [str(FUZZ_DIR), str(HERE.parent)]
    # pylint: disable=import-outside-toplevel
    from hypothesis import HealthCheck, given, settings
    from hypothesis import seed as hypothesis_seed

    import depthwise_fuzz

    stats = {
        "examples": 0,
        "failures": [],
        "stopped_at_deadline": False,
        "both_failed": collections.Counter(),
        "built": collections.Counter(),
        "ran": collections.Counter(),
    }
    failing = []

    def body(case):
        if time.time() > deadline:
            stats["stopped_at_deadline"] = True
            return  # out of time: let Hypothesis run out its remaining draws unchecked
        try:
            outcome = depthwise_fuzz.check_case(case)
        except Exception as error:  # pylint: disable=broad-except
            # Hypothesis replays the shrunk example last: the last one recorded is minimal
            failing.append((repr(case), f"{type(error).__name__}: {str(error)[:2000]}"))
            raise
        stats["examples"] += 1
        stats["built"].update(outcome.built)
        stats["ran"].update(outcome.ran)
        stats["both_failed"].update(
            f"{target}: {error[:120]}" for target, error in outcome.both_failed.items()
        )
        if stats["examples"] % 100 == 0:
            print(
                f"[seed {seed}] {stats['examples']}/{examples} examples, "
                f"{len(stats['failures'])} failures",
                file=sys.stderr,
                flush=True,
            )

    current = seed
    while stats["examples"] < examples and not stats["stopped_at_deadline"]:
        left = examples - stats["examples"]
        run = hypothesis_seed(current)(
            settings(
                max_examples=left,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )(given(depthwise_fuzz.cases())(body))
        )
        failing.clear()
        try:
            run()
        except Exception as error:  # pylint: disable=broad-except
            case, message = (
                failing[-1]
                if failing
                else ("(none)", f"{type(error).__name__}: {str(error)[:2000]}")
            )
            stats["failures"].append({"seed": current, "case": case, "error": message})
            print(f"[seed {seed}] FAILURE {case}\n  {message[:500]}", file=sys.stderr, flush=True)
            if len(stats["failures"]) > 20:
                break  # something is broken wholesale: no point drawing more
            current += 1_000_003  # a fresh stream of examples
            continue
        break
    Path(out_path).write_text(json.dumps(stats))


def _parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=10000)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=None, help="default: a random seed")
    parser.add_argument("--record", type=Path, help="write the result to this Markdown file")
    parser.add_argument(
        "--minutes",
        type=float,
        default=None,
        help="stop drawing examples after this long (the count is reported)",
    )
    parser.add_argument(
        "--worker", nargs=4, metavar=("SEED", "EXAMPLES", "OUT", "DEADLINE"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.examples < 1 or args.jobs < 1:
        parser.error("--examples and --jobs must be at least 1")
    return args


def _host_cpu():
    import tvm  # pylint: disable=import-outside-toplevel

    return tvm.target.codegen.llvm_get_system_cpu()


def _commit():
    try:
        return subprocess.run(
            ["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "(not a git checkout)"


def _report(args, seed, stats, seconds, commit):
    command = " ".join([".venv/bin/python", "tests/scripts/fuzz_depthwise.py"] + sys.argv[1:])
    lines = [
        "# Differential fuzzing: the last extended campaign",
        "",
        f"- Command: `{command}`",
        f"- Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
        f"host `-mcpu={_host_cpu()}`; project at {commit}",
        f"- Seed: {seed} (workers {seed} to {seed + args.jobs - 1})",
        f"- Examples: {stats['examples']}; failures: {len(stats['failures'])}; "
        f"duration: {seconds / 60:.1f} min on {args.jobs} worker(s)"
        + (
            f"; stopped at the --minutes limit, short of the {args.examples} asked"
            if stats["stopped_at_deadline"]
            else ""
        ),
        "- Builds that succeeded with the patch, per target: "
        + ", ".join(f"{k} {v}" for k, v in sorted(stats["built"].items())),
        "- Builds checked against NumPy on this host, per target: "
        + ", ".join(f"{k} {v}" for k, v in sorted(stats["ran"].items())),
        "",
        "Examples that neither the patch nor stock TVM builds (allowed: the patch must build "
        "wherever stock does), by target and stock's error:",
        "",
    ]
    for key, count in sorted(stats["both_failed"].items(), key=lambda kv: -kv[1]):
        lines.append(f"- {count} x {key}")
    if not stats["both_failed"]:
        lines.append("- none")
    lines += ["", "Failures:", ""]
    for failure in stats["failures"]:
        lines.append(f"- seed {failure['seed']}: `{failure['case']}`: {failure['error'][:300]}")
    if not stats["failures"]:
        lines.append("- none")
    return "\n".join(lines) + "\n"


def main(argv=None):
    """Run the campaign; returns the exit code."""
    args = _parse(sys.argv[1:] if argv is None else argv)
    if args.worker:
        _worker(int(args.worker[0]), int(args.worker[1]), args.worker[2], float(args.worker[3]))
        return 0
    seed = args.seed if args.seed is not None else random.randrange(1 << 31)
    print(f"seed {seed}: {args.examples} examples over {args.jobs} worker(s)", flush=True)
    start = time.time()
    # the code the workers load: the commit checked out now, not when they finish
    commit = _commit()
    deadline = start + args.minutes * 60 if args.minutes else float("inf")
    # one thread a worker, left unbound: with TVM_NUM_THREADS=1 the runtime would bind every
    # worker's thread to the first core, and the workers would share it
    env = {**os.environ, "TOPHUB_LOCATION": "NONE", "TVM_NUM_THREADS": "1", "TVM_BIND_THREADS": "0"}
    env.pop("TVM_CANONICALIZE_DEPTHWISE", None)
    with tempfile.TemporaryDirectory() as scratch:
        shares = [
            args.examples // args.jobs + (i < args.examples % args.jobs) for i in range(args.jobs)
        ]
        workers = [
            (
                Path(scratch) / f"worker{i}.json",
                subprocess.Popen(
                    [
                        sys.executable,
                        __file__,
                        "--worker",
                        str(seed + i),
                        str(share),
                        str(Path(scratch) / f"worker{i}.json"),
                        str(deadline),
                    ],
                    env=env,
                    stdout=subprocess.DEVNULL,
                ),
            )
            for i, share in enumerate(shares)
            if share
        ]
        total = {
            "examples": 0,
            "failures": [],
            "stopped_at_deadline": False,
            "both_failed": collections.Counter(),
            "built": collections.Counter(),
            "ran": collections.Counter(),
        }
        for out, process in workers:
            if process.wait() != 0 or not out.exists():
                print(f"fuzz_depthwise: a worker died (exit {process.returncode})", file=sys.stderr)
                return 1
            stats = json.loads(out.read_text())
            total["examples"] += stats["examples"]
            total["failures"] += stats["failures"]
            total["stopped_at_deadline"] |= stats["stopped_at_deadline"]
            for key in ("both_failed", "built", "ran"):
                total[key].update(stats[key])
    seconds = time.time() - start
    report = _report(args, seed, total, seconds, commit)
    print(report)
    if args.record:
        args.record.write_text(report)
    return 1 if total["failures"] or total["stopped_at_deadline"] else 0


if __name__ == "__main__":
    sys.exit(main())
