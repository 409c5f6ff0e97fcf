"""Training logs: a progress bar, TensorBoard scalars, ``metrics.jsonl`` and a loss plot PNG."""

from __future__ import annotations

import json
from pathlib import Path

from tqdm import tqdm

from embodied_mm.fsio import atomic_write_bytes


class TrainLogger:
    """Writes on the main process only (``enabled=False`` elsewhere).

    ``drop_after``: on resume, the step of the checkpoint the run continues from. Rows logged
    after it describe steps the resumed run trains again, so they are dropped from
    ``metrics.jsonl`` (else the file would hold those steps twice).
    """

    def __init__(
        self,
        run_dir: Path,
        total_steps: int,
        start_step: int,
        enabled: bool,
        drop_after: int | None = None,
    ) -> None:
        self.run_dir = run_dir
        self.enabled = enabled
        self.history: list[dict[str, float]] = []
        self._bar = None
        self._tb = None
        if not enabled:
            return
        from torch.utils.tensorboard import SummaryWriter

        if drop_after is not None:
            drop_rows_after(run_dir / "metrics.jsonl", drop_after)
        self._tb = SummaryWriter(str(run_dir / "tensorboard"))
        self._jsonl = open(run_dir / "metrics.jsonl", "a")  # noqa: SIM115 (closed in close())
        # a bar on a terminal only (disable=None): piped stderr keeps errors on their own line
        self._bar = tqdm(
            total=total_steps, initial=start_step, desc="train", unit="step", disable=None
        )

    def log(self, step: int, metrics: dict[str, float], every: int, prefix: str = "") -> None:
        if not self.enabled:
            return
        if not prefix:
            self._bar.update(step - self._bar.n)
        if step % max(every, 1):
            return
        row = {"step": step, **{prefix + k: float(v) for k, v in metrics.items()}}
        self.history.append(row)
        self._jsonl.write(json.dumps(row) + "\n")
        self._jsonl.flush()
        for key, value in row.items():
            if key != "step":
                self._tb.add_scalar(key, value, step)
        if "loss" in metrics and not prefix:
            self._bar.set_postfix(loss=f"{metrics['loss']:.4f}")

    def close(self) -> None:
        if not self.enabled:
            return
        self._bar.close()
        self._tb.close()
        self._jsonl.close()
        plot_losses(self.run_dir / "metrics.jsonl", self.run_dir / "loss.png")


def drop_rows_after(metrics_jsonl: Path, step: int) -> None:
    """Keep the rows of ``metrics_jsonl`` up to ``step``; rewritten atomically."""
    if not metrics_jsonl.is_file():
        return
    lines = metrics_jsonl.read_text().splitlines()
    kept = [line for line in lines if line.strip() and json.loads(line)["step"] <= step]
    if len(kept) != len(lines):
        atomic_write_bytes(metrics_jsonl, "".join(f"{line}\n" for line in kept).encode())


def plot_losses(metrics_jsonl: Path, out_png: Path) -> None:
    """One PNG with every logged loss curve (keys containing "loss", "l1", "ce" or "mse")."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in metrics_jsonl.read_text().splitlines() if line.strip()]
    curves: dict[str, tuple[list[int], list[float]]] = {}
    for row in rows:
        for key, value in row.items():
            if any(tag in key for tag in ("loss", "l1", "ce", "mse")):
                xs, ys = curves.setdefault(key, ([], []))
                xs.append(row["step"])
                ys.append(value)
    fig, ax = plt.subplots(figsize=(7, 4))
    for key, (xs, ys) in sorted(curves.items()):
        ax.plot(xs, ys, label=key)
    ax.set_xlabel("step")
    ax.set_yscale("log" if all(y > 0 for _, ys in curves.values() for y in ys) else "linear")
    ax.grid(alpha=0.3)
    if curves:
        ax.legend()
    fig.tight_layout()
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
