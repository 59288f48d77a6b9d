"""Ignite engines: a supervised trainer with device-aware AMP, and the bilevel IAC search engine.

MONAI's ``SupervisedTrainer`` hard-codes ``torch.autocast("cuda")`` and a CUDA grad scaler, so on the CPU its
``amp=True`` silently does nothing. :class:`IACTrainer` keeps MONAI's interface (events, handlers, metrics,
``amp_kwargs``, ``compile``, ``_target_`` use in bundles) and autocasts on whatever device it runs: bf16 on the CPU
(no scaler), fp16 with a grad scaler on CUDA by default, or bf16 there if asked (no scaler).

:class:`IACSearchTrainer` is the first-order DARTS search (Liu et al. 2019): every iteration one step of the
architecture parameters (α, β) on a batch of the search-val patients, then one step of the cell weights on the
search-train batch. The first ``warmup_steps`` iterations train weights only (counted in weight steps, so the
warm-up means the same on a small and a large dataset).

A non-finite loss, α or β stops the search at once with a one-line :class:`NonFiniteError` naming the epoch, the
arch step and the tensor: no genotype is written (the pruning handler writes it only when the run completes) and
the last checkpoint, from the end of the previous epoch, stays as it was.

Under ``torchrun`` (:mod:`iac_components.distributed`): every rank starts from rank 0's network, the gradients an
optimiser steps are averaged across ranks (by DDP's backward when the network is wrapped in it, as for training;
by one all-reduce otherwise, as for the search, whose α/β therefore stay identical on every rank), and a
``DistributedSampler`` gets ``set_epoch`` at every epoch.

Exact resume: with ``seed`` set, every epoch starts by re-seeding Python, NumPy and torch, the loaders'
generators and the random transforms of loaders without workers, from ``(seed, epoch)``. A run resumed at an
epoch boundary therefore sees the same batches as an uninterrupted one, with no RNG state in the checkpoint.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from ignite.engine import Engine, EventEnum, Events
from monai.data import MetaTensor
from monai.engines import SupervisedTrainer
from monai.engines.utils import IterationEvents, default_prepare_batch
from monai.engines.workflow import Workflow
from monai.inferers import Inferer
from monai.utils.enums import CommonKeys as Keys
from torch.nn.parallel import DistributedDataParallel

from iac_components.distributed import average_gradients, broadcast_module, is_distributed
from iac_components.utils import as_bool

__all__ = ["IACSearchTrainer", "IACTrainer", "NonFiniteError", "SearchEvents", "autocast_dtype", "reseed_loaders"]


class NonFiniteError(RuntimeError):
    """A loss or an architecture parameter became NaN or infinite; the message is one line."""


class SearchEvents(EventEnum):
    """Events fired by :class:`IACSearchTrainer` inside an iteration."""

    ARCH_STEP_COMPLETED = "arch_step_completed"


def autocast_dtype(device: torch.device, amp: bool, amp_dtype: str | torch.dtype | None) -> torch.dtype | None:
    """The autocast dtype for ``device``: None without AMP; bf16 on the CPU; fp16 on CUDA unless told."""
    if not amp:
        return None
    if amp_dtype is not None:
        dtype = getattr(torch, amp_dtype) if isinstance(amp_dtype, str) else amp_dtype
        if device.type == "cpu" and dtype != torch.bfloat16:
            raise ValueError(f"CPU autocast supports bfloat16 only, got {amp_dtype}")
        return dtype
    return torch.bfloat16 if device.type != "cuda" else torch.float16


def _set_loader_seed(loader: Any, seed: int) -> None:
    gen = getattr(loader, "generator", None)
    if isinstance(gen, torch.Generator):
        gen.manual_seed(seed)
    sampler = getattr(loader, "sampler", None)
    if isinstance(getattr(sampler, "generator", None), torch.Generator) and sampler.generator is not gen:
        sampler.generator.manual_seed(seed + 1)
    if getattr(loader, "num_workers", 1) == 0 and hasattr(loader, "dataset"):
        # without workers, MONAI's random transforms keep their own RandomState in this process
        from monai.data.utils import set_rnd

        set_rnd(loader.dataset, seed=seed + 2)


def reseed_loaders(seed: int, loaders: Iterable[Any]) -> None:
    """Seed Python, NumPy, torch and each loader's generator / random transforms from ``seed``."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    for k, loader in enumerate(loaders):
        if loader is not None:
            _set_loader_seed(loader, seed + 1000 * (k + 1))


