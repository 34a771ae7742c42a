"""Pickled data read without running code: an unpickler that admits only the classes a format
needs (numpy arrays and dtypes for the CIFAR-10 python release) and refuses everything else before
it is called, so a file with a ``__reduce__`` payload cannot execute anything."""

from __future__ import annotations

import pickle

# what numpy arrays pickle to (numpy 1.x and 2.x module names)
NUMPY_ARRAYS = frozenset(
    {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("_codecs", "encode"),  # bytes in protocol-2 pickles written by Python 3 (no side effect)
    }
)


class RefusedClass(pickle.UnpicklingError):
    """A pickle named a class outside the allowed ones (``name``: module.qualname)."""

    def __init__(self, name: str):
        super().__init__(f"it names {name}, which this format never holds (code, not data)")
        self.name = name


class _Restricted(pickle.Unpickler):
    allowed: frozenset = frozenset()

    def find_class(self, module: str, name: str):
        if (module, name) not in self.allowed:
            raise RefusedClass(f"{module}.{name}")
        return super().find_class(module, name)


def load(f, allowed: frozenset = NUMPY_ARRAYS, encoding: str = "ASCII"):
    """``pickle.load`` that builds plain Python values and only the ``allowed`` classes
    ((module, name) pairs); any other class raises :class:`RefusedClass` before it is touched."""
    u = _Restricted(f, encoding=encoding)
    u.allowed = allowed
    return u.load()
