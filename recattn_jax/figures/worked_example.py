"""Figure 1: the source article's worked example (§4.3), computed correctly under two readings of its notation.

The source article takes W = 1..9, b = 1, the sequence [1, 2, 3, 4, 5], weights a_i = softmax(w·x_i + b) and the
output sum_i a_i x_i, and prints weights [0.2, 0.4, 0.4] and sum 18.0. Those do not follow from the
formula under any reading: the weights are a softmax of distinct scores, and the output is a convex
combination of the x_i, so no entry can exceed max x = 5 (18.0 is impossible). Two defensible readings:

(a) windows: W = [[1,2,3],[4,5,6],[7,8,9]]; the x_i are the three length-3 windows [1,2,3], [2,3,4],
    [3,4,5] (three weights, as the article printed); each row of W is a query (one head per row):
    a_hi = softmax_i(W_h·x_i + b), out_h = sum_i a_hi x_i.
(b) per position: the items are scalars and position i has its own scalar weight w_i = i (the first
    five of 1..9): a_i = softmax_i(w_i x_i + b), out = sum_i a_i x_i. As attention: q = w, k_i = x_i e_i
    (the item in its own coordinate), v_i = x_i e_i, and the output coordinates sum to sum_i a_i x_i.

Both go through `kernels.attention_pool` (q = w, k = v = x, scale 1; b cancels in the softmax) and
are checked against numpy with b kept in.
"""

from __future__ import annotations

from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pandas as pd

import kernels
from recattn_jax.figures.output import pyplot, save_figure, write_table

ARTICLE_WEIGHTS = [0.2, 0.4, 0.4]
ARTICLE_OUTPUT = 18.0
SEQUENCE = np.arange(1, 6, dtype=np.float32)  # [1, 2, 3, 4, 5]
W = np.arange(1, 10, dtype=np.float32)  # 1..9
B = 1.0


