"""Any NeuroGym cognitive task as a sequence dataset: ``--dataset neurogym:<TaskId>``.

Trials come from the task itself (``TrialEnv.new_trial``: its observations ``ob`` and ground
truth ``gt``); whole trials are laid end to end and cut at ``seq_len`` steps, as NeuroGym's own
``Dataset`` does, with every sequence starting at a trial start. The target of every step is the
ground truth (fixation included); accuracy is measured at the last step of every trial that ends
inside a sequence, its decision. The sequences are generated once per data seed and cached.

Settings (``--set data.KEY=VALUE``) are ours (:class:`NeuroGymSettings`) or the task's own: any
parameter of the task class (``dt``, ``sigma``, ``timing``...), with ``timing.stimulus=500`` setting
one entry of a table.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import pickle
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .._registry import apply_overrides, guess_value
from ..errors import DataError, NmncError, UnknownNameError
from ..io import atomic_path
from . import DATASETS
from .paths import cache_dir
from .sequences import ArraySplit, SequenceData

FORMAT = 1  # bump when the generated sequences change for the same settings (invalidates caches)


@dataclass(frozen=True)
class NeuroGymSettings:
    """Our settings of a NeuroGym dataset; any other key is a parameter of the task."""

    seq_len: int = 100  # steps per sequence
    train_sequences: int = 2048
    test_sequences: int = 512
    seed: int = 0  # data seed: the sequences are generated once per seed (test uses a derived one)


def _ngym():
    try:
        import neurogym
    except ImportError:
        raise DataError(
            "neurogym is not installed; pip install neurogym==1.0.8 "
            "to use --dataset neurogym:<TaskId>"
        ) from None
    return neurogym


def task_ids() -> list[str]:
    """The NeuroGym task ids (``ngym.all_envs()``)."""
    return list(_ngym().all_envs())


def _make(task: str, kwargs: dict):
    """The task's TrialEnv built with ``kwargs``; gymnasium's warnings are silenced and an error
    of the task constructor is a one-line error naming the task and the settings."""
    ngym = _ngym()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ngym.make(task, **kwargs).unwrapped
    except Exception as err:  # the task's own check of a value: any type, one line
        raise _rejected(task, kwargs, err) from None


def _rejected(task: str, kwargs: dict, err: Exception) -> NmncError:
    text = " ".join(str(err).split()) or "no message"
    return NmncError(
        f"neurogym:{task} rejected the settings {json.dumps(kwargs, default=str)} "
        f"({type(err).__name__}: {text}); fix or drop the offending data.* setting"
    )


def _value(value):
    """A value as typed on the command line parsed as int, float, bool, None or a
    comma-separated list of them; values that are already typed are kept."""
    if isinstance(value, dict):
        return {k: _value(v) for k, v in value.items()}
    if not isinstance(value, str):
        return value
    if "," in value:
        return [_value(v) for v in value.split(",") if v.strip()]
    return guess_value(value)


def _params(cls: type) -> list[str]:
    sig = inspect.signature(cls.__init__)
    return [
        name
        for name, p in list(sig.parameters.items())[1:]
        if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]


def split_settings(task: str, settings: dict | None) -> tuple[NeuroGymSettings, dict]:
    """Check ``settings`` for ``task`` before any sequence is generated and split them into ours
    and the task's keyword arguments. Unknown tasks and keys list the known ones; values the task
    refuses, tasks without discrete ground truth and empty trials are one-line errors."""
    known = task_ids()
    if task not in known:
        raise UnknownNameError(
            "NeuroGym task",
            task,
            known,
            "give one as --dataset neurogym:<TaskId> (run 'python -m nmnc.train --list')",
        )
    default = _make(task, {})
    params = _params(type(default))
    ours_fields = [f.name for f in dataclasses.fields(NeuroGymSettings)]
    ours: dict = {}
    kwargs: dict = {}
    for key, value in (settings or {}).items():
        head, dot, entry = key.partition(".")
        if not dot and key in ours_fields:
            ours[key] = value
        elif head in params:
            value = _value(value) if not dot else {entry: _value(value)}
            if dot or isinstance(value, dict):
                value = _table(task, default, head, value, kwargs.get(head))
            kwargs[head] = value
        else:
            raise UnknownNameError(
                f"setting of neurogym:{task}",
                key,
                ours_fields + params,
                f"the task's settings are the parameters of {type(default).__name__}; "
                "set one entry of a table as e.g. timing.stimulus=500",
            )
    ngs = apply_overrides(NeuroGymSettings(), ours, f"neurogym:{task} setting")
    for name in ("seq_len", "train_sequences", "test_sequences"):
        if getattr(ngs, name) < 1:
            raise NmncError(f"data.{name} must be at least 1, got {getattr(ngs, name)}")
    _check_task(task, kwargs)
    return ngs, kwargs


def _table(task: str, default, head: str, entries: dict, current) -> dict:
    """The table-valued task setting ``head`` with ``entries`` set, each checked against the
    entries the task has (``timing.stimulus`` of a task with a stimulus period)."""
    table = getattr(default, head, None)
    if not isinstance(table, dict):
        raise NmncError(
            f"setting {head}: {head} of neurogym:{task} is not a table of settings; "
            f"give it whole as {head}=VALUE"
        )
    for entry in entries:
        if entry not in table:
            raise UnknownNameError(f"{head} entry of neurogym:{task}", entry, table)
    return {**(current if isinstance(current, dict) else {}), **entries}


def _check_task(task: str, kwargs: dict) -> None:
    """Build the task with ``kwargs`` and draw one trial on a throwaway copy: the action space
    must be discrete and the trial must have integer ground truth and at least one step."""
    from gymnasium.spaces import Discrete

    env = _make(task, kwargs)
    if not isinstance(env.action_space, Discrete):
        raise NmncError(
            f"neurogym:{task} has a {type(env.action_space).__name__} action space; only tasks "
            "with discrete actions train with the cross-entropy read-out"
        )
    env.seed(0)
    ob, gt = _trial(env, task, kwargs)
    if not np.issubdtype(gt.dtype, np.integer) or gt.ndim != 1:
        raise NmncError(
            f"neurogym:{task} gives ground truth of type {gt.dtype} and shape {gt.shape}, not "
            "one class per step; only tasks with discrete actions train with the cross-entropy "
            "read-out"
        )


def _trial(env, task: str, kwargs: dict) -> tuple[np.ndarray, np.ndarray]:
    """One new trial's (ob, gt), ob flattened to (L, inputs)."""
    try:
        env.new_trial()
    except Exception as err:  # a value the task only uses when it draws a trial (e.g. timing)
        raise _rejected(task, kwargs, err) from None
    if not getattr(env, "_gt_built", False) or getattr(env, "gt", None) is None:
        raise NmncError(
            f"neurogym:{task} gives no ground truth (a reward-only task); only supervised tasks "
            "train with the cross-entropy read-out"
        )
    ob, gt = env.ob, env.gt
    if len(ob) == 0 or len(ob) != len(gt):
        raise NmncError(
            f"neurogym:{task} drew a trial of {len(ob)} steps with settings "
            f"{json.dumps(kwargs, default=str)}; make dt smaller than the trial's periods"
        )
    return ob.reshape(len(ob), -1), gt