def _as_device(device: str | torch.device) -> torch.device:
    return device if isinstance(device, torch.device) else torch.device(device)


def _as_dtype(dtype: str | torch.dtype) -> torch.dtype:
    return getattr(torch, dtype) if isinstance(dtype, str) else dtype


def _split_amp_kwargs(
    amp_dtype: str | torch.dtype | None, amp_kwargs: dict | None
) -> tuple[str | torch.dtype | None, dict]:
    """``amp_dtype`` and the other ``torch.autocast`` arguments, with ``amp_kwargs["dtype"]`` taken as ``amp_dtype``.

    Raises:
        ValueError: ``amp_kwargs`` sets ``device_type``, or a ``dtype`` that disagrees with ``amp_dtype``.
    """
    kwargs = dict(amp_kwargs or {})
    if "device_type" in kwargs:
        raise ValueError("amp_kwargs cannot set device_type: IACTrainer autocasts on the device it runs on")
    if "dtype" in kwargs:
        dtype = kwargs.pop("dtype")
        if amp_dtype is not None and _as_dtype(amp_dtype) != _as_dtype(dtype):
            raise ValueError(f"amp_dtype={amp_dtype} and amp_kwargs dtype={dtype} disagree; give one of them")
        amp_dtype = dtype
    return amp_dtype, kwargs


