"""One registry shape for models, learning rules and datasets.

A registry maps a plain name to a factory and the frozen dataclass holding its settings, so that
``--set key=value`` can be checked against known keys and a checkpoint can rebuild the object from
its name and settings alone.
"""

from __future__ import annotations

import dataclasses
import fnmatch
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import UnknownNameError


@dataclass(frozen=True)
class Entry:
    name: str
    factory: Callable[..., Any]
    settings: type  # a frozen dataclass of this entry's settings
    help: str = ""


class Registry:
    def __init__(self, kind: str, hint: str = ""):
        self.kind = kind
        self.hint = hint or f"run 'python -m nmnc.train --list' to see all {kind}s"
        self._entries: dict[str, Entry] = {}

    def register(self, name: str, settings: type, help: str = ""):
        """Decorator: ``@MODELS.register('cnn', CNNSettings)`` on a factory."""

        def wrap(factory):
            if name in self._entries:
                raise ValueError(f"{self.kind} '{name}' registered twice")
            self._entries[name] = Entry(
                name, factory, settings, help or (factory.__doc__ or "").strip().split("\n")[0]
            )
            return factory

        return wrap

    def get(self, name: str) -> Entry:
        if name not in self._entries:
            raise UnknownNameError(self.kind, name, self._entries, self.hint)
        return self._entries[name]

    def names(self, pattern: str = "*") -> list[str]:
        return sorted(n for n in self._entries if fnmatch.fnmatch(n, pattern))

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


def _scalar(value: str, like: Any) -> Any:
    """Parse one string as the type of ``like`` (bool, int, float, str, or a guess for None)."""
    if isinstance(like, bool):
        low = value.lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ValueError
    if isinstance(like, int):
        return int(value)
    if isinstance(like, float):
        return float(value)
    if like is None:
        for cast in (int, float):
            try:
                return cast(value)
            except ValueError:
                pass
        return None if value.lower() == "none" else value
    return value


def _coerce(value: Any, default: Any, key: str) -> Any:
    """A ``--set`` string parsed as the type of the default; lists are comma-separated."""
    from .errors import NmncError

    if isinstance(default, (tuple, list)):
        items = value.split(",") if isinstance(value, str) else list(value)
        like = default[0] if default else None
        try:
            return tuple(
                _scalar(v.strip(), like) if isinstance(v, str) else v
                for v in items
                if str(v).strip()
            )
        except ValueError:
            kind = type(like).__name__ if like is not None else "value"
            example = ",".join(str(v) for v in default) or "1,2"
            raise NmncError(
                f"setting {key}={value!r} is not a comma-separated list of {kind}; "
                f"give e.g. {key}={example}"
            ) from None
    if not isinstance(value, str):
        return value
    try:
        return _scalar(value, default)
    except ValueError:
        raise NmncError(
            f"setting {key}={value!r} is not a valid {type(default).__name__}; "
            f"give e.g. {key}={default}"
        ) from None


def apply_overrides(obj, overrides: dict[str, Any], kind: str):
    """Return a copy of the frozen dataclass ``obj`` with ``overrides`` (strings are parsed)."""
    fields = {f.name: f for f in dataclasses.fields(obj)}
    changes = {}
    for key, value in overrides.items():
        if key not in fields:
            raise UnknownNameError(kind, key, fields)
        changes[key] = _coerce(value, getattr(obj, key), key)
    return dataclasses.replace(obj, **changes)
