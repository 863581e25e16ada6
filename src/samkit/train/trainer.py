"""The training loop every samkit training uses (fine-tuning, distillation): a task supplies the
model, the data and the loss; :func:`fit` owns everything else. See :mod:`samkit.train` for the
extension points."""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

from samkit.errors import SamkitError
from samkit.run_checks import check_run_settings
from samkit.train import distributed, memory, rng, runs
from samkit.train.distributed import DistContext
from samkit.train.guards import check_loss, check_weights
from samkit.train.schedule import SCHEDULES, make_optimizer, make_scheduler

__all__ = ["StepOutput", "TrainConfig", "TrainResult", "TrainTask", "fit"]

logger = logging.getLogger("samkit")


@dataclass
class TrainConfig:
    """Settings of the loop itself (a task adds its own to ``args.yaml``).

    ``batch`` is the global batch: items per optimiser step over all processes, split into
    ``accumulate`` micro-batches per process; it must divide by ``world * accumulate``.
    ``accumulate=0`` (default) lets the memory plan choose (:mod:`samkit.train.memory`: the
    largest micro-batch that fits); ``memory``: GB the process may use (0: 80 % of what the
    system has available). An explicit ``accumulate`` that cannot fit is refused before the
    first step.
    ``warmup``: optimiser steps of linear warm-up (None: 5 % of all steps, at most 200).
    ``amp``: mixed precision on CUDA (bf16 where supported, else fp16 with a gradient scaler);
    ignored on CPU. ``resume``: True (latest ``project/name*`` run) or a run folder / file in it.
    """

    epochs: int = 10
    batch: int = 8
    accumulate: int = 0
    memory: float = 0.0
    lr: float = 1e-4
    weight_decay: float = 0.01
    warmup: int | None = None
    schedule: str = "cosine"
    lr_final: float = 0.01
    step_every: int = 0
    gamma: float = 0.1
    clip: float = 1.0
    amp: bool = True
    device: str | None = None
    seed: int = 0
    project: str = "runs"
    name: str = "train"
    exist_ok: bool = False
    resume: bool | str = False
    progress: bool = True
    val: bool = True
    save_period: int = 0
    plots: bool = True

    def check(self) -> None:
        """Raise SamkitError naming the first setting out of range."""
        check_run_settings(asdict(self), "training")
        if self.schedule not in SCHEDULES:
            raise SamkitError(
                f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}"
            )


class StepOutput(NamedTuple):
    """What the task module's ``forward(batch)`` returns: ``loss`` the SUM of the per-item losses
    of the batch (a scalar tensor), ``size`` the number of items, ``logs`` per-item sums of
    quantities to report (floats or scalar tensors), averaged per item in the epoch row."""

    loss: torch.Tensor
    size: int
    logs: dict[str, Any]


