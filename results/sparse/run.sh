#!/usr/bin/env bash
# Sparse kernels vs dense (issue 5): batch 1, 1 thread. Masked variants run the pruned weights on
# dense kernels (TVM tuned, PyTorch eager, ONNX Runtime, ExecuTorch-XNNPACK); `+sparse` variants
# run them on edgebench's BSR kernels, each layer sparse only where measured faster than its tuned
# dense kernel (the row's sparse_layers column lists both times per layer).
# Pinned to core 1 (results/sparse/x86-core1.toml): core 0 was busy tuning another benchmark.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=results/sparse/sparse.csv
target=results/sparse/x86-core1.toml
trials=${TRIALS:-32}
masked=(fp32) sparse=()
for s in 0.5 0.7 0.8 0.9 0.95; do
  masked+=("prune=unstructured:$s")
  sparse+=("prune=unstructured:$s+sparse")
  for b in 4x1 8x1 16x1; do sparse+=("prune=block:$b:$s+sparse"); done
done
edgebench run mlp --target "$target" --trials "$trials" -o "$out" \
  --runtimes tvm pytorch onnxruntime executorch --variants "${masked[@]}"
edgebench run mlp --target "$target" --trials "$trials" -o "$out" --runtimes tvm \
  --variants "${sparse[@]}"
enc=(fp32) enc_sparse=()
for s in 0.5 0.7 0.9; do
  enc+=("prune=unstructured:$s")
  enc_sparse+=("prune=unstructured:$s+sparse" "prune=block:16x1:$s+sparse")
done
edgebench run encoder --target "$target" --trials "$trials" -o "$out" \
  --runtimes tvm pytorch onnxruntime --variants "${enc[@]}"
edgebench run encoder --target "$target" --trials "$trials" -o "$out" --runtimes tvm \
  --variants "${enc_sparse[@]}"
cnn=(fp32) cnn_sparse=()
for s in 0.5 0.7 0.8 0.9; do
  cnn+=("prune=unstructured:$s"); cnn_sparse+=("prune=unstructured:$s+sparse")
done
for model in resnet18 mobilenetv2; do
  edgebench run "$model" --target "$target" --trials "$trials" -o "$out" \
    --runtimes tvm pytorch onnxruntime --variants "${cnn[@]}"
  edgebench run "$model" --target "$target" --trials "$trials" -o "$out" --runtimes tvm \
    --variants "${cnn_sparse[@]}"
done
