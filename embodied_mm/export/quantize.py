"""Dynamic int8 quantisation of an exported model (onnxruntime.quantization).

Dynamic quantisation stores MatMul/Gemm weights as int8 and quantises activations per batch
at run time: no calibration data is needed, and it targets exactly the linear layers that
dominate a transformer policy on CPU.
"""

from __future__ import annotations

import logging
from pathlib import Path


def quantize_int8(fp32_model: Path, int8_model: Path) -> Path:
    """Write the int8 version of ``fp32_model`` to ``int8_model``."""
    from onnxruntime.quantization import quant_pre_process

    # The quantiser logs a warning per tensor it leaves in float (e.g. LayerNorm); too noisy.
    logging.getLogger("onnxruntime.quantization").setLevel(logging.ERROR)
    # ORT's basic graph optimisations first: they fold the Identity nodes by which the
    # exporter shares a weight between the unrolled flow steps into plain initializers;
    # otherwise the quantiser transposes such a weight once per use under one name (an
    # invalid model).
    prepared = int8_model.with_suffix(".prep.onnx")
    quant_pre_process(str(fp32_model), str(prepared), skip_symbolic_shape=True)
    try:
        _quantize(prepared, int8_model)
    finally:
        prepared.unlink(missing_ok=True)
    return int8_model


def _quantize(fp32_model: Path, int8_model: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(fp32_model),
        str(int8_model),
        # Linear layers only: quantising Gather (embeddings) saves file size but not time.
        op_types_to_quantize=["MatMul", "Gemm"],
        weight_type=QuantType.QInt8,
        # Only MatMuls with a constant weight: attention's activation × activation products
        # would be quantised per call with ranges that change every step, for no speed gain.
        extra_options={"MatMulConstBOnly": True},
    )


# Documented accuracy of the int8 model (docs/export.md): max |int8 - fp32| over a chunk, in
# normalised action units ([-1, 1] spans the action bounds), i.e. 5% of each dimension's range.
# Measured 0.02-0.05 on the tiny chunk and flow recipes; tests/export checks against this.
INT8_TOLERANCE = 0.1
