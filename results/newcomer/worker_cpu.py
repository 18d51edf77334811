import resource, sys, time, numpy as np
from pathlib import Path
from edgebench.execute.local import run_worker
from edgebench.measure import MeasureConfig
base = Path("/tmp/newc/cache-base/artifacts/x86-native/digits-mlp/fp32")
xs = np.random.default_rng(0).standard_normal((64, 1, 64)).astype("float32")
for rt, f in [("tvm", "tvm/model.so"), ("pytorch", "pytorch/model.pt"), ("onnxruntime", "onnxruntime/model.onnx"), ("executorch", "executorch/model.pte")]:
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN); t0 = time.time()
    res = run_worker(rt, base / f, xs, 1, (0,), MeasureConfig(), log=print)
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(f"{rt:12s} cpu {r1.ru_utime-r0.ru_utime+r1.ru_stime-r0.ru_stime:5.2f} s wall {time.time()-t0:5.1f} runs {res.stats['runs']} p50 {res.stats['p50_ms']:.4f} rss {res.stats['peak_rss_mb']:.0f}/{res.stats['model_rss_mb']:.1f} MB", flush=True)
