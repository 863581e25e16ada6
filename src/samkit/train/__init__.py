"""Training: fine-tuning SAM on labelled masks (``samkit train``) and the loop other trainings
(``samkit distill``) build on.

The loop (:func:`samkit.train.trainer.fit`) owns everything that is not task-specific:

- the run folder ``project/name`` (``runs/train``, ``runs/train2``, ... never overwritten;
  rank 0 only) with ``args.yaml``, ``results.csv`` / ``results.json`` (one row per epoch:
  ``train/<loss terms>``, the task's validation metrics, ``lr``, ``time``), ``results.png``;
- ``weights/last.pt`` and ``weights/best.pt`` (best by the task's ``fitness`` metric): whatever
  :meth:`TrainTask.weights` returns, i.e. plain state dicts in the official layout, and
  ``weights/last_state.pt`` beside them (optimizer, scheduler, scaler, RNG, epoch, step, the
  task's training state) so that ``resume=True`` continues a killed run to the same result;
- AdamW (no decay on biases / norms), linear warm-up then cosine or step decay per optimiser
  step, gradient clipping, gradient accumulation, AMP on CUDA (bf16, or fp16 with a scaler);
- a memory plan before the first step (:mod:`samkit.train.memory`): one item's need measured,
  micro-batches chosen to fit ``memory`` (default: what the system has available) with the
  global batch kept; an explicit ``accumulate`` that cannot fit is refused with the estimate;
- data parallel under ``torchrun``: DistributedDataParallel, the DistributedSampler
  permutation cut to whole global batches (N processes see the items one process would),
  gloo on CPU / NCCL on CUDA, only rank 0 writes; :func:`samkit.train.distributed.spawn`
  re-launches an entry point under torchrun for ``device="0,1"``;
- a tqdm progress bar per epoch with the running loss and steps/s; ``results.png`` at the end.

Extension points, i.e. how a task plugs in (subclass :class:`TrainTask`):

- ``setup(ctx)``: build the model on ``ctx.device``, caches, datasets (every process);
- ``module()``: the ``nn.Module`` whose ``forward(batch)`` returns :class:`StepOutput`
  (loss = SUM of per-item losses, size, per-item sums to log); frozen parts stay inside it;
- ``parameters()``: what AdamW updates (default: every parameter with ``requires_grad``);
- ``len(task)`` and ``batch(indices, epoch)``: items and how a batch is made (draw randomness
  per item from ``(seed, epoch, index)`` so results do not depend on the process count or the
  micro-batches); ``heaviest_item()`` and ``one_by_one`` inform the memory plan;
- ``validate(epoch)``: metrics for the epoch row (rank 0); ``fitness`` names the one that
  selects ``best.pt``; ``weights()``: the checkpoint contents (e.g. LoRA merged);
- ``training_state()`` / ``load_training_state()``: what resume restores into the module;
- ``args()``: the task's settings, written to ``args.yaml`` next to :class:`TrainConfig`'s.

Example (a distillation task would look the same)::

    from samkit.train import TrainConfig, TrainTask, StepOutput, fit

    class MyTask(TrainTask):
        name, fitness = "distill", "val/mIoU"
        def setup(self, ctx): ...
        def module(self): return self.net
        def __len__(self): return len(self.items)
        def batch(self, indices, epoch): return [self.items[i] for i in indices]

    fit(MyTask(), TrainConfig(epochs=8, batch=16, lr=1e-3, name="distill"))
"""

from __future__ import annotations

from samkit.train.distributed import DistContext
from samkit.train.trainer import StepOutput, TrainConfig, TrainResult, TrainTask, fit

__all__ = ["DistContext", "StepOutput", "TrainConfig", "TrainResult", "TrainTask", "fit"]
