"""The one image transform used by training, evaluation and the edge runtime."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from gemel.workload import ModelSpec


def preprocess(frames: np.ndarray | torch.Tensor, spec: ModelSpec) -> torch.Tensor:
    """uint8 RGB frames ``[N, H, W, 3]`` (or one ``[H, W, 3]``) -> normalised ``[N, 3, h, w]``.

    Scales to [0, 1], resizes to the model's ``input_size`` (bilinear, antialiased; unchanged
    when unset) and normalises with the model's mean and std. A tensor stays on its device.
    """
    x = torch.from_numpy(np.array(frames)) if isinstance(frames, np.ndarray) else frames
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[-1] != 3 or x.dtype != torch.uint8:
        raise ValueError(f"expected uint8 frames [N, H, W, 3], got {x.dtype} {list(x.shape)}")
    x = x.permute(0, 3, 1, 2).float().div_(255.0)
    if spec.input_size is not None and tuple(x.shape[-2:]) != tuple(spec.input_size):
        x = F.interpolate(x, size=spec.input_size, mode="bilinear", antialias=True)
    norm = spec.normalization
    mean = torch.tensor(norm.mean, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(norm.std, device=x.device).view(1, 3, 1, 1)
    return ((x - mean) / std).contiguous()
