"""Reading checkpoint files and loading them strictly, with errors that say what does not fit."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from tdeploy.errors import TdeployError

# Official releases nest the weights under one of these keys (SwinIR: params/params_ema;
# training scripts: state_dict/model/model_ema). EMA weights are preferred where both exist,
# as the official SwinIR test script does for the models released with them.
_NESTED_KEYS = ("params_ema", "params", "state_dict", "model_ema", "model", "module")


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A flat name -> tensor dict from a .pth/.pt/.bin (torch.save) or .safetensors file."""
    path = Path(path)
    if not path.is_file():
        raise TdeployError(f"checkpoint file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            obj = load_file(str(path), device="cpu")
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch/safetensors raise many types for a bad file
        reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise TdeployError(
            f"cannot read checkpoint {path}: {reason} (expected a PyTorch state dict .pth/.pt or a .safetensors file)"
        ) from None
    for _ in range(3):  # unwrap nesting such as {"model": {"state_dict": ...}}
        if isinstance(obj, dict) and not _is_state_dict(obj):
            inner = next((obj[k] for k in _NESTED_KEYS if k in obj and isinstance(obj[k], dict)), None)
            if inner is None:
                break
            obj = inner
    if not isinstance(obj, dict) or not _is_state_dict(obj):
        raise TdeployError(f"checkpoint {path} holds no state dict (found {type(obj).__name__} without tensors)")
    state_dict = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if all(k.startswith("module.") for k in state_dict):  # saved from DistributedDataParallel
        state_dict = {k[len("module.") :]: v for k, v in state_dict.items()}
    return state_dict


def _is_state_dict(obj: dict) -> bool:
    return bool(obj) and sum(isinstance(v, torch.Tensor) for v in obj.values()) >= max(1, len(obj) // 2)


def strict_load(model: nn.Module, state_dict: dict[str, torch.Tensor], source: object = "checkpoint") -> None:
    """load_state_dict(strict=True) with a one-line error naming what is missing, extra or misshapen."""
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    misshapen = [
        f"{k} {tuple(state_dict[k].shape)} vs {tuple(own[k].shape)}"
        for k in own
        if k in state_dict and tuple(state_dict[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or misshapen:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", misshapen)):
            if keys:
                more = f" (+{len(keys) - 3} more)" if len(keys) > 3 else ""
                parts.append(f"{label}: {', '.join(keys[:3])}{more}")
        name = getattr(model, "variant_name", type(model).__name__)
        raise TdeployError(f"checkpoint {source} does not fit {name}: {'; '.join(parts)}")
    model.load_state_dict(state_dict, strict=True)