class IACTrainer(SupervisedTrainer):
    """MONAI ``SupervisedTrainer`` with AMP on any device and per-epoch re-seeding.

    Arguments are those of ``SupervisedTrainer`` plus:

    Args:
        amp: autocast on the engine's device (bf16 on the CPU); accepts ``"false"``/``"0"`` strings.
        amp_dtype: ``"bfloat16"`` or ``"float16"``; default bf16 on the CPU and fp16 (with a grad scaler) on CUDA.
        amp_kwargs: as ``SupervisedTrainer``: more ``torch.autocast`` arguments (e.g. ``cache_enabled``); a
            ``dtype`` there is taken as ``amp_dtype``; ``device_type`` is the engine's device and cannot be set.
        compile, compile_kwargs: as ``SupervisedTrainer``: ``torch.compile(network, **compile_kwargs)``, fed plain
            tensors (a ``MetaTensor`` input's meta goes back onto the prediction in ``engine.state.output``).
        seed: re-seed RNGs and loaders from ``(seed, epoch)`` at every epoch start (exact resume); None to leave
            them alone.
    """

    def __init__(
        self,
        device: str | torch.device,
        max_epochs: int,
        train_data_loader: Iterable,
        network: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        loss_function: Callable,
        epoch_length: int | None = None,
        non_blocking: bool = False,
        prepare_batch: Callable = default_prepare_batch,
        iteration_update: Callable | None = None,
        inferer: Inferer | None = None,
        postprocessing: Callable | None = None,
        key_train_metric: dict | None = None,
        additional_metrics: dict | None = None,
        train_handlers: Sequence | None = None,
        amp: bool | str = False,
        amp_dtype: str | torch.dtype | None = None,
        event_names: list | None = None,
        event_to_attr: dict | None = None,
        decollate: bool = True,
        optim_set_to_none: bool = True,
        to_kwargs: dict | None = None,
        amp_kwargs: dict | None = None,
        compile: bool = False,
        compile_kwargs: dict | None = None,
        seed: int | None = None,
    ) -> None:
        device = _as_device(device)
        if is_distributed():
            import ignite.distributed as idist

            idist.get_rank()  # Ignite's lazy group set-up is a collective: every rank builds a trainer, so here
        amp = as_bool(amp)
        amp_dtype, amp_kwargs = _split_amp_kwargs(amp_dtype, amp_kwargs)
        self.autocast_dtype = autocast_dtype(device, amp, amp_dtype)
        self.seed = seed
        self._seeded_loaders: list[Any] = [train_data_loader]
        super().__init__(
            device=device,
            max_epochs=int(max_epochs),
            train_data_loader=train_data_loader,
            network=network,
            optimizer=optimizer,
            loss_function=loss_function,
            epoch_length=epoch_length,
            non_blocking=non_blocking,
            prepare_batch=prepare_batch,
            iteration_update=iteration_update,
            inferer=inferer,
            postprocessing=postprocessing,
            key_train_metric=key_train_metric,
            additional_metrics=additional_metrics,
            train_handlers=None,
            amp=amp,
            event_names=(event_names or []) + [SearchEvents],
            event_to_attr=event_to_attr,
            decollate=decollate,
            optim_set_to_none=optim_set_to_none,
            to_kwargs=to_kwargs,
            amp_kwargs=amp_kwargs,
            compile=as_bool(compile),
            compile_kwargs=compile_kwargs,
        )
        # re-seed before any user handler runs at EPOCH_STARTED, then attach the user handlers
        self.add_event_handler(Events.EPOCH_STARTED, self._reseed)
        self.add_event_handler(Events.STARTED, self._same_network_on_every_rank)
        if train_handlers is not None:
            self._register_handlers(train_handlers)

    # --- AMP ----------------------------------------------------------------------------------------------
    def run(self) -> None:  # type: ignore[override]
        use_scaler = self.autocast_dtype == torch.float16 and self.state.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda") if use_scaler else None
        Workflow.run(self)  # skips Trainer.run, which would make a CUDA-only scaler

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.state.device.type, dtype=self.autocast_dtype, **self.amp_kwargs)

    def _step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer, params: list[torch.nn.Parameter]) -> bool:
        """Backward into ``params`` only, then step ``optimizer`` (with the grad scaler when there is one).

        Returns:
            False when the grad scaler skipped the step (inf/NaN gradients in fp16), else True.
        """
        scaled = self.scaler.scale(loss) if self.scaler is not None else loss
        if isinstance(self.network, DistributedDataParallel):
            scaled.backward()  # DDP's hooks all-reduce the gradients during the backward pass
        else:
            grads = torch.autograd.grad(scaled, params, allow_unused=True)
            for p, g in zip(params, grads):
                p.grad = g
            average_gradients(params)  # under torchrun without DDP (the search): the mean over ranks
        if self.scaler is None:
            optimizer.step()
            return True
        scale = self.scaler.get_scale()
        self.scaler.step(optimizer)
        self.scaler.update()
        return self.scaler.get_scale() >= scale  # the scaler lowers its scale exactly when it skipped the step

    @staticmethod
    def _trainable(optimizer: torch.optim.Optimizer) -> list[torch.nn.Parameter]:
        return [p for g in optimizer.param_groups for p in g["params"] if p.requires_grad]

    def _forward(self, inputs: Any, args: tuple, kwargs: dict) -> Any:
        if self.compile and isinstance(inputs, MetaTensor):
            inputs = inputs.as_tensor()  # torch.compile and MetaTensor do not mix (pytorch/pytorch#117026)
        with self.autocast():
            return self.inferer(inputs, self.network, *args, **kwargs)

    def _loss(self, pred: Any, targets: Any) -> torch.Tensor:
        # the loss in fp32: Dice's sums and CE's log-softmax lose too much in bf16
        return self.loss_function(_to_float(pred), targets).mean()

    def _unpack(self, batchdata: Any) -> tuple[Any, Any, tuple, dict]:
        if batchdata is None:
            raise ValueError("Must provide batch data for current iteration.")
        batch = self.prepare_batch(batchdata, self.state.device, self.non_blocking, **self.to_kwargs)
        if len(batch) == 2:
            return batch[0], batch[1], (), {}
        return batch

    def _weight_step(self, engine: IACTrainer, batchdata: Any, extra: dict | None = None) -> dict:
        inputs, targets, args, kwargs = self._unpack(batchdata)
        engine.state.output = {Keys.IMAGE: inputs, Keys.LABEL: targets, **(extra or {})}
        engine.network.train()
        engine.optimizer.zero_grad(set_to_none=engine.optim_set_to_none)
        pred = self._forward(inputs, args, kwargs)
        engine.state.output[Keys.PRED] = pred
        engine.fire_event(IterationEvents.FORWARD_COMPLETED)
        loss = self._loss(pred, targets)
        engine.state.output[Keys.LOSS] = loss
        engine.fire_event(IterationEvents.LOSS_COMPLETED)
        self._step(loss, engine.optimizer, self._trainable(engine.optimizer))
        engine.fire_event(IterationEvents.BACKWARD_COMPLETED)
        if self.compile and isinstance(inputs, MetaTensor) and isinstance(pred, torch.Tensor):
            # the compiled network ran on a plain tensor: its prediction gets the input's meta (as SupervisedTrainer)
            engine.state.output[Keys.PRED] = MetaTensor(
                pred, meta=inputs.meta, applied_operations=inputs.applied_operations
            )
        engine.fire_event(IterationEvents.MODEL_COMPLETED)
        return engine.state.output

    def _iteration(self, engine: IACTrainer, batchdata: Any) -> dict:  # type: ignore[override]
        return self._weight_step(engine, batchdata)

    # --- determinism ------------------------------------------------------------------------------------------
    def _same_network_on_every_rank(self, engine: Engine) -> None:
        if not isinstance(self.network, DistributedDataParallel):  # DDP broadcasts rank 0's module itself
            broadcast_module(self.network)

    def _reseed(self, engine: Engine) -> None:
        for loader in self._seeded_loaders:
            sampler = getattr(loader, "sampler", None)
            if callable(getattr(sampler, "set_epoch", None)):  # DistributedSampler: a new shuffle each epoch
                sampler.set_epoch(engine.state.epoch)
        if self.seed is None:
            return
        reseed_loaders(int(self.seed) * 100_003 + engine.state.epoch, self._seeded_loaders)
        # start the epoch on a fresh iterator: an exhausted one, asked once more, would draw from the
        # just-seeded generator (torch's RandomSampler does), so an uninterrupted run would diverge from a
        # resumed one
        engine.set_data(self.data_loader)


