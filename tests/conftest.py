"""Shared pytest setup: headless rendering and a quiet, offline Hugging Face stack."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
if "PYTEST_XDIST_WORKER" in os.environ:
    # One intra-op thread per xdist worker (and its subprocesses): on a loaded 2-core machine,
    # two workers x two torch threads each made small-model steps ~10x slower (spin-waits).
    os.environ.setdefault("OMP_NUM_THREADS", "1")
