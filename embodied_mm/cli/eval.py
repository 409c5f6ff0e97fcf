"""``embodied-mm eval``, ``eval-compare``, ``eval-plans``, ``eval-goals`` and ``eval-actions``."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from embodied_mm.cli.app import app
from embodied_mm.cli.control import (
    HZ_HELP,
    LATENCY_HELP,
    MODE_HELP,
    REFILL_HELP,
    VIDEO_CAMERA_HELP,
)
from embodied_mm.cli.plan_options import INSTRUCTION_HELP, PLAN_HELP, is_export, plan_line
from embodied_mm.runtime.controller import ControlSpec


@app.command("eval")
def eval_command(
    checkpoint: Path = typer.Option(..., help="Policy directory (save_pretrained output)."),
    env: str = typer.Option(
        ..., help="Env id(s), comma-separated, or all: every task `embodied-mm envs` lists."
    ),
    engine: str = typer.Option("mujoco", help="mujoco | pybullet"),
    episodes: int = typer.Option(20, help="Episodes per task."),
    split: str = typer.Option("train", help="Instruction split: train | heldout."),
    seed: int = typer.Option(100_000, help="First episode seed (held out from demo seeds)."),
    num_envs: int = typer.Option(2, help="Parallel envs per process (async vector env)."),
    out: Path = typer.Option(Path("outputs/eval"), help="Where eval_info.json and videos go."),
    n_action_steps: int | None = typer.Option(
        None, help="open_loop: actions played per chunk before the next prediction (default: all)."
    ),
    mode: str = typer.Option("open_loop", help=MODE_HELP),
    hz: float = typer.Option(20.0, help=HZ_HELP),
    refill_at: int = typer.Option(4, help=REFILL_HELP),
    latency_steps: int | None = typer.Option(None, help=LATENCY_HELP),
    perturb: list[str] = typer.Option(
        [],
        help="NAME=LEVEL: a perturbation factor at a level (repeatable; `envs --perturbations`).",
    ),
    suite: str | None = typer.Option(
        None, help="robustness: every perturbation factor at each level, one at a time."
    ),
    quick: bool = typer.Option(False, help="--suite: one level per factor."),
    factors: str | None = typer.Option(None, help="--suite: only these factors (comma-separated)."),
    report: bool = typer.Option(
        False, help="Also write OUT/report.html: tables, plots, episodes with failure clips first."
    ),
    report_clips: int = typer.Option(
        4, help="--report: per task, clips of the first N failed episodes (and the first success)."
    ),
    video_camera: str = typer.Option("presentation", help=VIDEO_CAMERA_HELP),
    plan: bool | None = typer.Option(None, "--plan/--no-plan", help=PLAN_HELP),
    instruction: str | None = typer.Option(None, help=INSTRUCTION_HELP),
) -> None:
    """Success rate (95% Wilson interval), mean episode length and safety interventions per
    task, through deploy's controller stack; runs sharded across processes under
    `accelerate launch`. With --suite, one evaluation per perturbation factor x level
    (suite.json and a table)."""
    from embodied_mm.envs.perturbations import parse_perturb_args
    from embodied_mm.envs.registration import expand_env_ids
    from embodied_mm.errors import UsageError
    from embodied_mm.eval.evaluate import run_eval, task_table
    from embodied_mm.runtime.instruction import check_instruction

    env_ids = expand_env_ids(env)  # `all`: every registered task
    instruction = check_instruction(instruction)
    control = ControlSpec(mode, hz, refill_at, latency_steps, n_action_steps)  # UsageError
    levels = parse_perturb_args(perturb)  # UsageError naming the known factors / levels
    if report_clips < 0:
        raise UsageError(f"--report-clips must be >= 0, got {report_clips}")
    if suite is not None:
        if levels:
            raise UsageError("--suite sets the perturbations itself; drop --perturb")
        _run_suite(checkpoint, env_ids, engine, episodes, out, suite, quick, factors,
                   split, seed, num_envs, control, report_clips if report else 0,
                   video_camera, instruction, plan)  # fmt: skip
        if report and (out / "suite.json").is_file():  # (the main process wrote it)
            from embodied_mm.report.html import write_report

            typer.echo(f"wrote {write_report(out)}")
        return
    if quick or factors:
        raise UsageError("--quick and --factors go with --suite")
    info = run_eval(checkpoint, env_ids, engine, episodes, out, split, seed, num_envs, control,
                    perturb=levels, video_camera=video_camera,
                    clip_failures=report_clips if report else 0, with_plan=plan,
                    instruction=instruction)  # fmt: skip
    if info is None:  # not the main process
        return
    typer.echo(plan_line(info["plans"], plan, export=is_export(checkpoint)))
    typer.echo(
        f'instruction: "{instruction}" (--instruction, every episode)'
        if instruction is not None
        else "instruction: each env's, sampled per episode (per_episode[].task)"
    )
    for t in info["tasks"]:
        lo, hi = t["ci95"]
        typer.echo(
            f"{t['env_id']:32s} {t['engine']:8s} {t['split']:7s} success "
            f"{t['success_rate']:.0%} ({t['successes']}/{t['episodes']}, 95% CI "
            f"{lo:.0%}-{hi:.0%}), mean length {t['mean_length']:.1f}, "
            f"interventions {t['interventions'] or 'none'}"
        )
    typer.echo(task_table(info))
    typer.echo(f"wrote {out / 'eval_info.json'}")
    if report:
        from embodied_mm.report.html import write_report

        typer.echo(f"wrote {write_report(out)}")


def _run_suite(checkpoint, env_ids, engine, episodes, out, suite, quick, factors, split, seed,
               num_envs, control, clip_failures=0, video_camera="presentation",
               instruction=None, plan=None) -> None:  # fmt: skip
    from embodied_mm.eval.suite import parse_factor_list, run_suite, suite_table

    result = run_suite(checkpoint, env_ids, engine, episodes, out, suite, quick,
                       parse_factor_list(factors), split, seed, num_envs, control,
                       clip_failures=clip_failures, video_camera=video_camera,
                       instruction=instruction, with_plan=plan)  # fmt: skip
    if result is None:  # not the main process
        return
    typer.echo(suite_table(result))
    typer.echo(f"{len(result['cells'])} cells in {result['seconds'] / 60:.1f} min; "
               f"wrote {out / 'suite.json'}")  # fmt: skip


def _read_for_compare(path: Path) -> dict:
    """A suite.json, or an eval_info.json checked by read_eval_info (one-line errors)."""
    from embodied_mm.eval.evaluate import read_eval_info
    from embodied_mm.eval.suite import is_suite

    try:
        info = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return read_eval_info(path)  # its one-line error
    return info if is_suite(info) else read_eval_info(path)


@app.command("eval-compare")
def eval_compare(
    baseline: Path = typer.Argument(..., help="eval_info.json (or suite.json) of the reference."),
    candidate: Path = typer.Argument(..., help="eval_info.json (or suite.json) to check."),
    max_drop: float = typer.Option(0.1, help="Success-rate drop that counts as a regression."),
) -> None:
    """Flag tasks (or, for two suite.json, task x factor x level cells) whose success rate
    regressed; exits 1 when any did."""
    from embodied_mm.errors import UsageError
    from embodied_mm.eval.evaluate import compare_evals
    from embodied_mm.eval.suite import compare_suites, is_suite

    if not 0 <= max_drop <= 1:  # nan fails too
        raise UsageError(f"--max-drop must be a success-rate drop in [0, 1], got {max_drop}")
    base_info, cand_info = _read_for_compare(baseline), _read_for_compare(candidate)
    if is_suite(base_info) or is_suite(cand_info):
        return _compare_suites(compare_suites(base_info, cand_info, max_drop))
    rows = compare_evals(base_info, cand_info, max_drop)
    for r in rows:
        env_id, engine, split = r["task"]
        base = "n/a" if r["baseline"] is None else f"{r['baseline']:.0%}"
        flag = "REGRESSION" if r["regression"] else "ok"
        typer.echo(
            f"{env_id:32s} {engine:8s} {split:7s} {base:>5s} -> {r['candidate']:.0%}  {flag}"
        )
    if any(r["regression"] for r in rows):
        raise typer.Exit(1)


@app.command("eval-plans")
def eval_plans(
    checkpoint: Path = typer.Option(..., help="Policy directory (save_pretrained output)."),
    dataset: str = typer.Option(
        ..., help="Held-out demo dataset(s), one per task, comma-separated (record --seed 200000)."
    ),
    episodes: int = typer.Option(20, help="Episodes scored per dataset (its first N)."),
    every: int = typer.Option(1, help="Score every N-th frame of each episode."),
    batch_size: int = typer.Option(32, help="Frames per plan-generation batch."),
    out: Path = typer.Option(Path("outputs/eval_plans"), help="Where plan_match.json goes."),
) -> None:
    """Plan exact match: on held-out demo frames, how often the policy's generated plan text
    is the scripted expert's phase label, per task and overall (95% Wilson intervals)."""
    from embodied_mm.eval.plan_match import evaluate_plans, plan_table

    roots = [Path(d) for d in dataset.split(",") if d.strip()]
    info = evaluate_plans(checkpoint, roots, episodes, out, every, batch_size)
    typer.echo(plan_table(info))
    typer.echo(f"wrote {out / 'plan_match.json'}")


