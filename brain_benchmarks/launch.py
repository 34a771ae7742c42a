"""Where an experiment's training cells run: one after another in this process (``serial``), as
local processes (``local``) or as SLURM jobs (``slurm``); the last two through submitit.

A launcher has one method, ``run_cells(configs) -> results``, in the order given. A cell is one
``train_or_resume``: it skips a finished run, resumes an interrupted one from its checkpoint, or
starts fresh, so a cell whose job dies (killed, out of memory, node failure, time limit) is simply
submitted again, up to ``retries`` times, and goes on from its last checkpoint. A user's error in a
cell (an :class:`~nmnc.errors.NmncError`: bad settings, a full disk, a diverged run) is not retried:
the other cells are cancelled and the error is one line. On SLURM, submitit also requeues a
preempted or timed-out job by itself (:meth:`Cell.checkpoint`).

Settings come from the command line as ``--set launcher=local --set jobs=4`` or
``--set launcher=slurm --set slurm.partition=gpu --set slurm.time_min=600``.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from nmnc._registry import apply_overrides
from nmnc.config import TrainConfig
from nmnc.errors import NmncError, UnknownNameError

LAUNCHERS = ("serial", "local", "slurm")
LOCAL_TIMEOUT_MIN = 7 * 24 * 60  # submitit's local jobs stop at a time limit; ours have none


@dataclass(frozen=True)
class SlurmSettings:
    """What each SLURM job asks for (``--set slurm.KEY=VALUE``)."""

    partition: str = ""  # '' = the cluster's default
    time_min: int = 720  # wall-clock limit per cell, minutes (a longer run resumes on requeue)
    gpus_per_node: int = 1
    cpus_per_task: int = 8
    mem_gb: int = 32
    account: str = ""
    qos: str = ""
    constraint: str = ""
    # shell lines run before each cell, e.g. 'source .venv/bin/activate' or 'module load cuda'
    setup: tuple[str, ...] = ()
    extra: dict = field(default_factory=dict)  # more sbatch options: slurm.extra.reservation=x


@dataclass(frozen=True)
class LaunchSettings:
    """How the cells of a protocol stage run."""

    launcher: str = "serial"  # 'serial' (this process), 'local' (processes) or 'slurm' (jobs)
    jobs: int = 0  # cells at once; 0 = local: one per GPU, else per CPU core; slurm: all
    retries: int = 2  # a cell whose job dies is submitted again this many times
    # torch threads per cell; 0 = serial: torch's default; local: cores / jobs; slurm:
    # cpus_per_task. Runs are bitwise equal across launchers at equal threads.
    threads: int = 0
    folder: str = ""  # submitit's job files and logs; '' = <work>/<experiment>/launch
    slurm: SlurmSettings = field(default_factory=SlurmSettings)


KEYS = tuple(f.name for f in dataclasses.fields(LaunchSettings))


def launch_settings(pairs: dict, base: LaunchSettings | None = None) -> LaunchSettings:
    """``base`` with ``--set`` pairs (``jobs=4``, ``slurm.partition=gpu``) applied and checked."""
    base = base or LaunchSettings()
    if "slurm" in pairs:
        raise NmncError(
            "give SLURM settings one at a time as slurm.KEY=VALUE, e.g. slurm.partition=gpu; "
            f"keys: {', '.join(f.name for f in dataclasses.fields(SlurmSettings))}"
        )
    top = {k: v for k, v in pairs.items() if not k.startswith("slurm.")}
    slurm = {k.removeprefix("slurm."): v for k, v in pairs.items() if k.startswith("slurm.")}
    s = apply_overrides(base, top, "launcher setting")
    s = dataclasses.replace(s, slurm=apply_overrides(s.slurm, slurm, "slurm setting"))
    if s.launcher not in LAUNCHERS:
        raise UnknownNameError("launcher", s.launcher, LAUNCHERS)
    for key in ("jobs", "retries", "threads"):
        if getattr(s, key) < 0:
            raise NmncError(f"launcher setting {key} must be 0 or more, got {getattr(s, key)}")
    for key in ("time_min", "cpus_per_task", "mem_gb"):
        if getattr(s.slurm, key) < 1:
            raise NmncError(f"slurm.{key} must be at least 1, got {getattr(s.slurm, key)}")
    if s.slurm.gpus_per_node < 0:
        raise NmncError(f"slurm.gpus_per_node must be 0 or more, got {s.slurm.gpus_per_node}")
    return s


def split_sets(pairs: dict, sections) -> tuple[dict, dict]:
    """(experiment pairs, launcher pairs) of one command line's ``--set`` pairs: experiment keys
    start with a section (``train.seeds``), launcher keys are :data:`KEYS`."""
    experiment, launch = {}, {}
    for key, value in pairs.items():
        head = key.split(".")[0]
        if head in KEYS:
            launch[key] = value
        elif head in sections:
            experiment[key] = value
        else:
            raise UnknownNameError(
                "--set key",
                key,
                [*sections, *KEYS],
                "experiment settings are section.key=value (train.seeds=0,1), launcher "
                "settings launcher, jobs, retries, threads, folder or slurm.KEY",
            )
    return experiment, launch


# ---- the cell: what one job runs --------------------------------------------------------------
@dataclass(frozen=True)
class CellError:
    """A cell that raised: ``user`` errors (NmncError) are the user's to fix, others are retried."""

    message: str
    user: bool


