"""ExecuTorch XNNPACK on its own int8 build: PT2E with XNNPACKQuantizer (symmetric,
per-channel), calibrated on the samples edgebench's `quant=static` calibrates on. A real
int8 peer (quant_kind `int8-peer`), run by the same session as the FP32 ExecuTorch rows."""

from __future__ import annotations

from pathlib import Path

from edgebench.runtimes.executorch_rt import LIBS, before_import, open_session, unavailable_reason

CALIBRATED = True  # export takes the calibration samples
__all__ = ["CALIBRATED", "LIBS", "before_import", "export", "open_session", "unavailable_reason"]


def export(model, example, out_dir: Path, calibration) -> Path:
    import torch
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
        prepared = prepare_pt2e(torch.export.export(model, (example,)).module(), quantizer)
        for x in calibration:
            prepared(x.unsqueeze(0))
        ep = torch.export.export(convert_pt2e(prepared), (example,))
        program = to_edge_transform_and_lower(ep, partitioner=[XnnpackPartitioner()])
    path = out_dir / "model.pte"
    path.write_bytes(program.to_executorch().buffer)
    return path
