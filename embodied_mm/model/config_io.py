"""The one config system: nested dataclasses ↔ plain dicts, YAML/JSON files and dotted
command-line flags, with typed and validated fields.

Built on `draccus <https://github.com/dlwh/draccus>`_ (what LeRobot uses): one decoder turns a
plain dict into nested dataclasses, whether the dict came from a YAML file, a checkpoint's
``config.json`` or flags like ``--policy.vision.film true``, and the same dataclasses define
the flags and their help. ``tyro`` builds equally good command lines, but it decodes only
argv, not the dicts read from files, so checkpoints would need a second decoder.

On top of draccus this module adds what a user needs when a value is wrong: every error is a
:class:`ConfigError`, one line that names the file (or the flag), the dotted field and what
is accepted, e.g. ``config.json: config.chunk_size: expected int ≥ 1, got 'eight'``.

Value rules: a config class derives from :class:`Checked` and lists its constraints in
``RULES`` (field name → :class:`Rule`). They are checked with the field types whenever the
class is constructed, and once more after decoding so that errors carry the full path.
"""

from __future__ import annotations

import argparse
import contextvars
import dataclasses
import difflib
import functools
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

import draccus
import mergedeep
import yaml
from draccus.argparsing import ArgumentParser
from draccus.utils import DecodingError, ParsingError

from embodied_mm.errors import UsageError

C = TypeVar("C")
FieldPath = tuple[str, ...]


class ConfigError(UsageError):
    """A wrong config value, as one line: ``SOURCE: FIELD: what is accepted, got what``
    (the command line prints it as ``error: ...`` and exits 2).

    ``path`` is the dotted field (``("policy", "chunk_size")``); ``source`` the file the value
    came from (None: from Python or from flags); ``flag`` renders the field as ``--a.b``."""

    def __init__(
        self, path: Sequence[str], message: str, source: str | None = None, flag: bool = False
    ) -> None:
        self.path = tuple(path)
        self.message = message
        self.source = source
        self.flag = flag
        super().__init__(str(self))

    def __str__(self) -> str:
        name = ".".join(self.path)
        if self.flag and name:
            name = f"--{name}"
        return ": ".join([p for p in (self.source, name) if p] + [self.message])

    def __reduce__(self):  # picklable (worker processes) despite the custom __init__
        return (ConfigError, (self.path, self.message, self.source, self.flag))

    def located(
        self, source: str | None = None, prefix: Sequence[str] = (), flag: bool = False
    ) -> ConfigError:
        """The same error, said of ``source`` and of the field under ``prefix``."""
        return ConfigError((*prefix, *self.path), self.message, source, flag)


