"""One registry shape for models, learning rules and datasets.

A registry maps a plain name to a factory and the frozen dataclass holding its settings, so that
``--set key=value`` can be checked against known keys and a checkpoint can rebuild the object from
its name and settings alone.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import functools
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import UnknownNameError


@dataclass(frozen=True)
class Entry:
    """One registered name: its factory, its settings dataclass and a one-line help."""

    name: str
    factory: Callable[..., Any]
    settings: type  # a frozen dataclass of this entry's settings
    help: str = ""
    kind: str = ""  # a tag: 'recurrent' models, 'sequence' datasets; '' = the plain kind
    family: str = ""  # names its argument: the entry answers to '<name>:<argument>'


class Registry:
    """Names to factories (models, rules, datasets, recipes, benchmarks, zoo entries), with
    one error shape for unknown names."""

    def __init__(self, kind: str, hint: str = ""):
        self.kind = kind
        self.hint = hint or f"run 'python -m nmnc.train --list' to see all {kind}s"
        self._entries: dict[str, Entry] = {}

    def register(self, name: str, settings: type, help: str = "", kind: str = "", family: str = ""):
        """Decorator: ``@MODELS.register('cnn', CNNSettings)`` on a factory. An entry with
        ``family='TaskId'`` answers to every name ``<name>:<TaskId>`` (``neurogym:<TaskId>``)."""

        def wrap(factory):
            if name in self._entries:
                raise ValueError(f"{self.kind} '{name}' registered twice")
            self._entries[name] = Entry(
                name,
                factory,
                settings,
                help or (factory.__doc__ or "").strip().split("\n")[0],
                kind,
                family,
            )
            return factory

        return wrap

    def get(self, name: str) -> Entry:
        if name in self._entries and not self._entries[name].family:
            return self._entries[name]
        head, colon, _ = name.partition(":")
        entry = self._entries.get(head if colon else name)
        if entry is not None and entry.family and colon and name[len(head) + 1 :]:
            return entry
        if entry is not None:
            from .errors import NmncError

            if colon and not entry.family:
                raise NmncError(f"{self.kind} '{head}' takes no ':' argument; write {head}")
            raise NmncError(
                f"{self.kind} '{head}' needs an argument: write {self.shown(head)} "
                f"({entry.help or 'see --list'})"
            )
        raise UnknownNameError(self.kind, name, self._entries, self.hint)

    def entry(self, name: str) -> Entry:
        """The entry registered as ``name`` (a family's too), for listings."""
        return self._entries[name]

    def shown(self, name: str) -> str:
        """How a name is written: a family's with its argument (``neurogym:<TaskId>``)."""
        family = self._entries[name].family
        return f"{name}:<{family}>" if family else name

    @staticmethod
    def argument(name: str) -> str | None:
        """The argument of a family name (``neurogym:DelayMatchSample-v0`` -> the task id)."""
        return name.partition(":")[2] or None

    def names(self, pattern: str = "*", kind: str | None = None) -> list[str]:
        """Registered names matching ``pattern`` (and, if given, of ``kind``; '' = untagged)."""
        return sorted(
            n
            for n, e in self._entries.items()
            if fnmatch.fnmatch(n, pattern) and (kind is None or e.kind == kind)
        )

    def add(self, name: str, obj: Any, help: str = "") -> Any:
        """Register a ready-made object (a recipe, an experiment) under ``name``."""
        if name in self._entries:
            raise ValueError(f"{self.kind} '{name}' registered twice")
        self._entries[name] = Entry(name, obj, type(obj), help)
        return obj

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def settings(self, name: str, overrides: dict[str, Any] | None = None):
        """The entry's settings dataclass with ``overrides`` applied (unknown keys are an error)."""
        return apply_overrides(
            self.get(name).settings(), overrides or {}, f"{self.kind} '{name}' setting"
        )


def _resolve(typ: Any) -> tuple[Any, Any]:
    """(kind, element type) of an annotation: kind is bool, int, float, str, tuple, dict or None."""
    origin = typing.get_origin(typ)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(typ) if a is not type(None)]
        return _resolve(args[0]) if len(args) == 1 else (None, None)
    if origin in (tuple, list) or typ in (tuple, list):
        args = [a for a in typing.get_args(typ) if a is not Ellipsis]
        return tuple, (args[0] if args else None)
    if origin is dict or typ is dict:
        return dict, None
    return (typ if typ in (bool, int, float, str) else None), None


def _parse(text: str, kind: Any) -> Any:
    """Parse one string as ``kind`` (bool, int, float, str; None guesses a number)."""
    text = text.strip()
    if kind is bool:
        low = text.lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ValueError
    if kind in (int, float):
        return kind(text)
    if kind is None:
        for cast in (int, float):
            try:
                return cast(text)
            except ValueError:
                pass
        return None if text.lower() == "none" else text
    return text


def guess_value(value: Any) -> Any:
    """A setting without a declared type (a dataset's own): a string that reads as a number,
    true/false or none becomes one; anything else stays as it is."""
    if not isinstance(value, str):
        return value
    low = value.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    return _parse(value, None)


def _check(value: Any, kind: Any) -> Any:
    """A value that is already typed (from TOML or Python), checked against ``kind``."""
    if isinstance(value, str):
        return _parse(value, kind)
    if kind is bool and not isinstance(value, bool):
        raise ValueError
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ValueError
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError
        return float(value)
    if kind is str:
        raise ValueError
    return value


def _coerce(value: Any, typ: Any, key: str) -> Any:
    """A setting parsed or checked as the field's type; lists are comma-separated strings."""
    from .errors import NmncError

    kind, element = _resolve(typ)
    optional = type(None) in typing.get_args(typ)
    if optional and (value is None or (isinstance(value, str) and value.strip().lower() == "none")):
        return None
    try:
        if kind is tuple:
            items = value.split(",") if isinstance(value, str) else value
            items = list(items) if isinstance(items, (list, tuple)) else [items]
            return tuple(_check(v, element) for v in items if str(v).strip())
        if kind is dict:
            if not isinstance(value, dict):
                raise ValueError
            return dict(value)
        if kind is None and value is None:
            return None
        return _check(value, kind)
    except (ValueError, TypeError):
        name = {
            tuple: f"comma-separated list of {getattr(element, '__name__', 'values')}",
            dict: f"table of settings (give its entries as {key}.KEY=VALUE)",
        }.get(kind, f"valid {getattr(kind, '__name__', 'value')}")
        raise NmncError(f"setting {key}={value!r} is not a {name}") from None


@functools.lru_cache(maxsize=None)
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def apply_overrides(obj, overrides: dict[str, Any], kind: str):
    """A copy of the frozen dataclass ``obj`` with ``overrides`` applied and type-checked.

    Strings are parsed as the field's type (lists comma-separated); ``field.KEY=VALUE`` sets one
    entry of a field that holds a table of settings. Unknown keys list the known ones.
    """
    fields = {f.name: f for f in dataclasses.fields(obj)}
    hints = _hints(type(obj))
    changes: dict[str, Any] = {}
    for key, value in overrides.items():
        head, dot, entry = key.partition(".")
        if dot and head in fields and _resolve(hints[head])[0] is dict:
            table = changes.get(head, dict(getattr(obj, head) or {}))
            changes[head] = {**table, entry: value}
            continue
        if key not in fields:
            raise UnknownNameError(kind, key, fields)
        changes[key] = _coerce(value, hints[key], key)
    return dataclasses.replace(obj, **changes)
