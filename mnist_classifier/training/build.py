"""From a ``TrainConfig`` to a ready ``Trainer``: the model the registry builds, AdamW, the loss,
the learning-rate schedule, augmentation and callbacks. Everything here is plain wiring."""

from __future__ import annotations

import torch
from torch import nn

from ..data.dataset import CLASSIFICATION, REGRESSION
from ..errors import UserError
from ..kinds import as_record
from ..models import MODELS
from ..options import shown
from ..resources import available_memory
from .augment import RandomDistortion
from .callbacks import Callback, from_config
from .config import REGRESSION_LOSSES, RunFacts, TrainConfig
from .fine_tune import Freeze, Start, head_names, initial_weights, parameter_groups
from .precision import BFLOAT16, bf16_ruled_out, choose_precision
from .strategy import SingleProcess
from .trainer import Trainer, balanced_order, steps_per_epoch

# Weights, their gradients and AdamW's two moments: four float32 copies of every parameter.
BYTES_PER_PARAMETER = 16
# A model this small needs less than torch itself takes once loaded: not worth asking how much is free.
ALWAYS_FITS = 256 * 2**20



def build_model(config: TrainConfig, input_shape: tuple[int, ...], output_size: int, task: str,
                device: torch.device, record: dict | None = None) -> nn.Module:
    """The model for ``config.model`` that the data's kind builds (``record``: its preprocessing
    record; the registry's family without one), refused with a reason when it cannot read this data
    or would not fit in memory."""
    family = as_record(record).family(config.model) if record else MODELS[config.model]
    reason = family.accepts(tuple(input_shape))
    if reason:
        raise UserError(f"--model {config.model} cannot read this dataset: {reason}")
    build = lambda: family.build(tuple(input_shape), output_size, task == CLASSIFICATION,  # noqa: E731
                                 **config.model_options)
    with torch.device("meta"):  # shapes only: a model too large to allocate is measured, not built
        n_parameters = sum(p.numel() for p in build().parameters())
    sizes = "".join(f" --{name} {shown(value)}" for name, value in config.model_options.items()
                    if isinstance(value, list))  # hidden_sizes, channels: what "choose smaller sizes" means
    check_fits(n_parameters, device, f"the model (--model {config.model}{sizes})")
    model = build().to(device)
    if getattr(family, "CHANNELS_LAST", False):
        # oneDNN's convolutions run faster on channels-last (NHWC) tensors on CPUs and tensor cores.
        model = model.to(memory_format=torch.channels_last)
    return model


def check_fits(n_parameters: int, device: torch.device, what: str = "the model") -> None:
    needed = n_parameters * BYTES_PER_PARAMETER
    if needed <= ALWAYS_FITS:
        return
    if device.type == "cuda":
        available = torch.cuda.mem_get_info(device)[0]
    else:  # free memory, or less under a container's cgroup limit or a ulimit
        available = available_memory()
    if needed > available:
        raise UserError(f"{what} would have {n_parameters:,} parameters and need about {needed / 2**30:,.1f} GiB "
                        f"to train, more than the {available / 2**30:,.1f} GiB free on this {device.type}; choose "
                        "smaller sizes")


def make_scheduler(optimizer, config: TrainConfig, n_train: int):
    """The learning-rate schedule, stepped once per optimizer step; None keeps the rate fixed."""
    if config.lr_schedule == "constant":
        return None
    steps = config.n_epochs * steps_per_epoch(n_train, config.batch_size, config.compile)
    if config.lr_schedule == "onecycle":
        # Each parameter group peaks at its own rate (a frozen body's is lower).
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=[g["lr"] for g in optimizer.param_groups],
                                                   total_steps=steps)
    return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)


