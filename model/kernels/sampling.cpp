// Drawing one token per row with top-k / top-p / min-p, without sorting the vocabulary.
//
// The distribution is model/sampling.py's (_filter_sorted, then a draw in descending-probability order):
// top-k keeps every token at least as likely as the k-th (ties stay) and renormalises over them; top-p
// keeps a token while the probability of the tokens ranked above it is below top_p; min-p drops tokens
// less likely than min_p times the best. The Python path sorts (a prefix of) each row for that; a row whose
// nucleus spans thousands of tokens then sorts them all. Here both steps -- where the nucleus ends, and
// which token the row's uniform number lands on in descending order -- are selections by probability
// mass (quickselect with a three-way partition): expected linear time, no sort. Sums are in double, so a
// draw can differ from the Python path's float32 cumsum only when the uniform lands within rounding of a
// boundary; the distribution is the same.

#include <immintrin.h>
#include <torch/extension.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <utility>
#include <vector>

#include "kernels.h"

namespace {

struct Item {
  float value;
  int64_t id;
  double mass;
};

// Reorders items[lo, hi) as (greater than pivot | equal | less) by value; returns the two boundaries.
std::pair<size_t, size_t> partition3(std::vector<Item>& items, size_t lo, size_t hi) {
  const float a = items[lo].value, b = items[lo + (hi - lo) / 2].value, c = items[hi - 1].value;
  const float pivot = std::max(std::min(a, b), std::min(std::max(a, b), c));  // median of three
  size_t gt = lo, i = lo, lt = hi;
  while (i < lt) {
    if (items[i].value > pivot) {
      std::swap(items[gt++], items[i++]);
    } else if (items[i].value < pivot) {
      std::swap(items[i], items[--lt]);
    } else {
      ++i;
    }
  }
  return {gt, lt};
}

// Appends every token with scaled[i] >= cut (and > -inf) and its probability exp(scaled[i] - lse); returns
// their total. Eight logits per compare: most of the vocabulary is skipped without touching it further.
double collect(const float* scaled, int64_t vocab, float cut, float lse, std::vector<Item>& items) {
  cut = std::max(cut, std::numeric_limits<float>::lowest());
  double held = 0.0;
  auto take = [&](int64_t i) {
    const double mass = std::exp(scaled[i] - lse);  // float exp: plenty for a draw
    items.push_back({scaled[i], i, mass});
    held += mass;
  };
  const __m256 threshold = _mm256_set1_ps(cut);
  int64_t i = 0;
  for (; i + 8 <= vocab; i += 8) {
    unsigned bits = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(scaled + i), threshold, _CMP_GE_OQ));
    while (bits) {
      take(i + __builtin_ctz(bits));
      bits &= bits - 1;
    }
  }
  for (; i < vocab; ++i)
    if (scaled[i] >= cut) take(i);
  return held;
}

double mass_of(const std::vector<Item>& items, size_t lo, size_t hi) {
  double total = 0.0;
  for (size_t i = lo; i < hi; ++i) total += items[i].mass;
  return total;
}

// Moves the top-p nucleus to the front (unordered) and returns its size: in descending order, an item is
// kept while the mass before it is below top_p.
size_t select_nucleus(std::vector<Item>& items, double top_p) {
  size_t lo = 0, hi = items.size();
  double before = 0.0;  // mass of the items ranked above [lo, hi)
  while (lo < hi) {
    const auto [gt, lt] = partition3(items, lo, hi);
    const double greater = mass_of(items, lo, gt);
    if (before + greater >= top_p && gt > lo) {  // the boundary is among the greater items
      hi = gt;
      continue;
    }
    before += greater;
    for (size_t i = gt; i < lt; ++i) {  // equal values: in any order, one by one
      if (before >= top_p) return i;
      before += items[i].mass;
    }
    lo = lt;
  }
  return lo;
}

// The item at which the running mass in descending order first exceeds target.
const Item& select_draw(std::vector<Item>& items, size_t n, double target) {
  size_t lo = 0, hi = n;
  double before = 0.0;
  while (lo < hi) {
    const auto [gt, lt] = partition3(items, lo, hi);
    const double greater = mass_of(items, lo, gt);
    if (before + greater > target && gt > lo) {
      hi = gt;
      continue;
    }
    before += greater;
    for (size_t i = gt; i < lt; ++i) {
      before += items[i].mass;
      if (before > target) return items[i];
    }
    lo = lt;
  }
  // Rounding put the target at the very end: the least likely kept item.
  return *std::min_element(items.begin(), items.begin() + n,
                           [](const Item& x, const Item& y) { return x.value < y.value; });
}

