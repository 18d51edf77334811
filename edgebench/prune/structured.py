"""Structured channel pruning with torch-pruning: a smaller dense network, same I/O shapes.

torch-pruning's DependencyGraph removes coupled channels together (BatchNorm, the next
layer's inputs, both sides of a residual add, depthwise convs), so the result stays
consistent. The final layer is ignored so the output shape stays.

What torch-pruning cannot see is a channel count baked into Python code, such as
`reshape(b, t, heads, head_dim)` in attention. The pruned model is therefore run on the
example; if a module's forward breaks, every module of that class is protected (its layers
left whole) and pruning is redone from the original weights. On the encoder this protects
SelfAttention, which blocks the residual width too, so exactly the FFN hidden dims shrink.
"""

from __future__ import annotations

import copy
import warnings

import torch
import torch_pruning as tp
from torch import nn

from edgebench.prune.config import ChannelConfig, PruneError
from edgebench.prune.layers import Layer, prunable_layers

_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)
MAX_RETRIES = 3
Skipped = list[tuple[str, str]]


def _shapes(out: object) -> list[tuple[int, ...]]:
    outs = out if isinstance(out, tuple | list) else (out,)
    return [tuple(o.shape) for o in outs if isinstance(o, torch.Tensor)]


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0]}" if text else type(e).__name__


@torch.no_grad()
def _run(model: nn.Module, example: torch.Tensor
         ) -> tuple[object, type[nn.Module] | None, Exception | None]:
    """(output, class of the innermost non-container module whose forward raised, error)."""
    stack: list[nn.Module] = []

    def enter(m: nn.Module, _args: object) -> None:
        stack.append(m)

    def leave(_m: nn.Module, _args: object, _out: object) -> None:  # must return None
        stack.pop()

    mods = list(model.modules())
    handles = [m.register_forward_pre_hook(enter) for m in mods]
    handles += [m.register_forward_hook(leave) for m in mods]
    try:
        return model(example), None, None
    except Exception as e:
        inner = [m for m in stack if m is not model and not isinstance(m, _CONTAINERS)
                 and next(m.children(), None) is not None]
        return None, (type(inner[-1]) if inner else None), e
    finally:
        for h in handles:
            h.remove()


def _inside(model: nn.Module, protected: list[type[nn.Module]]) -> dict[str, str]:
    """Prunable layers inside modules of a protected class -> that class's name."""
    out: dict[str, str] = {}
    for mod_name, mod in model.named_modules():
        if protected and isinstance(mod, tuple(protected)):
            for sub, _ in prunable_layers(mod):
                out[f"{mod_name}.{sub}" if mod_name else sub] = type(mod).__name__
    return out


def _prune_once(model: nn.Module, config: ChannelConfig, example: torch.Tensor,
                roots: set[str], name: str) -> nn.Module:
    """One torch-pruning pass on a copy, every layer outside `roots` ignored."""
    work = copy.deepcopy(model)
    ignored = [m for n, m in prunable_layers(work) if n not in roots]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "unwrapped parameters" for pos. embeddings
            pruner = tp.pruner.BasePruner(
                work, example,
                importance=tp.importance.GroupMagnitudeImportance(p=config.importance_p),
                pruning_ratio=config.sparsity, global_pruning=config.scope == "global",
                ignored_layers=ignored, round_to=config.round_to)
            groups = list(pruner.DG.get_all_groups(ignored_layers=pruner.ignored_layers,
                                                   root_module_types=pruner.root_module_types))
            if not groups:
                raise PruneError(
                    f"model '{name}': torch-pruning found no prunable channel group (it traces "
                    "through autograd, so layers behind detach(), no_grad or a non-float "
                    "output are invisible; or every group touches an excluded or final layer)")
            pruner.step()
    except PruneError:
        raise
    except Exception as e:
        raise PruneError(f"model '{name}': torch-pruning cannot trace or prune it: "
                         f"{_first_line(e)}") from e
    return work


def channel_prune(model: nn.Module, config: ChannelConfig, example: torch.Tensor,
                  layers: list[Layer], order: list[str], name: str
                  ) -> tuple[nn.Module, Skipped]:
    """(pruned copy of model, [(layer, why it was left whole)]); `model` is not modified.

    `layers` are the selected roots (already filtered by include/exclude/types/first-last);
    every other layer, and the last one in `order`, goes to ignored_layers.
    """
    expected = _shapes(_run(model, example)[0])
    selected = {la.name for la in layers}
    last = order[-1] if order else None
    skipped: Skipped = []
    if last in selected:
        if any(la.explicit and la.name == last for la in layers):
            raise PruneError(f"layer '{last}' cannot lose channels: its outputs are the "
                             f"model's outputs")
        skipped.append((last, "final layer: its outputs are the model's outputs"))
    protected: list[type[nn.Module]] = []
    cause = ""
    for _ in range(MAX_RETRIES + 1):
        inside = _inside(model, protected)
        roots = selected - {last} - set(inside)
        if not roots:
            why = f"; its forward broke with {cause}" if cause else ""
            raise PruneError(f"model '{name}': no layer left to channel-prune (selected: "
                             f"{', '.join(sorted(selected)) or 'none'}{why})")
        work = _prune_once(model, config, example, roots, name)
        out, culprit, error = _run(work, example)
        if error is None and _shapes(out) == expected:
            skipped += [(n, f"inside {cls}, whose forward breaks when its channels shrink "
                            "(e.g. a fixed head count); left whole")
                        for n, cls in sorted(inside.items()) if n in selected]
            return work, skipped
        if error is None:
            raise PruneError(f"model '{name}': channel pruning changed the output shape "
                             f"{expected} -> {_shapes(out)}; exclude the output layers")
        cause = _first_line(error)
        if culprit is None or culprit in protected:
            break
        protected.append(culprit)
    raise PruneError(f"model '{name}': channel pruning breaks its forward pass ({cause}); "
                     "exclude the layers involved (exclude=...) or use a masked method")
