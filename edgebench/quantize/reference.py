"""The integer reference executor: the oracle the TVM int8 kernels must match bit for bit.

It walks the exported graph and runs every int8 entry of the description with integer
arithmetic only (float64 holds the int8 x int8 sums, which are exact below 2**53); FP32 ops
run in float32 on dequantized inputs. The arithmetic, which the Relax pass must reproduce:

Notation: round_half_even(v) rounds to the nearest integer, ties to even. Every scale is a
float32 number; float ops below are IEEE float32 unless said otherwise. Integer tensors are
int8/uint8 in storage; intermediate values are int32 or int64 as stated.

1. quantize (float32 x -> int, graph inputs and FP32 op outputs entering int8 ops):
   inv = float32(1) / scale;  q = clamp(round_half_even(x * inv) + zero_point, qmin, qmax)
   with (qmin, qmax) = (0, 255) for uint8, (-128, 127) for int8 (x * inv and + zero_point in
   float32; this is exactly torch.fake_quantize_per_tensor_affine).
2. dequantize (int -> float32, into FP32 ops and at the graph output):
   x = float32(q - zero_point) * scale.
3. requantize(acc, M0, n, zp, lo, hi), acc int32, M0 in [2**30, 2**31), 1 <= n <= 62:
   p = int64(acc) * M0                                  (|p| < 2**62)
   t = p >> n (arithmetic shift = floor); r = p - (t << n); h = 1 << (n - 1)
   t = t + (r > h or (r == h and t is odd))             (round half to even of p / 2**n)
   y = clamp(t + zp, lo, hi)                            (saturate to the int8/uint8 range,
                                                          narrowed by a fused ReLU/ReLU6)
   M0, n encode the real multiplier M: M = m * 2**e (frexp, m in [0.5, 1)),
   M0 = round_half_even(m * 2**31), n = 31 - e (M0 == 2**31 -> 2**30, n - 1); tiny M with
   n > 62 use n = 62, M0 = round_half_even(M * 2**62). The description stores M0 and n.
4. conv2d (stride, padding, dilation, groups incl. depthwise) and linear, weights symmetric
   int (zero point 0) with per-output-channel (or one) scale s_w[c], input qparams (s_x, z_x):
   acc[c] = sum((q_x - z_x) * w_q[c]) + bias_q[c]   in int32 (zero padding is q_x = z_x)
   bias_q[c] = saturate_int32(round_half_even(float64(b[c]) / (float64(s_x) * float64(s_w[c]))))
   int8 output (s_y, z_y): y = requantize(acc, M0[c], n[c], z_y, lo, hi) with
   M = float64(s_x) * float64(s_w[c]) / float64(s_y);
   float output (all consumers FP32): y = float32(acc) * out_scale[c],
   out_scale[c] = float32(float64(s_x) * float64(s_w[c])), then the fused activation in float.
   ReLU/ReLU6/hardtanh(a, b) fused into an int8 output become lo = max(qmin, quantize(a)),
   hi = min(qmax, quantize(b)) (rule 1 with the output qparams); the description's clamp.
5. add (residual) of int8 a (s_a, z_a) and b (s_b, z_b) into (s_o, z_o): both inputs are
   rescaled to the output scale with one shared shift and a single rounding:
   n, M0_a, M0_b: n from quantize_multiplier(max(M_a, M_b)), M0_i = round_half_even(M_i * 2**n),
   M_i = float64(s_i) / float64(s_o);
   y = clamp(z_o + round_half_even_shift((q_a - z_a) * M0_a + (q_b - z_b) * M0_b, n), lo, hi)
   (int64; the rounding is step 3's). A fused ReLU narrows lo/hi as in 4.
6. average pools (adaptive with even windows, avg_pool2d without padding, mean over dims):
   acc = sum over the window of (q - z_in) (int32); y = requantize(acc, M0, n, z_out, qmin,
   qmax) with M = float64(s_in) / (float64(s_out) * count).
7. max pool, flatten/reshape/view/transpose/permute/squeeze/unsqueeze/dropout(eval)/clone:
   applied to the int values; qparams unchanged (max commutes with monotone quantization).
   An unfused ReLU/ReLU6/clamp on an int8 tensor: clamp(q, quantize(a), quantize(b)).
8. dynamic linear (quant=dynamic): per sample (dim 0) in float32: lo = min(min x, 0),
   hi = max(max x, 0), s_x = max((hi - lo) / 255, MIN_SCALE) (1 if hi == lo),
   z_x = clamp(-round_half_even(lo / s_x), 0, 255); q_x by rule 1 (uint8);
   acc = sum((q_x - z_x) * w_q[c]) (int32);
   y = float32(acc) * (s_x * s_w[c]) + b[c] (float32, bias not quantized).
9. everything else is FP32 (dequantize before, quantize after), listed with the reason.
10. embedding (weight-only, per-row): y[..., :] = float32(w_q[id, :]) * s_w[id] (float32
   product, float output; the ids are not quantized).

Agreement with the fake-quant simulator is defined per op (op() below, check.py): given the
simulator's integer inputs, every integer op reproduces the simulator's integer output except
where float32 arithmetic in the simulator lands within ~1e-4 of a rounding tie. End to end the
two diverge further on deep random-init nets, which amplify any perturbation (see
results/quantization/diagnosis.md); the TVM kernels, being integer code, must match this
oracle exactly, end to end.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import fx

from edgebench.quantize.arith import (
    INT32_MAX,
    INT32_MIN,
    dequantize,
    quantize,
    requantize,
    shift_round_half_even,
)
from edgebench.quantize.fakequant import dynamic_qparams
from edgebench.quantize.scheme import ActQParams, LayerQuant, QuantDescription


class AccumulatorOverflow(RuntimeError):
    """An int32 accumulator would overflow: the compiled kernel would silently wrap."""


def _attr(gm: fx.GraphModule, target: str) -> object:
    obj: object = gm
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj


def _check_int32(acc: torch.Tensor, layer: str) -> None:
    if acc.numel() and (int(acc.min()) < INT32_MIN or int(acc.max()) > INT32_MAX):
        raise AccumulatorOverflow(f"int32 accumulator overflow in {layer}")


def _channel_shape(op: str, rank: int) -> tuple[int, ...]:
    """Broadcast shape of a per-output-channel vector: dim 1 for conv, last dim for linear."""
    return (1, -1) + (1,) * (rank - 2) if op == "conv2d" else (-1,)


def _accessors(env: dict[str, tuple[object, ActQParams | None]]):
    """(as_int, as_float) readers of env: dequantize int tensors, quantize float ones (rule 1)."""

    def as_float(n: fx.Node) -> object:
        value, qp = env[n.name]
        if qp is None:
            return value
        assert isinstance(value, torch.Tensor)
        return dequantize(value, qp.scale, qp.zero_point)

    def as_int(n: fx.Node, want: ActQParams, layer: str) -> torch.Tensor:
        value, qp = env[n.name]
        assert isinstance(value, torch.Tensor)
        if qp is None:  # an FP32 tensor entering an int8 op: rule 1
            return quantize(value, want.scale, want.zero_point, want.qmin, want.qmax)
        if qp != want:
            raise RuntimeError(f"{layer}: input {n.name} has qparams {qp}, expected {want}")
        return value

    return as_int, as_float


class IntegerReference:
    """Runs the description's integer program on the float graph `gm` (BN-folded FP32).

    Call it like the model (batched input -> float output); run() also returns every node's
    value: (int64 tensor, qparams) for int8 tensors, (float tensor, None) otherwise.
    """

    def __init__(self, gm: fx.GraphModule, description: QuantDescription,
                 batched: bool = True) -> None:
        self.gm, self.description, self.batched = gm, description, batched
        self.entries = description.by_node

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.batched:
            return self._run(x)[1]
        return torch.cat([self._run(x[i : i + 1])[1] for i in range(len(x))])

    def run(self, x: torch.Tensor) -> dict[str, tuple[object, ActQParams | None]]:
        return self._run(x)[0]

    @torch.no_grad()
    def op(self, node: str, operands: list[torch.Tensor]) -> tuple[torch.Tensor,
                                                                    ActQParams | None]:
        """Run one integer entry on given operands (its tensor args in order): int values for
        int8 inputs (the entry's input qparams), float otherwise. Lets a test or a TVM kernel
        be checked op by op, free of the drift earlier ops cause."""
        la = self.entries[node]
        fx_node = next(n for n in self.gm.graph.nodes if n.name == node)
        args = [a for a in fx_node.all_input_nodes if a.op != "get_attr"]
        env: dict[str, tuple[object, ActQParams | None]] = {}
        for i, (arg, value) in enumerate(zip(args, operands, strict=True)):
            qp = la.inputs[i] if i < len(la.inputs) else None
            env[arg.name] = (value, qp)
        return self._integer(fx_node, la, *_accessors(env))

    @torch.no_grad()
    def _run(self, x: torch.Tensor) -> tuple[dict, torch.Tensor]:
        env: dict[str, tuple[object, ActQParams | None]] = {}
        as_int, as_float = _accessors(env)
        output = None
        inputs = iter([x])
        for node in self.gm.graph.nodes:
            if node.op == "placeholder":
                env[node.name] = (next(inputs), None)
            elif node.op == "get_attr":
                env[node.name] = (_attr(self.gm, node.target), None)
            elif node.op == "output":
                output = fx.map_arg(node.args[0], as_float)
            elif node.name in env:  # an activation fused into an int8 producer
                continue
            else:
                entry = self.entries.get(node.name)
                if entry is None or not entry.integer:
                    args = fx.map_arg(node.args, as_float)
                    kwargs = fx.map_arg(node.kwargs, as_float)
                    env[node.name] = (node.target(*args, **kwargs), None)
                else:
                    out_name = entry.fused[0] if entry.fused and entry.output else node.name
                    env[out_name] = self._integer(node, entry, as_int, as_float)
        assert isinstance(output, torch.Tensor)
        return env, output

    def _integer(self, node: fx.Node, la: LayerQuant, as_int, as_float
                 ) -> tuple[torch.Tensor, ActQParams | None]:
        op = la.op
        if op == "embedding":  # rule 10
            assert la.weight_q is not None and la.out_scale is not None
            ids = as_float(node.args[1])
            assert isinstance(ids, torch.Tensor)
            return la.weight_q[ids].to(torch.float32) * la.out_scale[ids].unsqueeze(-1), None
        if op in ("conv2d", "linear"):
            return self._compute(node, la, as_int, as_float)
        if op == "add":
            a, b = node.args
            qa, qb = la.inputs
            assert qa is not None and qb is not None and la.output is not None
            assert la.multiplier is not None and la.shift is not None and la.clamp is not None
            da = as_int(a, qa, la.name) - qa.zero_point
            db = as_int(b, qb, la.name) - qb.zero_point
            acc = da * int(la.multiplier[0]) + db * int(la.multiplier[1])
            y = shift_round_half_even(acc, int(la.shift[0])) + la.output.zero_point
            return torch.clamp(y, *la.clamp), la.output
        (qi,) = la.inputs
        assert qi is not None
        q = as_int(node.args[0], qi, la.name)
        if la.op in ("adaptive_avg_pool2d", "avg_pool2d", "mean"):
            assert la.output is not None and la.multiplier is not None and la.shift is not None
            acc = _window_sum(node, la.op, q - qi.zero_point)
            _check_int32(acc, la.name)
            return requantize(acc, int(la.multiplier[0]), int(la.shift[0]),
                              la.output.zero_point, la.output.qmin, la.output.qmax), la.output
        if la.clamp is not None:  # unfused ReLU/ReLU6/clamp on an int8 tensor
            return torch.clamp(q, *la.clamp), qi
        args = fx.map_arg(node.args[1:], as_float)  # max pool, shape ops on exact integers
        kwargs = fx.map_arg(node.kwargs, as_float)
        out = node.target(q.double(), *args, **kwargs)
        return out.round().to(torch.int64), qi

    def _compute(self, node: fx.Node, la: LayerQuant, as_int, as_float
                 ) -> tuple[torch.Tensor, ActQParams | None]:
        assert la.weight_q is not None
        x = node.args[0]
        w = la.weight_q.double()
        if la.scheme == "dynamic":
            xf = as_float(x)
            s_x, z_x = dynamic_qparams(xf)
            shape = (-1,) + (1,) * (xf.dim() - 1)
            q = quantize(xf, s_x.reshape(shape), z_x.reshape(shape), 0, 255)
            d = q - z_x.reshape(shape).to(torch.int64)
        else:
            (qx,) = la.inputs
            assert qx is not None
            d = as_int(x, qx, la.name) - qx.zero_point
        if la.op == "conv2d":
            stride, padding, dilation, groups = ([*node.args, None, None, None, None][3:7])
            acc = F.conv2d(d.double(), w, None, stride or 1, padding or 0, dilation or 1,
                           groups or 1)
        else:
            acc = d.double() @ w.T
        acc = acc.round().to(torch.int64)
        shape = _channel_shape(la.op, acc.dim())
        if la.scheme == "dynamic":
            _check_int32(acc, la.name)
            assert la.bias_float is not None
            s_w = torch.tensor(la.weight_scale, dtype=torch.float32)
            s = s_x.reshape((-1,) + (1,) * (acc.dim() - 1)) * s_w
            return acc.to(torch.float32) * s + la.bias_float, None
        assert la.bias_q is not None
        acc = acc + la.bias_q.to(torch.int64).reshape(shape)
        _check_int32(acc, la.name)
        if la.output is None:
            assert la.out_scale is not None
            return acc.to(torch.float32) * la.out_scale.reshape(shape), None
        assert la.multiplier is not None and la.shift is not None and la.clamp is not None
        y = requantize(acc, la.multiplier.reshape(shape), la.shift.reshape(shape),
                       la.output.zero_point, *la.clamp)
        return y, la.output


def _window_sum(node: fx.Node, op: str, d: torch.Tensor) -> torch.Tensor:
    """Exact int64 sums over each pooling window."""
    if op == "adaptive_avg_pool2d":
        oh, ow = (int(v) for v in node.args[1])
        n, c, h, w = d.shape
        return d.reshape(n, c, oh, h // oh, ow, w // ow).sum((3, 5))
    if op == "avg_pool2d":
        k = list(node.args[1])
        kh, kw = (k[0], k[0]) if len(k) == 1 else k
        s = list(node.args[2]) if len(node.args) > 2 and node.args[2] else [kh, kw]
        sh, sw = (s[0], s[0]) if len(s) == 1 else s
        return d.unfold(2, kh, sh).unfold(3, kw, sw).sum((-1, -2))
    dims = node.args[1] if len(node.args) > 1 else None
    keepdim = bool(node.args[2]) if len(node.args) > 2 else bool(node.kwargs.get("keepdim"))
    if dims is None:
        dims = list(range(d.dim()))
    return d.sum(tuple(dims), keepdim=keepdim)
