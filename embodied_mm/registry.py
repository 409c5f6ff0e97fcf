"""String-keyed registries with lazy imports.

A registry maps a short name to either an object or a ``"module:attribute"`` string that is
imported on first use, so listing names never imports heavy dependencies. An unknown name
fails with the list of known ones.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Generic, TypeVar

from embodied_mm.errors import UsageError

T = TypeVar("T")


class UnknownNameError(KeyError, UsageError):
    """Raised for a name that is not registered; the message lists the known names. A
    KeyError (a failed lookup) and a :class:`~embodied_mm.errors.UsageError` (the name came
    from the user: the command line shows it as one line)."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])


class Registry(Generic[T]):
    """A named collection of components (heads, projectors, recipes, tasks, ...)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T | str] = {}

    def register(self, name: str, target: T | str | None = None):
        """Register ``target`` under ``name``; without a target, acts as a decorator."""
        if target is not None:
            self._add(name, target)
            return target

        def decorator(obj: T) -> T:
            self._add(name, obj)
            return obj

        return decorator

    def _add(self, name: str, target: T | str) -> None:
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = target

    def get(self, name: str) -> T:
        if name not in self._entries:
            known = ", ".join(sorted(self._entries)) or "(none)"
            raise UnknownNameError(f"unknown {self.kind} {name!r}; known: {known}")
        entry = self._entries[name]
        if isinstance(entry, str):
            module_name, _, attr = entry.partition(":")
            entry = getattr(importlib.import_module(module_name), attr)
            self._entries[name] = entry
        return entry  # type: ignore[return-value]

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)
