// The Python module of the C++ kernels (model/native.py builds it). Every entry point releases the GIL
// while it runs: the forward pass is most of the engine thread's time, and the HTTP side (another thread)
// streams tokens meanwhile instead of waiting for Python's switch interval.

#include <torch/extension.h>

#include "kernels.h"

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  using release = py::call_guard<py::gil_scoped_release>;
  m.def("int8_linear", &int8_linear, "int8 weights x float rows (per-row 7-bit activations, AVX2)", py::arg("x"),
        py::arg("packed"), py::arg("colsum"), py::arg("scale"), py::arg("bias"), py::arg("out_features"),
        py::arg("residual"), py::arg("norm_eps") = -1.0, release());
  m.def("decoder_layers", &decoder_layers, "every decoder layer of a cached forward pass, int8 projections",
        release());
  m.def("draw_rows", &draw_rows, "one token per sampled row: temperature, log-sum-exp and the draw", release());
}