class TrainTask:
    """The task-specific half of a training. Subclass and override what the loop calls:

    - :meth:`setup` (every process, once): build the model on ``ctx.device``, caches, data.
    - :meth:`module`: the ``nn.Module`` whose ``forward(batch)`` returns a :class:`StepOutput`;
      it is wrapped in DistributedDataParallel under torchrun.
    - :meth:`parameters`: what the optimiser updates (default: parameters with requires_grad).
    - ``len(task)``: number of training items; :meth:`batch` turns item indices into a batch
      (``epoch`` lets it draw per-item randomness that does not depend on the process count).
    - :meth:`validate` (rank 0 only): metrics; ``fitness`` names the one that picks best.pt.
    - :meth:`weights`: the state dict written to ``weights/last.pt`` and ``best.pt``.
    - :meth:`training_state` / :meth:`load_training_state`: the tensors ``resume`` needs.
    - :meth:`args`: the task's settings for ``args.yaml``.
    - ``unused_parameters``: True when a step may leave trainable parameters without a
      gradient (DDP's ``find_unused_parameters``).
    """

    name: str = "train"
    fitness: str = "fitness"
    unused_parameters: bool = False  # some trainable parameters may get no gradient in a step
    one_by_one: bool = False  # forward takes items in turn: 1 per micro-batch is as fast

    def setup(self, ctx: DistContext) -> None:
        self.ctx = ctx

    def module(self) -> nn.Module:
        raise NotImplementedError

    def parameters(self) -> list[Any]:
        return [p for p in self.module().parameters() if p.requires_grad]

    def __len__(self) -> int:
        raise NotImplementedError

    def batch(self, indices: list[int], epoch: int) -> Any:
        raise NotImplementedError

    def heaviest_item(self) -> int:
        """Index of the item whose step needs the most memory (the memory plan measures it)."""
        return 0

    def validate(self, epoch: int) -> dict[str, float]:
        return {}

    def weights(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu() for k, v in self.module().state_dict().items()}

    def training_state(self) -> dict[str, torch.Tensor]:
        """Trainable parameters and all buffers of :meth:`module`, in training form."""
        module = self.module()
        trainable = {n for n, p in module.named_parameters() if p.requires_grad}
        buffers = {n for n, _ in module.named_buffers()}
        return {
            k: v.detach().cpu().clone()
            for k, v in module.state_dict().items()
            if k in trainable or k in buffers
        }

    def load_training_state(self, state: dict[str, torch.Tensor]) -> None:
        own = self.module().state_dict()
        bad = [k for k, v in state.items() if k not in own or own[k].shape != v.shape]
        if bad:
            raise SamkitError(f"training state does not fit the model: {', '.join(bad[:5])}")
        self.module().load_state_dict(state, strict=False)

    def args(self) -> dict[str, Any]:
        return {}


@dataclass
class TrainResult:
    """Where a finished (or resumed and finished) training left its outputs."""

    run_dir: Path | None
    last: Path | None
    best: Path | None
    rows: list[dict[str, float]] = field(default_factory=list)
    best_fitness: float = -math.inf


def fit(task: TrainTask, config: TrainConfig, ctx: DistContext | None = None) -> TrainResult:
    """Train ``task`` with ``config`` in this process (one of ``torchrun``'s when launched so).
    Only rank 0 writes the run folder; every rank returns the same rows."""
    config.check()
    own_group = ctx is None
    ctx = ctx or distributed.init(config.device)
    try:
        return _Loop(task, config, ctx).run()
    finally:
        if own_group:
            distributed.shutdown()