class Cell:
    """One training cell in a job: ``train_or_resume(cfg)``; errors come back as
    :class:`CellError` so the launcher tells the user's errors from crashes."""

    def __init__(self, threads: int = 0):
        self.threads = threads

    def __call__(self, cfg: TrainConfig, gpu: str | None = None):
        import traceback

        if gpu is not None:  # before CUDA starts in this process: the job sees its GPU alone
            os.environ["CUDA_VISIBLE_DEVICES"] = gpu
        import torch

        from nmnc.training import train_or_resume

        if self.threads:
            torch.set_num_threads(self.threads)
        try:
            return train_or_resume(cfg, progress=False)
        except NmncError as err:
            return CellError(str(err), user=True)
        except Exception as err:  # a crash: its traceback goes to the job's log, then a retry
            traceback.print_exc()
            return CellError(f"{type(err).__name__}: {err}", user=False)

    def checkpoint(self, cfg: TrainConfig, gpu: str | None = None):
        """submitit calls this when SLURM preempts the job or its time runs out: the same cell is
        requeued and resumes from its last checkpoint."""
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self, cfg, gpu)


class CellFailed(NmncError):
    """A cell's job died more often than the retries allow."""

    exit_code = 1


# ---- launchers --------------------------------------------------------------------------------
class Serial:
    """Every cell in this process, one after another (no retries: a crash here ends the job)."""

    def __init__(self, progress: bool = True, threads: int = 0):
        self.progress, self.threads = progress, threads

    def run_cells(self, configs: list[TrainConfig]) -> list:
        import torch

        from nmnc.training import train_or_resume

        before = torch.get_num_threads()
        torch.set_num_threads(self.threads or before)
        try:
            return [train_or_resume(c, self.progress) for c in configs]
        finally:
            torch.set_num_threads(before)


