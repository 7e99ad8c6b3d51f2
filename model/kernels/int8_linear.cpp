// int8 weights x float activations for CPU serving: one call quantizes the activations (a scale per row)
// and multiplies them by int8 weights (a scale per output channel) with AVX2 integer dot products.
//
// Why a kernel of our own: fbgemm's dynamic linear costs ~40 us per call whatever the shape (it re-quantizes
// and re-packs around a general GEMM) and scales activations over the whole batch, so the Python layer had
// to rescale rows and append a sentinel row around it. Here a row is quantized on its own and its output is
// exact integer arithmetic followed by the same float epilogue, so a row's result is the same bits alone
// or in any batch, in any tile.
//
// Numbers: a row x is scaled by s = max|x| / 63 to 7-bit integers q in [-63, 63] (stored as q + 64, an
// unsigned byte, for maddubs), and, with `residual`, its rounding error x/s - q in [-0.5, 0.5] is scaled by
// 126 to a second 7-bit row: the two add up to ~13-bit activations, which models with activation outliers
// (SmolLM2) need. 7 bits keep maddubs' int16 pair sums (2 * 127 * 127) from saturating. Each output is
//   y[m, n] = ((acc_q - 64 * colsum[n]) + (acc_r - 64 * colsum[n]) / 126) * s[m] * w_scale[n] (+ bias[n])
// where acc are int32 sums of (byte + 64) * weight and colsum[n] = sum_k w[n, k] removes the offset.
//
// Weight layout (packed once at load, see model/native.py): blocks of 8 output channels, each
// [K/4][8 channels][4 inputs] int8, so one 32-byte load feeds 8 int32 lanes of 4 products each.

#include <ATen/Parallel.h>
#include <immintrin.h>
#include <torch/extension.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels.h"

namespace {

constexpr int kLanes = 8;          // output channels per block (int32 lanes of a 256-bit register)
constexpr int kGroup = 4;          // inputs per lane per step
constexpr float kLevels = 63.0f;   // 7-bit activations
constexpr int kOffset = 64;        // q + 64 is an unsigned byte in [1, 127]
constexpr float kResidualGain = 126.0f;  // the rounding error (|e| <= 0.5) onto the same 7-bit grid
constexpr int64_t kParallelBytes = 512 << 10;  // weights from which a call uses every thread ...
constexpr int64_t kParallelWork = 4 << 20;     // ... or multiply-adds

// Quantize M rows of K floats into `rows_per` byte rows each (1, or 2 with the residual), K padded to Kp
// with the zero point. Returns the per-row scales.
// With norm_eps >= 0 the row is RMS-normalised first (x / sqrt(mean(x^2) + eps), the weight folded into W):
// the integers do not change with the row's scale, so the norm is one more factor of the row's scale.
void quantize_rows(const float* x, int64_t M, int64_t K, int64_t Kp, bool residual, double norm_eps,
                   uint8_t* q, float* scale) {
  const int rows_per = residual ? 2 : 1;
  for (int64_t m = 0; m < M; ++m) {
    const float* row = x + m * K;
    float peak = 0.0f;
    double squares = 0.0;
    for (int64_t k = 0; k < K; ++k) {
      peak = std::max(peak, std::fabs(row[k]));
      squares += static_cast<double>(row[k]) * row[k];
    }
    const float inv = peak > 0.0f ? kLevels / peak : 0.0f;
    const float norm = norm_eps >= 0.0 ? static_cast<float>(1.0 / std::sqrt(squares / K + norm_eps)) : 1.0f;
    scale[m] = peak / kLevels * norm;
    uint8_t* main_row = q + m * rows_per * Kp;
    uint8_t* error_row = main_row + Kp;
    for (int64_t k = 0; k < K; ++k) {
      const float v = row[k] * inv;
      const float r = std::nearbyint(v);
      main_row[k] = static_cast<uint8_t>(static_cast<int>(std::clamp(r, -kLevels, kLevels)) + kOffset);
      if (residual) {
        const float e = std::nearbyint((v - r) * kResidualGain);
        error_row[k] = static_cast<uint8_t>(static_cast<int>(std::clamp(e, -kLevels, kLevels)) + kOffset);
      }
    }
    for (int64_t k = K; k < Kp; ++k) {
      main_row[k] = kOffset;
      if (residual) error_row[k] = kOffset;
    }
  }
}

struct Problem {
  const uint8_t* q;        // [M * rows_per][Kp]
  const float* row_scale;  // [M]
  const int8_t* w;         // [blocks][Kp / 4][8][4]
  const int32_t* colsum;   // [blocks * 8]
  const float* w_scale;    // [blocks * 8]
  const float* bias;       // [N] or null
  float* out;              // [M][N]
  int64_t M, N, Kp;
  bool residual;
};

// One output vector (8 channels of one row) from its int32 sums.
inline void store_outputs(const Problem& p, int64_t m, int64_t block, __m256i acc_q, const __m256i* acc_r) {
  const int64_t n0 = block * kLanes;
  const __m256i offset = _mm256_mullo_epi32(_mm256_set1_epi32(kOffset),
                                            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p.colsum + n0)));
  __m256 total = _mm256_cvtepi32_ps(_mm256_sub_epi32(acc_q, offset));
  if (acc_r != nullptr) {
    const __m256 error = _mm256_cvtepi32_ps(_mm256_sub_epi32(*acc_r, offset));
    total = _mm256_fmadd_ps(error, _mm256_set1_ps(1.0f / kResidualGain), total);
  }
  const __m256 scale = _mm256_mul_ps(_mm256_set1_ps(p.row_scale[m]), _mm256_loadu_ps(p.w_scale + n0));
  __m256 y = _mm256_mul_ps(total, scale);
  float* dst = p.out + m * p.N + n0;
  const int64_t valid = std::min<int64_t>(kLanes, p.N - n0);
  if (p.bias != nullptr) {
    alignas(32) float b[kLanes] = {0};
    std::memcpy(b, p.bias + n0, valid * sizeof(float));
    y = _mm256_add_ps(y, _mm256_load_ps(b));
  }
  if (valid == kLanes) {
    _mm256_storeu_ps(dst, y);
  } else {
    alignas(32) float tmp[kLanes];
    _mm256_store_ps(tmp, y);
    std::memcpy(dst, tmp, valid * sizeof(float));
  }
}