def generate(
    task: str, task_settings: dict, sequences: int, seq_len: int, seed: int
) -> dict[str, torch.Tensor]:
    """``sequences`` sequences of ``seq_len`` steps from whole trials of the task seeded with
    ``seed``: inputs (N, T, n_in) float32, targets (N, T) long, scored (N, T) bool (the last step
    of every trial that ends inside a sequence) and labels (N,) long (the target at a sequence's
    first scored step, 0 if it has none)."""
    env = _make(task, task_settings)
    env.seed(seed)
    n_in = int(np.prod(env.observation_space.shape))
    inputs = np.zeros((sequences, seq_len, n_in), np.float32)
    targets = np.zeros((sequences, seq_len), np.int64)
    scored = np.zeros((sequences, seq_len), bool)
    for i in range(sequences):
        pos = 0
        while pos < seq_len:
            ob, gt = _trial(env, task, task_settings)
            n = min(len(gt), seq_len - pos)
            inputs[i, pos : pos + n] = ob[:n]
            targets[i, pos : pos + n] = gt[:n]
            if n == len(gt):
                scored[i, pos + n - 1] = True
            pos += n
    if not scored.any():
        raise NmncError(
            f"no trial of neurogym:{task} ends within seq_len={seq_len} steps, so no step would "
            "be scored; raise data.seq_len or shorten the trials (data.dt, data.timing.PERIOD)"
        )
    first = scored.argmax(1)
    labels = np.where(scored.any(1), targets[np.arange(sequences), first], 0)
    return {
        "inputs": torch.from_numpy(inputs),
        "targets": torch.from_numpy(targets),
        "scored": torch.from_numpy(scored),
        "labels": torch.from_numpy(labels.astype(np.int64)),
    }


