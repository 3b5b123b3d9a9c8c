"""Differential fuzzing of depthwise conv2d (bounded, reproducible) and the bugs it found."""

import zlib

import pytest
from hypothesis import HealthCheck, given, seed, settings

import tvm.testing

from depthwise_fuzz import RUNNABLE, X86_TARGETS, Case, cases, check_case

# CI's share of the campaign, bounded and reproducible: fixed seeds, in shards that the test
# runner's workers (pytest -n) share out. The extended campaign is tests/scripts/fuzz_depthwise.py.
CI_EXAMPLES = 300
SHARDS = 4


@pytest.mark.parametrize("shard", range(SHARDS))
def test_random_depthwise_convs_match_numpy_and_build_wherever_stock_does(shard):
    @seed(shard)
    @settings(
        max_examples=CI_EXAMPLES // SHARDS,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(cases())
    def example(case):
        # each example for one of the x86 targets, chosen by the case (the same when
        # Hypothesis replays it): both covered, half the builds
        names = sorted(X86_TARGETS)
        name = names[zlib.crc32(repr(case).encode()) % len(names)]
        check_case(case, targets={name: X86_TARGETS[name]})

    example()  # pylint: disable=no-value-for-parameter  # @given supplies ``case``


def test_the_host_runs_what_the_fuzzer_builds():
    # numerics are checked only on builds the host can run: at least one must be
    assert RUNNABLE, "this host runs neither the AVX2 nor the AVX-512 build"


def _case(channels, multiplier, kernel, strides, dilation, padding, size=(9, 9), **kwargs):
    fields = dict(
        batch=1,
        channels=channels,
        multiplier=multiplier,
        height=size[0],
        width=size[1],
        kernel=kernel,
        strides=strides,
        dilation=dilation,
        padding=padding,
        data_layout="NCHW",
        kernel_layout="OIHW",
        dtype="float32",
        form="multiplier",
        weight_kind="constant",
        epilogue="none",
        sets_attrs=True,
    )
    fields.update(kwargs)
    return Case(**fields)


# Bugs the fuzzer found, each fixed; the cases are its shrunk examples.
REGRESSIONS = {
    # NCHW rows strided by 2 under a kernel one column wide read one column phase only; the
    # phase-split stage's tensor intrinsic needs all of them ("Bind have an unmet assertion:
    # T.bool(False), on argument split.shape[3]"). Such rows are now staged unsplit.
    "one_column_kernel_stride2_dilated_rows": _case(8, 5, (1, 1), (2, 2), (2, 1), (0, 0, 1, 2)),
    "one_column_kernel_stride_3x2": _case(7, 2, (3, 1), (3, 2), (1, 1), (0, 0, 2, 0)),
    # NCHW rows of a single staged column at stride 2 (found by the campaign, on aarch64;
    # x86 packs m = 1 but takes the same path with m > 1): the phase-split intrinsic failed to
    # match ("Failed to match the compute with TensorIntrin phase_split's declaration"), or,
    # with a row narrower than its left padding, had an empty row ("Bind have an unmet
    # assertion ... row.shape[3]"). Such rows are staged unsplit.
    "single_column_row_stride2": _case(2, 1, (1, 2), (1, 2), (1, 1), (0, 1, 0, 0), size=(1, 2)),
    "row_narrower_than_left_padding": _case(
        2, 1, (1, 2), (1, 2), (1, 1), (0, 2, 0, 0), size=(1, 1)
    ),
    "single_column_row_stride2_m2": _case(2, 2, (1, 2), (1, 2), (1, 1), (0, 1, 0, 0), size=(1, 2)),
    # NCHW rows whose last input columns are never read (a 1x2 kernel at stride 2 over 3
    # columns after 2 of padding; campaign of 2026-12-02, on aarch64): TVM kept the left
    # padding in the region of such a row, the intrinsic did not ("Failed to match the compute
    # with TensorIntrin phase_split's declaration"). Such rows are staged unsplit.
    "row_not_read_to_its_end": _case(2, 1, (1, 2), (1, 2), (1, 1), (0, 2, 0, 0), size=(1, 3)),
    "row_not_read_to_its_end_wider": _case(3, 1, (1, 2), (1, 2), (1, 1), (0, 3, 0, 0), size=(2, 6)),
    # a dilation that is a multiple of the column stride reads one phase too
    "dilation_multiple_of_stride": _case(
        4, 1, (3, 3), (1, 2), (1, 2), (1, 1, 1, 1), form="canonical"
    ),
    # an NHWC conv without channels/kernel_size in its attributes (they are inferred), altered
    # as its packed NCHW twin on x86 (CI run of 2026-12-07): the packed call needs them ("The
    # kernel size and channels of a Conv must be set"). The twin now takes them from the shapes.
    "nhwc_twin_without_kernel_size": _case(
        1,
        1,
        (1, 1),
        (1, 1),
        (1, 1),
        (0, 0, 0, 0),
        size=(1, 1),
        data_layout="NHWC",
        kernel_layout="HWIO",
        form="canonical",
        sets_attrs=False,
    ),
}


# targets where stock TVM fails a regression case too (allowed: the patch builds wherever
# stock does); stock's arm_cpu alter-layout needs the attributes as well
STOCK_FAILS = {"nhwc_twin_without_kernel_size": {"aarch64"}}


@pytest.mark.parametrize("name", REGRESSIONS)
def test_fuzzer_regressions(name):
    outcome = check_case(REGRESSIONS[name])
    assert set(outcome.both_failed) <= STOCK_FAILS.get(name, set()), outcome.both_failed
    assert set(RUNNABLE) <= set(outcome.ran)


if __name__ == "__main__":
    tvm.testing.main()