// R byte rows (R/rows_per logical rows) against NR consecutive blocks of 8 channels.
template <int R, int NR>
void tile(const Problem& p, int64_t first_row, int64_t block) {
  const int64_t steps = p.Kp / kGroup;
  const int64_t block_bytes = steps * kLanes * kGroup;
  const __m256i ones = _mm256_set1_epi16(1);
  __m256i acc[R][NR];
  for (int i = 0; i < R; ++i)
    for (int j = 0; j < NR; ++j) acc[i][j] = _mm256_setzero_si256();
  const uint8_t* a = p.q + first_row * p.Kp;
  const int8_t* w = p.w + block * block_bytes;
  for (int64_t s = 0; s < steps; ++s) {
    __m256i wv[NR];
    for (int j = 0; j < NR; ++j)
      wv[j] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + j * block_bytes + s * 32));
    for (int i = 0; i < R; ++i) {
      int32_t four;
      std::memcpy(&four, a + i * p.Kp + s * kGroup, sizeof(four));
      const __m256i av = _mm256_set1_epi32(four);
      for (int j = 0; j < NR; ++j)
        acc[i][j] = _mm256_add_epi32(acc[i][j], _mm256_madd_epi16(_mm256_maddubs_epi16(av, wv[j]), ones));
    }
  }
  const int rows_per = p.residual ? 2 : 1;
  for (int i = 0; i < R; i += rows_per) {
    const int64_t m = (first_row + i) / rows_per;
    for (int j = 0; j < NR; ++j) store_outputs(p, m, block + j, acc[i][j], p.residual ? &acc[i + 1][j] : nullptr);
  }
}

// Register budget (16 ymm): R * NR accumulators + NR weights + 2; few rows read more blocks at once.
constexpr int64_t blocks_per_tile(int64_t rows) { return rows <= 2 ? 4 : (rows <= 4 ? 2 : 1); }

template <int R>
void tile_rows(const Problem& p, int64_t first_row, int64_t block, int64_t blocks_left) {
  constexpr int NR = static_cast<int>(blocks_per_tile(R));
  if (blocks_left >= NR) {
    tile<R, NR>(p, first_row, block);
  } else {
    for (int64_t b = 0; b < blocks_left; ++b) tile<R, 1>(p, first_row, block + b);
  }
}