class _Loop:
    """One training run; :meth:`run` is the whole life cycle."""

    def __init__(self, task: TrainTask, config: TrainConfig, ctx: DistContext) -> None:
        self.task, self.cfg, self.ctx = task, config, ctx
        parts = ctx.world * max(config.accumulate, 1)
        per_part, rest = divmod(config.batch, parts)
        if rest or per_part < 1:
            raise SamkitError(
                f"batch={config.batch} must be a multiple of processes x accumulate "
                f"({ctx.world} x {config.accumulate})"
            )
        self.per_rank = config.batch // ctx.world
        self.accumulate = max(config.accumulate, 1)
        self.micro = self.per_rank // self.accumulate
        self.amp_dtype = self._amp_dtype()
        self.run_dir: Path | None = None
        self.rows: list[dict[str, float]] = []
        self.best = -math.inf
        self.epoch = 0
        self.step = 0

    def _amp_dtype(self) -> torch.dtype | None:
        if not self.cfg.amp or self.ctx.device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16

    # ------------------------------------------------------------------ setup
    def run(self) -> TrainResult:
        cfg, task = self.cfg, self.task
        rng.seed_everything(cfg.seed)
        resume_dir = runs.find_resume(cfg.resume, cfg.project, cfg.name) if cfg.resume else None
        task.setup(self.ctx)
        n = len(task)
        self.steps_per_epoch = n // cfg.batch
        if self.steps_per_epoch < 1:
            raise SamkitError(f"batch={cfg.batch} is larger than the training set ({n} items)")
        total = cfg.epochs * self.steps_per_epoch
        warmup = cfg.warmup if cfg.warmup is not None else min(200, total // 20)
        self.params = task.parameters()
        self.optimizer = make_optimizer(self.params, cfg.lr, cfg.weight_decay)
        self.scheduler = make_scheduler(
            self.optimizer, total, warmup, cfg.schedule, cfg.lr_final, cfg.step_every, cfg.gamma
        )
        self.flat_params = [p for g in self.optimizer.param_groups for p in g["params"]]
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        if resume_dir is not None:
            self._load_state(resume_dir)
        self._plan_memory()
        self.wrapped = self._wrap(task.module())
        if self.ctx.is_main:
            self.run_dir = resume_dir or self._new_run_dir()
            runs.remove_partial(self.run_dir)
            runs.write_args(self.run_dir, {**asdict(cfg), **task.args()})
        return self._train()

    def _plan_memory(self) -> None:
        """Micro-batch size from one item's measured need and the memory budget (see
        :mod:`samkit.train.memory`); raises before the first step when it cannot fit."""
        cfg, task = self.cfg, self.task
        budget = memory.step_budget(self.ctx.device, cfg.memory)
        if budget == math.inf and cfg.accumulate > 0:
            return
        per_item = memory.item_bytes(task, self._autocast)
        plan = memory.plan_micro_batches(
            self.per_rank, cfg.accumulate, per_item, memory.optimizer_bytes(self.params), budget,
            batch=cfg.batch, one_by_one=task.one_by_one,
        )  # fmt: skip
        self.micro, self.accumulate = plan.micro, plan.accumulate
        if self.ctx.is_main:
            logger.info("memory: %s", plan.describe(cfg.batch))

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast("cuda", dtype=self.amp_dtype)

    def _new_run_dir(self) -> Path:
        from samkit.io_utils import increment_path

        return increment_path(self.cfg.project, self.cfg.name, self.cfg.exist_ok)

    def _wrap(self, module: nn.Module) -> nn.Module:
        if not self.ctx.distributed:
            return module
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.ctx.device.index] if self.ctx.device.type == "cuda" else None
        unused = self.task.unused_parameters
        return DistributedDataParallel(module, device_ids=ids, find_unused_parameters=unused)

    def _load_state(self, run_dir: Path) -> None:
        path = run_dir / "weights" / runs.STATE_FILE
        state = torch.load(path, map_location="cpu", weights_only=True)
        self.task.load_training_state(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.step = int(state["epoch"]), int(state["step"])
        self.best, self.rows = float(state["best_fitness"]), list(state["rows"])
        rng.set_state(state["rng"])
        if self.ctx.is_main:
            logger.info("resuming %s after epoch %d (step %d)", run_dir, self.epoch, self.step)

    # ------------------------------------------------------------------ loop
    def _train(self) -> TrainResult:
        cfg = self.cfg
        for epoch in range(self.epoch, cfg.epochs):
            start = time.perf_counter()
            logs = self._train_epoch(epoch)
            metrics = self.task.validate(epoch) if self.ctx.is_main and cfg.val else {}
            row: dict[str, float] = {"epoch": epoch + 1}
            row.update({f"train/{k}": v for k, v in logs.items()})
            row.update(metrics)
            row["lr"] = float(self.optimizer.param_groups[0]["lr"])
            row["time"] = round(time.perf_counter() - start, 3)
            self.rows.append(row)
            self.epoch = epoch + 1
            if self.ctx.is_main:
                self._save(row)
            self.ctx.barrier()
        return self._result()

    def _order(self, epoch: int) -> list[int]:
        """This process's item indices for ``epoch``: DistributedSampler's permutation, cut to
        whole global batches, so N processes see exactly the items of one process's batches."""
        from torch.utils.data import DistributedSampler

        sampler: DistributedSampler[int] = DistributedSampler(
            range(len(self.task)),  # type: ignore[arg-type]
            num_replicas=self.ctx.world,
            rank=self.ctx.rank,
            shuffle=True,
            seed=self.cfg.seed,
        )
        sampler.set_epoch(epoch)
        return list(sampler)[: self.steps_per_epoch * self.per_rank]

    def _micro_batches(self, chunk: list[int]) -> Iterator[tuple[bool, list[int]]]:
        for m in range(self.accumulate):
            yield m == self.accumulate - 1, chunk[m * self.micro : (m + 1) * self.micro]

    def _train_epoch(self, epoch: int) -> dict[str, float]:
        from tqdm import tqdm

        self.wrapped.train()
        order = self._order(epoch)
        sums: dict[str, float] = {"loss": 0.0}
        count = 0
        bar = tqdm(
            total=self.steps_per_epoch,
            desc=f"epoch {epoch + 1}/{self.cfg.epochs}",
            unit="step",
            disable=not (self.ctx.is_main and self.cfg.progress),
            leave=True,
        )
        with bar:
            for s in range(self.steps_per_epoch):
                chunk = order[s * self.per_rank : (s + 1) * self.per_rank]
                for last, items in self._micro_batches(chunk):
                    out = self._forward_backward(items, epoch, sync=last)
                    loss = float(out.loss.detach())
                    check_loss(loss, epoch, s, float(self.optimizer.param_groups[0]["lr"]))
                    sums["loss"] += loss
                    for k, v in out.logs.items():
                        sums[k] = sums.get(k, 0.0) + float(v)
                    count += out.size
                self._optimizer_step()
                bar.update(1)
                bar.set_postfix(loss=f"{sums['loss'] / max(count, 1):.4f}")
        keys = list(sums)
        totals = distributed.all_reduce_sum([*(sums[k] for k in keys), count], self.ctx)
        return {k: totals[i] / max(totals[-1], 1.0) for i, k in enumerate(keys)}

    def _forward_backward(self, items: list[int], epoch: int, sync: bool) -> StepOutput:
        batch = self.task.batch(items, epoch)
        no_sync = (
            self.wrapped.no_sync()  # type: ignore[operator]
            if self.ctx.distributed and not sync
            else contextlib.nullcontext()
        )
        with no_sync:
            with self._autocast():
                out: StepOutput = self.wrapped(batch)
            self.scaler.scale(out.loss / self.per_rank).backward()
        return out

    def _optimizer_step(self) -> None:
        if self.cfg.clip > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.flat_params, self.cfg.clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        self.step += 1

    # ------------------------------------------------------------------ outputs
    def _save(self, row: dict[str, float]) -> None:
        assert self.run_dir is not None  # set on rank 0 in run()
        weights_dir = self.run_dir / "weights"
        fitness = row.get(self.task.fitness, -row.get("train/loss", math.inf))
        weights = self.task.weights()
        check_weights(weights, str(weights_dir / "last.pt"))
        runs.save_torch(weights, weights_dir / "last.pt")
        if fitness > self.best or not (weights_dir / "best.pt").exists():
            self.best = max(self.best, float(fitness))
            runs.save_torch(weights, weights_dir / "best.pt")
        if self.cfg.save_period > 0 and self.epoch % self.cfg.save_period == 0:
            runs.save_torch(weights, weights_dir / f"epoch{self.epoch}.pt")
        state = {
            "epoch": self.epoch,
            "step": self.step,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": rng.get_state(),
            "best_fitness": self.best,
            "rows": self.rows,
            "model": self.task.training_state(),
        }
        runs.save_torch(state, weights_dir / runs.STATE_FILE)
        runs.write_results(self.run_dir, self.rows)
        shown = ", ".join(f"{k}={v:.4g}" for k, v in row.items() if k != "epoch")
        logger.info("epoch %d: %s", int(row["epoch"]), shown)

    def _result(self) -> TrainResult:
        if self.run_dir is None:
            return TrainResult(None, None, None, self.rows, self.best)
        weights_dir = self.run_dir / "weights"
        if self.cfg.plots and self.rows:
            runs.write_plots(self.run_dir, self.rows)
        logger.info("results saved to %s", self.run_dir)
        return TrainResult(
            self.run_dir, weights_dir / "last.pt", weights_dir / "best.pt", self.rows, self.best
        )