def make_loss(config: TrainConfig, task: str = CLASSIFICATION, class_counts: torch.Tensor | None = None,
              class_weights: torch.Tensor | None = None) -> nn.Module:
    """NLLLoss on the model's log-probabilities, as the seed (label smoothing, class weights when
    asked); for regression, ``--loss`` or MSE. ``class_counts``: the training rows of each class;
    ``class_weights``: weights given as they are (an estimator's ``{class: weight}``)."""
    if task == REGRESSION:
        if config.loss == "nll":
            raise UserError("--loss nll needs class targets; use mse, l1 or huber for regression")
        if config.class_weight or config.sampler != "shuffle":
            raise UserError("--class_weight and --sampler balanced need classes; this is a regression run")
        return REGRESSION_LOSSES[config.loss or "mse"]()
    if config.loss not in (None, "nll"):
        raise UserError(f"--loss {config.loss} is a regression loss; use it with --task regression")
    weight = balanced_weights(class_counts) if config.class_weight == "balanced" else class_weights
    if not config.label_smoothing:
        return nn.NLLLoss(weight=weight)
    # log_softmax leaves log-probabilities unchanged, so CrossEntropyLoss on them is NLLLoss
    # with label smoothing, computed by torch itself.
    return nn.CrossEntropyLoss(weight=weight, label_smoothing=config.label_smoothing)


def balanced_weights(class_counts: torch.Tensor | None) -> torch.Tensor:
    """scikit-learn's "balanced" class weights: rows / (classes x the class's rows), over the classes
    the training rows have. A class with none gets weight 0 (no row of it can be weighed anyway)."""
    if class_counts is None:
        raise ValueError("balanced class weights need the training rows' class counts")
    counts = class_counts.double()
    weights = counts.sum() / ((counts > 0).sum() * counts.clamp(min=1))
    return torch.where(counts > 0, weights, 0.0).float()


def make_augment(config: TrainConfig, input_shape: tuple[int, ...]) -> RandomDistortion | None:
    if not (config.augment or config.hflip or config.shift_px):
        return None
    if len(input_shape) != 3:
        raise UserError(f"--augment, --hflip and --shift_px need images, but the inputs are rows of "
                        f"{input_shape[0]} values")
    flip_p = 0.5 if config.hflip else 0.0
    if not config.augment:
        return RandomDistortion.rigid(config.shift_px, flip_p)
    return RandomDistortion(flip_p=flip_p)


KEPT = "kept from the checkpoint"


def resolve_precision(config: TrainConfig, facts: RunFacts, model: nn.Module, input_shape: tuple[int, ...],
                      strategy=None, record: dict | None = None) -> None:
    """Settle ``facts.precision`` (and why) from ``--amp``. A resumed run computes as it began, even
    if a new probe would now decide otherwise, unless ``auto`` chose bfloat16 and this hardware
    (resumed elsewhere) rules it out. In a distributed run rank 0 decides for all."""
    def decide() -> tuple[str, str | None]:
        if facts.precision is not None:
            moved = config.amp == "auto" and facts.precision == BFLOAT16 and bf16_ruled_out(device)
            if not moved:
                reason = facts.precision_reason or ""
                if KEPT not in reason:
                    reason = "; ".join(filter(None, [reason, KEPT]))
                return facts.precision, reason
        inputs = as_record(record).parity_inputs if record else None  # of the kind the model reads (token ids)
        precision = choose_precision(config.amp, model, tuple(input_shape), config.batch_size, inputs)
        return precision.dtype, precision.reason

    device = next(model.parameters()).device
    facts.precision, facts.precision_reason = (strategy or SingleProcess()).agree(decide)


