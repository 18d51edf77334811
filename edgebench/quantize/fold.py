"""BatchNorm folding: conv -> BN becomes one conv with scaled weights and a bias.

Done on the module (the BN becomes nn.Identity) so the folded model exports to the same graph
minus the batch_norm nodes; pairs are found on the torch.export graph, which sees the real data
flow (a BN used twice or after a conv with other users is left alone and kept FP32).
"""

from __future__ import annotations

import torch
from torch import nn

BN_OPS = {torch.ops.aten.batch_norm.default,
          torch.ops.aten._native_batch_norm_legit_no_training.default}


def _module_path(node: torch.fx.Node) -> str | None:
    """'features.0' for a get_attr of 'features.0.weight'."""
    if isinstance(node, torch.fx.Node) and node.op == "get_attr":
        return str(node.target).rpartition(".")[0]
    return None


def fold_batchnorm(model: nn.Module, example: torch.Tensor) -> list[tuple[str, str]]:
    """Fold every eval-mode Conv2d -> BatchNorm2d pair of `model` in place; return the pairs.

    W' = W * g / sqrt(var + eps) per output channel, b' = (b - mean) * g / sqrt(var + eps) + beta,
    computed in float64 and stored as float32.
    """
    model.eval()
    with torch.no_grad():
        gm = torch.export.export(model, (example,)).module()
    bn_uses: dict[str, int] = {}
    conv_uses: dict[str, int] = {}
    candidates = []
    for node in gm.graph.nodes:
        if node.op != "call_function":
            continue
        if node.target in BN_OPS:
            bn_path = _module_path(node.args[1]) if len(node.args) > 1 else None
            if bn_path is not None:
                bn_uses[bn_path] = bn_uses.get(bn_path, 0) + 1
                candidates.append((node, bn_path))
        elif node.target == torch.ops.aten.conv2d.default:
            path = _module_path(node.args[1])
            if path is not None:
                conv_uses[path] = conv_uses.get(path, 0) + 1
    folded = []
    for node, bn_path in candidates:
        src = node.args[0]
        if not (isinstance(src, torch.fx.Node) and src.target == torch.ops.aten.conv2d.default
                and len(src.users) == 1):
            continue
        conv_path = _module_path(src.args[1])
        if conv_path is None or conv_uses.get(conv_path) != 1 or bn_uses[bn_path] != 1:
            continue
        conv, bn = model.get_submodule(conv_path), model.get_submodule(bn_path)
        if not (isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d)
                and bn.running_mean is not None and bn.running_var is not None):
            continue
        _fold_pair(conv, bn)
        parent_path, _, attr = bn_path.rpartition(".")
        setattr(model.get_submodule(parent_path), attr, nn.Identity())
        folded.append((conv_path, bn_path))
    return folded


@torch.no_grad()
def _fold_pair(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    assert bn.running_mean is not None and bn.running_var is not None
    var, mean = bn.running_var.double(), bn.running_mean.double()
    gamma = bn.weight.double() if bn.weight is not None else torch.ones_like(var)
    beta = bn.bias.double() if bn.bias is not None else torch.zeros_like(var)
    factor = gamma / torch.sqrt(var + bn.eps)
    weight = conv.weight.double() * factor.reshape(-1, 1, 1, 1)
    bias = conv.bias.double() if conv.bias is not None else torch.zeros_like(var)
    conv.weight = nn.Parameter(weight.float())
    conv.bias = nn.Parameter(((bias - mean) * factor + beta).float())
