"""Named model variants, family aliases and checkpoint-to-variant matching.

Variants register a builder (timm style)::

    @register_model("vit-s16", family="vit")
    def vit_s16(**overrides): ...

The family modules register their variants when imported; ``tdeploy/models/__init__.py`` imports
every family, so importing anything of ``tdeploy.models`` registers them all.

Every built model exposes ``export_spec() -> ExportSpec`` and ``checkpoint_filter(state_dict)``
(official checkpoint layouts -> this model's keys). Multi-graph models (encoder/decoder) also expose
``export_graphs()``; see :mod:`tdeploy.export`.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from tdeploy.errors import TdeployError
from tdeploy.models.checkpoint import load_state_dict, strict_load


@dataclass(frozen=True)
class ModelEntry:
    name: str
    family: str
    builder: Callable[..., nn.Module]
    description: str

    def build(self, **overrides) -> nn.Module:
        try:
            model = self.builder(**overrides)
        except TypeError as exc:
            if "unexpected keyword" not in str(exc):
                raise
            key = str(exc).rsplit(" ", 1)[-1]
            raise TdeployError(
                f"{self.name} has no setting {key} ({exc}); the settings are the fields of its config "
                f"dataclass in tdeploy/models/{self.builder.__module__.rsplit('.', 1)[-1]}.py"
            ) from None
        model.variant_name = self.name
        return model


_MODELS: dict[str, ModelEntry] = {}
_FAMILY_DEFAULTS: dict[str, str] = {}
# family -> fn(state_dict) -> {config field: value} the checkpoint itself tells (see create_model)
_CONFIG_READERS: dict[str, Callable[[dict[str, torch.Tensor]], dict]] = {}


def register_model(name: str, *, family: str, default: bool = False):
    """Register a variant builder; ``default=True`` makes ``family`` an alias for it."""

    def wrap(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _MODELS:
            raise RuntimeError(f"model {name!r} registered twice")
        doc = (fn.__doc__ or "").strip().splitlines()
        _MODELS[name] = ModelEntry(name, family, fn, doc[0] if doc else "")
        if default:
            _FAMILY_DEFAULTS[family] = name
        return fn

    return wrap


def register_config_reader(family: str, reader: Callable[[dict[str, torch.Tensor]], dict]) -> None:
    """Let ``family``'s checkpoints configure the model: ``reader(state_dict)`` returns the config fields the
    file determines (shapes, layer counts); :func:`create_model` applies those the user did not set."""
    _CONFIG_READERS[family] = reader


def list_models(family: str | None = None) -> list[str]:
    return sorted(n for n, e in _MODELS.items() if family is None or e.family == family)


def list_families() -> dict[str, str]:
    """family alias -> default variant."""
    return dict(sorted(_FAMILY_DEFAULTS.items()))


def get_entry(name: str) -> ModelEntry:
    """The registry entry for a variant name or family alias; unknown names list the close ones."""
    resolved = _FAMILY_DEFAULTS.get(name, name)
    if resolved in _MODELS:
        return _MODELS[resolved]
    known = list(_MODELS) + list(_FAMILY_DEFAULTS)
    close = difflib.get_close_matches(name, known, n=5, cutoff=0.5) or [
        k for k in known if k.startswith(name.split("-")[0])
    ][:5]
    hint = f"did you mean {', '.join(close)}?" if close else "see `deploy list`"
    raise TdeployError(f"unknown model {name!r}: {hint}")


def is_family_alias(name: str) -> bool:
    return name in _FAMILY_DEFAULTS


def smallest_variant(family: str) -> str:
    """The variant of ``family`` with the fewest parameters (built on the meta device: no memory, no time)."""
    sizes = {}
    for name in list_models(family):
        with torch.device("meta"):
            sizes[name] = sum(p.numel() for p in create_model(name).parameters())
    return min(sizes, key=sizes.get)


def _shapes(model_or_sd) -> dict[str, tuple[int, ...]]:
    items = model_or_sd.state_dict().items() if isinstance(model_or_sd, nn.Module) else model_or_sd.items()
    return {k: tuple(v.shape) for k, v in items}


def matching_variants(state_dict: dict[str, torch.Tensor], family: str) -> list[str]:
    """Variants of ``family`` whose parameter names and shapes equal the checkpoint's.

    Models are built on the meta device, so this costs no memory or time worth mentioning.
    """
    found = []
    for name in list_models(family):
        with torch.device("meta"):
            model = _MODELS[name].build()
        filtered = model.checkpoint_filter(dict(state_dict))
        if _shapes(model) == _shapes(filtered):
            found.append(name)
    return found


def create_model(
    name: str, checkpoint: str | Path | None = None, *, strict: bool = True, **overrides
) -> nn.Module:
    """Build a variant (or a family's default) and load a checkpoint into it.

    With a family alias (``swinir``) and a checkpoint, the variant is worked out from the checkpoint
    itself. Errors are one line: a missing file, keys that do not fit (with the variant that does).
    The model is returned in eval mode.
    """
    entry = get_entry(name)
    state_dict = load_state_dict(checkpoint) if checkpoint is not None else None
    read: dict = {}
    if state_dict is not None and entry.family in _CONFIG_READERS:
        read = _CONFIG_READERS[entry.family](state_dict)
    if state_dict is not None and is_family_alias(name) and not overrides:
        fits = matching_variants(state_dict, entry.family)
        if fits:
            entry, read = _MODELS[fits[0]], {}
        elif read:
            entry = _closest_variant(entry, read)
        else:
            found = describe_state_dict(state_dict)
            raise TdeployError(
                f"checkpoint {checkpoint} fits no {entry.family} variant ({found}); "
                f"name the variant explicitly (deploy list {entry.family}) or check the file"
            )
    # What the file tells and the user did not set, where it differs from the variant's defaults.
    with torch.device("meta"):
        defaults = entry.build().cfg if read else None
    inferred = {k: v for k, v in read.items() if k not in overrides and getattr(defaults, k, v) != v}
    try:
        model = entry.build(**overrides, **inferred)
    except ValueError as exc:  # e.g. a width from the file that the variant's head count does not divide
        if not inferred:
            raise
        raise TdeployError(f"{entry.name} with {_settings(inferred)} from {checkpoint}: {exc}; pass --set for "
                           "what the file cannot tell (e.g. --set num_heads=N)") from None
    model.inferred_config = inferred
    if state_dict is not None:
        filtered = model.checkpoint_filter(state_dict)
        try:
            strict_load(model, filtered, checkpoint)
        except TdeployError as exc:
            fits = [v for v in matching_variants(state_dict, entry.family)] if strict else []
            if not fits:
                for family in list_families():
                    if family != entry.family:
                        try:
                            fits = matching_variants(state_dict, family)
                        except Exception:  # other families' filters may reject foreign layouts
                            fits = []
                        if fits:
                            break
            hint = f"; it fits {', '.join(fits)}" if fits else ""
            raise TdeployError(f"{exc}{hint}") from None
    model.checkpoint_path = str(checkpoint) if checkpoint is not None else None
    return model.eval()


def _settings(values: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in values.items())


def _closest_variant(alias: ModelEntry, read: dict) -> ModelEntry:
    """For a family alias and a checkpoint no variant fits exactly: the variant that agrees with the most
    fields the file tells (ties: the family's default), so that what the file cannot tell (heads) comes
    from the most similar variant."""
    with torch.device("meta"):
        def agreement(name: str) -> int:
            cfg = _MODELS[name].build().cfg
            return sum(getattr(cfg, k, None) == v for k, v in read.items())

        names = list_models(alias.family)
        best = max(agreement(n) for n in names)
    return alias if agreement(alias.name) == best else _MODELS[next(n for n in names if agreement(n) == best)]


def describe_state_dict(state_dict: dict[str, torch.Tensor]) -> str:
    """A short description of a checkpoint for error messages."""
    n_params = sum(v.numel() for v in state_dict.values() if hasattr(v, "numel"))
    first = ", ".join(list(state_dict)[:3])
    return f"{len(state_dict)} tensors, {n_params / 1e6:.1f}M values, keys like {first}"
