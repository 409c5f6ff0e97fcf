"""``report.html``: one self-contained page per evaluation run (inline CSS, inline SVG plots,
no scripts, no network), beside the run's videos, which it links by relative path.

Sections: the run (checkpoint, engine, mode), success per task with 95% Wilson intervals,
per factor × level tables and success-against-level plots when the run has a
``suite.json``, then each task's episodes, failures first: seed, outcome, steps, why it
stopped, the instruction, the plan text the policy gave, the safety filter's interventions,
and the episode's video where one was written.
"""

from __future__ import annotations

import html
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

from embodied_mm.report.load import REPORT, EpisodeGroup, RunData, load_run
from embodied_mm.report.plots import success_plot

BASELINE_FACTOR = "none"  # suite.json's unperturbed cell (level "0")
CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1100px;color:#1f2937}
h1{font-size:22px}h2{font-size:18px;margin-top:28px;border-bottom:1px solid #e5e7eb}
table{border-collapse:collapse;margin:8px 0 16px}th,td{padding:4px 10px;text-align:left;
border-bottom:1px solid #eee;vertical-align:top}th{background:#f3f4f6}
td.num{text-align:right;font-variant-numeric:tabular-nums}.fail{color:#b91c1c;font-weight:600}
.ok{color:#15803d;font-weight:600}.plots{display:flex;flex-wrap:wrap;gap:12px}
.episode{display:flex;gap:16px;border:1px solid #e5e7eb;border-radius:6px;padding:8px;
margin:8px 0}.episode video{width:480px;max-width:100%;background:#000}.meta{flex:1}
.plan{font-family:ui-monospace,monospace;font-size:12px;color:#374151}.muted{color:#6b7280}
"""


def _e(value: Any) -> str:
    return html.escape(str(value))


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def _ci(ci: Any) -> str:
    lo, hi = ci
    return f"{_pct(lo)}–{_pct(hi)}"


def _table(table_id: str, head: list[str], rows: list[list[str]], num_from: int = 99) -> str:
    """``rows`` hold HTML already escaped; columns from ``num_from`` on are right-aligned."""
    th = "".join(f"<th>{h}</th>" for h in head) if any(head) else ""
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{c}</td>' if j >= num_from else f"<td>{c}</td>"
            for j, c in enumerate(r)
        )
        + "</tr>"
        for r in rows
    )
    thead = f"<thead><tr>{th}</tr></thead>" if th else ""
    return f'<table id="{table_id}">{thead}<tbody>{body}</tbody></table>'


def _interventions(counts: dict[str, int] | None) -> str:
    return _e(", ".join(f"{k} {v}" for k, v in sorted(counts.items()))) if counts else "none"


def _run_section(data: RunData) -> str:
    src = data.info or data.suite or {}
    control = src.get("control") or {}
    mode = control.get("mode") or src.get("mode", "?")
    items = [
        ("checkpoint", src.get("checkpoint", "?")),
        ("engine", src.get("engine", "?")),
        ("split", src.get("split", "?")),
        ("mode", mode),
        ("first seed", src.get("seed", "?")),
        ("seconds", f"{float(src.get('seconds', 0.0)):.0f}"),
    ]
    if data.suite is not None:
        items.insert(0, ("suite", data.suite.get("suite", "?")))
        items.append(("episodes per cell", data.suite.get("episodes_per_cell", "?")))
    if data.info is not None and "overall" in data.info:
        ov = data.info["overall"]
        items.append(("overall", f"{_pct(ov.get('success_rate', 0.0))} of {ov.get('episodes')}"))
    rows = [[_e(k), _e(v)] for k, v in items if v != "?"]  # what this kind of run records
    return "<h2>Run</h2>" + _table("run", ["", ""], rows)


def _tasks_section(data: RunData) -> str:
    if data.info is None:
        return ""
    rows = []
    for t in data.info["tasks"]:
        rows.append([
            _e(t["env_id"]), _e(t.get("engine", "")), _e(t.get("split", "")),
            _e(t["episodes"]), _e(t["successes"]), _pct(t["successes"] / max(1, t["episodes"])),
            _ci(t["ci95"]), f"{float(t.get('mean_length', 0.0)):.1f}",
            _interventions(t.get("interventions")),
        ])  # fmt: skip
    head = ["task", "engine", "split", "episodes", "successes", "success", "95% CI",
            "mean length", "interventions"]  # fmt: skip
    return "<h2>Success per task</h2>" + _table("tasks", head, rows, num_from=3)


def _suite_section(data: RunData) -> str:
    if data.suite is None:
        return ""
    by_factor: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    baseline: dict[str, dict[str, Any]] = {}  # env id -> its unperturbed cell
    for c in data.suite["cells"]:
        if c["factor"] == BASELINE_FACTOR:
            baseline[c["env_id"]] = c
        else:
            by_factor[(c["env_id"], c["factor"])].append(c)
    for (env_id, _), cells in by_factor.items():  # every factor starts from the baseline
        base = baseline.get(env_id)
        if base is not None and all(str(c["level"]) != "0" for c in cells):
            cells.insert(0, {**base, "level": "0", "level_value": "baseline"})
    if not by_factor:  # a suite of the baseline alone
        for env_id, c in baseline.items():
            by_factor[(env_id, BASELINE_FACTOR)].append(c)
    parts = ["<h2>Success per factor and level</h2>"]
    plots = []
    for n, ((env_id, factor), cells) in enumerate(sorted(by_factor.items())):
        rows = [
            [_e(c["level"]), _e(c.get("level_value", "")), _e(c["episodes"]),
             _e(c["successes"]), _pct(c["success_rate"]), _ci(c["ci95"])]
            for c in cells
        ]  # fmt: skip
        head = ["level", "value", "episodes", "successes", "success", "95% CI"]
        parts.append(f"<h3>{_e(env_id)} · {_e(factor)}</h3>")
        parts.append(_table(f"factor-{n}", head, rows, num_from=2))
        svg = success_plot(f"{env_id} · {factor}", [str(c["level"]) for c in cells],
                           [float(c["success_rate"]) for c in cells],
                           [tuple(c["ci95"]) for c in cells])  # fmt: skip
        plots.append(f'<figure class="plot" id="plot-{n}">{svg}</figure>')
    parts.append('<div class="plots">' + "".join(plots) + "</div>")
    return "".join(parts)


def _video_src(video: str | None, base_dir: Path, run_dir: Path) -> str | None:
    """``video`` (absolute, or relative to the eval_info.json's directory or to the working
    directory) as a path relative to the report, or None when the file is not there."""
    if not video:
        return None
    path = Path(video)
    candidates = [path] if path.is_absolute() else [base_dir / path, path]
    for p in candidates:
        if p.is_file():
            return Path(os.path.relpath(p.resolve(), run_dir.resolve())).as_posix()
    return None


def _episode(record: dict[str, Any], group: EpisodeGroup, run_dir: Path) -> str:
    ok = bool(record.get("success"))
    plans = record.get("plans") or []
    plan_html = (
        "".join(f'<div class="plan">{_e(p)}</div>' for p in plans)
        if plans
        else '<span class="muted">none (ask for it with eval --plan)</span>'
    )
    src = _video_src(record.get("video"), group.base_dir, run_dir)
    video = (
        f'<video controls preload="metadata" src="{_e(src)}"></video>'
        if src
        else '<div class="muted">no clip recorded for this episode</div>'
    )
    outcome = '<span class="ok">success</span>' if ok else '<span class="fail">failure</span>'
    kind = "success" if ok else "failure"
    return (
        f'<div class="episode {kind}" data-seed="{_e(record.get("seed"))}">{video}'
        f'<div class="meta"><div>{outcome} · seed {_e(record.get("seed"))} · '
        f"{_e(record.get('steps'))} steps · stop: {_e(record.get('stop_reason', '?'))}</div>"
        f"<div><b>instruction:</b> {_e(record.get('task', ''))}</div>"
        f"<div><b>plan:</b> {plan_html}</div>"
        f"<div><b>interventions:</b> {_interventions(record.get('interventions'))}</div>"
        "</div></div>"
    )


def _episodes_section(data: RunData) -> str:
    parts = ["<h2>Episodes (failures first)</h2>"]
    for n, group in enumerate(data.groups):
        records = group.task.get("per_episode", [])
        # failures first, then by seed; episodes with a clip before those without
        ordered = sorted(records, key=lambda r: (bool(r.get("success")), not r.get("video"),
                                                 r.get("seed", 0)))  # fmt: skip
        fails = sum(1 for r in records if not r.get("success"))
        parts.append(f'<h3>{_e(group.title)} <span class="muted">({fails} failed of '
                     f"{len(records)})</span></h3>")  # fmt: skip
        parts.append(f'<section class="episodes" id="episodes-{n}">')
        parts += [_episode(r, group, data.run_dir) for r in ordered]
        parts.append("</section>")
    return "".join(parts)


def render_report(data: RunData) -> str:
    """The page for a loaded run (see the module docstring)."""
    title = f"Evaluation report: {data.run_dir.name}"
    body = (
        f"<h1>{_e(title)}</h1>"
        + _run_section(data)
        + _tasks_section(data)
        + _suite_section(data)
        + _episodes_section(data)
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body>{body}</body></html>\n"
    )


def write_report(run_dir: Path) -> Path:
    """Write ``run_dir/report.html`` from the run's JSON files; returns its path."""
    run_dir = Path(run_dir)
    data = load_run(run_dir)
    out = run_dir / REPORT
    tmp = out.with_suffix(".html.tmp")
    tmp.write_text(render_report(data), encoding="utf-8")
    tmp.replace(out)  # a reader never sees half a page
    return out