class Submitit:
    """Cells as submitit jobs (local processes or SLURM jobs), ``jobs`` at a time; a job that
    dies is submitted again (to the front of the queue) up to ``retries`` times."""

    def __init__(self, settings: LaunchSettings, folder: str | Path, progress=True, cell=None):
        self.s, self.folder, self.progress = settings, Path(settings.folder or folder), progress
        self.local = settings.launcher == "local"
        self.gpus = _visible_gpus() if self.local else []
        cores = len(os.sched_getaffinity(0))
        self.jobs = settings.jobs or (max(1, len(self.gpus)) if self.gpus else cores)
        if not self.local:
            self.jobs = settings.jobs or sys.maxsize
        auto = max(1, cores // self.jobs) if self.local else settings.slurm.cpus_per_task
        self.cell = cell or Cell(settings.threads or auto)
        self.poll = 0.5 if self.local else 15.0

    def _executor(self):
        import submitit

        if self.local:
            ex = submitit.LocalExecutor(folder=self.folder / "%j")
            ex.update_parameters(timeout_min=LOCAL_TIMEOUT_MIN)
            return ex
        if shutil.which("sbatch") is None:
            raise NmncError(
                "launcher=slurm needs SLURM's sbatch on PATH, and there is none here; run on the "
                "cluster's login node, or use --set launcher=local"
            )
        s = self.s.slurm
        ex = submitit.SlurmExecutor(folder=self.folder / "%j")
        optional = {"partition": s.partition, "account": s.account, "qos": s.qos}
        optional["constraint"] = s.constraint
        ex.update_parameters(
            job_name="nmnc-cell",
            time=s.time_min,
            gpus_per_node=s.gpus_per_node,
            cpus_per_task=s.cpus_per_task,
            mem=s.mem_gb,
            setup=list(s.setup),
            additional_parameters=dict(s.extra),
            **{k: v for k, v in optional.items() if v},
        )
        return ex

    def run_cells(self, configs: list[TrainConfig]) -> list:
        if not configs:
            return []
        ex = self._executor()
        pending, running = deque(range(len(configs))), {}  # cell -> (job, gpu)
        attempts, results = [0] * len(configs), [None] * len(configs)
        done, t0 = 0, time.perf_counter()
        if self.progress:
            at_once = "all" if self.jobs == sys.maxsize else self.jobs
            print(
                f"cells: {len(configs)} as {self.s.launcher} jobs, {at_once} at a time; "
                f"logs in {self.folder}/<job id>/",
                file=sys.stderr,
                flush=True,
            )
        try:
            while pending or running:
                while pending and len(running) < self.jobs:
                    i = pending.popleft()
                    gpu = self._free_gpu([g for _, g in running.values()])  # local: one each
                    attempts[i] += 1
                    running[i] = (ex.submit(self.cell, configs[i], gpu), gpu)
                time.sleep(self.poll)
                for i, (job, _) in list(running.items()):
                    if not job.done():
                        continue
                    del running[i]
                    status, value = self._outcome(job)
                    out = configs[i].out
                    if status == "ok":
                        results[i], done = value, done + 1
                        if self.progress:
                            mins = (time.perf_counter() - t0) / 60
                            print(
                                f"cells: {done}/{len(configs)} done, {len(running)} running "
                                f"({mins:.1f} min)",
                                file=sys.stderr,
                                flush=True,
                            )
                    elif status == "user":
                        raise NmncError(f"cell {out}: {value}")
                    elif attempts[i] > self.s.retries:
                        raise CellFailed(
                            f"cell {out} failed {attempts[i]} times (retries={self.s.retries}); "
                            f"last: {value}"
                        )
                    else:
                        print(
                            f"cell {out}: its job ended without a result ({value}); submitted "
                            f"again (attempt {attempts[i] + 1} of {self.s.retries + 1}), it "
                            "resumes from its last checkpoint",
                            file=sys.stderr,
                            flush=True,
                        )
                        pending.appendleft(i)
        except BaseException:  # an error or Ctrl-C: stop the other cells (a rerun resumes them)
            for job, _ in running.values():
                job.cancel(check=False)
            raise
        return results

    def _free_gpu(self, used: list) -> str | None:
        if not self.gpus:
            return None
        return min(self.gpus, key=used.count)

    def _outcome(self, job) -> tuple[str, object]:
        """('ok', result), ('user', message) or ('died', why) for a job that is done."""
        from submitit.core.utils import FailedJobError, UncompletedJobError

        log = job.paths.stderr
        if self.local and not job.paths.result_pickle.exists():  # local results land first
            return "died", f"process ended with no result; log {log}"
        try:
            out = job.result()
        except FailedJobError:  # raised outside the cell (e.g. the job could not load it)
            return "died", f"job {job.job_id} raised outside the cell; log {log}"
        except UncompletedJobError:  # killed, node failure, out of memory, time limit
            return "died", f"job {job.job_id} ended with no result (state {job.state}); log {log}"
        if isinstance(out, CellError):
            return ("user", out.message) if out.user else ("died", f"{out.message}; log {log}")
        return "ok", out


def _visible_gpus() -> list[str]:
    """The GPUs local cells share: CUDA_VISIBLE_DEVICES' entries, else every device torch sees."""
    given = os.environ.get("CUDA_VISIBLE_DEVICES")
    if given is not None:
        return [g.strip() for g in given.split(",") if g.strip()]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


def make_launcher(settings: LaunchSettings, folder: str | Path, progress: bool = True):
    """The launcher the settings ask for; ``folder`` holds submitit's job files and logs."""
    if settings.launcher == "serial":
        return Serial(progress, settings.threads)
    return Submitit(settings, folder, progress)


def describe(settings: LaunchSettings) -> str:
    """One line: where the cells run."""
    if settings.launcher == "serial":
        return "serial (one cell after another in this process)"
    s = settings.slurm
    at_once = settings.jobs or ("all" if settings.launcher == "slurm" else "one per GPU or core")
    where = (
        "local processes"
        if settings.launcher == "local"
        else f"SLURM jobs (partition {s.partition or 'default'}, {s.time_min} min, "
        f"{s.gpus_per_node} GPU, {s.cpus_per_task} CPUs, {s.mem_gb} GB each)"
    )
    return f"{settings.launcher}: {where}, {at_once} at once, {settings.retries} retries per cell"


def chosen(args):
    """The experiment and launcher settings that the main job's or the grid's flags choose
    (``--experiment``/``--quick`` and ``--set``, split between them)."""
    from nmnc.config import parse_sets

    from .experiment import SECTIONS, load_experiment

    experiment_sets, launch_sets = split_sets(parse_sets(args.sets), SECTIONS)
    launch = launch_settings(launch_sets)
    return load_experiment("quick" if args.quick else args.experiment, experiment_sets), launch
