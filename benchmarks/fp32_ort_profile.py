"""ONNX Runtime's own per-node profile of a model (1 thread, all graph optimizations, as the
edgebench peer runs it): p50 of the whole call, then the median time per node.

Run: taskset -c 1 python benchmarks/fp32_ort_profile.py <model.onnx> [calls] > out.txt
(the .onnx is the peer's artifact: $EDGEBENCH_CACHE/artifacts/<target>/<model>/fp32/onnxruntime/)
"""

import json
import sys
import time

import numpy as np
import onnxruntime as ort


def main(path: str, calls: int) -> None:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.enable_profiling = True
    opts.profile_file_prefix = "/tmp/ortprof"
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    x = np.random.rand(*[d if isinstance(d, int) else 1 for d in inp.shape]).astype(np.float32)
    for _ in range(10):
        sess.run(None, {inp.name: x})
    times = []
    for _ in range(calls):
        t = time.perf_counter()
        sess.run(None, {inp.name: x})
        times.append(time.perf_counter() - t)
    print("p50 ms", np.median(times) * 1e3)
    per_node: dict[tuple[str, str], list[float]] = {}
    with open(sess.end_profiling()) as f:
        for e in json.load(f):
            if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
                per_node.setdefault((e["name"], e["args"].get("op_name")), []).append(e["dur"])
    total = 0.0
    for (name, op), durations in per_node.items():
        ms = float(np.median(durations[-calls:])) / 1e3
        total += ms
        print(f"{op:20s} {ms:8.3f} {name}")
    print("sum ms", total)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 50)
