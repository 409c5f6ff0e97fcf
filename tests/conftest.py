"""Shared pytest setup: headless rendering and a quiet, offline Hugging Face stack."""

import os

import pytest

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
if "PYTEST_XDIST_WORKER" in os.environ:
    # One intra-op thread per xdist worker (and its subprocesses): on a loaded 2-core machine,
    # two workers x two torch threads each made small-model steps ~10x slower (spin-waits).
    os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """The real tiny ``vla-chunk`` recipe saved with save_pretrained (random init)."""
    from embodied_mm.policies import make_policy

    path = tmp_path_factory.mktemp("ckpt")
    make_policy("vla-chunk", size="tiny").save_pretrained(path)
    return path
