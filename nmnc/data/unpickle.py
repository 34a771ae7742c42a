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


# modules whose functions act on the machine: a pickle naming one is a payload, not data
CODE_MODULES = (
    "os",
    "posix",
    "nt",
    "subprocess",
    "sys",
    "shutil",
    "socket",
    "importlib",
    "runpy",
    "pty",
    "code",
    "codeop",
    "pickle",
    "_pickle",
    "marshal",
    "ctypes",
    "multiprocessing",
    "signal",
    "webbrowser",
    "urllib",
    "http",
    "ftplib",
    "smtplib",
    "tempfile",
    "pathlib",
    "io",
    "_io",
    "commands",
    "platform",
    "asyncio",
    "threading",
    "_thread",
    "types",
    "functools",
    "operator",
    "inspect",
    "timeit",
    "pdb",
    "bdb",
    "trace",
    "cProfile",
    "profile",
    "torch.hub",
)
CODE_BUILTINS = frozenset(
    {
        "eval",
        "exec",
        "compile",
        "open",
        "__import__",
        "getattr",
        "setattr",
        "delattr",
        "globals",
        "locals",
        "vars",
        "input",
        "breakpoint",
        "exit",
        "quit",
        "help",
        "memoryview",
        "apply",
    }
)
_STRINGS = ("UNICODE", "STRING")  # opcodes that push a str: SHORT_BINUNICODE, BINSTRING, ...


def named_globals(path) -> list[str]:
    """``module.name`` of every class or function a pickle file names (for a torch zip file, its
    ``data.pkl``), read with :mod:`pickletools` without running anything; [] when unreadable."""
    import io
    import pickletools
    import zipfile

    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                member = next((n for n in zf.namelist() if n.endswith("data.pkl")), None)
                data = zf.read(member) if member else b""
        else:
            with open(path, "rb") as f:
                data = f.read(64 << 20)
    except (OSError, zipfile.BadZipFile):
        return []
    names, recent, memo = [], [], {}
    try:
        for op, arg, _ in pickletools.genops(io.BytesIO(data)):
            if op.name in ("GLOBAL", "INST"):
                names.append(str(arg).replace(" ", "."))
            elif any(t in op.name for t in _STRINGS):
                recent.append(arg.decode("latin-1") if isinstance(arg, bytes) else arg)
            elif op.name == "MEMOIZE":
                memo[len(memo)] = recent[-1] if recent else None
            elif op.name in ("BINPUT", "LONG_BINPUT", "PUT"):
                memo[int(arg)] = recent[-1] if recent else None
            elif op.name in ("BINGET", "LONG_BINGET", "GET"):
                recent.append(memo.get(int(arg)))
            elif op.name == "STACK_GLOBAL" and len(recent) >= 2:
                names.append(f"{recent[-2]}.{recent[-1]}")
    except Exception:  # a damaged stream: report what was read before the damage
        pass
    return names


def code_names(path) -> list[str]:
    """The names in a pickle file that would act on the machine when unpickled (``posix.system``,
    ``builtins.eval``, ``subprocess.Popen``): a payload, never checkpoint data."""

    def is_code(name: str) -> bool:
        module, _, attr = str(name).rpartition(".")
        if module in ("builtins", "__builtin__"):
            return attr in CODE_BUILTINS
        return any(module == m or module.startswith(m + ".") for m in CODE_MODULES)

    return sorted({n for n in named_globals(path) if is_code(n)})
