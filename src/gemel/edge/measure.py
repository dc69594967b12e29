"""How the edge measures time and memory on each device.

Time: the median of several runs after a warm-up, with the device synchronised around each.
Peak running memory beyond the weights (activation memory):
- CUDA: ``torch.cuda.max_memory_allocated`` during the call minus what was allocated before it
  (weights live in the arena, allocated earlier, so the difference is the activations), plus
  the input batch (allocated before the call too, but counted as on the CPU: the runtime puts
  each batch on the device beside the activations).
- CPU: PyTorch has no allocator statistics there, so forward hooks track the tensors alive
  during inference: the input batch plus, at each leaf module, its inputs and its output
  (the largest such sum over the forward pass). It is an estimate of the working set, not of
  the process's resident memory.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_seconds(
    fn: Callable[[], object], device: torch.device, *, repeats: int = 5, warmup: int = 1
) -> float:
    """Median wall time of ``fn()`` over ``repeats`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _nbytes(x: object) -> int:
    if isinstance(x, torch.Tensor):
        return x.numel() * x.element_size()
    if isinstance(x, list | tuple):
        return sum(_nbytes(v) for v in x)
    if isinstance(x, dict):
        return sum(_nbytes(v) for v in x.values())
    return 0


def peak_activation_bytes(
    model: nn.Module, x: torch.Tensor, answer: Callable[[nn.Module, torch.Tensor], Any]
) -> int:
    """Peak memory that answering ``x`` with ``model`` (``answer(model, x)``, the forward pass
    and the answers drawn from it) needs beyond the model's weights."""
    device = x.device
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        with torch.inference_mode():
            answer(model, x)
        torch.cuda.synchronize(device)
        return max(0, torch.cuda.max_memory_allocated(device) - before) + _nbytes(x)
    peak = 0
    base = _nbytes(x)

    def hook(_m: nn.Module, inputs: tuple, output: object) -> None:
        nonlocal peak
        peak = max(peak, base + _nbytes(inputs) + _nbytes(output))

    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    try:
        with torch.inference_mode():
            out = answer(model, x)
    finally:
        for h in handles:
            h.remove()
    return max(peak, base + _nbytes(out))
