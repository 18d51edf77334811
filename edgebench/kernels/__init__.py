"""edgebench's own TIR kernels (what Relax lacks): sparse x dense and sparse convolution."""
