"""quantize(): FP32 model + QuantConfig -> description, fake-quant model, integer oracle, size.

    result = quantize(spec.build(), parse_quant("static"), spec)
    result.model        # fake-quant PyTorch model: the pipeline's reference and accuracy
    result.description  # per-op scheme and integer parameters (what the TVM pass lowers)
    result.reference    # integer reference executor (the oracle for the int8 kernels)
    result.float_model  # BN-folded FP32 model whose torch.export graph the description names
    result.size         # weight bytes as stored vs the FP32 model
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import fx, nn

from edgebench.data import fixed_batch, torch_dtype
from edgebench.models import ModelSpec
from edgebench.models.train import TrainStats
from edgebench.quantize.config import QuantConfig, QuantError, parse_quant
from edgebench.quantize.describe import describe
from edgebench.quantize.fakequant import act_quants, build_simulator, calibrate, freeze
from edgebench.quantize.fold import fold_batchnorm
from edgebench.quantize.graph import COMPUTE, Plan, Traced, is_tensor_node, make_plan, trace
from edgebench.quantize.qat import finetune
from edgebench.quantize.reference import IntegerReference
from edgebench.quantize.scheme import LayerQuant, QuantDescription
from edgebench.quantize.size import SizeReport, size_report

FIDELITY_CALIBRATION = 32


@dataclass
class QuantResult:
    """Everything quantize() produces (see the module docstring)."""

    config: QuantConfig
    description: QuantDescription
    model: nn.Module
    float_model: nn.Module
    reference: Callable[[torch.Tensor], torch.Tensor]
    size: SizeReport
    graph: fx.GraphModule = field(repr=False)
    folded: list[tuple[str, str]] = field(default_factory=list)
    train: TrainStats | None = None  # what QAT's fine-tuning cost (None: no training)

    @property
    def kept_fp32(self) -> list[tuple[str, str, str]]:
        """(layer, op, reason) for every op left in FP32."""
        return [(la.name, la.op, la.reason) for la in self.description.kept_fp32]


class FP16Model(nn.Module):
    """Weights and activations in float16; float inputs are cast in, outputs cast back."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.net = copy.deepcopy(model).half().eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.net(x.half() if x.is_floating_point() else x)
        return y.float()


def default_calibration(spec: ModelSpec, samples: int | None = None) -> torch.Tensor:
    """A seeded sample of the model's training data (digits, CREPE's tones, --data); without
    data, fixed_batch with seed 1 (apart from the seed-0 evaluation batch).

    samples: the config's count, else spec.calib_samples (--calib-samples), else the data's
    default (256) or 32 seeded inputs. Returned batched: (N, *input_shape[1:]).
    """
    n = samples or spec.calib_samples
    data = spec.dataset()
    if data is not None:
        return data.calibration(n).reshape(-1, *spec.input_shape[1:])
    return fixed_batch(spec.input_shape, n or FIDELITY_CALIBRATION, spec.input_dtype, seed=1,
                       high=spec.input_high).flatten(0, 1)


def check_calibration(spec: ModelSpec, data: object) -> torch.Tensor:
    """Validate a user calibration set; accept (N, *input_shape[1:]) or (N, *input_shape)."""
    if not isinstance(data, torch.Tensor):
        raise QuantError(f"calibration set must be a torch.Tensor, got {type(data).__name__}")
    sample, full = tuple(spec.input_shape[1:]), tuple(spec.input_shape)
    if data.dim() == 0 or len(data) == 0 or data.numel() == 0:
        raise QuantError(f"calibration set is empty (shape {tuple(data.shape)}); "
                         f"give at least one sample shaped {sample}")
    if data.dim() == len(full) + 1 and tuple(data.shape[1:]) == full:
        data = data.flatten(0, 1)
    if tuple(data.shape[1:]) != sample:
        raise QuantError(f"calibration set shaped {tuple(data.shape)} does not fit model "
                         f"'{spec.name}': expected (N, {', '.join(map(str, sample))}) samples "
                         f"of its input {full}")
    want = torch_dtype(spec.input_dtype)
    if data.is_floating_point() != want.is_floating_point:
        raise QuantError(f"calibration set has dtype {data.dtype}, model '{spec.name}' takes "
                         f"{spec.input_dtype}")
    if data.is_floating_point() and not bool(torch.isfinite(data).all()):
        raise QuantError("calibration set contains NaN or Inf")
    return data.to(want)


