// Every decoder layer of a cached forward pass in one call: model/transformer.py's
// DecoderLayer.forward_cached on the serving layout (RMSNorm weights folded, q/k in the paired rotary
// layout, int8 projections), the same computation up to float rounding.
//
// Why: a small model's decode step is bound by dispatch, not arithmetic. In Python each of the ~48
// operations per layer costs its interpreter and module-call overhead (several microseconds each on these
// machines): SmolLM2-135M's 30 layers spent more time there than reading its weights. Here the RMSNorms
// ride in the int8 kernel's row scales, new keys/values are copied into the cache directly, and a decode
// step (one token per row) attends with a plain loop: ATen's CPU attention and index_put_ cost 80 and 15 us
// a call at these sizes, for microseconds of arithmetic. Prefill (many tokens per row) uses ATen's attention.

#include <ATen/Parallel.h>
#include <immintrin.h>
#include <torch/extension.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "kernels.h"

using torch::indexing::Slice;

namespace {

// One int8 projection: weights, column sums, scales (the Int8Linear buffers) and the output width.
struct Projection {
  const torch::Tensor& packed;
  const torch::Tensor& colsum;
  const torch::Tensor& scale;
  int64_t out_features;
};

torch::Tensor project(const torch::Tensor& x, const Projection& p, bool residual, double norm_eps = -1.0) {
  return int8_linear(x, p.packed, p.colsum, p.scale, c10::nullopt, p.out_features, residual, norm_eps);
}

// cache[slot, head, positions[b, t], :] = values[b, t, head, :] for the batch's slots (rows = slots).
void write_cache(const torch::Tensor& cache, const torch::Tensor& values, const torch::Tensor& positions) {
  const int64_t b = values.size(0), t = values.size(1), heads = values.size(2), d = values.size(3);
  TORCH_CHECK(values.stride(3) == 1 && cache.stride(3) == 1, "head dims must be contiguous");
  const auto pos = positions.accessor<int64_t, 2>();
  float* dst = cache.data_ptr<float>();
  const float* src = values.data_ptr<float>();
  for (int64_t i = 0; i < b; ++i)
    for (int64_t j = 0; j < t; ++j)
      for (int64_t h = 0; h < heads; ++h)
        std::memcpy(dst + i * cache.stride(0) + h * cache.stride(1) + pos[i][j] * cache.stride(2),
                    src + i * values.stride(0) + j * values.stride(1) + h * values.stride(2), d * sizeof(float));
}

inline float dot(const float* a, const float* b, int64_t n) {
  __m256 acc = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc);
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, acc);
  float sum = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
  for (; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

// One new token per row: q [B, H, D] (any strides, head dim contiguous) against the first positions[b] + 1
// cached keys of its KV head (H / KV query heads share one); returns [B, 1, H * D].
torch::Tensor decode_attention(const torch::Tensor& q, const torch::Tensor& cache_k, const torch::Tensor& cache_v,
                               const torch::Tensor& positions) {
  const int64_t b = q.size(0), h = q.size(1), d = q.size(2), kv = cache_k.size(1);
  const int64_t group = h / kv;
  auto out = torch::empty({b, 1, h * d}, q.options());
  const auto pos = positions.accessor<int64_t, 2>();
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  const float* qp = q.data_ptr<float>();
  const float* kp = cache_k.data_ptr<float>();
  const float* vp = cache_v.data_ptr<float>();
  float* op = out.data_ptr<float>();
  const int64_t work = b * h * (pos[0][0] + 1) * d;
  // As in the int8 kernel: a second thread only for a few million multiply-adds or more.
  at::parallel_for(0, b * h, work >= (4 << 20) ? 1 : b * h, [&](int64_t begin, int64_t end) {
    std::vector<float> scores;
    for (int64_t index = begin; index < end; ++index) {
      const int64_t row = index / h, head = index % h;
      const int64_t length = pos[row][0] + 1;
      const float* query = qp + row * q.stride(0) + head * q.stride(1);
      const float* keys = kp + row * cache_k.stride(0) + (head / group) * cache_k.stride(1);
      const float* values = vp + row * cache_v.stride(0) + (head / group) * cache_v.stride(1);
      scores.resize(length);
      float peak = -INFINITY;
      for (int64_t j = 0; j < length; ++j) {
        scores[j] = dot(query, keys + j * cache_k.stride(2), d) * scale;
        peak = std::max(peak, scores[j]);
      }
      float total = 0.0f;
      for (int64_t j = 0; j < length; ++j) total += (scores[j] = std::exp(scores[j] - peak));
      float* y = op + row * h * d + head * d;
      std::fill(y, y + d, 0.0f);
      for (int64_t j = 0; j < length; ++j) {
        const float weight = scores[j] / total;
        const float* v = values + j * cache_v.stride(2);
        for (int64_t c = 0; c < d; ++c) y[c] += weight * v[c];
      }
    }
  });
  return out;
}

}  // namespace

