"""edgebench's own TIR kernels (what Relax lacks): sparse x dense and sparse convolution
(FP32 BSR), int8 conv/linear on dot-product instructions (vpdpbusd, sdot) and AMX tiles, int8
BSR, and the integer glue that TVM's ops did slowly (NHWC max pool, requantized add).

Every kernel sets `tirx.noalias` (the attribute name TVM 0.27 reads; the old `tir.noalias` is
ignored). It matters beyond the kernel itself: the LLVM codegen takes the flag of the last
function it declared for every function it emits, so one kernel without it cost the tuned dense
kernels of the same library their noalias pointers (ResNet-18's stem conv 5 ms -> 24 ms;
test `test_sparse_kernels_keep_noalias_on_every_kernel_in_the_library`).
"""