def _fp16_description(gm: fx.GraphModule) -> QuantDescription:
    layers = []
    for i, node in enumerate(gm.graph.nodes):
        if node.op != "call_function" or not is_tensor_node(node):
            continue
        op = COMPUTE.get(node.target)
        name = node.name
        if op and isinstance(node.args[1], fx.Node):
            name = str(node.args[1].target).rpartition(".")[0]
        layers.append(LayerQuant(
            name=name, node=node.name, op=op or getattr(node.target, "__name__", "op")
            .split(".")[0], index=i, scheme="fp16",
            weight_dtype="float16" if op else None, weight_bits=16 if op else None))
    return QuantDescription("fp16", layers)


def quantize(model: nn.Module, config: QuantConfig | str, spec: ModelSpec,
             calibration: torch.Tensor | None = None) -> QuantResult:
    """Quantize a deep copy of `model` as `config` says (the input model is not modified).

    BatchNorm is folded into the preceding conv first. calibration: (N, *input_shape[1:])
    inputs for the activation ranges (None: default_calibration). qat/ternary/binary also
    fine-tune on the model's training data, so they need a model with labelled data.
    """
    if isinstance(config, str):
        config = parse_quant(config)
    if config.trained:
        data = spec.dataset()
        if data is None or data.y_train is None:
            raise QuantError(f"quant '{config.text}' fine-tunes on the model's labelled training "
                             f"data; model '{spec.name}' has none (give --data, or use "
                             "quant=static)")
    cal: torch.Tensor | None = None
    if calibration is not None:
        cal = check_calibration(spec, calibration)
    elif config.calibrated:
        cal = default_calibration(spec, config.calibration_samples)
    example = spec.example_input()
    work = copy.deepcopy(model).eval()
    folded = fold_batchnorm(work, example)
    traced = trace(work, example)
    if config.method == "fp16":
        description = _fp16_description(traced.gm)
        fp16 = FP16Model(work)
        return QuantResult(config, description, fp16, work, fp16,
                           size_report(model, traced.gm, description), traced.gm, folded)
    plan = make_plan(traced.gm, config)
    sim = build_simulator(traced, plan, config)
    if cal is not None and config.calibrated:
        calibrate(sim, cal, traced.batched)
    train = None
    if cal is not None and config.trained:
        epochs, lr = config.train_recipe
        train = finetune(sim, spec, epochs, lr, teacher=copy.deepcopy(work).eval())
        _copy_weights(sim, traced)
        calibrate(sim, cal, traced.batched)
    weights = freeze(sim, config.represents_zero)
    acts = {name: a.qparams for name, a in act_quants(sim).items()}
    description = describe(traced.gm, plan, weights, acts, config)
    _bake_bias(sim, description, plan)
    reference = IntegerReference(traced.gm, description, traced.batched)
    size = size_report(model, traced.gm, description)
    return QuantResult(config, description, sim.eval(), work, reference, size, traced.gm, folded,
                       train)


@torch.no_grad()
def _copy_weights(sim: fx.GraphModule, traced: Traced) -> None:
    """Trained float weights back into the float graph (and so into float_model)."""
    for name, p in traced.gm.named_parameters():
        p.copy_(sim.get_parameter(name))


@torch.no_grad()
def _bake_bias(sim: fx.GraphModule, description: QuantDescription, plan: Plan) -> None:
    """Give the simulator the int32 bias the kernels use: float32(bias_q * s_x * s_w[c]).

    Leaves float accumulation order as the only difference between simulator and oracle.
    """
    for la in description.weighted:
        bias = plan.steps[la.node].bias
        if la.scheme != "static" or la.bias_q is None or bias is None:
            continue
        (qx,) = la.inputs
        assert qx is not None
        s = torch.tensor(la.weight_scale, dtype=torch.float64) * qx.scale
        path, _, leaf = bias.rpartition(".")
        value = (la.bias_q.double() * s).float()
        setattr(sim.get_submodule(path), leaf, nn.Parameter(value, requires_grad=False))
