"""The manifest of an exported policy: everything needed to run the ONNX model without torch.

``manifest.json`` sits beside the model files and the tokenizer (``tokenizer/``) in the
export directory. It records each graph's inputs and outputs (names, dtypes, shapes with
strings for dynamic axes: ``"batch"``, ``"past"`` ...; one graph ``model`` for the chunk and
flow heads, ``prefill`` / ``step`` / ``actions`` for the discrete head), the policy's interface (cameras, sizes), the
normalisation stats and action bounds (already applied inside the graph; kept for the
runtime's safety layer and for audit), and the sha256 of every model file and of the source
checkpoint. :func:`check_session` compares a loaded onnxruntime session with it, so a
manifest from another export fails loudly instead of producing wrong actions. An int8 export
also lists its calibration batch (:class:`Int8Check`): a few observations and their fp32
actions, which ``OrtPolicy`` replays through the int8 model on load.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from embodied_mm.fsio import sha256_file

MANIFEST_FILE = "manifest.json"
TOKENIZER_DIR = "tokenizer"
FORMAT = "embodied-mm-onnx"
VERSION = 1
BATCH = "batch"  # name of the dynamic axis in shapes

# onnxruntime's type strings for the numpy dtype names we use
ORT_TYPES = {"uint8": "tensor(uint8)", "int64": "tensor(int64)", "float32": "tensor(float)"}


class ManifestError(ValueError):
    """An export directory whose manifest is missing, malformed or does not match its model."""


@dataclass
class TensorSpec:
    name: str
    dtype: str  # numpy dtype name: uint8, int64, float32
    shape: list[int | str]  # ints, or BATCH for the dynamic batch axis


@dataclass
class GraphSpec:
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]


@dataclass
class ModelFile:
    file: str  # relative to the export directory
    sha256: str
    bytes: int


@dataclass
class Int8Check:
    """The int8 model's accuracy contract and the data to re-check it on another CPU.

    Error: max |int8 - fp32| over the calibration batch's actions, divided per action
    dimension by ``scale`` (robot units per normalised unit: half the bounds' range, or the
    std of a mean_std action), i.e. in normalised action units.
    """

    tolerance: float  # the documented bound (quantize.INT8_TOLERANCE), normalised units
    measured: float  # the error measured at export, on the exporting machine's CPU
    scale: list[float]  # (D,) robot units per normalised action unit
    scheme: str  # quantisation scheme (quantize.SCHEMES)
    observations: int  # calibration batch size
    source: str  # where the observations came from ("random (seed 1)", "dataset <path>")
    calibration: ModelFile  # .npz: the graph inputs and "reference_actions" (B, K, D) fp32


@dataclass
class Manifest:
    head: str  # action head kind of the source policy
    cameras: list[str]
    image_size: int
    state_dim: int
    action_dim: int
    chunk_size: int
    text_len: int  # instructions are cut / left-padded to exactly this many ids
    pad_id: int
    batch: int | None  # None: dynamic batch axis; else the graphs take exactly this batch
    graphs: dict[str, GraphSpec]  # graph name -> its inputs and outputs
    models: dict[str, dict[str, ModelFile]]  # precision ("fp32", "int8") -> graph -> file
    default_precision: str
    norm_modes: dict[str, str]
    stats: dict[str, dict[str, list[float]]]
    action_bounds: dict[str, list[float]] | None  # {"low": [...], "high": [...]} robot units
    source: dict[str, Any]  # checkpoint path, weights_sha256, config_sha256
    exporter: dict[str, Any]  # exporter name, opset, torch / onnx versions
    int8_check: Int8Check | None = None  # int8 exports of the chunk and flow heads
    format: str = FORMAT
    version: int = VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    def save(self, directory: Path) -> Path:
        path = Path(directory) / MANIFEST_FILE
        path.write_text(json.dumps(asdict(self), indent=1))
        return path

    @classmethod
    def load(cls, directory: str | Path) -> Manifest:
        path = Path(directory) / MANIFEST_FILE
        if not path.is_file():
            raise ManifestError(f"{directory} is not an ONNX export: {MANIFEST_FILE} is missing")
        try:
            data = json.loads(path.read_text())
            if data.get("format") != FORMAT:
                raise ValueError(f"format is {data.get('format')!r}, expected {FORMAT!r}")
            if data.get("version") != VERSION:
                raise ValueError(f"version is {data.get('version')!r}, expected {VERSION}")
            data["graphs"] = {
                name: GraphSpec(
                    [TensorSpec(**t) for t in g["inputs"]], [TensorSpec(**t) for t in g["outputs"]]
                )
                for name, g in data["graphs"].items()
            }
            data["models"] = {
                prec: {name: ModelFile(**f) for name, f in files.items()}
                for prec, files in data["models"].items()
            }
            # Exports before the calibration batch recorded a bare measured error.
            data.pop("int8_tolerance", None)
            if data.get("int8_check") is not None:
                check = dict(data["int8_check"])
                check["calibration"] = ModelFile(**check["calibration"])
                data["int8_check"] = Int8Check(**check)
            return cls(**data)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ManifestError(f"cannot read {path}: {err}") from err
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise ManifestError(f"malformed manifest {path}: {err}") from err

    def model_paths(self, directory: Path, precision: str | None = None) -> dict[str, Path]:
        """Graph name → model file of ``precision`` (default: ``default_precision``), each
        checked against its sha256."""
        precision = precision or self.default_precision
        if precision not in self.models:
            raise ManifestError(
                f"this export has no {precision!r} model; exported: {sorted(self.models)}"
            )
        files = self.models[precision]
        if sorted(files) != sorted(self.graphs):
            raise ManifestError(
                f"the {precision} models {sorted(files)} are not the graphs {sorted(self.graphs)}"
            )
        return {name: checked_file(Path(directory), entry) for name, entry in files.items()}

    def total_bytes(self, precision: str) -> int:
        return sum(f.bytes for f in self.models[precision].values())


def checked_file(directory: Path, entry: ModelFile, what: str = "model file") -> Path:
    """``entry``'s file in ``directory``, verified against its sha256 (else ManifestError)."""
    path = Path(directory) / entry.file
    if not path.is_file():
        raise ManifestError(f"{what} {path} named by the manifest is missing")
    if sha256_file(path) != entry.sha256:
        raise ManifestError(
            f"{what} {path} does not match the manifest (sha256 differs): the files "
            f"come from different exports or the {what} was modified"
        )
    return path