def _to_float(pred: Any) -> Any:
    if isinstance(pred, torch.Tensor):
        return pred.float()
    if isinstance(pred, (list, tuple)):
        return type(pred)(_to_float(p) for p in pred)
    return pred


class IACSearchTrainer(IACTrainer):
    """The bilevel IAC search engine (first-order DARTS) on a network with
    :class:`~iac_components.cell.SearchCells` (see :func:`~iac_components.implant.implant_search_cells`).

    Each iteration after warm-up: one step of ``arch_optimizer`` (α, β) on the next batch of ``val_data_loader``
    (the search-val patients), then one step of ``optimizer`` (cell weights) on the train batch. Gradients flow
    only into the parameters being stepped (``torch.autograd.grad``), so neither step pays for the other's.

    Args:
        device, max_epochs, train_data_loader, network, optimizer, loss_function: as for ``SupervisedTrainer``;
            ``optimizer`` holds the weights (``network.weight_parameters()``).
        arch_optimizer: optimiser of ``network.arch_parameters()`` (Adam, betas (0.5, 0.999) in DARTS).
        val_data_loader: the search-val loader, cycled; re-created every epoch.
        warmup_steps: weight steps (iterations) before the first arch step: α and β do not move then, and
            the cells' γ (0 at the start) grows until the cells carry signal; they do not count as arch steps.
        kwargs: :class:`IACTrainer` arguments (``amp``, ``amp_kwargs``, ``seed``, ``train_handlers``, ...; not
            ``compile``: pruning changes the network during the search).

    ``engine.arch_steps`` counts the architecture steps taken so far: iterations after the warm-up, less those
    that a grad scaler skipped (derived from the iteration and a counter saved with the engine's state, so it
    survives a resume). A skipped arch step fires no ``ARCH_STEP_COMPLETED``.
    """

    def __init__(
        self,
        device: str | torch.device,
        max_epochs: int,
        train_data_loader: Iterable,
        val_data_loader: Iterable,
        network: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        arch_optimizer: torch.optim.Optimizer,
        loss_function: Callable,
        warmup_steps: int = 0,
        **kwargs: Any,
    ) -> None:
        if isinstance(network, DistributedDataParallel):
            raise TypeError(
                "the search averages its own gradients across ranks: pass the network itself, not wrapped in "
                "DistributedDataParallel (configs/multi_gpu_search.json)"
            )
        if not hasattr(network, "arch_parameters"):
            raise TypeError(f"the search needs a network with search cells, got {type(network).__name__}")
        if as_bool(kwargs.get("compile", False)):
            raise ValueError(
                "IACSearchTrainer does not support compile=True: pruning deletes ops from the network during the "
                "search, and every cut would recompile it"
            )
        self.arch_optimizer = arch_optimizer
        self.val_data_loader = val_data_loader
        self.warmup_steps = int(warmup_steps)
        if self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps}")
        self._val_iter: Iterator | None = None
        super().__init__(device, max_epochs, train_data_loader, network, optimizer, loss_function, **kwargs)
        self.state.skipped_arch_steps = 0
        self.state_dict_user_keys.append("skipped_arch_steps")
        self._seeded_loaders.append(val_data_loader)
        self.add_event_handler(Events.EPOCH_STARTED, self._reset_val_iter)

    @property
    def arch_steps(self) -> int:
        """Architecture steps taken so far: one per iteration after the warm-up, less the skipped ones."""
        return max(0, self.state.iteration - self.warmup_steps - int(getattr(self.state, "skipped_arch_steps", 0)))

    def in_warmup(self) -> bool:
        return self.state.iteration <= self.warmup_steps

    def _where(self) -> str:
        return f"epoch {self.state.epoch}, iteration {self.state.iteration}, arch step {self.arch_steps}"

    def _check_finite(self, what: str, value: torch.Tensor) -> None:
        if not bool(torch.isfinite(value.detach()).all()):
            raise NonFiniteError(
                f"search stopped: non-finite {what} at {self._where()}; no genotype written, the last checkpoint "
                "is kept (try --amp false, a lower arch_learning_rate, or check the data)"
            )

    def _reset_val_iter(self, engine: Engine) -> None:
        self._val_iter = None

    def _next_val_batch(self) -> Any:
        if self._val_iter is None:
            self._val_iter = iter(self.val_data_loader)
        try:
            return next(self._val_iter)
        except StopIteration:
            self._val_iter = iter(self.val_data_loader)
            try:
                return next(self._val_iter)
            except StopIteration:
                raise ValueError("the search-val loader is empty: the search-val split has no slices") from None

    def _arch_step(self, engine: IACSearchTrainer) -> tuple[torch.Tensor, bool]:
        inputs, targets, args, kwargs = self._unpack(self._next_val_batch())
        engine.network.train()
        engine.arch_optimizer.zero_grad(set_to_none=True)
        loss = self._loss(self._forward(inputs, args, kwargs), targets)
        self._check_finite("arch-step loss", loss)
        params = self._trainable(engine.arch_optimizer)
        stepped = self._step(loss, engine.arch_optimizer, params)
        self._check_arch_finite(engine, params)
        return loss.detach(), stepped

    def _check_arch_finite(self, engine: IACSearchTrainer, params: list[torch.nn.Parameter]) -> None:
        """One device sync for all of α/β; the offending tensor is named only when there is one."""
        if not params or bool(torch.isfinite(torch.cat([p.detach().reshape(-1) for p in params])).all()):
            return
        bad = {id(p) for p in params if not bool(torch.isfinite(p.detach()).all())}
        name = next((n for n, p in engine.network.named_parameters() if id(p) in bad), "?")
        kind = "α" if ".alphas." in name else "β" if ".betas." in name else "architecture"
        self._check_finite(f"architecture parameter {name} ({kind})", torch.tensor(float("nan")))

    def _iteration(self, engine: IACSearchTrainer, batchdata: Any) -> dict:  # type: ignore[override]
        extra = {}
        if not self.in_warmup():
            extra["arch_loss"], stepped = self._arch_step(engine)
            if stepped:
                engine.fire_event(SearchEvents.ARCH_STEP_COMPLETED)
            else:
                engine.state.skipped_arch_steps += 1
        out = self._weight_step(engine, batchdata, extra)
        self._check_finite("weight-step loss", out[Keys.LOSS])
        return out