def build_trainer(config: TrainConfig, input_shape: tuple[int, ...], output_size: int, n_train: int,
                  device: torch.device, task: str = CLASSIFICATION, callbacks: list[Callback] | None = None,
                  strategy=None, verbose: bool = False, announce: bool | None = None,
                  train_targets: torch.Tensor | None = None, classes: list[str] | None = None,
                  class_weights: torch.Tensor | None = None, record: dict | None = None,
                  facts: RunFacts | None = None) -> Trainer:
    """The model, optimizer, loss, schedule and callbacks that ``config`` asks for, wired into a
    ``Trainer``; ``callbacks`` come after those, and ``verbose`` adds the progress bar and epoch lines.
    ``announce``: the configured callbacks say what they do (an early stop); by default, as ``verbose``.

    ``n_train`` is the number of training rows; with a ``strategy`` of several processes (torchrun), of
    all of them together.
    ``train_targets``: their classes, for ``--class_weight balanced``; ``classes``: their names, for
    ``--init_from`` (a model file for other classes starts everything but the head); ``class_weights``:
    the loss's weight per class, given; ``record``: the data's preprocessing record (``--init_from``
    checks a table's columns against it); ``facts``: where the precision and frozen head go (a resume's).
    """
    strategy, facts = strategy or SingleProcess(device), facts if facts is not None else RunFacts()
    if strategy.distributed and (config.freeze or config.sampler != "shuffle"):
        raise UserError("--freeze and --sampler balanced are not available under torchrun yet")
    model = build_model(config, input_shape, output_size, task, device, record)
    start = initial_weights(config, model, classes, record) if config.pretrained or config.init_from else None
    if start is not None and verbose:
        print(start.describe())
    resolve_precision(config, facts, model, input_shape, strategy, record)
    n_train = strategy.shard_size(n_train)  # each process's steps per epoch set the schedule's length
    if config.sync_bn and strategy.distributed:  # before the optimizer: the new layers hold new parameters
        strategy.convert_sync_batchnorm(model)
    parameters, freeze = trainable_parameters(config, facts, model, start, verbose)
    # The fused kernel updates all parameters at once; the default per-parameter loop took about a
    # fifth of every CPU training step (torch.profiler). AdamW with weight_decay=0 is Adam.
    fused = device.type in ("cpu", "cuda")
    optimizer = torch.optim.AdamW(parameters, lr=config.lr, weight_decay=config.weight_decay, fused=fused)
    counts = None if task != CLASSIFICATION or train_targets is None else \
        torch.bincount(train_targets.cpu(), minlength=output_size).to(device)
    return Trainer(
        model,
        optimizer,
        make_loss(config, task, counts, None if class_weights is None else class_weights.to(device)),
        make_scheduler(optimizer, config, n_train),
        task=task,
        compile=config.compile,
        amp=facts.precision == BFLOAT16,
        augment=make_augment(config, input_shape),
        callbacks=[*from_config(config, verbose if announce is None else announce), *freeze, *(callbacks or ())],
        strategy=strategy,
        verbose=verbose,
        sampler=make_sampler(config),
    )


def make_sampler(config: TrainConfig):
    """``--sampler balanced``: each epoch's rows drawn with replacement, each class as often."""
    return balanced_order if config.sampler == "balanced" else None


def trainable_parameters(config: TrainConfig, facts: RunFacts, model: nn.Module, start: Start | None,
                         verbose: bool) -> tuple[list, list[Callback]]:
    """The optimizer's parameters, and the callback that freezes the body first with ``--freeze`` (the
    head chosen when the run began; a resumed run reads it from its configuration)."""
    if not config.freeze:
        return list(model.parameters()), []
    if start is not None:
        facts.freeze_head = sorted(head_names(model, start))
    names = {name for name, _ in model.named_parameters()}
    if not isinstance(facts.freeze_head, list) or not set(facts.freeze_head) <= names:
        raise UserError("the recorded head of this --freeze run does not name the model's parameters; the "
                        "checkpoint was edited or is damaged")
    head = set(facts.freeze_head)

    if head == names:
        raise UserError(f"--freeze: every parameter of --model {config.model} is its head (nothing to keep "
                        "frozen); leave --freeze out")
    return parameter_groups(model, config.lr, head), [Freeze(model, head, config.freeze_epochs, verbose)]
