// The entry points of the C++ kernels (bound to Python in module.cpp, built by model/native.py).
#pragma once
#include <torch/extension.h>

#include <vector>

// int8_linear.cpp
torch::Tensor int8_linear(const torch::Tensor& input, const torch::Tensor& packed, const torch::Tensor& colsum,
                          const torch::Tensor& w_scale, const c10::optional<torch::Tensor>& bias, int64_t N,
                          bool residual, double norm_eps = -1.0);

// decoder_layers.cpp
torch::Tensor decoder_layers(torch::Tensor x, const torch::Tensor& turns, const torch::Tensor& positions,
                             const torch::Tensor& cache_k, const torch::Tensor& cache_v, int64_t first_slot,
                             const c10::optional<torch::Tensor>& bias, const std::vector<torch::Tensor>& weights,
                             const std::vector<int64_t>& widths, int64_t n_heads, int64_t n_kv_heads,
                             int64_t head_dim, double eps, bool residual);

// sampling.cpp
torch::Tensor draw_rows(const torch::Tensor& logits, const std::vector<double>& temperature,
                        const std::vector<int64_t>& top_k, const std::vector<double>& top_p,
                        const std::vector<double>& min_p, const std::vector<double>& uniform);