# --- value rules ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """What a field accepts beyond its type: ``describe`` reads after the type name
    ("int ≥ 1"); ``item`` applies the rule to each element of a list (or value of a dict)."""

    describe: str | Callable[[], str]
    test: Callable[[Any], bool] = lambda v: True
    item: Rule | None = None

    def text(self) -> str:
        return self.describe() if callable(self.describe) else self.describe


def at_least(low: float) -> Rule:
    return Rule(f"≥ {low}", lambda v: v >= low)


def above(low: float) -> Rule:
    return Rule(f"> {low}", lambda v: v > low)


def fraction() -> Rule:
    """A rate below 1 (dropout): in [0, 1)."""
    return Rule("in [0, 1)", lambda v: 0 <= v < 1)


def one_of(*choices: str) -> Rule:
    return Rule(f"one of {', '.join(choices)}", lambda v: v in choices)


def registered(names: Callable[[], list[str]]) -> Rule:
    """A name of a registry (heads, projectors, ...), read when checked so that plugins count."""
    return Rule(lambda: f"one of {', '.join(names())}", lambda v: v in names())


def non_empty() -> Rule:
    return Rule("with at least one item", lambda v: len(v) > 0)


def each(rule: Rule) -> Rule:
    """``rule`` for every element of a list or value of a dict (errors name the element)."""
    return Rule(rule.describe, item=rule)


_CHECKS_DEFERRED: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "config_checks_deferred", default=False
)


class Checked:
    """Base of the config dataclasses: field types and ``RULES`` are checked on construction
    (:func:`check`), so a bad value fails where it is set, naming the field."""

    RULES: ClassVar[dict[str, Rule]] = {}

    def __post_init__(self) -> None:
        if not _CHECKS_DEFERRED.get():  # decode_config checks once, with the full path
            check(self)


def check(cfg: Any, path: FieldPath = ()) -> None:
    """Check the types and ``RULES`` of a config and of every nested config.

    Raises:
        ConfigError: naming the first wrong field by its dotted path.
    """
    hints = _fields(type(cfg))
    rules: dict[str, Rule] = getattr(cfg, "RULES", {})
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        where = (*path, f.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            check(value, where)
        else:
            _check_value(value, hints[f.name], rules.get(f.name), where)


def _check_value(value: Any, hint: Any, rule: Rule | None, where: FieldPath) -> None:
    if not _is_type(value, hint):
        raise ConfigError(where, _expected(hint, rule, value))
    if rule is None or value is None:
        return
    if not rule.test(value):
        # a rule on the list and its items says what the list needs
        accepted = f"expected {type_name(hint)} {rule.text()}, got {value!r}"
        raise ConfigError(where, accepted if rule.item else _expected(hint, rule, value))
    if rule.item is not None:
        items = value.items() if isinstance(value, dict) else enumerate(value)
        item_hint = _item_hint(hint)
        for key, item in items:
            if not rule.item.test(item):
                raise ConfigError((*where, str(key)), _expected(item_hint, rule.item, item))


def _expected(hint: Any, rule: Rule | None, value: Any) -> str:
    accepted = rule.text() if rule is not None and rule.item is None else ""
    if accepted.startswith("one of"):  # the names say the type
        return f"expected {accepted}, got {value!r}"
    return f"expected {' '.join(filter(None, (type_name(hint), accepted)))}, got {value!r}"


def _optional_args(hint: Any) -> tuple[list[Any], bool]:
    """The non-None members of a union and whether None is one of them."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        return [a for a in args if a is not type(None)], type(None) in args
    return [hint], False


def _item_hint(hint: Any) -> Any:
    (inner,), _ = _optional_args(hint)
    args = typing.get_args(inner)
    return args[-1] if args else Any


def _is_type(value: Any, hint: Any, raw: bool = False) -> bool:
    """Whether ``value`` is of the annotated type (ints count as floats; bools as neither).
    ``raw``: a value read from a file, where a float may also be written as a numeric string
    (YAML reads ``1e-4`` as one)."""
    members, optional = _optional_args(hint)
    if len(members) > 1 or optional:
        return (optional and value is None) or any(_is_type(value, m, raw) for m in members)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if origin is Literal:
        return value in args
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        if raw and isinstance(value, str):
            return _is_float_text(value)
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin is list:
        return isinstance(value, list) and (
            not args or all(_is_type(v, args[0], raw) for v in value)
        )
    if origin is dict:
        return isinstance(value, dict) and all(
            _is_type(k, args[0], raw) and _is_type(v, args[1], raw) for k, v in value.items()
        )
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True


