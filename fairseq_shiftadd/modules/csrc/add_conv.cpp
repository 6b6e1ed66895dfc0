// CPU kernels of AddConv1d (lightweight add convolution), registered as torch.ops.shiftadd.*
// (built and loaded by fairseq_shiftadd/modules/kernels.py).
//
// Time-first x (S, B, C) is the source sequence; output step t reads source step t + j - p for
// tap j, and taps outside [0, S) are skipped (contribute nothing). The full pass uses S = T; one
// incremental step passes the last L <= K inputs as the source with T = 1 and p = K - L, so both
// run the same per-element arithmetic in the same order. Channels are the contiguous, vectorised
// dimension (vector registers); taps are reduced in registers. Nothing of size (T, B, C, K) exists.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "vec.h"

namespace {

using namespace shiftadd;

// Runs body.template operator()<V, U>(c) over channel chunks [c, c + U * lanes(V)): U vectors at a
// time (independent accumulators hide add latency), then single vectors, then scalars.
template <typename T, class Body>
inline void for_channels(int64_t C, const Body& body) {
  constexpr int64_t L = kLanes<T>;
  int64_t c = 0;
  for (; c + 4 * L <= C; c += 4 * L) body.template operator()<Vec<T>, 4>(c);
  for (; c + L <= C; c += L) body.template operator()<Vec<T>, 1>(c);
  for (; c < C; ++c) body.template operator()<T, 1>(c);
}

template <typename V, typename T>
constexpr int64_t kWidth = sizeof(V) / sizeof(T);

// y[t, b, c] = -sum_j |x[t + j - p, b, c] - wt[j, c]|.
template <typename T>
void forward_kernel(const T* x, const T* wt, T* y, int64_t S, int64_t steps, int64_t B, int64_t C,
                    int64_t K, int64_t p) {
  const int64_t BC = B * C;
  at::parallel_for(0, steps * B, 1, [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; ++item) {
      const int64_t t = item / B, b = item % B;
      const int64_t j_lo = std::max<int64_t>(0, p - t), j_hi = std::min(K, S + p - t);
      const T* src = x + b * C + (t - p) * BC;  // source row of tap j: src + j * BC
      T* out = y + t * BC + b * C;
      for_channels<T>(C, [&]<typename V, int U>(int64_t c) {
        constexpr int64_t W = kWidth<V, T>;
        V acc[U] = {};
        for (int64_t j = j_lo; j < j_hi; ++j)
#pragma GCC unroll 4
          for (int u = 0; u < U; ++u)
            acc[u] += vabs<V>(load<V>(src + j * BC + c + u * W) - load<V>(wt + j * C + c + u * W));
#pragma GCC unroll 4
        for (int u = 0; u < U; ++u) store<V>(out + c + u * W, -acc[u]);
      });
    }
  });
}

// grad_x[s, b, c] = sum_j HardTanh(wt[j, c] - x[s, b, c]) * g[s - j + p, b, c].
template <typename T>
void input_grad_kernel(const T* g, const T* x, const T* wt, T* gx, int64_t S, int64_t steps,
                       int64_t B, int64_t C, int64_t K, int64_t p) {
  const int64_t BC = B * C;
  at::parallel_for(0, S * B, 1, [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; ++item) {
      const int64_t s = item / B, b = item % B;
      const int64_t j_lo = std::max<int64_t>(0, s + p - steps + 1), j_hi = std::min(K, s + p + 1);
      const T* xs = x + s * BC + b * C;
      const T* gs = g + b * C + (s + p) * BC;  // grad row of tap j: gs - j * BC
      T* out = gx + s * BC + b * C;
      for_channels<T>(C, [&]<typename V, int U>(int64_t c) {
        constexpr int64_t W = kWidth<V, T>;
        const V lo = splat<V>(T(-1)), hi = splat<V>(T(1));
        V acc[U] = {}, xv[U];
#pragma GCC unroll 4
        for (int u = 0; u < U; ++u) xv[u] = load<V>(xs + c + u * W);
        for (int64_t j = j_lo; j < j_hi; ++j)
#pragma GCC unroll 4
          for (int u = 0; u < U; ++u) {
            const V diff = load<V>(wt + j * C + c + u * W) - xv[u];
            acc[u] += vmin<V>(vmax<V>(diff, lo), hi) * load<V>(gs - j * BC + c + u * W);
          }
#pragma GCC unroll 4
        for (int u = 0; u < U; ++u) store<V>(out + c + u * W, acc[u]);
      });
    }
  });
}

