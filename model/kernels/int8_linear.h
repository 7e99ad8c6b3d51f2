// The int8 matmul of int8_linear.cpp, for the decoder loop of decoder_layers.cpp.
#pragma once
#include <torch/extension.h>

torch::Tensor int8_linear(const torch::Tensor& input, const torch::Tensor& packed, const torch::Tensor& colsum,
                          const torch::Tensor& w_scale, const c10::optional<torch::Tensor>& bias, int64_t N,
                          bool residual, double norm_eps = -1.0);
