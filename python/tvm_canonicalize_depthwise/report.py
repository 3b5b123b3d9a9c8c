"""The command's report: the paths measured, as text or JSON, and the one line that says which
builds differ from the reference."""

import numpy as np

from tvm_canonicalize_depthwise.checking import max_abs_err


def measured_paths(paths, builds, runs, latencies, shares, expected, tolerance):
    """The report's measured part: one entry per path, and the fastest path among those that
    compute the reference's result (any, if none does)."""
    report_paths = []
    for path in paths:
        entry = {
            "path": path.id,
            "description": path.label,
            "latency_ms": {},
            "max_abs_err": {},
            "depthwise_share": {},
            "rewritten": builds[(path.id, True)].rewritten,
            "errors": {},
            "compiled_in_child": {},
        }
        for patch_on, name in ((True, "on"), (False, "off")):
            key = (path.id, patch_on)
            build = builds[key]
            entry["compiled_in_child"][name] = build.in_child
            if build.error is not None:
                entry["errors"][name] = build.error
                continue
            entry["latency_ms"][name] = float(np.median(latencies[key]))
            entry["max_abs_err"][name] = max_abs_err(runs[key].outputs, expected)
            entry["depthwise_share"][name] = shares[key]
        complete = not entry["errors"]
        entry["speedup"] = (
            entry["latency_ms"]["off"] / entry["latency_ms"]["on"] if complete else None
        )
        # the patch's own check: what it changes in the outputs (0 for quantized models)
        entry["on_off_max_abs_diff"] = (
            max_abs_err(runs[(path.id, True)].outputs, runs[(path.id, False)].outputs)
            if complete
            else None
        )
        report_paths.append(entry)
    complete = [p for p in report_paths if not p["errors"]]
    right = [p for p in complete if max(p["max_abs_err"].values()) <= tolerance] or complete
    best = min(right, key=lambda p: p["latency_ms"]["on"]) if right else None
    errors = [err for p in report_paths for err in p["max_abs_err"].values()]
    return {
        "outputs": [{"shape": list(e.shape), "dtype": str(e.dtype)} for e in expected],
        "tolerance": tolerance,
        "max_abs_err": max(errors),
        "paths": report_paths,
        "path": best["path"] if best else None,
        "latency_ms": dict(best["latency_ms"]) if best else None,
        "speedup": best["speedup"] if best else None,
        "depthwise_share": dict(best["depthwise_share"]) if best else None,
        "failed_builds": sum(len(p["errors"]) for p in report_paths),
    }


def print_report(report):
    """The report as text, on stdout."""
    kind = {"tflite": "TFLite", "onnx": "ONNX"}[report["format"]]
    default = ", the built-in default" if report["default_model"] else ""
    print(f"model: {report['model']} ({kind}{default})")
    for item in report["inputs"]:
        print(f"input: {item['name']} {item['shape']} {item['dtype']}")
    where = "" if report["device"] == "this machine" else f" on {report['device']}"
    threads = f", {report['threads']} threads" if not where else ""
    print(f"target: {report['target']}{where}{threads}")
    if report["target_note"]:
        print(f"  {report['target_note']}")
    print(
        f"depthwise convolutions: {len(report['depthwise'])} of {report['convolutions']} "
        "convolutions"
    )
    for conv in report["depthwise"]:
        print(f"  {conv['short_name']}")
        print(
            f"    {conv['op']} {conv['layout']} in {conv['input_shape']} out "
            f"{conv['output_shape']} strides {conv['strides']}: C={conv['in_channels']} "
            f"m={conv['multiplier']}, {conv['form']} form; rewrite: {conv['rewrite']}"
        )
    print(f"rewritten by CanonicalizeDepthwise: {report['rewritten']}")
    print(f"reference: {report['reference']}")
    print(
        f"max |TVM - reference| = {report['max_abs_err']:.3g} over all builds "
        f"(tolerance {report['tolerance']:.3g})"
    )
    print(
        f"  {'path':<28} {'patch on':>10} {'patch off':>10} {'speedup':>8}  "
        "depthwise share on/off"
    )
    for entry in report["paths"]:
        lat, share = entry["latency_ms"], entry["depthwise_share"]
        cells = [f"{lat[k]:>7.3f} ms" if k in lat else f"{'failed':>10}" for k in ("on", "off")]
        shares = " / ".join(
            f"{share[k]:.0%}" if share.get(k) is not None else "-" for k in ("on", "off")
        )
        speedup = f"{entry['speedup']:>7.2f}x" if entry["speedup"] else f"{'-':>8}"
        print(f"  {entry['description']:<28} {cells[0]} {cells[1]} {speedup}  {shares:>11}")
        for key, error in entry["errors"].items():
            print(f"    patch {key} failed: {error}")
        errs = entry["max_abs_err"]
        if any(err > report["tolerance"] for err in errs.values()):
            same = entry["on_off_max_abs_diff"]
            print(
                "    differs from the reference: "
                + ", ".join(f"patch {k} by {err:.3g}" for k, err in errs.items())
                + ("" if same is None else f"; patch on - off: {same:.3g}")
            )
    if report["path"] is None:
        print("fastest: none (no path compiled both with the patch on and off)")
        return
    best = next(p for p in report["paths"] if p["path"] == report["path"])
    print(
        f"fastest: {best['description']} with the patch on, {report['latency_ms']['on']:.3f} ms"
        f" ({report['speedup']:.2f}x the patch off on that path)"
    )


def difference(report):
    """One line: which builds differ from the reference, and whether the patch is the cause."""
    wrong = []
    for entry in report["paths"]:
        bad = [k for k, err in entry["max_abs_err"].items() if err > report["tolerance"]]
        if not bad:
            continue
        worst = max(entry["max_abs_err"][k] for k in bad)
        text = f"{entry['description']} (patch {' and '.join(bad)}) by {worst:.3g}"
        if len(bad) == 2 and entry["on_off_max_abs_diff"] <= report["tolerance"]:
            text += (
                " with the same outputs patch on and off: TVM without the patch computes "
                "this too"
            )
        wrong.append(text)
    return f"output differs from the reference ({report['reference']}): " + "; ".join(wrong)
