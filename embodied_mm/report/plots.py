"""Success-against-level plots as inline SVG, drawn by matplotlib (already a dependency):
no JavaScript, no network, nothing but the ``<svg>`` element in the page."""

from __future__ import annotations

import io
from collections.abc import Sequence

import matplotlib

matplotlib.use("svg")  # no display, and the only format we write

import matplotlib.pyplot as plt

POINTS_GID = "success-points"  # the <g> holding one marker (<use>) per level


def success_plot(
    title: str,
    labels: Sequence[str],  # one per level, in level order
    rates: Sequence[float],  # (L,) success rates in [0, 1]
    ci95: Sequence[tuple[float, float]],  # (L, 2) Wilson intervals
) -> str:
    """An ``<svg>`` of success rate against level, with 95% interval bars; the markers lie in
    ``<g id="success-points">`` (one ``<use>`` each)."""
    x = list(range(len(labels)))
    lo = [max(0.0, r - c[0]) for r, c in zip(rates, ci95, strict=True)]
    hi = [max(0.0, c[1] - r) for r, c in zip(rates, ci95, strict=True)]
    with plt.rc_context({"svg.fonttype": "none", "svg.hashsalt": title, "font.size": 9}):
        fig, ax = plt.subplots(figsize=(4.2, 2.8))
        try:
            ax.errorbar(x, rates, yerr=[lo, hi], fmt="none", ecolor="#8aa", capsize=3)
            ax.plot(x, rates, "o-", color="#2563eb", gid=POINTS_GID)
            ax.set_xticks(x, labels, rotation=20 if len(labels) > 4 else 0)
            ax.set_ylim(-0.03, 1.03)
            ax.set_ylabel("success rate")
            ax.set_title(title, fontsize=9)
            ax.grid(alpha=0.3)
            return _svg_element(fig)
        finally:
            plt.close(fig)


def _svg_element(fig: plt.Figure) -> str:
    """``fig`` laid out and drawn as an ``<svg>`` element alone (no XML prolog, which has no
    place inside HTML), with no date, so that the same data draw the same bytes."""
    fig.tight_layout()
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None})
    svg = buf.getvalue()
    return svg[svg.index("<svg") :]


def latency_plot(grid: dict) -> str:
    """An ``<svg>`` of a latency grid (:mod:`embodied_mm.eval.latency_grid`): per task, success
    rate (95% interval bars) and joint RMS jerk against the injected latency, a line per mode."""
    cells = grid["cells"]
    env_ids = list(dict.fromkeys(c["env_id"] for c in cells))
    modes = list(dict.fromkeys(c["mode"] for c in cells))
    with plt.rc_context({"svg.fonttype": "none", "svg.hashsalt": "latency", "font.size": 9}):
        fig, axes = plt.subplots(
            2, len(env_ids), figsize=(4.2 * len(env_ids), 5.4), squeeze=False, sharex=True
        )
        try:
            for col, env_id in enumerate(env_ids):
                top, bottom = axes[0][col], axes[1][col]
                for mode in modes:
                    mine = [c for c in cells if c["env_id"] == env_id and c["mode"] == mode]
                    x = [c["latency_ms"] for c in mine]
                    rate = [c["success_rate"] for c in mine]
                    err = [
                        [max(0.0, r - c["ci95"][0]) for r, c in zip(rate, mine, strict=True)],
                        [max(0.0, c["ci95"][1] - r) for r, c in zip(rate, mine, strict=True)],
                    ]
                    top.errorbar(x, rate, yerr=err, marker="o", capsize=3, label=mode)
                    jerk = [c["joint_rms_jerk"] for c in mine]
                    bottom.plot(x, [float("nan") if j is None else j for j in jerk], "o-",
                                label=mode)  # fmt: skip
                top.set_title(env_id.split("/")[-1], fontsize=9)
                top.set_ylim(-0.03, 1.03)
                top.set_ylabel("success rate")
                bottom.set_ylabel("joint RMS jerk (rad/s³)")
                bottom.set_xlabel("injected policy latency (ms)")
                for ax in (top, bottom):
                    ax.grid(alpha=0.3)
            axes[0][0].legend(fontsize=8)
            return _svg_element(fig)
        finally:
            plt.close(fig)
