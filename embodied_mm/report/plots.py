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
            fig.tight_layout()
            buf = io.StringIO()
            fig.savefig(buf, format="svg", metadata={"Date": None})
        finally:
            plt.close(fig)
    svg = buf.getvalue()
    return svg[svg.index("<svg") :]  # the element alone: no XML prolog inside HTML
