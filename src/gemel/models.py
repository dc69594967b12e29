"""The one place that turns a model spec into an ``nn.Module``.

torchvision builders are called by name without pretrained weights (``weights=None`` and, for
detectors, ``weights_backbone=None``); a user's own model comes from ``factory:
"pkg.module:function"``. A checkpoint (a state dict in ``.pt``/``.pth`` or ``.safetensors``) is
loaded with ``assign=True`` so its dtypes are kept: a float16 checkpoint gives float16 weights.
"""

from __future__ import annotations

import contextlib
import difflib
import importlib
import inspect
import pickle
from collections.abc import Callable
from functools import cache
from pathlib import Path

import torch
from torch import nn

from gemel.errors import GemelError
from gemel.workload import ModelSpec


@cache
def torchvision_archs() -> frozenset[str]:
    """Every builder name torchvision registers (classification, detection, segmentation...)."""
    import torchvision.models

    return frozenset(torchvision.models.list_models())


def _first_line(e: BaseException) -> str:
    """An exception's message as one line (its type name if it has none)."""
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _builder(spec: ModelSpec, where: str) -> Callable[..., nn.Module]:
    if spec.arch is not None:
        if spec.arch not in torchvision_archs():
            near = difflib.get_close_matches(spec.arch, torchvision_archs(), n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise GemelError(
                f"{where}: field 'model.arch': unknown architecture {spec.arch!r}{hint}"
            )
        import torchvision.models

        return torchvision.models.get_model_builder(spec.arch)
    mod_name, fn_name = str(spec.factory).split(":")
    try:
        module = importlib.import_module(mod_name)
    except Exception as e:  # ImportError, or any error raised while importing the user's module
        raise GemelError(
            f"{where}: field 'model.factory': cannot import {mod_name!r}: {_first_line(e)}"
        ) from None
    fn = getattr(module, fn_name, None)
    if not callable(fn):
        raise GemelError(
            f"{where}: field 'model.factory': {mod_name!r} has no callable {fn_name!r}"
        )
    return fn


def _call_kwargs(
    spec: ModelSpec, builder: Callable[..., nn.Module], where: str
) -> dict[str, object]:
    kwargs: dict[str, object] = {}
    params = inspect.signature(builder).parameters
    if spec.arch is not None:
        asked = sorted({"weights", "weights_backbone"} & set(spec.kwargs))
        if asked:
            raise GemelError(
                f"{where}: field 'model.kwargs': {asked[0]!r} is not allowed: gemel never "
                "downloads weights; give trained weights as 'checkpoint'"
            )
        kwargs["weights"] = None
        if "weights_backbone" in params:
            kwargs["weights_backbone"] = None
    if spec.num_classes is not None:
        kwargs["num_classes"] = spec.num_classes
    kwargs.update(spec.kwargs)
    return kwargs


def read_state_dict(path: Path, where: str) -> dict[str, torch.Tensor]:
    """Load a checkpoint file as a flat ``{name: tensor}`` dict."""
    if not path.is_file():
        raise GemelError(f"{where}: field 'model.checkpoint': file not found: {path}")
    safetensors = path.suffix == ".safetensors"
    try:
        if safetensors:
            from safetensors.torch import load_file

            sd = load_file(str(path))
        else:
            sd = torch.load(path, map_location="cpu", weights_only=True)
    except OSError as e:
        raise GemelError(
            f"{where}: field 'model.checkpoint': cannot read {path}: {e.strerror or e}"
        ) from None
    except Exception as e:  # a damaged or foreign file is the user's to fix
        kind = "a safetensors file" if safetensors else "a file of tensors written by torch.save"
        # the unpickler's own message is a long lecture on weights_only: leave it out
        detail = "" if isinstance(e, pickle.UnpicklingError) else f" ({_first_line(e)})"
        raise GemelError(
            f"{where}: field 'model.checkpoint': cannot read {path}: not {kind}{detail}"
        ) from None
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise GemelError(f"{where}: field 'model.checkpoint': {path} is not a state dict")
    return sd


def _check_fit(model: nn.Module, sd: dict[str, torch.Tensor], path: Path, where: str) -> None:
    own = model.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    bad_shape = [k for k in own if k in sd and tuple(sd[k].shape) != tuple(own[k].shape)]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys (e.g. {missing[0]!r})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[0]!r})")
    if bad_shape:
        k = bad_shape[0]
        problems.append(
            f"{len(bad_shape)} shape mismatches (e.g. {k!r}: checkpoint "
            f"{list(sd[k].shape)} vs model {list(own[k].shape)})"
        )
    if problems:
        raise GemelError(
            f"{where}: field 'model.checkpoint': {path} does not fit the architecture: "
            + "; ".join(problems)
        )


def check_device(device: str | torch.device, *, choices: str = "cpu or cuda[:N]") -> torch.device:
    """``device`` (``cpu`` or ``cuda[:N]``) as a torch device; a GemelError unless torch can
    use it here (``choices`` is what the message offers instead)."""
    try:
        dev = torch.device(device)
    except RuntimeError:
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda"):
        raise GemelError(f"bad device {str(device)!r}: use {choices}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise GemelError(f"device {str(device)!r}: CUDA is not available here")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise GemelError(
            f"device {str(device)!r}: there are {torch.cuda.device_count()} CUDA devices here"
        )
    return dev


def build_model(
    spec: ModelSpec,
    *,
    where: str = "model",
    device: str | torch.device | None = None,
    load_checkpoint: bool = True,
) -> nn.Module:
    """Build the model of ``spec`` in eval mode, with its checkpoint loaded if it has one.

    ``device="meta"`` builds shapes only (no memory, no initialisation): enough for analysis.
    ``where`` prefixes error messages, e.g. ``"w.yaml: query 'cam1'"``.
    """
    builder = _builder(spec, where)
    kwargs = _call_kwargs(spec, builder, where)
    try:
        with torch.device(device) if device is not None else contextlib.nullcontext():
            model = builder(**kwargs)
    except GemelError:
        raise
    except Exception as e:
        raise GemelError(
            f"{where}: field 'model': cannot build {spec.label!r} with {kwargs}: "
            f"{type(e).__name__}: {_first_line(e)}"
        ) from None
    if not isinstance(model, nn.Module):
        raise GemelError(
            f"{where}: field 'model.factory': {spec.label!r} returned "
            f"{type(model).__name__}, not an nn.Module"
        )
    if load_checkpoint and spec.checkpoint is not None:
        sd = read_state_dict(Path(spec.checkpoint), where)
        _check_fit(model, sd, Path(spec.checkpoint), where)
        model.load_state_dict(sd, strict=True, assign=True)
        if device is not None and torch.device(device).type != "meta":
            model.to(device)  # the checkpoint's tensors were read onto the CPU
    return model.eval()
