"""The training loop shared by every rule: data, rule step, optimizer, metrics, checkpoints."""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from contextlib import ExitStack, contextmanager, nullcontext
from pathlib import Path

import torch

from ..checkpoint import Checkpoint, assemble, load_checkpoint, save_checkpoint
from ..config import TrainConfig, check
from ..data import load_dataset
from ..data.splits import balanced_subset
from ..engine.distributed import join
from ..engine.noise import ExampleNoise
from ..errors import NmncError, TrainingDiverged, WriteError
from ..io import WRITE_ERRNOS, atomic_write_text, exclusive, writing
from ..models import MODELS, build_model
from ..objective import tally
from ..progress import tqdm
from ..rules import build_rule


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """What a finished (or stopped) run reports."""

    run_dir: Path
    step: int
    total_steps: int
    examples: int
    perturbations: int
    test_acc: float | None
    train_seconds: float
    val_acc: float | None = None  # on the held-out validation split, when the run has one

    @property
    def checkpoint(self) -> Path:
        return self.run_dir / "checkpoint.pt"

    def to_dict(self) -> dict:
        return {
            **dataclasses.asdict(self),
            "run_dir": str(self.run_dir),
            "checkpoint": str(self.checkpoint),
        }


LOCK = ".lock"  # in a run folder: held by the process training it