def _is_float_text(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def type_name(hint: Any) -> str:
    """``int``, ``list[str]``, ``float or null``, ``one of 'a', 'b'``: how errors name a type."""
    members, optional = _optional_args(hint)
    if len(members) > 1 or optional:
        return " or ".join([type_name(m) for m in members] + (["null"] if optional else []))
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (list, dict):
        return f"{origin.__name__}[{', '.join(type_name(a) for a in args)}]"
    if dataclasses.is_dataclass(hint):
        return f"a mapping of {hint.__name__} fields"
    return getattr(hint, "__name__", str(hint))


# --- decoding -----------------------------------------------------------------------------------


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """A config as plain JSON/YAML values (what :func:`decode_config` reads back)."""
    return draccus.encode(cfg)


def decode_config(
    cls: type[C], data: Any, source: str | None = None, prefix: Sequence[str] = ()
) -> C:
    """Build ``cls`` from a plain dict (a YAML/JSON file's content, or merged flags).

    Unknown fields, wrong types and values that break a rule fail with one
    :class:`ConfigError` naming ``source`` and the dotted field (under ``prefix``: where
    ``data`` sits in the file, e.g. ``("config",)`` in a checkpoint's config.json).
    """
    try:
        _check_raw(cls, data, ())
        token = _CHECKS_DEFERRED.set(True)
        try:
            cfg = draccus.decode(cls, dict(data))
        except ParsingError as err:
            raise _type_error(cls, data, err) from None
        finally:
            _CHECKS_DEFERRED.reset(token)
        check(cfg)
    except ConfigError as err:
        raise err.located(source, prefix) from None
    return cfg


@functools.cache
def _fields(cls: Any) -> dict[str, Any]:
    """Field name → resolved type annotation (class variables such as RULES left out)."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _dataclass_of(hint: Any) -> Any:
    """The dataclass a (possibly optional) field holds, else None."""
    members, _ = _optional_args(hint)
    return members[0] if len(members) == 1 and dataclasses.is_dataclass(members[0]) else None


def _check_raw(cls: Any, data: Any, path: FieldPath) -> None:
    """Unknown fields and wrong types in the raw dict, before draccus (which would read
    ``5`` as the string ``'5'`` and ``true`` as the int 1) sees them."""
    if not isinstance(data, Mapping):
        raise ConfigError(path, f"expected a mapping of {cls.__name__} fields, got {data!r}")
    hints = _fields(cls)
    rules: dict[str, Rule] = getattr(cls, "RULES", {})
    for key, value in data.items():
        if key not in hints:
            raise ConfigError((*path, str(key)), unknown_field_message(str(key), list(hints)))
        nested = _dataclass_of(hints[key])
        if nested is not None and value is not None:
            _check_raw(nested, value, (*path, key))
        elif nested is None and not _is_type(value, hints[key], raw=True):
            raise ConfigError((*path, key), _expected(hints[key], rules.get(key), value))


def unknown_field_message(name: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return f"unknown field{hint}; known: {', '.join(sorted(known))}"


def _type_error(cls: Any, data: Any, err: ParsingError) -> ConfigError:
    """The draccus error as a ConfigError at its deepest field, in terms of the field type."""
    chain, e = [], err
    while e is not None:
        chain.append(e)
        e = e.__cause__
    raised = [e for e in chain if isinstance(e, ConfigError)]  # by a __post_init__
    if raised:
        return raised[0]
    paths = [tuple(e.key_path) for e in chain if isinstance(e, DecodingError)]
    if not paths:
        return ConfigError((), str(err).splitlines()[0])
    path = max(paths, key=len)
    hint, rule, value = cls, None, data
    for i, key in enumerate(path):
        owner = _dataclass_of(hint)
        if owner is not None:
            rule = getattr(owner, "RULES", {}).get(key)
            hint, value = _fields(owner)[key], value[key]
        elif isinstance(value, list) and key.isdigit():
            rule = rule.item if rule is not None else None
            hint, value = _item_hint(hint), value[int(key)]
        else:  # a dict key draccus could not decode: say it of the dict
            return ConfigError(path[:i], _expected(hint, None, value))
    return ConfigError(path, _expected(hint, rule, value))


# --- files and flags ------------------------------------------------------------------------------


def read_mapping(path: str | Path) -> dict[str, Any]:
    """The top-level mapping of a YAML (or JSON) file; errors name the file."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError((), f"cannot read: {err}", str(path)) from None
    except yaml.YAMLError as err:
        raise ConfigError((), f"not valid YAML: {str(err).splitlines()[0]}", str(path)) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError((), f"expected a mapping of fields, got {data!r}", str(path))
    return data


def merge(*layers: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge dicts; later layers win field by field (nested configs merge, lists replace)."""
    out: dict[str, Any] = {}
    for layer in layers:
        mergedeep.merge(out, _copy(layer))
    return out


def _copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _copy(v) for k, v in value.items()}
    return list(map(_copy, value)) if isinstance(value, list) else value


def lookup(data: Mapping[str, Any], path: Sequence[str]) -> tuple[bool, Any]:
    """``(True, value)`` when the nested dict holds ``path``, else ``(False, None)``."""
    for key in path:
        if isinstance(data, list) and key.isdigit() and int(key) < len(data):
            data = data[int(key)]
        elif isinstance(data, Mapping) and key in data:
            data = data[key]
        else:
            return False, None
    return True, data


class _FlagParser(ArgumentParser):
    """draccus's flags for a config class, returning the nested dict of the values given
    (merged and decoded by the caller, so that files and presets can sit underneath)."""

    def _postprocessing(self, parsed_args: argparse.Namespace) -> dict[str, Any]:  # type: ignore[override]
        return draccus.utils.deflatten(vars(parsed_args), sep=".")


def _parse_value(text: str) -> Any:
    """A flag's value read as YAML (``4``, ``true``, ``null``, ``[8, 9]``), else the string."""
    if text == "":
        return text
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def flag_parser(cls: type) -> argparse.ArgumentParser:
    """The argparse parser draccus builds for ``cls`` (every field a ``--dotted.flag``), as
    its help shows it: without the usage block and without draccus's per-section
    "config file for X" options (a nested config is set field by field here)."""
    parser = _FlagParser(cls, exit_on_error=False, prog="").parser
    parser.usage = argparse.SUPPRESS
    for group in parser._action_groups:
        for action in group._group_actions:
            if action.option_strings[:1] == ["-h"] or str(action.help).startswith(
                ("Config file for", "Path for a config file")
            ):
                action.help = argparse.SUPPRESS
    return parser


def parse_flags(cls: type, args: Sequence[str]) -> dict[str, Any]:
    """The nested dict of field values that ``args`` set, e.g. ``["--policy.chunk_size", "4"]``
    → ``{"policy": {"chunk_size": 4}}``. Nothing is decoded yet (see :func:`decode_config`).

    Flags take ``-`` or ``_`` between words (``--batch-size`` = ``--batch_size``). Values are
    read as YAML (``4``, ``true``, ``null``, ``[8, 9]``) except for text fields, which take
    the text as given; a list field also takes ``a,b``.
    """
    args = [_underscored(a) for a in args]
    parser = _FlagParser(cls, exit_on_error=False, prog="")
    try:
        values, unknown = parser.parse_known_args(args)
    except argparse.ArgumentError as err:  # a flag without its value, a bad choice
        raise ConfigError((), f"{err.argument_name}: {err.message}") from None
    if unknown:
        raise ConfigError((), _unknown_flag_message(unknown[0], parser.parser))
    return _typed_flag_values(cls, values)


def _underscored(arg: str) -> str:
    if not arg.startswith("--"):
        return arg
    name, eq, value = arg[2:].partition("=")
    return f"--{name.replace('-', '_')}{eq}{value}"


def _unknown_flag_message(arg: str, parser: argparse.ArgumentParser) -> str:
    if not arg.startswith("--"):
        return f"unexpected argument {arg!r}: options look like --name value"
    name = arg.partition("=")[0]
    known = [s for a in parser._actions for s in a.option_strings if s.startswith("--")]
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"; did you mean {close[0]}?" if close else ""
    return f"unknown option {name}{hint} (see --help)"


def _typed_flag_values(cls: Any, values: dict[str, Any]) -> dict[str, Any]:
    """Flag strings read as the values their fields take (see :func:`parse_flags`)."""
    hints = _fields(cls)
    out: dict[str, Any] = {}
    for key, text in values.items():
        hint = hints.get(key)
        nested = _dataclass_of(hint) if hint is not None else None
        if nested is not None and isinstance(text, dict):
            out[key] = _typed_flag_values(nested, text)
            continue
        if not isinstance(text, str) or hint is None:
            out[key] = text
            continue
        (inner, *_), optional = _optional_args(hint)
        if optional and text.lower() in ("null", "none"):
            out[key] = None
        elif inner is str:
            out[key] = text
        elif typing.get_origin(inner) is list and not text.lstrip().startswith("["):
            item_is_text = typing.get_args(inner) == (str,)
            items = [t.strip() for t in text.split(",") if t.strip()]
            out[key] = items if item_is_text else [_parse_value(t) for t in items]
        else:
            out[key] = _parse_value(text)
    return out
