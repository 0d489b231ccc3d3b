"""Starting a run from weights that exist: torchvision's published ones (``--pretrained``) or another
run's model file (``--init_from``), and training the new head alone first (``--freeze``).

Tensors are matched by name and shape. A first convolution trained on another number of channels
is adapted rather than dropped (RGB summed for grayscale, grayscale spread over RGB), the rule timm
follows; every other mismatch (a head for other classes) stays as freshly built.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.error import URLError

import torch
import torchvision
from torch import nn

from ..errors import UserError, first_line
from ..inference.model_file import load_model
from ..models.torchvision_models import first_conv_name
from .callbacks import Callback

# After the frozen epochs the body trains at this share of --lr: the head is new, the body already useful.
BODY_LR_SHARE = 0.1


@dataclass
class Start:
    """Where a run's first weights came from: which tensors were loaded and which are new."""

    source: str
    loaded: list[str]
    new: list[str]

    def describe(self) -> str:
        total = len(self.loaded) + len(self.new)
        new = f"; new: {', '.join(self.new[:4])}{', ...' if len(self.new) > 4 else ''}" if self.new else ""
        return f"Started from {self.source}: {len(self.loaded)} of {total} tensors loaded{new}"


def family_of(model_fn: str) -> str:
    """The model family of a model file (``--init_from``)."""
    return load_model(model_fn)[1]["model_name"]


def initial_weights(config, model: nn.Module, classes: list[str] | None = None, record: dict | None = None
                    ) -> Start | None:
    """Load ``--pretrained`` or ``--init_from`` weights into the freshly built ``model`` (None when the
    run starts from nothing, or resumes: the checkpoint has every weight). ``classes``: this data's;
    a model file for other classes gives everything but its head. ``record``: this data's
    preprocessing record (a table model starts only a run on the same columns)."""
    if getattr(config, "resume", None):
        return None
    if config.pretrained:
        state, source = pretrained_state(model.arch)
        loaded, new = load_matching(model, state, prefix="net.")
    elif config.init_from:
        other, saved = load_model(config.init_from)
        source = config.init_from
        if saved["model_name"] != config.model:
            raise UserError(f"--init_from {source}: a {saved['model_name']} model file; it can start only a --model "
                            f"{saved['model_name']} run, not --model {config.model}")
        then, now = saved["preprocessing"].get("feature_names"), (record or {}).get("feature_names")
        if then is not None and record is not None and then != now:
            raise UserError(f"--init_from {source}: trained on the columns {', '.join(then)}, not this table's "
                            f"({', '.join(now or ['none'])}); a model file starts only a run on the same columns")
        state = other.state_dict()
        if classes is not None and saved["dataset"].get("classes") != classes:
            state = {name: value for name, value in state.items() if name not in last_linear(model)}
        loaded, new = load_matching(model, state)
    else:
        return None
    shapes = model.state_dict()
    if not any(shapes[name].dim() >= 2 for name in loaded):  # a bias or two alone is no head start
        raise UserError(f"{source}: none of its weight matrices or kernels fits --model {config.model} for this "
                        "data (their shapes differ); start from a model of the same sizes")
    return Start(source, loaded, new)


def default_weights(arch: str):
    """torchvision's default (ImageNet) weights entry for ``arch``."""
    return torchvision.models.get_model_weights(arch).DEFAULT


def pretrained_side(arch: str) -> int:
    """The picture side ``arch``'s published weights were trained at (224 for most)."""
    return default_weights(arch).transforms().crop_size[0]


def weights_file(arch: str) -> tuple[Path, str]:
    """Where torchvision keeps ``arch``'s default weights (under ``TORCH_HOME``), and their address."""
    url = default_weights(arch).url
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url), url


def pretrained_state(arch: str) -> tuple[dict, str]:
    """``arch``'s published ImageNet weights through torchvision's API: from the cache when a file is
    there (offline too), else downloaded into it; a missing file without a network is one line."""
    weights = default_weights(arch)
    path, url = weights_file(arch)
    try:
        # The file must be a plain state dict: weights_only refuses a pickle that would run code.
        state = weights.get_state_dict(progress=False, weights_only=True)
    except (URLError, OSError) as e:
        if path.exists():
            raise UserError(f"{path}: cannot read these weights ({first_line(e)}); delete it to download it again") \
                from e
        raise UserError(f"--pretrained: {arch}'s weights are not in the cache and cannot be downloaded "
                        f"({first_line(e)}); place {url} at {path} (TORCH_HOME decides the folder)") from e
    except Exception as e:  # torch's reader fails in many ways on a file that is not its archive
        # (Its messages suggest weights_only=False, which would run the file's code: not said here.)
        raise UserError(f"{path}: not readable weights ({type(e).__name__}); delete it to download it again") from e
    if not isinstance(state, dict):
        raise UserError(f"{path}: not a state dict of weights")
    return state, f"{arch}'s {weights.name} weights ({path.name})"