def pick_device(name: str) -> torch.device:
    """The torch device for ``auto``, ``cpu``, ``cuda[:N]`` or ``mps``; CUDA asked for but
    absent is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise NmncError(
            f"device '{name}' asked for but CUDA is not available here; "
            "use --set device=cpu or auto"
        )
    return torch.device(name)


VAL_SEED = 20_260_101  # one validation split for every run and seed: comparisons stay paired


def split_indices(labels: torch.Tensor, cfg: TrainConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """(validation, training) indices into the training split.

    With ``val_examples`` a seeded class-balanced validation split is carved out first, the same
    for every run; the training subset (``train_examples``, seeded by the run's seed) is drawn
    from the rest, so a run never trains on its validation images.
    """
    n = len(labels)
    if cfg.val_examples + cfg.train_examples > n:
        raise NmncError(
            f"train_examples {cfg.train_examples} and val_examples {cfg.val_examples} exceed "
            f"the {n} training images of {cfg.dataset}"
        )
    if cfg.val_examples == 0:
        if 0 < cfg.train_examples < n:
            return torch.zeros(0, dtype=torch.long), balanced_subset(
                labels, cfg.train_examples, cfg.seed
            )
        return torch.zeros(0, dtype=torch.long), torch.arange(n)
    val = balanced_subset(labels, cfg.val_examples, VAL_SEED)
    keep = torch.ones(n, dtype=torch.bool)
    keep[val] = False
    pool = torch.nonzero(keep).flatten()
    if cfg.train_examples == 0:
        return val, pool
    return val, pool[balanced_subset(labels[pool], cfg.train_examples, cfg.seed)]


def param_groups(model, cfg: TrainConfig) -> list[dict]:
    """Optimizer groups: the hidden layers at ``lr``, the read-out stage at ``readout_lr``."""
    readout = {id(p) for p in model.stage(model.stage_names[-1]).parameters()}
    trainable = [p for p in model.parameters() if p.requires_grad]
    hidden = [p for p in trainable if id(p) not in readout]
    head = [p for p in trainable if id(p) in readout]
    groups = [{"params": hidden, "lr": cfg.lr, "name": "hidden"}] if hidden else []
    return groups + [{"params": head, "lr": cfg.readout_lr or cfg.lr, "name": "readout"}]


def make_optimizer(model, cfg: TrainConfig) -> torch.optim.Optimizer:
    """SGD (Nesterov momentum when momentum > 0) or AdamW over :func:`param_groups`."""
    params = param_groups(model, cfg)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(
            params,
            lr=cfg.lr,
            momentum=cfg.momentum,
            weight_decay=cfg.weight_decay,
            nesterov=cfg.momentum > 0,
        )
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def clip_hidden(model, max_norm: float) -> None:
    """Clip each hidden layer's gradient norm to ``max_norm``; the read-out's exact gradient is
    never touched, so clipping cannot shrink one rule's read-out more than another's."""
    for name in model.hidden_layers:
        grads = [p for p in model.stage(name).parameters() if p.grad is not None]
        if grads:
            torch.nn.utils.clip_grad_norm_(grads, max_norm)


class Run:
    """One training run: builds everything from a TrainConfig, or from a checkpoint to resume."""

    def __init__(
        self, cfg: TrainConfig, resume_from: Checkpoint | None = None, progress: bool = True
    ):
        check(cfg)
        self.world, device = join(cfg.device)  # one process, or this one of torchrun's
        self.cfg, self.progress = cfg, progress and self.world.main
        self.out = Path(cfg.out)
        self.device = pick_device(device)
        if cfg.batch_size % self.world.size:
            raise NmncError(
                f"--batch-size {cfg.batch_size} (the global batch) does not split evenly over "
                f"{self.world.size} processes; choose a multiple of {self.world.size}"
            )
        arch_input = getattr(MODELS.settings(cfg.model, cfg.model_settings), "input_size", None)
        self.data = load_dataset(
            cfg.dataset, cfg.data_root, cfg.download, arch_input, cfg.dataset_settings
        )
        model_settings = dict(cfg.model_settings)
        model_settings["num_classes"] = self.data.num_classes  # the read-out follows the dataset
        if "inputs" in model_settings:  # so do a recurrent model's input units
            given, units = model_settings["inputs"], self.data.input_dim
            if given not in (0, units):
                raise NmncError(
                    f"inputs={given}, but {cfg.dataset} gives {units} input units per step; "
                    "leave inputs at 0 (follow the dataset)"
                )
            model_settings["inputs"] = units
        self.cfg = cfg = dataclasses.replace(cfg, model_settings=model_settings)

        torch.manual_seed(cfg.seed)
        self.model = build_model(cfg.model, MODELS.settings(cfg.model, model_settings)).to(
            self.device
        )
        if self.device.type == "cuda" and not getattr(self.model, "recurrent", False):
            self.model = self.model.to(memory_format=torch.channels_last)  # as the loader's images
        self.rule = build_rule(cfg.rule, self.model, **cfg.rule_settings)
        self.rule.world = self.world
        self.opt = make_optimizer(self.model, cfg)

        self.val_idx, self.train_idx = split_indices(self.data.train.labels, cfg)
        self.steps_per_epoch = len(self.train_idx) // cfg.batch_size
        if self.steps_per_epoch < 1:
            raise NmncError(
                f"batch size {cfg.batch_size} is larger than the {len(self.train_idx)} "
                "training examples; lower --batch-size or raise --train-examples"
            )
        self.total_steps = cfg.steps or max(1, int(round(cfg.epochs * self.steps_per_epoch)))
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, self._lr_factor)
        self.step, self.examples, self.perturbations = 0, 0, 0
        self.metrics: list[dict] = []
        self.elapsed = 0.0
        self.saved_step: int | None = (
            None  # step of the last checkpoint this run wrote or resumed from
        )
        self.resumed = resume_from is not None
        if resume_from is not None:
            self._restore(resume_from)

    def _lr_factor(self, step: int) -> float:
        if self.cfg.schedule == "constant":
            return 1.0
        return 0.5 * (1 + math.cos(math.pi * min(step, self.total_steps) / self.total_steps))

    # ---- data -------------------------------------------------------------------------------
    def _epoch_order(self, epoch: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.cfg.seed * 7_777 + epoch)
        return self.train_idx[torch.randperm(len(self.train_idx), generator=g)]

    def _batches(self, start: int, stop: int):
        """(step, indices) for steps in [start, stop), reproducible from (seed, step) alone: the
        global batches, whatever the number of processes."""
        B, spe = self.cfg.batch_size, self.steps_per_epoch
        out, order, order_epoch = [], None, -1
        for s in range(start, stop):
            epoch, pos = divmod(s, spe)
            if epoch != order_epoch:
                order, order_epoch = self._epoch_order(epoch), epoch
            out.append((s, order[pos * B : (pos + 1) * B]))
        return out

    def _local(self, split, batches, augment: bool, seed: int, eval_batch: bool = False):
        """This process's share of each batch (all of it on one process): a split that loads
        only its share itself (``part``, image folders) does; an in-memory one is sliced."""
        if self.world.size == 1:
            yield from split.loader(
                batches, augment, seed, self.device, num_workers=self.cfg.num_workers
            )
            return
        first, count = self.world.share(self.cfg.batch_size)
        if getattr(split, "loads_part", False):
            yield from split.loader(
                batches,
                augment,
                seed,
                self.device,
                num_workers=self.cfg.num_workers,
                part=(first, count),
            )
            return
        for batch in split.loader(
            batches, augment, seed, self.device, num_workers=self.cfg.num_workers
        ):
            yield tuple(t[first : first + count] for t in batch)

    # ---- loop -------------------------------------------------------------------------------
    def autocast(self):
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return nullcontext()

    def train(self, stop_after: int | None = None) -> TrainResult:
        """Train to ``total_steps`` (or stop after ``stop_after`` more steps); returns the
        summary. The run folder is this process's alone while it trains (``<out>/.lock``); under
        torchrun, rank 0 holds it and writes the folder."""
        with ExitStack() as stack:
            self.world.agree(lambda: stack.enter_context(self._claim_folder()))
            if self.resumed and self.world.main:
                print(f"{self.out}: resuming at step {self.step}", file=sys.stderr)
            try:
                return self._train(stop_after)
            except (OSError, WriteError) as err:
                if isinstance(err, OSError) and err.errno not in WRITE_ERRNOS:
                    raise
                if isinstance(err, OSError):  # the metrics log; the next save rewrites it whole
                    where = err.filename or self.out / "metrics.jsonl"
                    err = f"could not write {where} ({err.strerror})"
                kept = (
                    f"the checkpoint of step {self.saved_step} is kept and "
                    f"'--resume {self.out}' continues from it"
                    if self.saved_step is not None
                    else "no checkpoint had been written yet"
                )
                raise WriteError(f"{err} (at step {self.step}); {kept}") from None

    @contextmanager
    def _claim_folder(self):
        """Hold the run folder (rank 0 under torchrun; the others hold nothing)."""
        if not self.world.main:
            yield
            return
        with writing(self.out):
            self.out.mkdir(parents=True, exist_ok=True)
        with exclusive(self.out / LOCK, f"run folder {self.out}"):
            if not self.resumed and (self.out / "checkpoint.pt").exists():  # written meanwhile
                raise NmncError(
                    f"{self.out} already holds a run; pass --resume {self.out} to continue it, "
                    "or choose another --out"
                )
            yield

    def _train(self, stop_after: int | None) -> TrainResult:
        cfg, world = self.cfg, self.world
        if world.main:
            atomic_write_text(
                self.out / "run.json",
                json.dumps(
                    {
                        "model": cfg.model,
                        "rule": cfg.rule,
                        "seed": cfg.seed,
                        "dataset": cfg.dataset,
                        "total_steps": self.total_steps,
                        "config": dataclasses.asdict(cfg),
                        "world_size": world.size,
                    },
                    indent=1,
                ),
            )
            self._rewrite_log()
        stop = (
            self.total_steps
            if stop_after is None
            else min(self.total_steps, self.step + stop_after)
        )
        bar = tqdm(
            total=self.total_steps,
            initial=self.step,
            desc=f"{cfg.rule}/{cfg.model}",
            unit="step",
            disable=not self.progress,
            dynamic_ncols=True,
        )
        t_last = time.perf_counter()
        last_eval = {}
        first, count = world.share(cfg.batch_size)
        log_file = open(self.out / "metrics.jsonl", "a") if world.main else nullcontext()
        with log_file as log:
            for x, y, *scored in self._local(
                self.data.train, self._batches(self.step, stop), cfg.augment, cfg.seed
            ):
                self.model.train()
                self.opt.zero_grad(set_to_none=True)
                # noise keyed by (seed, step, example): the same on one process and on many
                gen = ExampleNoise(cfg.seed, self.step, first, count, self.device)
                with self.autocast():
                    res = self.rule.step(x, y, gen)
                # each process's loss is a mean over its labelled examples (steps): weigh its
                # gradients by its share of them, so the average is the global batch's mean
                labelled = float((y >= 0).sum())
                right, decided = tally(res.logits, y, *scored)[2:]
                loss, right, decided, total = world.sum(
                    [float(res.loss) * labelled if labelled else 0.0, right, decided, labelled],
                    self.device,
                )
                world.average_gradients(
                    self.model.parameters(), labelled * world.size / max(total, 1)
                )
                loss, acc = loss / max(total, 1), right / decided if decided else math.nan
                if not math.isfinite(loss):
                    bar.close()
                    kept = self.out / "checkpoint.pt"
                    where = (
                        f"the last good checkpoint ({kept}, step {self.saved_step}) is kept"
                        if self.saved_step is not None
                        else "no checkpoint had been written yet"
                    )
                    raise TrainingDiverged(
                        f"loss became {loss} at step {self.step}; stopped without updating; "
                        f"{where}; lower --lr (now {cfg.lr}) or set grad_clip"
                    )
                if cfg.grad_clip > 0:
                    clip_hidden(self.model, cfg.grad_clip)
                lr = self.opt.param_groups[0]["lr"]
                self.opt.step()
                self.sched.step()
                self.step += 1
                self.examples += len(y) * world.size
                self.perturbations += res.perturbations * world.size
                now = time.perf_counter()
                self.elapsed += now - t_last
                t_last = now
                row = {
                    "step": self.step,
                    "examples": self.examples,
                    "perturbations": self.perturbations,
                    "loss": round(loss, 5),
                    "acc": round(acc, 4),
                    "lr": lr,
                    "time": round(self.elapsed, 3),
                    **{k: v * world.size for k, v in (res.info or {}).items()},
                }
                if self.step % cfg.eval_every == 0 or self.step == self.total_steps:
                    last_eval = self.evaluate()
                    row.update(last_eval)
                    t_last = time.perf_counter()  # evaluation time is not training time
                self.metrics.append(row)
                if world.main:
                    log.write(json.dumps(row) + "\n")
                    log.flush()
                bar.set_postfix(
                    loss=f"{loss:.3f}",
                    acc=f"{row['acc']:.2f}",
                    **({"test": f"{last_eval['test_acc']:.3f}"} if last_eval else {}),
                )
                bar.update(1)
                if self.step % cfg.ckpt_every == 0 or self.step == self.total_steps:
                    self.save()
        bar.close()
        return self.summary()

    @torch.no_grad()
    def evaluate(self) -> dict:
        """Test accuracy and loss (on ``eval_examples`` test images), and validation ones when the
        run holds out a validation split."""
        test = self.data.test
        n = len(test)
        idx = (
            balanced_subset(test.labels, self.cfg.eval_examples, 0)
            if 0 < self.cfg.eval_examples < n
            else torch.arange(n)
        )
        out = self._accuracy(test, idx, "test")
        if len(self.val_idx):
            out.update(self._accuracy(self.data.train, self.val_idx, "val"))
        return out

    @torch.no_grad()
    def _accuracy(self, split, idx: torch.Tensor, prefix: str) -> dict:
        self.model.eval()
        sums = [0.0, 0, 0, 0]  # summed loss, loss terms, correct, scored
        batches = [(i, idx[i : i + 500]) for i in range(0, len(idx), 500)]
        world = self.world  # under torchrun each process scores every N-th batch
        for x, y, *scored in split.loader(
            batches[world.rank :: world.size],
            False,
            0,
            self.device,
            num_workers=self.cfg.num_workers,
        ):
            with self.autocast():
                logits = self.model(x).float()
            sums = [a + b for a, b in zip(sums, tally(logits, y, *scored))]
        self.model.train()
        total_loss, terms, correct, n = world.sum([float(v) for v in sums], self.device)
        return {
            f"{prefix}_acc": correct / n if n else float("nan"),
            f"{prefix}_loss": total_loss / max(terms, 1),
        }

    def summary(self) -> TrainResult:
        evals = [m for m in self.metrics if "test_acc" in m]
        return TrainResult(
            self.out,
            self.step,
            self.total_steps,
            self.examples,
            self.perturbations,
            evals[-1]["test_acc"] if evals else None,
            self.elapsed,
            evals[-1].get("val_acc") if evals else None,
        )

    # ---- checkpoints ------------------------------------------------------------------------
    def save(self) -> Path:
        """Write the checkpoint atomically (rank 0 only under torchrun: every process holds the
        same weights, optimizer and rule state)."""
        cfg = self.cfg
        if not self.world.main:
            self.saved_step = self.step
            return self.out / "checkpoint.pt"
        rng = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        d = self.data
        data = {
            "dataset": cfg.dataset,
            "source": d.source,
            "train_examples": len(self.train_idx),
            "val_examples": len(self.val_idx),
            "subset_seed": cfg.seed if len(self.train_idx) < len(d.train) else None,
            "classes": list(d.classes),
            "mean": list(d.mean),
            "std": list(d.std),
            "input_size": d.input_size,
            "augment": cfg.augment,
            "kind": getattr(d, "kind", "image"),
        }
        if data["kind"] == "sequence":
            data.update(input_dim=d.input_dim, seq_len=d.seq_len, extra=d.extra)
        payload = assemble(
            model=cfg.model,
            model_settings=cfg.model_settings,
            rule=cfg.rule,
            rule_settings=cfg.rule_settings,
            rule_state=self.rule.state_dict(),
            config=dataclasses.asdict(cfg),
            model_state=self.model.state_dict(),
            optimizer_state=self.opt.state_dict(),
            scheduler_state=self.sched.state_dict(),
            rng=rng,
            step=self.step,
            total_steps=self.total_steps,
            examples=self.examples,
            perturbations=self.perturbations,
            elapsed=self.elapsed,
            data=data,
            metrics=self.metrics,
            device=str(self.device),
            world_size=self.world.size,
            backend=self.world.backend,
        )
        path = save_checkpoint(self.out / "checkpoint.pt", payload)
        self.saved_step = self.step
        return path

    def _restore(self, ckpt: Checkpoint) -> None:
        try:
            self.model.load_state_dict(ckpt.model_state)
            self.opt.load_state_dict(ckpt.optimizer_state)
        except (RuntimeError, ValueError, KeyError) as err:
            first = str(err).strip().splitlines()[0][:160]
            raise NmncError(
                f"{ckpt.path}: its weights do not fit model '{self.cfg.model}' ({first}); "
                "resume only runs written by this nmnc"
            ) from None
        self.sched.load_state_dict(ckpt.scheduler_state)
        self.rule.load_state_dict(ckpt.rule_state)
        torch.set_rng_state(ckpt.rng["torch"])
        if "cuda" in ckpt.rng and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(ckpt.rng["cuda"])
        c = ckpt.counters
        self.step, self.examples, self.perturbations, self.elapsed = (
            c["step"],
            c["examples"],
            c["perturbations"],
            c["elapsed"],
        )
        self.metrics = ckpt.metrics
        self.saved_step = self.step

    def _rewrite_log(self) -> None:  # rank 0
        """The log on disk always matches the metrics the run holds (drops rows after a crash)."""
        atomic_write_text(
            self.out / "metrics.jsonl", "".join(json.dumps(m) + "\n" for m in self.metrics)
        )


def config_from_checkpoint(ckpt: Checkpoint, **changes) -> TrainConfig:
    """The configuration a checkpoint was trained with, with ``changes`` applied."""
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    saved = {k: v for k, v in ckpt.config.items() if k in fields}
    return dataclasses.replace(TrainConfig(**saved), **changes)


def train(cfg: TrainConfig, progress: bool = True) -> TrainResult:
    """Train a fresh run described by ``cfg`` into ``cfg.out``."""
    out = Path(cfg.out)
    if (out / "checkpoint.pt").exists():
        raise NmncError(
            f"{out} already holds a run; pass --resume {out} to continue it, "
            "or choose another --out"
        )
    return Run(cfg, progress=progress).train()


def resume(out: str | Path, progress: bool = True, **changes) -> TrainResult:
    """Continue the run saved in ``out`` (``changes`` may extend steps or move data_root/device)."""
    ckpt = load_checkpoint(Path(out) / "checkpoint.pt")
    cfg = config_from_checkpoint(ckpt, out=str(out), **changes)
    return Run(cfg, resume_from=ckpt, progress=progress).train()  # checks the weights fit


# settings that do not change what a run learns: a run may be continued under other values
RUNTIME_KEYS = (
    "out",
    "data_root",
    "download",
    "device",
    "num_workers",
    "eval_every",
    "eval_examples",
    "ckpt_every",
)


def learned_settings(cfg: TrainConfig) -> dict:
    """Every setting that changes what a run learns, flat (``model.width``, ``rule.P``, ``lr``)."""
    d = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in RUNTIME_KEYS}
    for group, scope in (("model_settings", "model"), ("rule_settings", "rule")):
        d.update({f"{scope}.{k}": v for k, v in d.pop(group).items()})
    d.update({f"data.{k}": v for k, v in (d.pop("dataset_settings", None) or {}).items()})
    d.pop("model.num_classes", None)  # follows the dataset
    d.pop("model.inputs", None)  # so do a recurrent model's input units
    return d


def config_differences(saved: TrainConfig, wanted: TrainConfig) -> list[str]:
    """``key: saved -> wanted`` for every setting that changes what a run learns."""
    a, b = learned_settings(saved), learned_settings(wanted)
    return [
        f"{k}: {a.get(k)} -> {b.get(k)}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)
    ]


def check_run_folder(cfg: TrainConfig, ignore: tuple[str, ...] = ()) -> Checkpoint | None:
    """The run already in ``cfg.out``, if any; a one-line error when its settings differ
    (apart from the settings named in ``ignore``)."""
    out = Path(cfg.out)
    if not (out / "checkpoint.pt").exists():
        return None
    ckpt = load_checkpoint(out / "checkpoint.pt")
    diff = [
        d
        for d in config_differences(config_from_checkpoint(ckpt), cfg)
        if d.split(":")[0] not in ignore
    ]
    if diff:
        raise NmncError(
            f"{out} holds a run with other settings ({'; '.join(diff[:4])}); delete that "
            "folder to train anew, or choose another output folder"
        )
    return ckpt


def train_or_resume(cfg: TrainConfig, progress: bool = True) -> TrainResult:
    """Skip a finished run in ``cfg.out``, resume an interrupted one, else start fresh.

    A run folder that holds a run with other settings is refused with one line naming them, so
    changed settings never reuse old weights.
    """

    ckpt = check_run_folder(cfg)
    if ckpt is None:
        return Run(cfg, progress=progress).train()
    out = Path(cfg.out)
    if ckpt.finished:
        print(f"{out}: finished earlier (step {ckpt.step}), skipped", file=sys.stderr)
        c = ckpt.counters
        return TrainResult(
            out,
            ckpt.step,
            ckpt.total_steps,
            c["examples"],
            c["perturbations"],
            ckpt.test_acc,
            c["elapsed"],
            ckpt.val_acc,
        )
    runtime = {k: getattr(cfg, k) for k in RUNTIME_KEYS if k != "out"}  # these may change on resume
    return resume(out, progress, **runtime)