def model_file(directory: Path, name: str) -> ModelFile:
    path = Path(directory) / name
    return ModelFile(name, sha256_file(path), path.stat().st_size)


def check_session(graph: GraphSpec, session: Any, where: str) -> None:
    """The onnxruntime ``session``'s inputs and outputs must be exactly the manifest's."""
    problems = []
    for kind, specs, actual in (
        ("input", graph.inputs, session.get_inputs()),
        ("output", graph.outputs, session.get_outputs()),
    ):
        got = {a.name: a for a in actual}
        want = {s.name for s in specs}
        problems += [f"model has no {kind} {s.name!r}" for s in specs if s.name not in got]
        problems += [f"manifest lacks model {kind} {n!r}" for n in got if n not in want]
        for spec in specs:
            a = got.get(spec.name)
            if a is None:
                continue
            if a.type != ORT_TYPES.get(spec.dtype):
                problems.append(
                    f"{kind} {spec.name!r} is {a.type} in the model, {spec.dtype} in the manifest"
                )
            if len(a.shape) != len(spec.shape):
                problems.append(
                    f"{kind} {spec.name!r} has shape {a.shape} in the model, {spec.shape} in the manifest"
                )
                continue
            for dim_model, dim_spec in zip(a.shape, spec.shape, strict=True):
                # Symbolic axes are strings in both; only fixed sizes must agree.
                if (
                    isinstance(dim_model, int)
                    and isinstance(dim_spec, int)
                    and dim_model != dim_spec
                ):
                    problems.append(
                        f"{kind} {spec.name!r} has shape {a.shape} in the model, {spec.shape} in the manifest"
                    )
                    break
    if problems:
        raise ManifestError(f"manifest does not match the model {where}: " + "; ".join(problems))