// grad_w[c, j] = sum_{t, b} (x[t + j - p, b, c] - wt[j, c]) * g[t, b, c] over valid taps.
// Work items are channel blocks; each sweeps x and g once, accumulating all K taps in L1.
template <typename T>
void weight_grad_kernel(const T* g, const T* x, const T* wt, T* gw, int64_t S, int64_t steps,
                        int64_t B, int64_t C, int64_t K, int64_t p) {
  constexpr int64_t kBlock = 4 * kLanes<T>;
  const int64_t BC = B * C, blocks = (C + kBlock - 1) / kBlock;
  at::parallel_for(0, blocks, 1, [&](int64_t begin, int64_t end) {
    std::vector<T> acc(K * kBlock);  // acc[j * kBlock + c - c0]
    for (int64_t block = begin; block < end; ++block) {
      const int64_t c0 = block * kBlock, width = std::min(kBlock, C - c0);
      std::fill(acc.begin(), acc.end(), T(0));
      for (int64_t t = 0; t < steps; ++t) {
        const int64_t j_lo = std::max<int64_t>(0, p - t), j_hi = std::min(K, S + p - t);
        for (int64_t b = 0; b < B; ++b) {
          const T* gt = g + t * BC + b * C + c0;
          const T* src = x + b * C + c0 + (t - p) * BC;  // source row of tap j: src + j * BC
          for_channels<T>(width, [&]<typename V, int U>(int64_t c) {
            constexpr int64_t W = kWidth<V, T>;
            V gv[U];
#pragma GCC unroll 4
            for (int u = 0; u < U; ++u) gv[u] = load<V>(gt + c + u * W);
            for (int64_t j = j_lo; j < j_hi; ++j) {
              T* a = acc.data() + j * kBlock + c;
              const T* xs = src + j * BC + c;
              const T* w = wt + j * C + c0 + c;
#pragma GCC unroll 4
              for (int u = 0; u < U; ++u)
                store<V>(a + u * W, load<V>(a + u * W) + (load<V>(xs + u * W) - load<V>(w + u * W)) * gv[u]);
            }
          });
        }
      }
      for (int64_t j = 0; j < K; ++j)
        for (int64_t c = 0; c < width; ++c) gw[(c0 + c) * K + j] = acc[j * kBlock + c];
    }
  });
}

void check(const at::Tensor& x, const at::Tensor& weight, int64_t steps, int64_t p) {
  TORCH_CHECK(x.dim() == 3 && x.is_contiguous() && x.device().is_cpu(), "x must be a contiguous (S, B, C) CPU tensor");
  TORCH_CHECK(weight.dim() == 2 && weight.size(0) == x.size(2), "weight must be (C, K)");
  TORCH_CHECK(weight.scalar_type() == x.scalar_type(), "x and weight dtypes differ");
  TORCH_CHECK(steps >= 0 && p >= 0 && p < weight.size(1), "bad steps or padding");
}

at::Tensor add_conv_forward(const at::Tensor& x, const at::Tensor& weight, int64_t steps, int64_t p) {
  check(x, weight, steps, p);
  const int64_t S = x.size(0), B = x.size(1), C = x.size(2), K = weight.size(1);
  at::Tensor wt = weight.t().contiguous();
  at::Tensor y = at::empty({steps, B, C}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "add_conv_forward", [&] {
    forward_kernel(x.data_ptr<scalar_t>(), wt.data_ptr<scalar_t>(), y.data_ptr<scalar_t>(), S, steps, B, C, K, p);
  });
  return y;
}

std::tuple<at::Tensor, at::Tensor> add_conv_backward(const at::Tensor& grad, const at::Tensor& x,
                                                     const at::Tensor& weight, int64_t p) {
  const int64_t steps = grad.size(0);
  check(x, weight, steps, p);
  TORCH_CHECK(grad.is_contiguous() && grad.size(1) == x.size(1) && grad.size(2) == x.size(2) &&
                  grad.scalar_type() == x.scalar_type(),
              "grad must be a contiguous (T, B, C) tensor like x");
  const int64_t S = x.size(0), B = x.size(1), C = x.size(2), K = weight.size(1);
  at::Tensor wt = weight.t().contiguous();
  at::Tensor gx = at::empty_like(x);
  at::Tensor gw = at::empty_like(weight, at::MemoryFormat::Contiguous);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "add_conv_backward", [&] {
    input_grad_kernel(grad.data_ptr<scalar_t>(), x.data_ptr<scalar_t>(), wt.data_ptr<scalar_t>(),
                      gx.data_ptr<scalar_t>(), S, steps, B, C, K, p);
    weight_grad_kernel(grad.data_ptr<scalar_t>(), x.data_ptr<scalar_t>(), wt.data_ptr<scalar_t>(),
                       gw.data_ptr<scalar_t>(), S, steps, B, C, K, p);
  });
  return {gx, gw};
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(shiftadd, m) {
  m.def("add_conv_forward(Tensor x, Tensor weight, int steps, int padding) -> Tensor");
  m.def("add_conv_backward(Tensor grad, Tensor x, Tensor weight, int padding) -> (Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(shiftadd, CPU, m) {
  m.impl("add_conv_forward", &add_conv_forward);
  m.impl("add_conv_backward", &add_conv_backward);
}
