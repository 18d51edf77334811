"""The peers' own int8 builds as runtimes of `edgebench run` (onnxruntime-int8,
executorch-int8): real int8 artifacts, calibrated as quant=static is, scored like every row."""

from __future__ import annotations

import pytest

from edgebench.report.tables import derive, fastest_real_peer
from edgebench.runtimes import unavailable_reason
from tests.helpers import run_pipeline


@pytest.mark.slow
@pytest.mark.parametrize("runtime", ["onnxruntime-int8", "executorch-int8"])
def test_int8_peer_is_a_real_int8_row_on_the_unquantized_variant(tmp_path, runtime) -> None:
    if unavailable_reason(runtime):
        pytest.skip(unavailable_reason(runtime))
    df = run_pipeline(tmp_path, models=("digits-mlp",), variants=("fp32", "quant=static"),
                      runtimes=("tvm", runtime))
    assert set(df["status"]) == {"ok"}, df[["variant", "runtime", "error"]]
    # no row of the peer on quant=static: it quantizes the float model itself
    assert set(df[df["runtime"] == runtime]["variant"]) == {"fp32"}
    peer = df[df["runtime"] == runtime].iloc[0]
    assert peer["quant_kind"] == "int8-peer"
    assert 0 < peer["verify_err"] < 2  # integer arithmetic: not FP32's outputs, yet close
    assert peer["metric_drop"] < 1.5 and peer["top1_agreement"] > 0.97
    assert peer["artifact_bytes"] < 0.6 * 4 * peer["params"]  # int8 weights, not float32
    # the real int8 peer the headline and the run's summary compare int8 rows against
    rows = derive(df.assign(board_kind="", emulated=False))
    assert fastest_real_peer(rows, "int8", max_drop=1.5)["runtime"] == runtime