// One row of temperature-scaled logits with its log-sum-exp over the vocabulary (scale_row computes it with
// the vectorised exp; only candidates get an exp below).
int64_t draw_row(const float* scaled, int64_t vocab, double log_total, float peak, int64_t top_k, double top_p,
                 double min_p, double uniform) {
  if (!std::isfinite(log_total)) return -1;  // NaN logits, or every token banned: the caller falls back

  // Top-k: the k-th largest value; everything at least that large stays, renormalised among themselves.
  float floor = -INFINITY;
  int64_t members = vocab;
  if (top_k > 0 && top_k < vocab) {
    // The k-th largest value is among the values 16 nats below the log-sum-exp whenever k of them are
    // there (nearly always for the k people pick); else the whole row.
    std::vector<float> copy;
    copy.reserve(256);
    const __m256 near = _mm256_set1_ps(static_cast<float>(log_total) - 16.0f);
    int64_t i = 0;
    for (; i + 8 <= vocab; i += 8) {
      unsigned bits = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(scaled + i), near, _CMP_GE_OQ));
      for (; bits; bits &= bits - 1) copy.push_back(scaled[i + __builtin_ctz(bits)]);
    }
    for (; i < vocab; ++i)
      if (scaled[i] >= static_cast<float>(log_total) - 16.0f) copy.push_back(scaled[i]);
    if (static_cast<int64_t>(copy.size()) < top_k) copy.assign(scaled, scaled + vocab);
    std::nth_element(copy.begin(), copy.begin() + (top_k - 1), copy.end(), std::greater<float>());
    floor = copy[top_k - 1];
    std::vector<Item> kept;
    const double held = collect(scaled, vocab, floor, static_cast<float>(log_total), kept);
    members = static_cast<int64_t>(kept.size());
    log_total += std::log(held);
  }
  if (min_p > 0.0) floor = std::max(floor, peak + static_cast<float>(std::log(min_p)));

  // Candidates. With top-p, tokens below (1 - top_p) / members can never be in the nucleus: together they
  // hold less than 1 - top_p, so the tokens above them already reach top_p. As a logit threshold, so the
  // tokens below it need no exp. Most rows' nucleus lies within a few nats of the log-sum-exp: try 8 nats
  // first, and keep only what 4 nats hold when that already reaches top_p.
  const float lse = static_cast<float>(log_total);
  float from = floor;
  if (top_p < 1.0)
    from = std::max(from, static_cast<float>(log_total + std::log((1.0 - top_p) / static_cast<double>(members))));
  std::vector<Item> items;
  items.reserve(256);
  const float near = std::max(from, lse - 8.0f);
  if (near > from && collect(scaled, vocab, near, lse, items) < top_p) {
    items.clear();
    collect(scaled, vocab, from, lse, items);
  } else if (near == from) {
    collect(scaled, vocab, from, lse, items);
  }
  if (top_p < 1.0) {
    double close = 0.0;
    for (const Item& item : items) close += item.value >= lse - 4.0f ? item.mass : 0.0;
    if (close >= top_p)
      items.erase(std::remove_if(items.begin(), items.end(), [&](const Item& item) { return item.value < lse - 4.0f; }),
                  items.end());
  }
  if (items.empty()) return -1;
  const size_t n = top_p < 1.0 ? std::max<size_t>(1, select_nucleus(items, top_p)) : items.size();
  double total = 0.0;
  for (size_t i = 0; i < n; ++i) total += items[i].mass;
  return select_draw(items, n, uniform * total).id;
}

// exp of eight floats at once: Cephes' expf polynomial after reducing by ln 2 (relative error ~2e-7, plenty for
// a draw). Inputs below -87 (the -inf of banned tokens among them) give exactly 0.
inline __m256 exp8(__m256 x) {
  const __m256 live = _mm256_cmp_ps(x, _mm256_set1_ps(-87.0f), _CMP_GE_OQ);
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.0f)), _mm256_set1_ps(88.0f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);  // ln 2 in two parts: r exact
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  const __m256i scale = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_and_ps(_mm256_mul_ps(p, _mm256_castsi256_ps(scale)), live);
}

float hsum8(__m256 v) {
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, v);
  float total = 0.0f;
  for (float lane : lanes) total += lane;
  return total;
}

// scaled = logits / temperature, peak = its largest value; returns its log-sum-exp (-inf when every token is
// banned, NaN when a logit is NaN).
double scale_row(const float* logits, int64_t vocab, float temperature, float* scaled, float& peak) {
  const __m256 inv = _mm256_set1_ps(1.0f / temperature);
  __m256 best8 = _mm256_set1_ps(-INFINITY), nan8 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= vocab; i += 8) {
    const __m256 v = _mm256_mul_ps(_mm256_loadu_ps(logits + i), inv);
    _mm256_storeu_ps(scaled + i, v);
    best8 = _mm256_max_ps(best8, v);
    nan8 = _mm256_or_ps(nan8, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
  }
  bool nan = _mm256_movemask_ps(nan8) != 0;
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, best8);
  float best = *std::max_element(lanes, lanes + 8);
  for (; i < vocab; ++i) {
    scaled[i] = logits[i] / temperature;
    nan |= std::isnan(scaled[i]);
    best = std::max(best, scaled[i]);
  }
  peak = best;
  if (nan) return std::numeric_limits<double>::quiet_NaN();
  if (best == -INFINITY) return -INFINITY;
  const __m256 top8 = _mm256_set1_ps(best);
  __m256 sum8 = _mm256_setzero_ps();
  for (i = 0; i + 8 <= vocab; i += 8)
    sum8 = _mm256_add_ps(sum8, exp8(_mm256_sub_ps(_mm256_loadu_ps(scaled + i), top8)));
  double total = hsum8(sum8);
  for (; i < vocab; ++i) total += std::exp(scaled[i] - best);
  return best + std::log(total);
}

