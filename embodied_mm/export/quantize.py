"""int8 quantisation of an exported model (onnxruntime.quantization), by named scheme.

The default, ``dynamic-per-channel-reduce-range``, stores MatMul/Gemm weights as int8 with one
scale per output channel, in 7 bits (``reduce_range``), and quantises activations to uint8 per
batch at run time (no calibration data).

Why 7 bits: on x86 CPUs without VNNI (AVX2, AVX-512 without VNNI, SSE4.1) onnxruntime's u8×s8
kernels multiply pairs of uint8 activations and int8 weights into a *saturating* int16
(``vpmaddubsw``): 2 × 255 × 127 = 64770 overflows 32767, so a layer's output is silently
clipped. VNNI CPUs accumulate in int32 and are exact. With 7-bit weights (|w| <= 63) a pair is
at most 2 × 255 × 63 = 32130 and cannot saturate, so the int8 model gives the same actions on
every x86 CPU. Per-channel scales win back the precision the lost bit costs. docs/export.md
has the measured table of every scheme below on both kernels.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Documented accuracy of the int8 model (docs/export.md): max |int8 - fp32| over a chunk, in
# normalised action units ([-1, 1] spans the action bounds), i.e. 5% of each dimension's range.
# Must hold with and without VNNI; tests/export checks it natively and under QEMU (no VNNI).
INT8_TOLERANCE = 0.1


@dataclass(frozen=True)
class Int8Scheme:
    """One way of quantising the linear layers (all weights int8, activations uint8)."""

    name: str
    static: bool = False  # activation ranges fixed from calibration data (QDQ) vs per batch
    per_channel: bool = False  # one weight scale per output channel vs per tensor
    reduce_range: bool = False  # 7-bit weights: u8×s8 pairs cannot saturate int16 (see above)
    uint8_weights: bool = False  # u8×u8 products: onnxruntime's slower, non-saturating kernel
    keep_fp32: tuple[str, ...] = ()  # node-name prefixes of layers left in float


SCHEMES = {
    s.name: s
    for s in (
        Int8Scheme("dynamic"),  # the scheme before per-channel + reduce_range
        Int8Scheme("dynamic-reduce-range", reduce_range=True),
        Int8Scheme("dynamic-per-channel", per_channel=True),
        Int8Scheme("dynamic-per-channel-reduce-range", per_channel=True, reduce_range=True),
        Int8Scheme("dynamic-u8u8", uint8_weights=True),
        Int8Scheme("dynamic-fp32-vision", keep_fp32=("/vision/",)),
        Int8Scheme("dynamic-fp32-backbone", keep_fp32=("/backbone/",)),
        Int8Scheme(
            "dynamic-fp32-head",
            keep_fp32=(
                "/out/",
                "/expert/",
                "/time_mlp/",
                "/memory_proj/",
                "/action_in",
                "/action_out",
            ),
        ),
        Int8Scheme("static-per-channel", static=True, per_channel=True),
        Int8Scheme(
            "static-per-channel-reduce-range", static=True, per_channel=True, reduce_range=True
        ),
    )
}
DEFAULT_SCHEME = "dynamic-per-channel-reduce-range"


def get_scheme(name: str) -> Int8Scheme:
    if name not in SCHEMES:
        raise ValueError(f"unknown int8 scheme {name!r}; known: {', '.join(SCHEMES)}")
    return SCHEMES[name]


def quantize_int8(
    fp32_model: Path,
    int8_model: Path,
    scheme: str = DEFAULT_SCHEME,
    calibration: Sequence[dict[str, np.ndarray]] = (),
) -> Path:
    """Write the int8 version of ``fp32_model`` to ``int8_model``. A static scheme needs
    ``calibration``: graph feed dicts (observations as the runtime feeds them)."""
    from onnxruntime.quantization import quant_pre_process

    chosen = get_scheme(scheme)
    if chosen.static and not calibration:
        raise ValueError(f"int8 scheme {scheme!r} is static: it needs calibration observations")
    # The quantiser logs a warning per tensor it leaves in float (e.g. LayerNorm); too noisy.
    logging.getLogger("onnxruntime.quantization").setLevel(logging.ERROR)
    # ORT's basic graph optimisations first: they fold the Identity nodes by which the
    # exporter shares a weight between the unrolled flow steps into plain initializers;
    # otherwise the quantiser transposes such a weight once per use under one name (an
    # invalid model).
    prepared = int8_model.with_suffix(".prep.onnx")
    quant_pre_process(str(fp32_model), str(prepared), skip_symbolic_shape=True)
    try:
        _quantize(prepared, int8_model, chosen, calibration)
    finally:
        prepared.unlink(missing_ok=True)
    return int8_model


def _linear_layers(model: Path) -> list[str]:
    """Names of the MatMul/Gemm nodes whose weight is a constant (those we quantise)."""
    import onnx

    graph = onnx.load(str(model)).graph
    constants = {t.name for t in graph.initializer}
    return [
        n.name
        for n in graph.node
        if n.op_type in ("MatMul", "Gemm") and len(n.input) > 1 and n.input[1] in constants
    ]


def _quantize(
    fp32_model: Path,
    int8_model: Path,
    scheme: Int8Scheme,
    calibration: Sequence[dict[str, np.ndarray]],
) -> None:
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )

    # startswith(()) is False: no layer is kept in float unless the scheme names some.
    exclude = [name for name in _linear_layers(fp32_model) if name.startswith(scheme.keep_fp32)]
    common = {
        # Linear layers only: quantising Gather (embeddings) saves file size but not time.
        "op_types_to_quantize": ["MatMul", "Gemm"],
        "per_channel": scheme.per_channel,
        "reduce_range": scheme.reduce_range,
        "weight_type": QuantType.QUInt8 if scheme.uint8_weights else QuantType.QInt8,
        "nodes_to_exclude": exclude,
        # Only MatMuls with a constant weight: attention's activation × activation products
        # would be quantised per call with ranges that change every step, for no speed gain.
        "extra_options": {"MatMulConstBOnly": True},
    }
    if not scheme.static:
        quantize_dynamic(str(fp32_model), str(int8_model), **common)
        return

    class Feeds(CalibrationDataReader):
        def __init__(self) -> None:
            self._left = iter(calibration)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._left, None)

    quantize_static(
        str(fp32_model),
        str(int8_model),
        Feeds(),
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QUInt8,
        **common,
    )
