"""An exported policy on onnxruntime, with the :class:`~embodied_mm.model.modeling_vla.VLAPolicy`
inference API (``predict_chunk``, ``reset``, ``config``), so the runtime's ``LocalPolicy``,
the chunk executors and the policy server run it unchanged. Needs numpy, onnxruntime and
tokenizers only: no torch.

Observations go through the export's saved processor pipeline (``processor.json``, the
checkpoint's): this class runs its host steps (input checks, tokenisation with its cache,
padded to the graph's fixed text length); its tensor steps (camera pixels, normalisation and
its inverse) were traced into the graph from the same step code. An export made before
processor files existed runs the same host steps, built from its manifest.

An int8 model is re-checked on load: the export's calibration batch (a few observations and
their fp32 actions, listed in the manifest) runs through it, and an error above the manifest's
tolerance raises an :class:`Int8AccuracyWarning` naming both. int8 accuracy depends on the CPU's
integer kernels (see ``quantize.py``), so the export machine's figure does not carry over.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from embodied_mm.export.manifest import (
    TOKENIZER_DIR,
    Manifest,
    ManifestError,
    check_session,
    checked_file,
)
from embodied_mm.features import OBS_STATE, image_key
from embodied_mm.processor.core import Pipeline, Resources, has_processor
from embodied_mm.processor.observation import ObservationCheck, ObservationCheckParams
from embodied_mm.processor.tokenize import TOKENS, TOKENS_MASK, TokenizeTask, TokenizeTaskParams

REFERENCE = "reference_actions"  # key of the fp32 actions in the calibration batch file


class Int8AccuracyWarning(UserWarning):
    """The int8 model's error on this CPU exceeds the export's documented tolerance."""


@dataclass
class OrtPolicyConfig:
    """The part of ``PolicyConfig`` the runtime reads, from the manifest."""

    cameras: list[str]
    image_size: int
    state_dim: int
    action_dim: int
    chunk_size: int
    max_text_tokens: int
    head_kind: str
    precision: str


def session_options(threads: int | None = None) -> Any:
    """Tuned CPU options: every graph optimisation (attention/GELU/LayerNorm fusion, constant
    folding), sequential execution (a policy graph is a chain; parallel execution only adds
    scheduling), and ``threads`` intra-op threads (default: ``OMP_NUM_THREADS`` when set, as
    torch does, else the core count)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    env_threads = int(os.environ.get("OMP_NUM_THREADS", "0") or 0)
    opts.intra_op_num_threads = threads or env_threads or os.cpu_count() or 1
    opts.inter_op_num_threads = 1
    return opts