@app.command("eval-goals")
def eval_goals(
    checkpoint: Path = typer.Option(..., help="Policy directory with a goal head."),
    dataset: str = typer.Option(
        ..., help="Demo dataset(s), one per task, comma-separated (held-out: record --seed 200000)."
    ),
    episodes: int = typer.Option(
        20, help="Episodes scored per dataset (the first frame of its first N)."
    ),
    out: Path = typer.Option(Path("outputs/eval_goals"), help="Where goal_error.json goes."),
) -> None:
    """Grounding check: the goal head's error on each episode's first frame (state units:
    metres for the gripper's x, y) against the spread of the targets, per task and waypoint.
    Near the spread on held-out demos = the grounding memorised its training scenes."""
    from embodied_mm.eval.goal_error import evaluate_goals, goal_table

    roots = [Path(d) for d in dataset.split(",") if d.strip()]
    info = evaluate_goals(checkpoint, roots, episodes, out)
    typer.echo(goal_table(info))
    typer.echo(f"wrote {out / 'goal_error.json'}")


@app.command("eval-actions")
def eval_actions(
    checkpoint: Path = typer.Option(..., help="Policy directory (save_pretrained output)."),
    dataset: str = typer.Option(
        ..., help="Demo dataset(s), one per task, comma-separated (held-out: record --seed 200000)."
    ),
    episodes: int = typer.Option(20, help="Episodes scored per dataset (its first N)."),
    batch_size: int = typer.Option(32, help="Frames per batch."),
    out: Path = typer.Option(Path("outputs/eval_actions"), help="Where action_error.json goes."),
) -> None:
    """Action check: on demo frames, the policy's first action against the expert's per action
    dim (mean error against the spread, sign agreement), on first frames and on all frames.
    An error near the spread = a dim the policy did not learn."""
    from embodied_mm.eval.action_error import action_table, evaluate_actions

    roots = [Path(d) for d in dataset.split(",") if d.strip()]
    info = evaluate_actions(checkpoint, roots, episodes, out, batch_size)
    typer.echo(action_table(info))
    typer.echo(f"wrote {out / 'action_error.json'}")


def _compare_suites(rows: list[dict]) -> None:
    for r in rows:
        env_id, factor, level = r["cell"]
        base = "n/a" if r["baseline"] is None else f"{r['baseline']:.0%}"
        flag = "REGRESSION" if r["regression"] else "ok"
        typer.echo(f"{env_id:32s} {factor:16s} {level:>3s} {base:>5s} -> "
                   f"{r['candidate']:.0%}  {flag}")  # fmt: skip
    if any(r["regression"] for r in rows):
        raise typer.Exit(1)
