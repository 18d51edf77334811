"""The int8 peers of the TVM int8 rows, measured the way edgebench measures every runtime.

edgebench's own peer rows run the variant's fake-quant graph (quant_kind = simulated): no peer
runs real int8 there. This script builds each peer's own int8 artifact with that peer's own
quantizer, calibrated on the same samples edgebench's static quantizer uses
(`default_calibration`: the model's own training data, e.g. 256 digits images or CREPE
tones), and times it with edgebench's worker (same pinned core, 1 thread,
same evaluation inputs, same run rule), appending rows to the CSV the TVM rows are in:

  int8:executorch-pt2e   ExecuTorch XNNPACK, PT2E XNNPACKQuantizer (symmetric, per-channel)
  int8:ort-static-qdq    ONNX Runtime quantize_static, QDQ, per-channel s8 weights, u8 acts
  int8:ort-dynamic       ONNX Runtime quantize_dynamic (s8 weights, activations at run time)
  int8:torch-dynamic     torch.ao quantize_dynamic on nn.Linear (convs stay FP32)

Their outputs are not verified against edgebench's integer oracle (a different quantizer):
they are scored like every row (pipeline._score: the model's metric on its test data, drop vs
FP32, top-1 agreement, max error).

    python results/int8/peers.py resnet18 digits-cnn -o results/int8/int8.csv
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import tempfile
import traceback
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch

from edgebench.data import DataOptions
from edgebench.envinfo import host_environment
from edgebench.measure import MeasureConfig
from edgebench.models import get_model, with_data
from edgebench.pipeline import _ModelRun, _score, _size
from edgebench.quantize import default_calibration
from edgebench.report import ResultsWriter, write_markdown
from edgebench.run.local import run_worker
from edgebench.runtimes import onnxruntime_rt
from edgebench.targets import find_target


def executorch_pt2e(model, example, calib, out: Path) -> Path:
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from executorch.exir import to_edge_transform_and_lower
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    quantizer = XNNPACKQuantizer().set_global(
        get_symmetric_quantization_config(is_per_channel=True))
    with torch.no_grad():
        graph = torch.export.export(model, (example,)).module()
        prepared = prepare_pt2e(graph, quantizer)
        for x in calib:
            prepared(x.unsqueeze(0))
        converted = convert_pt2e(prepared)
        ep = torch.export.export(converted, (example,))
        program = to_edge_transform_and_lower(ep, partitioner=[XnnpackPartitioner()])
    path = out / "model.pte"
    path.write_bytes(program.to_executorch().buffer)
    return path


def _ort_fp32(model, example, out: Path) -> Path:
    fp32 = onnxruntime_rt.export(model, example, out)
    try:
        from onnxruntime.quantization.shape_inference import quant_pre_process

        pre = out / "model.pre.onnx"
        quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
        return pre
    except Exception:  # pre-processing is an optimisation; quantize the plain export
        return fp32


def ort_static(model, example, calib, out: Path) -> Path:
    import onnxruntime as ort
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    fp32 = _ort_fp32(model, example, out)
    name = ort.InferenceSession(str(fp32)).get_inputs()[0].name

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter([{name: x.unsqueeze(0).numpy()} for x in calib])

        def get_next(self):
            return next(self.items, None)

    path = out / "model.int8.onnx"
    quantize_static(str(fp32), str(path), Reader(), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8)
    return path


def ort_dynamic(model, example, calib, out: Path) -> Path:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    fp32 = _ort_fp32(model, example, out)
    path = out / "model.dyn.onnx"
    quantize_dynamic(str(fp32), str(path), weight_type=QuantType.QInt8)
    return path


def torch_dynamic(model, example, calib, out: Path) -> Path:
    from torch.ao.quantization import quantize_dynamic

    q = quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    path = out / "model.pt"
    torch.save(q, path)
    return path


PEERS = {  # variant name -> (runtime that runs the artifact, builder)
    "int8:executorch-pt2e": ("executorch", executorch_pt2e),
    "int8:ort-static-qdq": ("onnxruntime", ort_static),
    "int8:ort-dynamic": ("onnxruntime", ort_dynamic),
    "int8:torch-dynamic": ("pytorch", torch_dynamic),
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", nargs="+")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--target", default="x86-native")
    p.add_argument("--peers", nargs="*", default=list(PEERS))
    p.add_argument("--eval-samples", type=int, default=None,
                   help="test samples scored (as `edgebench run --eval-samples`)")
    args = p.parse_args()
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    target = find_target(args.target)
    env = host_environment()
    writer = ResultsWriter(args.output, env)
    done = writer.finished()
    for name in args.models:
        spec = with_data(get_model(name), DataOptions(eval_samples=args.eval_samples))
        run = _ModelRun(spec)
        example = run.xs[0]
        calib = default_calibration(spec)  # the very samples quant=static calibrates on
        for variant in args.peers:
            runtime, build = PEERS[variant]
            key = (spec.name, variant, runtime, target.name, str(target.threads))
            if key in done:
                print(f"{spec.name} {variant}: already measured, skipped")
                continue
            row = {"model": spec.name, "variant": variant, "runtime": runtime,
                   "target": target.name, "threads": target.threads,
                   "cores": " ".join(map(str, target.cores)), "machine": env["machine"],
                   "quant_kind": "int8-peer", "emulated": False,
                   "timestamp": datetime.now(UTC).isoformat(timespec="seconds")}
            try:
                with tempfile.TemporaryDirectory() as tmp, \
                        contextlib.redirect_stdout(io.StringIO()):
                    path = build(run.base, example, calib, Path(tmp))
                    row["artifact_bytes"], row["artifact_gzip_bytes"] = _size(path)
                    result = run_worker(runtime, path, run.xs.numpy(), target.threads,
                                        target.cores, MeasureConfig())
                row.update({k: result.stats[k] for k in (
                    "p50_ms", "p90_ms", "p99_ms", "mean_ms", "std_ms", "min_ms", "runs",
                    "first_ms", "load_s", "peak_rss_mb", "model_rss_mb")})
                if not np.all(np.isfinite(result.outputs[0])):
                    raise RuntimeError("outputs have NaN or Inf")
                _score(row, run, result.outputs)
                row["status"] = "ok"
                print(f"{spec.name} {variant}: p50 {row['p50_ms']:.4f} ms")
            except Exception as e:
                traceback.print_exc()
                row.update(status="failed", error=str(e).strip().splitlines()[0][:500])
                print(f"{spec.name} {variant}: FAILED {row['error']}")
            writer.append(row)
    write_markdown(writer.path)


if __name__ == "__main__":
    main()