// x [B, T, hidden] of slots first_slot.. first_slot + B; turns: complex rotary factors [B, T, 1, D/2];
// positions [B, T] of the new tokens; cache_k / cache_v: [layers, slots, kv_heads, max_len, D]; bias [B, 1, G*T, length].
// weights: 12 tensors per layer (qkv, o, gate_up, down; each packed, colsum, scale); widths: 4 per layer.
torch::Tensor decoder_layers(torch::Tensor x, const torch::Tensor& turns, const torch::Tensor& positions, const torch::Tensor& cache_k,
                             const torch::Tensor& cache_v, int64_t first_slot, const c10::optional<torch::Tensor>& bias,
                             const std::vector<torch::Tensor>& weights, const std::vector<int64_t>& widths,
                             int64_t n_heads, int64_t n_kv_heads, int64_t head_dim, double eps, bool residual) {
  const int64_t layers = static_cast<int64_t>(widths.size()) / 4;
  TORCH_CHECK(static_cast<int64_t>(weights.size()) == 12 * layers, "12 weight tensors per layer");
  const int64_t b = x.size(0), t = x.size(1), hidden = x.size(2);
  const int64_t h = n_heads, kv = n_kv_heads, d = head_dim;
  for (int64_t i = 0; i < layers; ++i) {
    auto proj = [&](int j) {
      return Projection{weights[12 * i + 3 * j], weights[12 * i + 3 * j + 1], weights[12 * i + 3 * j + 2],
                        widths[4 * i + j]};
    };
    torch::Tensor layer_k = cache_k.select(0, i).slice(0, first_slot, first_slot + b);
    torch::Tensor layer_v = cache_v.select(0, i).slice(0, first_slot, first_slot + b);

    // Attention: the first norm, q/k/v in one matmul, q and k rotated together, new keys/values cached.
    const torch::Tensor qkv = project(x, proj(0), residual, eps);
    const torch::Tensor qk_pairs = qkv.narrow(-1, 0, (h + kv) * d).view({b, t, h + kv, d / 2, 2});
    const torch::Tensor qk = at::view_as_real(at::view_as_complex(qk_pairs) * turns).flatten(-2);  // [B,T,H+KV,D]
    const torch::Tensor v = qkv.narrow(-1, (h + kv) * d, kv * d).view({b, t, kv, d});
    write_cache(layer_k, qk.narrow(2, h, kv), positions);
    write_cache(layer_v, v, positions);
    torch::Tensor attended;
    if (t == 1) {
      attended = decode_attention(qk.select(1, 0).narrow(1, 0, h), layer_k, layer_v, positions);
    } else {  // grouped queries against each shared KV head (see Attention.forward_cached)
      TORCH_CHECK(bias.has_value(), "a prefill needs its attention mask");
      const int64_t length = bias->size(-1);
      const torch::Tensor queries = qk.narrow(2, 0, h).transpose(1, 2).reshape({b, kv, -1, d});
      const torch::Tensor y = at::scaled_dot_product_attention(queries, layer_k.slice(2, 0, length),
                                                               layer_v.slice(2, 0, length), *bias);
      attended = y.view({b, h, t, d}).transpose(1, 2).reshape({b, t, h * d});
    }
    x = x + project(attended, proj(1), residual);

    // SwiGLU, after the second norm.
    const auto gate_up = project(x, proj(2), residual, eps).chunk(2, -1);
    x = x + project(at::silu(gate_up[0]) * gate_up[1], proj(3), residual);
  }
  return x;
}
