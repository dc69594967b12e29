"""Layer signatures: what makes two layers shareable.

A signature is the module's type, its constructor hyper-parameters (the attributes torch lists
in the class's ``__constants__``: channels, kernel size, stride, padding, groups...) and the
name, shape and dtype of each of its own parameters. Only convolutions (1-3d, transposed too)
and linear layers are shareable; normalisation layers stay private to their model.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

SHAREABLE_TYPES: tuple[type[nn.Module], ...] = (
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
    nn.Linear,
)


@dataclass(frozen=True, order=True)
class Signature:
    """Type, hyper-parameters and own-parameter shapes/dtypes of one layer."""

    kind: str
    hyper: tuple[tuple[str, str], ...]
    params: tuple[tuple[str, tuple[int, ...], str], ...]

    @property
    def nbytes(self) -> int:
        """Bytes of the layer's own parameters."""
        total = 0
        for _, shape, dtype in self.params:
            n = 1
            for d in shape:
                n *= d
            total += n * torch.empty((), dtype=getattr(torch, dtype)).element_size()
        return total

    def describe(self) -> str:
        """A short human-readable form, e.g. ``Conv2d(64->128, k=(3, 3), s=(2, 2))``."""
        h = dict(self.hyper)
        if "in_channels" in h:
            core = f"{h['in_channels']}->{h['out_channels']}, k={h['kernel_size']}"
            if h.get("stride") not in (None, "(1,)", "(1, 1)", "(1, 1, 1)"):
                core += f", s={h['stride']}"
            if h.get("groups", "1") != "1":
                core += f", g={h['groups']}"
        elif "in_features" in h:
            core = f"{h['in_features']}->{h['out_features']}"
        else:
            core = ", ".join(f"{k}={v}" for k, v in self.hyper)
        dtypes = sorted({d for _, _, d in self.params})
        if dtypes != ["float32"]:
            core += f", {'/'.join(dtypes)}"
        return f"{self.kind}({core})"


def is_shareable(module: nn.Module) -> bool:
    """Whether layers of this module's type may share weights across models."""
    return type(module) in SHAREABLE_TYPES or (
        isinstance(module, SHAREABLE_TYPES)
        and not isinstance(module, nn.modules.lazy.LazyModuleMixin)
    )


def signature_of(module: nn.Module) -> Signature:
    """The signature of one layer (its own parameters only, not its children's)."""
    cls = type(module)
    names = sorted(set(getattr(cls, "__constants__", ())))
    hyper = tuple((k, repr(getattr(module, k))) for k in names if hasattr(module, k))
    params = tuple(
        (name, tuple(p.shape), str(p.dtype).removeprefix("torch."))
        for name, p in module.named_parameters(recurse=False)
    )
    return Signature(kind=cls.__name__, hyper=hyper, params=params)


def shareable_layers(model: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    """``(module_path, module)`` of every shareable layer with parameters, in module order."""
    for path, module in model.named_modules():
        if path and is_shareable(module) and any(True for _ in module.parameters(recurse=False)):
            yield path, module
