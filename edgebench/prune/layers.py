"""Layer selection shared by every method: types, include/exclude patterns, first/last.

Patterns are fnmatch on qualified module names. A pattern that matches no layer is an error
(a typo would otherwise prune the wrong thing silently). "First" and "last" are taken in
execution order, recorded with forward hooks on the example, so a head registered before the
backbone is still recognised as the last layer.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

import torch
from torch import nn

from edgebench.prune.config import LAYER_TYPES, LayerSelection, PruneError

_CLASSES: dict[str, type[nn.Module]] = {"Linear": nn.Linear, "Conv2d": nn.Conv2d}
_WILDCARDS = set("*?[")
SMALL_END_SHARE = 0.1  # keep_first_last=None keeps an end layer dense below this weight share


@dataclass(frozen=True)
class Layer:
    """A layer chosen for pruning; explicit means named exactly (no wildcard) in include."""

    name: str
    module: nn.Module
    explicit: bool = False

    @property
    def weight(self) -> torch.Tensor:
        return self.module.weight  # type: ignore[return-value]

    def weight2d(self) -> torch.Tensor:
        """Linear [out, in]; Conv2d [out, in/groups*kh*kw] (the GEMM / BSR view), detached."""
        w = self.weight.detach()
        return w.reshape(w.shape[0], -1)


def prunable_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Every Linear/Conv2d with a weight, in registration order."""
    classes = tuple(_CLASSES[t] for t in LAYER_TYPES)
    return [(n, m) for n, m in model.named_modules()
            if isinstance(m, classes) and isinstance(getattr(m, "weight", None), torch.Tensor)]


@torch.no_grad()
def execution_order(model: nn.Module, example: torch.Tensor) -> list[str]:
    """Prunable layer names in first-call order on `example` (unused layers appended)."""
    layers = prunable_layers(model)
    seen: list[str] = []
    handles = [m.register_forward_pre_hook(lambda _m, _a, n=n: seen.append(n))
               for n, m in layers]
    try:
        model(example)
    except Exception as e:
        raise PruneError(f"the model does not run on the example input "
                         f"{tuple(example.shape)}: {type(e).__name__}: {e}") from e
    finally:
        for h in handles:
            h.remove()
    order = list(dict.fromkeys(seen))
    return order + [n for n, _ in layers if n not in order]


def _check_patterns(patterns: tuple[str, ...], what: str, names: list[str],
                    all_modules: dict[str, nn.Module]) -> None:
    for pat in patterns:
        if any(fnmatch.fnmatchcase(n, pat) for n in names):
            continue
        others = [n for n in all_modules if fnmatch.fnmatchcase(n, pat)]
        if others:
            kind = type(all_modules[others[0]]).__name__
            raise PruneError(f"{what} '{pat}' matches '{others[0]}' ({kind}), not a prunable "
                             f"layer ({', '.join(LAYER_TYPES)})")
        shown = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
        raise PruneError(f"unknown layer '{pat}' in {what} (layers: {shown})")


def _dense_ends(modules: dict[str, nn.Module], names: list[str], keep: bool | None) -> set[str]:
    """First/last layer names to keep dense (see LayerSelection.keep_first_last)."""
    if not names or keep is False:
        return set()
    ends = {names[0], names[-1]}
    if keep:
        return ends
    total = sum(modules[n].weight.numel() for n in names)
    return {n for n in ends if modules[n].weight.numel() < SMALL_END_SHARE * total}


def select_layers(model: nn.Module, config: LayerSelection, order: list[str]
                  ) -> tuple[list[Layer], list[tuple[str, str]]]:
    """(layers to prune in execution order, [(name, why skipped)] for first/last)."""
    modules = dict(model.named_modules())
    names = [n for n in order if n in modules]
    _check_patterns(config.include, "include", names, modules)
    _check_patterns(config.exclude, "exclude", names, modules)
    classes = tuple(_CLASSES[t] for t in config.types)
    exact = {p for p in config.include if not _WILDCARDS & set(p)}
    ends = _dense_ends(modules, names, config.keep_first_last)
    chosen: list[Layer] = []
    skipped: list[tuple[str, str]] = []
    for name in names:
        module = modules[name]
        if name in exact:
            if any(fnmatch.fnmatchcase(name, p) for p in config.exclude):
                raise PruneError(f"layer '{name}' is both included and excluded")
            if not isinstance(module, classes):
                raise PruneError(f"layer '{name}' is a {type(module).__name__}, not one of "
                                 f"types={config.types}")
            chosen.append(Layer(name, module, explicit=True))
            continue
        if config.include and not any(fnmatch.fnmatchcase(name, p) for p in config.include):
            continue
        if not isinstance(module, classes):
            continue
        if any(fnmatch.fnmatchcase(name, p) for p in config.exclude):
            continue
        if name in ends:
            which = "first" if name == names[0] else "last"
            skipped.append((name, f"{which} layer kept dense (keep_first_last)"))
            continue
        chosen.append(Layer(name, module))
    return chosen, skipped
