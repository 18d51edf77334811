"""edgebench's own TIR kernels (what Relax lacks): sparse x dense and sparse convolution.

Known issue (measured, not yet fixed; results/sparse/README.md): the kernels keep their
accumulators in a small scope="global" buffer, which LLVM turns into registers ("local" becomes
a heap workspace and halves their speed), but a library that contains such a kernel runs
MetaSchedule's dense kernels ~2.5x slower (ResNet-18: 153 ms vs 66 ms with one unused sparse
conv added). Whole-model `+sparse` figures are lower bounds until this is solved.
"""