class OrtPolicy:
    """``predict_chunk(obs) -> (B, K, D)`` float32 robot units, from an export directory."""

    generates_plans = False  # the export holds the action path only (see generate_plan)

    def __init__(
        self,
        export_dir: str | Path,
        precision: str | None = None,
        threads: int | None = None,
        seed: int = 0,
        check_int8: bool = True,
    ) -> None:
        """``precision``: "fp32" or "int8" (default: the export's default). ``seed`` seeds
        the start noise of a flow policy exported with ``noise_seed=None``. ``check_int8``:
        replay the calibration batch through an int8 model (chunk and flow heads) and warn
        when its error exceeds the manifest's tolerance (sets :attr:`int8_error`)."""
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.export_dir = Path(export_dir)
        self.manifest = m = Manifest.load(self.export_dir)
        paths = m.model_paths(self.export_dir, precision)
        self.precision = precision or m.default_precision
        opts = session_options(threads)
        self.sessions = {}
        for name, path in paths.items():
            session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
            check_session(m.graphs[name], session, str(path))
            self.sessions[name] = session
        tok_file = self.export_dir / TOKENIZER_DIR / "tokenizer.json"
        if not tok_file.is_file():
            raise ManifestError(f"the export's tokenizer {tok_file} is missing")
        try:
            self.tokenizer = Tokenizer.from_file(str(tok_file))
        except Exception as err:  # tokenizers raises a bare Exception for a malformed file
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise ManifestError(
                f"cannot load the export's tokenizer {tok_file} ({reason}); expected the "
                "tokenizer.json that export writes"
            ) from err
        self.config = OrtPolicyConfig(
            cameras=list(m.cameras),
            image_size=m.image_size,
            state_dim=m.state_dim,
            action_dim=m.action_dim,
            chunk_size=m.chunk_size,
            max_text_tokens=m.text_len,
            head_kind=m.head,
            precision=self.precision,
        )
        graph = m.graphs["model" if "model" in m.graphs else "prefill"]
        self._input_names = [s.name for s in graph.inputs]
        self._rng = np.random.default_rng(seed)
        self.processor = self._host_pipeline()
        self.tokenize = next(s for s in self.processor.steps if isinstance(s, TokenizeTask))
        self.tokenize.fixed_length = m.text_len  # the graph's fixed text length
        # Max |int8 - fp32| on the calibration batch on this CPU, normalised action units.
        self.int8_error: float | None = None
        if check_int8 and self.precision == "int8" and "model" in self.sessions:
            self._check_int8()

    def _check_int8(self) -> None:
        """Replay the calibration batch; warn when the error exceeds the manifest's tolerance."""
        check = self.manifest.int8_check
        if check is None:
            warnings.warn(
                f"{self.export_dir}: this int8 export has no calibration batch, so its error "
                "on this CPU is unchecked (int8 accuracy depends on the CPU's integer kernels); "
                "re-export it with --quantize int8",
                Int8AccuracyWarning,
                stacklevel=3,
            )
            return
        path = checked_file(self.export_dir, check.calibration, "calibration batch")
        with np.load(path) as data:
            feeds = {name: data[name] for name in self._input_names}
            reference = data[REFERENCE]  # (B, K, D) fp32 actions
        self.int8_error = int8_error(self, feeds, reference, check.scale)
        if self.int8_error > check.tolerance:
            warnings.warn(
                f"{self.export_dir}: the int8 model's actions are off by {self.int8_error:.3g} "
                f"(max |int8 - fp32| in normalised action units over the export's "
                f"{check.observations} calibration observations) on this CPU, over the "
                f"manifest's tolerance {check.tolerance:g} (measured {check.measured:.3g} at "
                "export); use precision='fp32' or an export without --quantize",
                Int8AccuracyWarning,
                stacklevel=3,
            )

    # ------------------------------------------------------------------ inputs
    def _host_pipeline(self) -> Pipeline:
        """The host steps of the export's saved pipeline (or, for an export made before
        processor files existed, the same steps built from the manifest)."""
        resources = Resources(tokenizer=self.tokenizer)
        if has_processor(self.export_dir):
            return Pipeline.load(self.export_dir, resources, stages=("host",))
        m = self.manifest
        return Pipeline(
            [
                ObservationCheck(ObservationCheckParams(list(m.cameras), m.state_dim)),
                TokenizeTask(TokenizeTaskParams(m.text_len, m.pad_id), self.tokenizer),
            ]
        )

    def encode_tasks(self, tasks: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Instructions → left-padded ids (B, L) and mask (B, L), L = the export's text length
        (the pipeline's ``tokenize_task`` step, padded to the fixed length)."""
        ids, mask = self.tokenize.encode(tasks)
        assert mask is not None  # a fixed length always gives the mask
        return ids, mask

    def _image(self, img: Any, key: str) -> np.ndarray:
        """A checked frame batch, as this export's graph takes it: uint8 (B, s, s, 3)."""
        img = np.asarray(img)
        s = self.config.image_size
        if img.dtype != np.uint8 or img.shape[1:] != (s, s, 3):
            raise ValueError(
                f"{key} must be uint8 ({len(img)}, {s}, {s}, 3) for this export; got "
                f"{img.dtype} {tuple(img.shape)} (resize frames to the policy's image size)"
            )
        return np.ascontiguousarray(img)

    def feeds(self, obs: dict[str, Any]) -> dict[str, np.ndarray]:
        """The onnxruntime input dict of a batched observation (LeRobot keys)."""
        batch = Pipeline.run(self.processor.steps, obs)
        feeds: dict[str, np.ndarray] = {}
        for cam in self.config.cameras:
            key = image_key(cam)
            feeds[f"image_{cam}"] = self._image(batch[key], key)  # (B, H, W, 3)
        feeds["state"] = np.ascontiguousarray(np.asarray(batch[OBS_STATE], dtype=np.float32))
        feeds["text_ids"], feeds["text_mask"] = batch[TOKENS], batch[TOKENS_MASK]
        b = feeds["state"].shape[0]
        if "noise" in self._input_names:
            shape = (b, self.config.chunk_size, self.config.action_dim)
            feeds["noise"] = self._rng.standard_normal(shape, dtype=np.float32)
        return feeds

    # ------------------------------------------------------------------ the API
    def predict_chunk(self, obs: dict[str, Any]) -> np.ndarray:
        """Action chunk (B, K, D) float32 in robot units, inside the export's action bounds."""
        return self.run_feeds(self.feeds(obs))

    def run_feeds(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        """Actions (B, K, D) of graph inputs as :meth:`feeds` builds them, any batch size."""
        run = self._run_graph if "model" in self.sessions else self._decode_discrete
        n, b = self.manifest.batch, feeds["state"].shape[0]
        if n is None or n == b:
            return run(feeds)
        # A fixed-batch export: run groups of n samples, padding the last by repetition.
        chunks = []
        for i in range(0, b, n):
            part = {k: v[i : i + n] for k, v in feeds.items()}
            m = part["state"].shape[0]
            if m < n:
                part = {
                    k: np.concatenate([v, np.repeat(v[-1:], n - m, 0)]) for k, v in part.items()
                }
            chunks.append(run(part)[:m])
        return np.concatenate(chunks)

    def _run_graph(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        return self.sessions["model"].run(["actions"], feeds)[0]  # (B, K, D)

    def _decode_discrete(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        """``DiscreteHead.predict`` on the prefill / step / actions graphs: K·D greedy bins,
        the KV cache handed from each call to the next as plain arrays."""
        step = self.sessions["step"]
        past_names = [i.name for i in step.get_inputs()][3:]  # after bin, mask, pos
        bin_, mask, pos, *cache = self.sessions["prefill"].run(None, feeds)
        bins = [bin_]  # each (B, 1)
        for _ in range(self.config.chunk_size * self.config.action_dim - 1):
            mask = np.concatenate([mask, np.ones_like(bin_)], axis=1)  # (B, T + 1)
            pos = pos + 1  # (B, 1)
            step_feeds = {
                "bin": bin_,
                "mask": mask,
                "pos": pos,
                **dict(zip(past_names, cache, strict=True)),
            }
            bin_, *cache = step.run(None, step_feeds)
            bins.append(bin_)
        return self.sessions["actions"].run(None, {"bins": np.concatenate(bins, axis=1)})[0]

    def generate_plan(self, obs: dict[str, Any], **_: Any) -> list[str]:
        raise NotImplementedError(
            "plan text is not exported: an ONNX export holds the action path only; serve the "
            "PyTorch checkpoint to generate plans"
        )

    def reset(self) -> None:
        """New episode: drops cached instruction ids (the graph itself keeps no state)."""
        self.processor.reset()


def int8_error(
    policy: OrtPolicy, feeds: dict[str, np.ndarray], reference: np.ndarray, scale: list[float]
) -> float:
    """Max |policy - reference| over the actions of ``feeds``, divided per action dimension by
    ``scale`` (robot units per normalised unit): the error in normalised action units."""
    actions = policy.run_feeds(feeds)  # (B, K, D) robot units
    return float((np.abs(actions - reference) / np.asarray(scale, dtype=np.float32)).max())


def random_observation(config: Any, batch: int, seed: int) -> dict[str, Any]:
    """A batched observation (LeRobot keys, numpy) for a policy ``config`` with ``cameras``,
    ``image_size`` and ``state_dim``: for measuring exported models (torch-free, so the
    benchmark's memory workers can use it)."""
    rng = np.random.default_rng(seed)
    s = config.image_size
    obs: dict[str, Any] = {
        f"observation.images.{c}": rng.integers(0, 256, (batch, s, s, 3), dtype=np.uint8)
        for c in config.cameras
    }  # each (B, H, W, 3)
    obs["observation.state"] = rng.standard_normal((batch, config.state_dim)).astype(np.float32)
    tasks = ["pick up the red cube and lift it", "reach", "push the cube to the left"]
    obs["task"] = [tasks[i % len(tasks)] for i in range(batch)]
    return obs
