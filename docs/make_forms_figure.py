"""Draws docs/forms.png: one depthwise weight (C = 3, m = 2, 3x3) in its two forms.

.venv/bin/python docs/make_forms_figure.py      (matplotlib: bench/requirements.txt)
"""

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  pylint: disable=wrong-import-position
from matplotlib.patches import (  # noqa: E402  pylint: disable=wrong-import-position
    FancyArrowPatch,
    Rectangle,
)

C, M = 3, 2
COLOURS = plt.get_cmap("tab10").colors


def _kernel(ax, x, y, colour, label):
    ax.add_patch(Rectangle((x, y), 0.9, 0.9, facecolor=colour, edgecolor="black", alpha=0.85))
    ax.text(x + 0.45, y + 0.45, label, ha="center", va="center", fontsize=9)


def main():
    """Draws the figure and writes docs/forms.png."""
    fig, ax = plt.subplots(figsize=(9, 4.2))
    ax.set_xlim(-1.5, 11)
    ax.set_ylim(-1.2, 7.4)
    ax.axis("off")
    ax.text(
        0.9,
        6.9,
        "multiplier form: OIHW [C, m, kH, kW]\n(TFLite HWOI [kH, kW, C, m]; Keras, TF)",
        ha="center",
        fontsize=9,
    )
    ax.text(
        8.2,
        6.9,
        "canonical grouped form: OIHW [C*m, 1, kH, kW]\n(ONNX, PyTorch)",
        ha="center",
        fontsize=9,
    )
    for c in range(C):
        ax.text(-0.6, 4.9 - 2 * c + 0.45, f"c={c}", ha="right", va="center", fontsize=9)
        for j in range(M):
            o = c * M + j
            _kernel(ax, j * 1.2, 4.9 - 2 * c, COLOURS[o], f"[{c},{j}]")
            _kernel(ax, 7.7, 5.9 - 1.1 * o, COLOURS[o], f"[{o},0]")
            ax.text(
                9.0,
                5.9 - 1.1 * o + 0.45,
                f"output channel {o} reads input channel {c}",
                va="center",
                fontsize=8,
            )
    ax.text(0.6, -0.9, "columns: j = 0 .. m-1", ha="center", fontsize=8)
    ax.add_patch(FancyArrowPatch((2.7, 3.0), (7.3, 3.0), arrowstyle="->", mutation_scale=18))
    ax.text(
        5.0,
        3.3,
        "CanonicalizeDepthwise\n[c, j] -> [c*m + j, 0]\n(same order: a reshape in OIHW)",
        ha="center",
        fontsize=8,
    )
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "forms.png")
    fig.savefig(out, dpi=110, bbox_inches="tight")
    print(out)


if __name__ == "__main__":
    main()
