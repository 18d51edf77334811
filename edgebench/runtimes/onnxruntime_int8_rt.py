"""ONNX Runtime on its own int8 build: `quantize_static`, QDQ, per-channel s8 weights and u8
activations, calibrated on the samples edgebench's `quant=static` calibrates on. A real int8
peer (quant_kind `int8-peer`), run by the same session as the FP32 ONNX Runtime rows."""

from __future__ import annotations

from pathlib import Path

from edgebench.runtimes.onnxruntime_rt import LIBS, open_session, unavailable_reason

CALIBRATED = True  # export takes the calibration samples
__all__ = ["CALIBRATED", "LIBS", "export", "open_session", "unavailable_reason"]


def export(model, example, out_dir: Path, calibration) -> Path:
    """The FP32 ONNX export (shape-inferred for the quantizer), then ORT's static int8."""
    import onnxruntime as ort
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from edgebench.runtimes import onnxruntime_rt

    fp32 = onnxruntime_rt.export(model, example, out_dir)
    pre = out_dir / "model.pre.onnx"
    quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
    name = ort.InferenceSession(str(pre)).get_inputs()[0].name

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter([{name: x.unsqueeze(0).numpy()} for x in calibration])

        def get_next(self):
            return next(self.items, None)

    path = out_dir / "model.int8.onnx"
    quantize_static(str(pre), str(path), Reader(), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8)
    return path
