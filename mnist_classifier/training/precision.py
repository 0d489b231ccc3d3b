"""Which precision a run computes in: bfloat16 autocast where this hardware runs it faster, float32
where it does not.

``--amp auto`` (the default) asks the hardware first. A GPU without native bfloat16 (CUDA compute
capability below 8.0) and a CPU whose oneDNN has no bfloat16 kernels (no AVX-512, e.g. AVX2-only
processors, where a bfloat16 matmul ran about 100x slower than float32) keep float32 at once.
Where the hardware has bfloat16, whether it pays depends on the model (a small model on a GPU is
bound by kernel launches, not arithmetic; on a CPU some layers gain less than matrix products), so
a short timed probe of the model's own training step decides. ``on`` and ``off`` force the choice.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import torch
from torch import nn

from ..utils import device_of

AMP_CHOICES = ("auto", "on", "off")
BFLOAT16, FLOAT32 = "bfloat16", "float32"
# bfloat16 must be this much faster to be chosen: a smaller gain is not worth rounder numbers.
MIN_SPEEDUP = 1.15
PROBE_BUDGET_S = 0.5  # the probe stops timing after this long (it takes at least one step of each)
PROBE_MAX_STEPS = 5


@dataclass(frozen=True)
class Precision:
    """The choice, and why it was made in words for the run's first line."""

    dtype: str  # BFLOAT16 or FLOAT32
    reason: str


def choose_precision(amp: str, model: nn.Module, input_shape: tuple[int, ...], batch_size: int,
                     inputs=None) -> Precision:
    """The precision ``--amp`` asks for, on the model's device; ``auto`` decides as the module says.
    ``inputs(rows, generator)``: random model input of the kind the model reads (default: floats in [0, 1))."""
    if amp == "on":
        return Precision(BFLOAT16, "--amp on")
    if amp == "off":
        return Precision(FLOAT32, "--amp off")
    device = device_of(model)
    ruled_out = bf16_ruled_out(device)
    if ruled_out:
        return Precision(FLOAT32, f"auto: {ruled_out}")
    speedup = probe_bf16_speedup(model, input_shape, batch_size, inputs)
    dtype = BFLOAT16 if speedup >= MIN_SPEEDUP else FLOAT32
    return Precision(dtype, f"auto: a timed step ran {speedup:.2f}x as fast in bf16")


def bf16_ruled_out(device: torch.device) -> str | None:
    """Why this hardware cannot run bfloat16 faster, in words; None where only a measurement can tell."""
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        if major >= 8 or (torch.version.hip and torch.cuda.is_bf16_supported(including_emulation=False)):
            # Native bf16 (capability 8.0 or later) pays for large models; a small one is bound by
            # kernel launches, not arithmetic (the seed's MLP on an H100 ran 1.07x slower in bf16).
            return None
        return f"CUDA capability {major}.{minor} has no native bf16"
    if device.type == "cpu":
        # oneDNN runs bfloat16 only with AVX-512 (emulated) or AVX512-BF16/AMX (native); without
        # them PyTorch falls back to slow reference kernels.
        if cpu_has_bf16_kernels():
            return None
        return f"this CPU ({torch.backends.cpu.get_cpu_capability()}) has no bf16 kernels"
    return f"{device.type} trains in fp32"  # MPS and others: float32, which every backend runs well


def cpu_has_bf16_kernels() -> bool:
    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def probe_bf16_speedup(model: nn.Module, input_shape: tuple[int, ...], batch_size: int, inputs=None) -> float:
    """float32 step time / bfloat16 step time of a whole training step (forward, backward and a
    fused AdamW update) of a copy of ``model`` at the run's batch size, on random inputs. Each
    precision's fastest step counts: a busy moment only ever slows a step down, so the minimum is
    the steadiest estimate. The model and every random generator are left as they were, so the run
    that follows is the same as without the probe."""
    probe = copy.deepcopy(model).train()
    device = device_of(model)
    optimizer = torch.optim.AdamW(probe.parameters(), fused=device.type in ("cpu", "cuda"))
    generator = torch.Generator(device=device).manual_seed(0)
    rows = max(batch_size, 2)
    if inputs is not None:  # drawn on the CPU (a kind's inputs), then moved
        x = inputs(rows, torch.Generator().manual_seed(0)).to(device)
    else:
        x = torch.rand((rows, *input_shape), generator=generator, device=device)
    times: dict[bool, list[float]] = {False: [], True: []}
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        for amp in (False, True):
            timed_step(probe, optimizer, x, amp)  # warm-up: oneDNN builds its kernels on the first call
        started = time.perf_counter()
        while len(times[True]) < PROBE_MAX_STEPS and (not times[True] or time.perf_counter() - started
                                                        < PROBE_BUDGET_S):
            for amp in (False, True):  # interleaved, so a noisy moment hits both
                times[amp].append(timed_step(probe, optimizer, x, amp))
    return min(times[False]) / min(times[True])


def timed_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, amp: bool) -> float:
    """Seconds for one training step, as the Trainer takes it."""
    if x.device.type == "cuda":
        torch.cuda.synchronize(x.device)
    started = time.perf_counter()
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
        out = model(x)
    out.float().sum().backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    if x.device.type == "cuda":
        torch.cuda.synchronize(x.device)
    return time.perf_counter() - started