def load_matching(model: nn.Module, state: dict, prefix: str = "") -> tuple[list[str], list[str]]:
    """Copy each tensor of ``state`` (named ``prefix`` + name in ``model``) whose shape matches, and the
    first convolution's kernel adapted to the channels; return the names loaded and the names of
    ``model``'s tensors left as built."""
    own = model.state_dict()
    first = f"{first_conv_name(model)}.weight"
    loaded = []
    for name, value in state.items():
        target = own.get(prefix + name)
        if target is None or not isinstance(value, torch.Tensor):
            continue
        adapted = value if value.shape == target.shape else \
            adapt_channels(value, target.shape) if prefix + name == first else None
        if adapted is not None:
            own[prefix + name] = adapted.to(target.dtype)
            loaded.append(prefix + name)
    model.load_state_dict(own)
    done = set(loaded)
    return loaded, [name for name in own if name not in done and not name.endswith("num_batches_tracked")]


def adapt_channels(kernel: torch.Tensor, shape: torch.Size) -> torch.Tensor | None:
    """A first convolution's kernel for another number of input channels: summed over them (RGB to
    grey: a grey picture is the same value in every channel) and spread evenly; None when the
    kernel differs otherwise."""
    if kernel.dim() != 4 or len(shape) != 4 or kernel.shape[0] != shape[0] or kernel.shape[2:] != shape[2:]:
        return None
    return kernel.sum(dim=1, keepdim=True).expand(-1, shape[1], -1, -1) / shape[1]


def head_names(model: nn.Module, start: Start) -> set[str]:
    """The parameters ``--freeze`` leaves trainable: those not loaded, or, when every one was, the last
    linear layer's."""
    parameters = {name for name, _ in model.named_parameters()}
    return (parameters & set(start.new)) or last_linear(model)


def last_linear(model: nn.Module) -> set[str]:
    """The parameter names of the model's last linear layer: its head, which gives the classes."""
    last = [name for name, module in model.named_modules() if isinstance(module, nn.Linear)][-1]
    return {f"{last}.{name}" for name, _ in model.get_submodule(last).named_parameters()}


def parameter_groups(model: nn.Module, lr: float, head: set[str]) -> list[dict]:
    """The head at ``lr``, the body at ``BODY_LR_SHARE`` of it."""
    named = list(model.named_parameters())
    return [{"params": [p for n, p in named if n in head], "lr": lr},
            {"params": [p for n, p in named if n not in head], "lr": lr * BODY_LR_SHARE}]


class Freeze(Callback):
    """Train only the head for the first ``epochs`` epochs, then everything (``--freeze``). While frozen,
    the body's batch norms keep their statistics too (eval mode), as its weights are kept."""

    def __init__(self, model: nn.Module, head: set[str], epochs: int, verbose: bool = True):
        self.body = [p for name, p in model.named_parameters() if name not in head]
        self.norms = [m for name, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
                      and not any(f"{name}.{p}" in head for p, _ in m.named_parameters())]
        self.epochs, self.verbose = epochs, verbose

    def on_train_start(self, trainer) -> None:
        if self.verbose and trainer.n_epochs <= self.epochs:
            print(f"--freeze_epochs {self.epochs} covers the whole run: only the head trains")

    def on_epoch_start(self, trainer, epoch: int, n_batches: int) -> None:
        frozen = epoch <= self.epochs
        for parameter in self.body:
            parameter.requires_grad_(not frozen)
        if frozen:
            for norm in self.norms:  # the trainer put the model in train mode for this epoch
                norm.eval()
        elif self.verbose and epoch == self.epochs + 1:
            print(f"Epoch {epoch}: the whole model trains from here (the body at {BODY_LR_SHARE:g} of --lr)")

    def on_train_end(self, trainer) -> None:
        for parameter in self.body:
            parameter.requires_grad_(True)