void run_blocks(const Problem& p, int64_t begin, int64_t end) {
  const int64_t byte_rows = p.M * (p.residual ? 2 : 1);
  // Rows inner: a block's weights (<= 8 * K bytes) stay in L1/L2 while every row passes over them.
  const int64_t step = blocks_per_tile(std::min<int64_t>(byte_rows, 8));
  for (int64_t block = begin; block < end; block += step) {
    const int64_t blocks_left = std::min(step, end - block);
    for (int64_t row = 0; row < byte_rows; row += 8) {
      switch (std::min<int64_t>(8, byte_rows - row)) {
        case 1: tile_rows<1>(p, row, block, blocks_left); break;
        case 2: tile_rows<2>(p, row, block, blocks_left); break;
        case 3: tile_rows<3>(p, row, block, blocks_left); break;
        case 4: tile_rows<4>(p, row, block, blocks_left); break;
        case 5: tile_rows<5>(p, row, block, blocks_left); break;
        case 6: tile_rows<6>(p, row, block, blocks_left); break;
        case 7: tile_rows<7>(p, row, block, blocks_left); break;
        default: tile_rows<8>(p, row, block, blocks_left); break;
      }
    }
  }
}

}  // namespace

// x: [..., K] float32 (made contiguous here) -> [..., N]; norm_eps >= 0: RMS-normalise each row first.
torch::Tensor int8_linear(const torch::Tensor& input, const torch::Tensor& packed, const torch::Tensor& colsum,
                          const torch::Tensor& w_scale, const c10::optional<torch::Tensor>& bias, int64_t N,
                          bool residual, double norm_eps) {
  TORCH_CHECK(input.dim() >= 1 && input.scalar_type() == torch::kFloat32, "x must be float32");
  const torch::Tensor x = input.reshape({-1, input.size(-1)}).contiguous();
  TORCH_CHECK(packed.dim() == 3 && packed.scalar_type() == torch::kInt8 && packed.size(2) == kLanes * kGroup,
              "packed weights must be [blocks, K/4, 32] int8");
  const int64_t M = x.size(0), K = x.size(1), blocks = packed.size(0), Kp = packed.size(1) * kGroup;
  TORCH_CHECK(K <= Kp && Kp - K < kGroup, "x has ", K, " features, the weights ", Kp);
  TORCH_CHECK(blocks * kLanes >= N && colsum.numel() == blocks * kLanes && w_scale.numel() == blocks * kLanes,
              "scales and column sums must cover the padded output channels");
  std::vector<int64_t> out_shape(input.sizes().begin(), input.sizes().end());
  out_shape.back() = N;
  auto out = torch::empty(out_shape, x.options());
  if (M == 0) return out;
  const int rows_per = residual ? 2 : 1;
  std::vector<uint8_t> q(static_cast<size_t>(M * rows_per * Kp));
  std::vector<float> row_scale(static_cast<size_t>(M));
  quantize_rows(x.data_ptr<float>(), M, K, Kp, residual, norm_eps, q.data(), row_scale.data());
  const float* bias_ptr = nullptr;
  if (bias.has_value() && bias->defined()) {
    TORCH_CHECK(bias->numel() == N && bias->scalar_type() == torch::kFloat32 && bias->is_contiguous(), "bad bias");
    bias_ptr = bias->data_ptr<float>();
  }
  const Problem p{q.data(), row_scale.data(), packed.data_ptr<int8_t>(), colsum.data_ptr<int32_t>(),
                  w_scale.data_ptr<float>(), bias_ptr, out.data_ptr<float>(), M, N, Kp, residual};
  // A second thread pays only for big calls: waking it and joining costs tens of microseconds, and a
  // small model's decode step makes ~25 of these calls (measured: the shipped model at one stream ran 4x
  // faster when every call stayed on one thread). Big = enough weight bytes to be bound by memory
  // bandwidth, which two threads raise, or enough multiply-adds. Otherwise the call runs inline.
  const int64_t weight_bytes = blocks * kLanes * Kp;
  const int64_t work = weight_bytes * M * rows_per;
  const int64_t grain = weight_bytes >= kParallelBytes || work >= kParallelWork ? blocks_per_tile(std::min<int64_t>(M * rows_per, 8)) : blocks;
  at::parallel_for(0, blocks, grain, [&](int64_t begin, int64_t end) { run_blocks(p, begin, end); });
  return out;
}