def _split_seed(seed: int, split: str) -> int:
    """The trial seed of a split: derived from the data seed and the split's name, so train and
    test never share trials."""
    digest = hashlib.sha256(f"nmnc-neurogym|{seed}|{split}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def _cached_split(task: str, kwargs: dict, ngs: NeuroGymSettings, split: str) -> dict:
    """The split's tensors from the cache, generated and saved once when missing or unreadable."""
    n = ngs.train_sequences if split == "train" else ngs.test_sequences
    key = json.dumps(
        {
            "task": task,
            "task_settings": kwargs,
            "seq_len": ngs.seq_len,
            "sequences": n,
            "seed": ngs.seed,
            "split": split,
            "neurogym": _ngym().__version__,
            "format": FORMAT,
        },
        sort_keys=True,
        default=str,
    )
    path = cache_dir() / "neurogym" / f"{hashlib.sha256(key.encode()).hexdigest()[:16]}.pt"
    tensors = _load(path, n, ngs.seq_len)
    if tensors is None:
        tensors = generate(task, kwargs, n, ngs.seq_len, _split_seed(ngs.seed, split))
        try:
            with atomic_path(path, suffix=".pt") as tmp:
                torch.save(tensors, tmp)
        except NmncError:  # no space or no permission: the data is whole in memory all the same
            pass
    return tensors


def _load(path: Path, n: int, seq_len: int) -> dict | None:
    """A cached split, or None when it is missing, damaged or of other shapes."""
    if not path.exists():
        return None
    try:
        from ..checkpoint import load_tensors  # nmnc.checkpoint imports nmnc.data

        t = load_tensors(path)
        ok = (
            isinstance(t, dict)
            and t["inputs"].dtype == torch.float32
            and t["inputs"].shape[:2] == (n, seq_len)
            and t["targets"].shape == (n, seq_len)
            and t["targets"].dtype == torch.long
            and t["scored"].shape == (n, seq_len)
            and t["scored"].dtype == torch.bool
            and t["labels"].shape == (n,)
            and t["labels"].dtype == torch.long
        )
    except (
        OSError,
        EOFError,
        RuntimeError,
        ValueError,
        KeyError,
        TypeError,
        AttributeError,
        pickle.UnpicklingError,
        zipfile.BadZipFile,
    ):
        ok = False
    return t if ok else None


def _classes(env) -> list[str]:
    """Names of the actions from the action space's ``name`` table (``{'fixation': 0, 'choice':
    [1, 2]}`` gives fixation, choice 1, choice 2), else their numbers."""
    n = int(env.action_space.n)
    classes = [str(i) for i in range(n)]
    for label, where in (getattr(env.action_space, "name", None) or {}).items():
        if isinstance(where, (int, np.integer)):
            where, single = [where], True
        else:
            where, single = list(where), False
        for j, i in enumerate(where):
            if 0 <= int(i) < n:
                classes[int(i)] = str(label) if single else f"{label} {j + 1}"
    return classes


@DATASETS.register(
    "neurogym",
    NeuroGymSettings,
    help="any NeuroGym cognitive task: --dataset neurogym:<TaskId> (see --list)",
    kind="sequence",
    family="TaskId",
)
def neurogym(
    root: Path | None = None,
    download: bool = False,
    input_size: int | None = None,
    settings: dict | NeuroGymSettings | None = None,
    arg: str | None = None,
) -> SequenceData:
    """The NeuroGym task ``arg`` as train and test sequences (generated once per settings and
    cached); ``settings`` holds ours and the task's (see :func:`split_settings`). The data root,
    ``download`` and ``input_size`` are not used."""
    ngs, kwargs = check(settings, arg)
    train = _cached_split(arg, kwargs, ngs, "train")
    test = _cached_split(arg, kwargs, ngs, "test")
    env = _make(arg, kwargs)
    return SequenceData(
        f"neurogym:{arg}",
        ArraySplit(**train),
        ArraySplit(**test),
        _classes(env),
        input_dim=int(train["inputs"].shape[-1]),
        seq_len=ngs.seq_len,
        source=f"neurogym {_ngym().__version__} {arg}",
        extra={"task": arg, "task_settings": kwargs, "dt": env.dt},
    )


def check(settings: dict | NeuroGymSettings | None, arg: str | None):
    """Check the task and the settings before any work (see :func:`split_settings`)."""
    if not arg:
        raise NmncError(
            "neurogym needs a task: --dataset neurogym:<TaskId>, one of " + ", ".join(task_ids())
        )
    if isinstance(settings, NeuroGymSettings):
        settings = dataclasses.asdict(settings)
    return split_settings(arg, settings)


neurogym.check = check  # what nmnc.data.check_dataset calls


def trainable_ids() -> list[str]:
    """The task ids that train here (discrete actions with ground truth): what ``--list`` shows."""
    ok = []
    for task in task_ids():
        try:
            split_settings(task, {})
        except NmncError:
            continue
        ok.append(task)
    return ok


neurogym.names = trainable_ids  # what `python -m nmnc.train --list` shows under the family