// A row without top-k or top-p: its inverse CDF in vocabulary order (model/sampling.py's plain draw), over the
// tokens min-p keeps. Eight probabilities per step; only the block the target falls in is walked one by one.
int64_t draw_in_order(const float* scaled, int64_t vocab, double log_total, float peak, double min_p,
                      double uniform) {
  if (!std::isfinite(log_total)) return -1;
  const float lse = static_cast<float>(log_total);
  float floor = -INFINITY;
  if (min_p > 0.0) floor = peak + static_cast<float>(std::log(min_p));
  const __m256 shift = _mm256_set1_ps(lse), cut = _mm256_set1_ps(floor);
  auto block = [&](int64_t i) {  // the kept probabilities of tokens i..i+7
    const __m256 v = _mm256_loadu_ps(scaled + i);
    return _mm256_and_ps(exp8(_mm256_sub_ps(v, shift)), _mm256_cmp_ps(v, cut, _CMP_GE_OQ));
  };
  auto one = [&](int64_t i) { return scaled[i] >= floor ? std::exp(static_cast<double>(scaled[i] - lse)) : 0.0; };
  const int64_t whole = vocab - vocab % 8;
  double total = 1.0;  // without min-p every token is kept: the probabilities sum to 1 (to rounding)
  if (min_p > 0.0) {
    total = 0.0;
    for (int64_t i = 0; i < whole; i += 8) total += hsum8(block(i));
    for (int64_t i = whole; i < vocab; ++i) total += one(i);
  }
  const double target = uniform * total;
  double before = 0.0;
  for (int64_t i = 0; i < whole; i += 8) {
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, block(i));
    double here = 0.0;
    for (float lane : lanes) here += lane;
    if (before + here <= target) {
      before += here;
      continue;
    }
    for (int j = 0; j < 8; ++j) {
      before += lanes[j];
      if (lanes[j] > 0.0f && before > target) return i + j;
    }
  }
  for (int64_t i = whole; i < vocab; ++i) {
    const double mass = one(i);
    before += mass;
    if (mass > 0.0 && before > target) return i;
  }
  // Rounding put the target past the end: the last kept token.
  for (int64_t i = vocab - 1; i >= 0; --i)
    if (scaled[i] >= floor && scaled[i] > -INFINITY) return i;
  return -1;
}

}  // namespace

// logits [R, V]: float32 after bias, penalties and masks; per row a temperature (> 0), top_k, top_p, min_p
// and a uniform number in [0, 1). The whole draw in one call: the scaling, the log-sum-exp (vectorised exp)
// and the draw -- by selection for rows with top-k or top-p, in vocabulary order for the others. Returns
// the token ids [R], -1 where a row's distribution is degenerate.
torch::Tensor draw_rows(const torch::Tensor& logits, const std::vector<double>& temperature,
                        const std::vector<int64_t>& top_k, const std::vector<double>& top_p,
                        const std::vector<double>& min_p, const std::vector<double>& uniform) {
  TORCH_CHECK(logits.dim() == 2 && logits.scalar_type() == torch::kFloat32, "rows must be a float32 matrix");
  const torch::Tensor x = logits.contiguous();
  const int64_t R = x.size(0), V = x.size(1);
  TORCH_CHECK(static_cast<int64_t>(temperature.size()) == R && static_cast<int64_t>(top_k.size()) == R &&
                  static_cast<int64_t>(top_p.size()) == R && static_cast<int64_t>(min_p.size()) == R &&
                  static_cast<int64_t>(uniform.size()) == R,
              "one parameter of each kind per row");
  auto out = torch::empty({R}, torch::kInt64);
  auto* tokens = out.data_ptr<int64_t>();
  const float* data = x.data_ptr<float>();
#pragma omp parallel for schedule(dynamic) if (R >= 8)
  for (int64_t r = 0; r < R; ++r) {
    // Each thread's scratch row, kept between calls: a fresh 200 KB vector per row (SmolLM2) is an mmap and
    // its page faults every time.
    thread_local std::vector<float> scaled;
    scaled.resize(static_cast<size_t>(V));
    float peak = 0.0f;
    const double lse = scale_row(data + r * V, V, static_cast<float>(temperature[r]), scaled.data(), peak);
    const bool ranked = (top_k[r] > 0 && top_k[r] < V) || top_p[r] < 1.0;
    tokens[r] = ranked ? draw_row(scaled.data(), V, lse, peak, top_k[r], top_p[r], min_p[r], uniform[r])
                       : draw_in_order(scaled.data(), V, lse, peak, min_p[r], uniform[r]);
  }
  return out;
}
