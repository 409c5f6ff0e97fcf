"""Save nested state (optimizer, scheduler, RNG) as safetensors + JSON, never pickle.

``flatten_tree`` walks dicts, lists and tuples; every tensor is moved into a flat
``{key: Tensor}`` map (for safetensors) and replaced by a ``{"__tensor__": key}`` marker, so
the rest is plain JSON. Dicts with non-string keys (an optimizer's ``state`` is keyed by int)
and tuples are tagged so ``unflatten_tree`` rebuilds them exactly.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from embodied_mm.fsio import follow_umask

_TENSOR, _ITEMS, _TUPLE, _NDARRAY = "__tensor__", "__items__", "__tuple__", "__ndarray__"


def flatten_tree(obj: Any, prefix: str = "t") -> tuple[Any, dict[str, torch.Tensor]]:
    tensors: dict[str, torch.Tensor] = {}

    def walk(x: Any, path: str) -> Any:
        if isinstance(x, torch.Tensor):
            tensors[path] = x.detach().cpu().contiguous()
            return {_TENSOR: path}
        if isinstance(x, np.ndarray):
            tensors[path] = torch.from_numpy(np.ascontiguousarray(x))
            return {_NDARRAY: path}
        if isinstance(x, dict):
            if all(isinstance(k, str) for k in x):
                return {k: walk(v, f"{path}.{k}") for k, v in x.items()}
            return {_ITEMS: [[k, walk(v, f"{path}.{k}")] for k, v in x.items()]}
        if isinstance(x, tuple):
            return {_TUPLE: [walk(v, f"{path}.{i}") for i, v in enumerate(x)]}
        if isinstance(x, list):
            return [walk(v, f"{path}.{i}") for i, v in enumerate(x)]
        if x is None or isinstance(x, (bool, int, float, str)):
            return x
        if isinstance(x, (np.integer, np.floating)):
            return x.item()
        raise TypeError(f"cannot serialise {type(x).__name__} at {path!r} without pickle")

    return walk(obj, prefix), tensors


def unflatten_tree(tree: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(tree, list):
        return [unflatten_tree(v, tensors) for v in tree]
    if not isinstance(tree, dict):
        return tree
    if _TENSOR in tree:
        return tensors[tree[_TENSOR]]
    if _NDARRAY in tree:
        return tensors[tree[_NDARRAY]].numpy()
    if _TUPLE in tree:
        return tuple(unflatten_tree(v, tensors) for v in tree[_TUPLE])
    if _ITEMS in tree:
        return {k: unflatten_tree(v, tensors) for k, v in tree[_ITEMS]}
    return {k: unflatten_tree(v, tensors) for k, v in tree.items()}


def save_tree(obj: Any, directory: Path, name: str) -> None:
    """Write ``<name>.json`` and ``<name>.safetensors`` into ``directory`` (fsynced)."""
    tree, tensors = flatten_tree(obj)
    json_path = directory / f"{name}.json"
    with open(json_path, "w") as f:
        json.dump(tree, f)
        f.flush()
        os.fsync(f.fileno())
    st_path = directory / f"{name}.safetensors"
    save_file(tensors, str(st_path))
    follow_umask(st_path)  # safetensors creates its files 0600 whatever the umask
    with open(st_path, "rb") as f:
        os.fsync(f.fileno())


def load_tree(directory: Path, name: str) -> Any:
    """Inverse of :func:`save_tree`; a missing or corrupt file fails naming it."""
    json_path = directory / f"{name}.json"
    st_path = directory / f"{name}.safetensors"
    try:
        tree = json.loads(json_path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"cannot read training state {json_path}: {e}") from e
    try:
        tensors = load_file(str(st_path))
    except Exception as e:  # safetensors raises several error types for corrupt headers
        raise ValueError(f"cannot read training state {st_path}: {e}") from e
    return unflatten_tree(tree, tensors)