def _softmax(s: np.ndarray) -> np.ndarray:
    e = np.exp(s - s.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def reading_windows() -> dict:
    """(a): rows of the 3×3 W as queries over the length-3 windows of the sequence."""
    w = W.reshape(3, 3)
    x = np.stack([SEQUENCE[i : i + 3] for i in range(3)])  # [S=3 windows, H=3]
    weights_np = _softmax(w @ x.T + B)  # [heads, windows]
    out_np = weights_np @ x  # [heads, H]
    k = jnp.broadcast_to(jnp.asarray(x)[None, :, None, :], (1, 3, 3, 3))  # [B=1, S, N=3 heads, H]
    out = np.asarray(kernels.attention_pool(jnp.asarray(w)[None], k, k, scale=1.0, backend="reference"))[0]
    # the weights themselves: pooling the identity returns them (v_i = e_i)
    eye = jnp.broadcast_to(jnp.eye(3)[None, :, None, :], (1, 3, 3, 3))
    q_pad, k_pad = jnp.asarray(w)[None], k
    weights = np.asarray(kernels.attention_pool(q_pad, k_pad, eye, scale=1.0, backend="reference"))[0]
    return {"weights": weights, "out": out, "weights_np": weights_np, "out_np": out_np}


def reading_per_position() -> dict:
    """(b): a scalar weight per position, w_i = i, on scalar items."""
    w = W[: len(SEQUENCE)]
    weights_np = _softmax(w * SEQUENCE + B)
    out_np = float(weights_np @ SEQUENCE)
    n = len(SEQUENCE)
    k = jnp.asarray(np.diag(SEQUENCE))[None, :, None, :]  # [B=1, S=5, N=1, H=5]: k_i = x_i e_i
    pooled = np.asarray(kernels.attention_pool(jnp.asarray(w)[None, None], k, k, scale=1.0, backend="reference"))
    out = float(pooled.sum())
    eye = jnp.eye(n)[None, :, None, :]
    weights = np.asarray(kernels.attention_pool(jnp.asarray(w)[None, None], k, eye, scale=1.0, backend="reference"))
    return {"weights": weights[0, 0], "out": out, "weights_np": weights_np, "out_np": out_np}


def _sci(value) -> str:
    return f"{float(value):.1e}"


def _fmt(values) -> str:
    return "[" + ", ".join(f"{v:.6g}" for v in np.ravel(values)) + "]"


def table() -> pd.DataFrame:
    a, b = reading_windows(), reading_per_position()
    rows = []
    for h in range(3):
        rows.append(
            {
                "reading": "(a) 3x3 W over windows",
                "query": f"W row {h + 1} = {_fmt(W.reshape(3, 3)[h])}",
                "weights": _fmt(a["weights"][h]),
                "output": _fmt(a["out"][h]),
                "max abs diff, kernel vs numpy": _sci(
                    max(np.abs(a["weights"][h] - a["weights_np"][h]).max(), np.abs(a["out"][h] - a["out_np"][h]).max())
                ),
            }
        )
    rows.append(
        {
            "reading": "(b) scalar weight per position",
            "query": f"w = {_fmt(W[:5])}",
            "weights": _fmt(b["weights"]),
            "output": f"{b['out']:.6g}",
            "max abs diff, kernel vs numpy": _sci(
                max(np.abs(b["weights"] - b["weights_np"]).max(), abs(b["out"] - b["out_np"]))
            ),
        }
    )
    rows.append(
        {
            "reading": "the article's printed values",
            "query": "W = 1..9, b = 1",
            "weights": _fmt(ARTICLE_WEIGHTS),
            "output": f"{ARTICLE_OUTPUT:.6g}",
            "max abs diff, kernel vs numpy": _sci("nan"),
        }
    )
    return pd.DataFrame(rows)


def make(out_dir: Path, quick: bool, runs) -> list[Path]:
    del quick, runs  # exact arithmetic: the same at every size
    t = table()
    notes = [
        "Sequence [1, 2, 3, 4, 5], b = 1 (it cancels in the softmax), a = softmax(w·x + b), output = sum a_i x_i.",
        "(a) x_i = the length-3 windows [1,2,3], [2,3,4], [3,4,5]; "
        "each row of W = [[1,2,3],[4,5,6],[7,8,9]] is a query.",
        "(b) scalar items, weight w_i = i at position i (the first five of 1..9): scores i² + 1 = [2, 5, 10, 17, 26].",
        "Computed by kernels.attention_pool (reference backend, q = w, k = v = x, scale 1), checked against numpy.",
        "The source article's [0.2, 0.4, 0.4] and 18.0 do not follow: the weights of distinct scores differ, "
        "and a convex combination of items <= 5 cannot reach 18.",
    ]
    paths = write_table(t, out_dir / "worked_example", "The source article's worked example (§4.3), recomputed", notes)
    a, b = reading_windows(), reading_per_position()
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    width = 0.2
    for h in range(3):
        axes[0].bar(np.arange(3) + (h - 1.5) * width, a["weights"][h], width, label=f"(a) W row {h + 1}")
    axes[0].bar(np.arange(3) + 1.5 * width, ARTICLE_WEIGHTS, width, hatch="//", fill=False, label="article printed")
    axes[0].set_xticks(range(3), ["[1,2,3]", "[2,3,4]", "[3,4,5]"])
    axes[0].set_ylabel("attention weight a_i")
    axes[0].set_title(f"(a) windows; outputs {', '.join(_fmt(o) for o in a['out'])}", fontsize=8)
    axes[0].legend(fontsize=7)
    axes[1].bar(np.arange(5) - 0.2, b["weights"], 0.4, label="(b) per-position w_i = i")
    axes[1].set_xticks(range(5), [str(int(x)) for x in SEQUENCE])
    axes[1].set_xlabel("item x_i")
    axes[1].set_title(f"(b) per position; output {b['out']:.4f} (article printed {ARTICLE_OUTPUT})", fontsize=8)
    for i, v in enumerate(b["weights"]):
        axes[1].annotate(f"{v:.2g}", (i - 0.2, v), ha="center", va="bottom", fontsize=7)
    axes[1].legend(fontsize=7)
    fig.suptitle(
        "The source article's worked example: a = softmax(w·x + b), output = Σ a_i x_i, via kernels.attention_pool"
    )
    paths.append(save_figure(fig, out_dir / "worked_example.png"))
    return paths
