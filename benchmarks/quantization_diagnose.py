"""Where the static-int8 error of the random-init fidelity models comes from (issue 4).

For ResNet-18, MobileNetV2 and the encoder (32 fixed inputs, as in accuracy.py):
1. per quantized tensor: SQNR of the simulator vs FP32 (accumulated), of that tensor alone
   fake-quantized from its FP32 value (local: what 8 bits can do there), and of the
   deviation from the batch mean (centred: the part the centred classifier reads);
2. the logit SQNR / agreement under partial quantization and under pure FP32 noise: weights
   only, activations only, FP16, Gaussian noise at the input only, other calibration sets,
   first conv kept FP32;
3. the integer oracle vs the simulator, op by op (check.py) and end to end.

    taskset -c 1 python benchmarks/quantization_diagnose.py     # ~5 minutes on one core
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from edgebench.models import get_model
from edgebench.quantize import QuantConfig, parse_quant, quantize
from edgebench.quantize.check import capture, per_op_agreement
from edgebench.quantize.fakequant import ActQuant

HERE = Path(__file__).resolve().parents[1] / "results" / "quantization"
INPUTS = 32
CONCLUSION = """## Conclusion

Each tensor is quantized about as well as 8 bits allow (local SQNR 37-45 dB), and neither
the calibration set nor the observer matters; the logits lose 25-40 dB more because these
random-init nets amplify any perturbation (FP32 with Gaussian noise at the input alone falls
as far as int8 does) and their centred classifier reads only the few per cent of the pooled
features that depend on the input. The integer oracle equals the simulator op by op up to
rounding ties; their end-to-end gap is the same amplification acting on those few flips."""


def sqnr(out: torch.Tensor, ref: torch.Tensor) -> float:
    noise = float(((out.double() - ref.double()) ** 2).sum())
    return 10 * math.log10(float((ref.double() ** 2).sum()) / noise) if noise else math.inf


def agree(out: torch.Tensor, ref: torch.Tensor) -> float:
    return float((out.argmax(-1) == ref.argmax(-1)).float().mean())


class Identity(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def centred(t: torch.Tensor) -> torch.Tensor:
    return t - t.mean(0, keepdim=True)


def per_tensor(result, x: torch.Tensor) -> list[str]:
    fp, sim = capture(result.graph, x), capture(result.model, x)
    lines = ["| tensor | accumulated | local | centred | input-dependent power |",
             "|---|---|---|---|---|"]
    for node in result.model.graph.nodes:
        if node.op != "call_module" or not isinstance(
                aq := result.model.get_submodule(node.target), ActQuant):
            continue
        f = fp[node.args[0].name]
        if not f.is_floating_point():
            continue
        with torch.no_grad():
            local = aq(f)
        s = sim[node.name]
        power = float(centred(f).pow(2).mean() / f.pow(2).mean())
        lines.append(f"| {node.args[0].name} | {sqnr(s, f):.1f} | {sqnr(local, f):.1f} | "
                     f"{sqnr(centred(s), centred(f)):.1f} | {100 * power:.1f}% |")
    return lines


@torch.no_grad()
def variants(name: str, model: nn.Module, result, x: torch.Tensor) -> list[str]:
    spec = get_model(name)
    ref = result.graph(x)
    rows = [("static int8 (default)", result.model(x))]
    quants = {n: m for n, m in result.model.named_children() if isinstance(m, ActQuant)}
    for n in quants:  # weights only: activation quantizers out
        setattr(result.model, n, Identity())
    rows.append(("int8 weights only (activations FP32)", result.model(x)))
    for n, m in quants.items():
        setattr(result.model, n, m)
    float_model = result.float_model.eval()
    act_only = quantize(float_model, parse_quant("static"), spec)  # weights back to FP32
    for n, p in act_only.model.named_parameters():
        p.copy_(dict(result.graph.named_parameters())[n])
    rows.append(("int8 activations only (weights FP32)", act_only.model(x)))
    rows.append(("fp16", quantize(model, parse_quant("fp16"), spec).model(x)))
    if x.is_floating_point():
        gen = torch.Generator().manual_seed(0)
        noise = torch.randn(x.shape, generator=gen) * x.pow(2).mean().sqrt()
        for db in (40, 60):
            rows.append((f"FP32, Gaussian noise at the input only, {db} dB",
                         result.graph(x + noise * 10 ** (-db / 20))))
    rows.append(("static, percentile 99.99", quantize(
        model, parse_quant("static:percentile"), spec).model(x)))
    rows.append(("static, 128 calibration inputs", quantize(
        model, QuantConfig("static", calibration_samples=128), spec).model(x)))
    rows.append(("static, calibrated on the 32 evaluation inputs themselves", quantize(
        model, parse_quant("static"), spec, calibration=x).model(x)))
    first = result.description.weighted[0].name
    rows.append((f"static, first layer ({first}) kept FP32", quantize(
        model, QuantConfig("static", keep_fp32=(first,)), spec).model(x)))
    lines = ["| variant | logit SQNR dB | top-1 agreement |", "|---|---|---|"]
    lines += [f"| {label} | {sqnr(out, ref):.1f} | {100 * agree(out, ref):.0f}% |"
              for label, out in rows]
    return lines


def main() -> None:
    torch.set_num_threads(1)
    text = ["# Why static int8 loses fidelity on the random-init models (issue 4)", "",
            "Produced by `taskset -c 1 python benchmarks/quantization_diagnose.py`; "
            f"{INPUTS} fixed inputs (fixed_batch seed 0), calibration on 32 others (seed 1). "
            "SQNR in dB vs the BN-folded FP32 graph.", ""]
    for name in ("resnet18", "mobilenetv2", "encoder"):
        spec = get_model(name)
        model = spec.build()
        x = spec.eval_data()[0][:INPUTS].flatten(0, 1)
        result = quantize(model, parse_quant("static"), spec)
        with torch.no_grad():
            ref = result.graph(x)
        top2 = ref.topk(2, -1).values
        margin = float((top2[:, 0] - top2[:, 1]).median())
        text += [f"## {name}", "",
                 f"FP32 logits: std {float(ref.std()):.2f}, median top-1 margin over the "
                 f"runner-up {margin:.3f}.", "", "### Error sources", ""]
        text += variants(name, model, result, x)
        if name != "encoder":
            text += ["", "### Per quantized tensor (static int8, min-max)", ""]
            text += per_tensor(result, x[:8])
        rows = per_op_agreement(result, x[:2])
        ints = [r for r in rows if not r.float_output]
        flips = sum(r.flips for r in ints)
        with torch.no_grad():
            sim, oracle = result.model(x), result.reference(x)
        text += ["", "### Integer oracle vs simulator", "",
                 f"- op by op (2 inputs, each op fed the simulator's integers): {len(ints)} "
                 f"integer ops, max difference {max((r.max_diff for r in ints), default=0):.0f} "
                 f"step, {flips} flipped of {sum(r.elements for r in ints)} elements, every "
                 f"flip within {max((r.tie for r in ints), default=0):.1e} step of a rounding "
                 f"tie; float outputs within "
                 f"{max((r.max_diff for r in rows if r.float_output), default=0):.1e} relative.",
                 f"- end to end ({INPUTS} inputs): max |logit difference| "
                 f"{float((sim - oracle).abs().max()):.3g}, SQNR {sqnr(oracle, sim):.1f} dB, "
                 f"top-1 agreement {100 * agree(oracle, sim):.0f}%.", ""]
        print("\n".join(text), flush=True)
    (HERE / "diagnosis.md").write_text("\n".join([*text, CONCLUSION]) + "\n")


if __name__ == "__main__":
    main()
