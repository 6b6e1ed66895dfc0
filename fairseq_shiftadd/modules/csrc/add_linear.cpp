// CPU kernels of AddLinear (AdderNet as a linear layer), registered as torch.ops.shiftadd.*
// (built and loaded by fairseq_shiftadd/modules/kernels.py).
//
// Both kernels are "GEMM-shaped": out[m, n] = sum_k op(A[m, k], B[k, n]) with a cheap element
// op instead of a multiply-add, so they use the GotoBLAS blocking: a packed KC x V panel of B
// stays in L1 while a register-blocked micro-kernel sweeps R rows of A (one broadcast scalar per
// row and step), and an MC x KC block of A stays in L2. Nothing of size (N, out, in) exists.
//
// Forward uses |a - b| = a + b - 2 min(a, b), so the inner step is min + add (2 vector ops
// instead of sub + abs + add) and the row/column sums are added once at the end.
// The input gradient uses clamp(w - x, -1, 1) = min(max(w, x - 1), x + 1) - x, so the inner
// step is max + min + fma with x - 1 and x + 1 held in registers, and x * rowsum(g) is
// subtracted once at the end.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>

#include "vec.h"

namespace {

using namespace shiftadd;

constexpr int64_t kKC = 256;  // reduction depth of one block
constexpr int64_t kMC = 96;   // rows of A per block (multiple of every micro-kernel's R)
constexpr int64_t kNV = 2;    // vectors per micro-tile row

// Packs B (K x N, element (k, n) at src[n * s_n + k * s_k]) into panels of V columns:
// dst[p][k][v] = B[k, p * V + v], zero past N.
template <typename T>
at::Tensor pack_panels(const T* src, int64_t N, int64_t K, int64_t s_n, int64_t s_k, int64_t V,
                       const at::TensorOptions& options) {
  const int64_t panels = (N + V - 1) / V;
  at::Tensor packed = at::empty({panels, K, V}, options);
  T* dst = packed.data_ptr<T>();
  at::parallel_for(0, panels, 1, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      T* panel = dst + p * K * V;
      for (int64_t v = 0; v < V; ++v) {
        const int64_t n = p * V + v;
        if (n < N) {
          for (int64_t k = 0; k < K; ++k) panel[k * V + v] = src[n * s_n + k * s_k];
        } else {
          for (int64_t k = 0; k < K; ++k) panel[k * V + v] = T(0);
        }
      }
    }
  });
  return packed;
}

// Forward micro-kernel: tile[r][v] += sum_k min(a[r][k], b[k][v]); epilogue 2 * acc - sx - sw + bias.
template <typename T>
struct MinSum {
  static constexpr int64_t R = 6;
  static constexpr int64_t V = kNV * kLanes<T>;
  const T* row_term;  // (M,) -rowsum(x)
  const T* col_term;  // (N,) bias - rowsum(w)

  void micro(const T* const* a, const T* b, int64_t kc, T* tile, int64_t, int64_t) const {
    Vec<T> acc[R][kNV];
#pragma GCC unroll 8
    for (int64_t r = 0; r < R; ++r)
#pragma GCC unroll 4
      for (int64_t j = 0; j < kNV; ++j) acc[r][j] = load<Vec<T>>(tile + r * V + j * kLanes<T>);
    for (int64_t k = 0; k < kc; ++k) {
      Vec<T> bv[kNV];
#pragma GCC unroll 4
      for (int64_t j = 0; j < kNV; ++j) bv[j] = load<Vec<T>>(b + k * V + j * kLanes<T>);
#pragma GCC unroll 8
      for (int64_t r = 0; r < R; ++r) {
        const Vec<T> x = splat<Vec<T>>(a[r][k]);
#pragma GCC unroll 4
        for (int64_t j = 0; j < kNV; ++j) acc[r][j] += vmin<Vec<T>>(x, bv[j]);
      }
    }
#pragma GCC unroll 8
    for (int64_t r = 0; r < R; ++r)
#pragma GCC unroll 4
      for (int64_t j = 0; j < kNV; ++j) store<Vec<T>>(tile + r * V + j * kLanes<T>, acc[r][j]);
  }

  void epilogue(T* tile, int64_t m0, int64_t n0, int64_t rows, int64_t cols) const {
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t v = 0; v < cols; ++v)
        tile[r * V + v] = T(2) * tile[r * V + v] + row_term[m0 + r] + col_term[n0 + v];
  }
};

// Input-gradient micro-kernel: tile[r][v] += sum_k g[r][k] * min(max(w[k][v], x[r][v] - 1), x[r][v] + 1);
// epilogue acc - x * rowsum(g).
template <typename T>
struct ClampSum {
  static constexpr int64_t R = 4;
  static constexpr int64_t V = kNV * kLanes<T>;
  const T* x;        // (M, N) row-major
  const T* g_sum;    // (M,) rowsum(g)
  int64_t M, N;

  void micro(const T* const* a, const T* b, int64_t kc, T* tile, int64_t m0, int64_t n0) const {
    // x tile, zero past the edges of x (those results are never stored).
    alignas(64) T edge[R * V];
    const T* xt = x + m0 * N + n0;
    int64_t ldx = N;
    if (m0 + R > M || n0 + V > N) {
      for (int64_t r = 0; r < R; ++r)
        for (int64_t v = 0; v < V; ++v)
          edge[r * V + v] = (m0 + r < M && n0 + v < N) ? x[(m0 + r) * N + n0 + v] : T(0);
      xt = edge;
      ldx = V;
    }
    Vec<T> acc[R][kNV], xl[R][kNV], xh[R][kNV];
#pragma GCC unroll 8
    for (int64_t r = 0; r < R; ++r)
#pragma GCC unroll 4
      for (int64_t j = 0; j < kNV; ++j) {
        acc[r][j] = load<Vec<T>>(tile + r * V + j * kLanes<T>);
        const Vec<T> xv = load<Vec<T>>(xt + r * ldx + j * kLanes<T>);
        xl[r][j] = xv - T(1);
        xh[r][j] = xv + T(1);
      }
    for (int64_t k = 0; k < kc; ++k) {
      Vec<T> bv[kNV];
#pragma GCC unroll 4
      for (int64_t j = 0; j < kNV; ++j) bv[j] = load<Vec<T>>(b + k * V + j * kLanes<T>);
#pragma GCC unroll 8
      for (int64_t r = 0; r < R; ++r) {
        const Vec<T> g = splat<Vec<T>>(a[r][k]);
#pragma GCC unroll 4
        for (int64_t j = 0; j < kNV; ++j)
          acc[r][j] += vmin<Vec<T>>(vmax<Vec<T>>(bv[j], xl[r][j]), xh[r][j]) * g;
      }
    }
#pragma GCC unroll 8
    for (int64_t r = 0; r < R; ++r)
#pragma GCC unroll 4
      for (int64_t j = 0; j < kNV; ++j) store<Vec<T>>(tile + r * V + j * kLanes<T>, acc[r][j]);
  }

  void epilogue(T* tile, int64_t m0, int64_t n0, int64_t rows, int64_t cols) const {
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t v = 0; v < cols; ++v)
        tile[r * V + v] -= x[(m0 + r) * N + n0 + v] * g_sum[m0 + r];
  }
};

// out (M x N) = Op::epilogue(sum_k Op(A[m, k], Bp)) with A (M x K, row-major, lda = K) and Bp
// from pack_panels. Work items are MC x NC output tiles, split over torch's intra-op threads.
template <typename T, class Op>
void drive(const T* A, const T* Bp, T* out, int64_t M, int64_t N, int64_t K, const Op& op) {
  constexpr int64_t R = Op::R, V = Op::V;
  constexpr int64_t kNC = 4 * V;
  const int64_t row_blocks = (M + kMC - 1) / kMC, col_blocks = (N + kNC - 1) / kNC;
  at::parallel_for(0, row_blocks * col_blocks, 1, [&](int64_t begin, int64_t end) {
    alignas(64) T tile[R * V];
    const T* a[R];
    for (int64_t item = begin; item < end; ++item) {
      const int64_t m_lo = (item / col_blocks) * kMC, m_hi = std::min(M, m_lo + kMC);
      const int64_t n_lo = (item % col_blocks) * kNC, n_hi = std::min(N, n_lo + kNC);
      for (int64_t k0 = 0; k0 < K; k0 += kKC) {
        const int64_t kc = std::min(kKC, K - k0);
        const bool last = k0 + kc == K;
        for (int64_t n0 = n_lo; n0 < n_hi; n0 += V) {
          const T* b = Bp + (n0 / V) * K * V + k0 * V;
          const int64_t cols = std::min(V, n_hi - n0);
          for (int64_t m0 = m_lo; m0 < m_hi; m0 += R) {
            const int64_t rows = std::min(R, m_hi - m0);
            // Rows past the end repeat the last row; their results are never stored.
            for (int64_t r = 0; r < R; ++r) a[r] = A + std::min(m0 + r, M - 1) * K + k0;
            std::fill(tile, tile + R * V, T(0));
            if (k0 > 0)
              for (int64_t r = 0; r < rows; ++r)
                std::copy(out + (m0 + r) * N + n0, out + (m0 + r) * N + n0 + cols, tile + r * V);
            op.micro(a, b, kc, tile, m0, n0);
            if (last) op.epilogue(tile, m0, n0, rows, cols);
            for (int64_t r = 0; r < rows; ++r)
              std::copy(tile + r * V, tile + r * V + cols, out + (m0 + r) * N + n0);
          }
        }
      }
    }
  });
}

void check_2d(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.dim() == 2 && t.is_contiguous() && t.device().is_cpu(),
              name, " must be a contiguous 2-D CPU tensor");
}

// y (N, O) = -sum_i |x[n, i] - w[o, i]| (+ bias[o]); x (N, I), w (O, I), bias (O,) or undefined.
at::Tensor add_linear_forward(const at::Tensor& x, const at::Tensor& weight,
                              const c10::optional<at::Tensor>& bias) {
  check_2d(x, "x");
  check_2d(weight, "weight");
  TORCH_CHECK(x.size(1) == weight.size(1), "x and weight disagree on in_features");
  TORCH_CHECK(x.scalar_type() == weight.scalar_type(), "x and weight dtypes differ");
  const int64_t M = x.size(0), K = x.size(1), N = weight.size(0);
  at::Tensor out = at::empty({M, N}, x.options());
  if (M == 0 || N == 0) return out;
  at::Tensor row_term = x.sum(1).neg_();
  at::Tensor col_term = weight.sum(1).neg_();
  if (bias.has_value() && bias->defined()) col_term.add_(*bias);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "add_linear_forward", [&] {
    const MinSum<scalar_t> op{row_term.data_ptr<scalar_t>(), col_term.data_ptr<scalar_t>()};
    at::Tensor bp = pack_panels(weight.data_ptr<scalar_t>(), N, K, K, 1, MinSum<scalar_t>::V,
                                x.options());
    drive(x.data_ptr<scalar_t>(), bp.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), M, N, K, op);
  });
  return out;
}

// grad_x (N, I)[n, i] = sum_o clamp(w[o, i] - x[n, i], -1, 1) * grad[n, o].
at::Tensor add_linear_input_grad(const at::Tensor& grad, const at::Tensor& x,
                                 const at::Tensor& weight) {
  check_2d(grad, "grad");
  check_2d(x, "x");
  check_2d(weight, "weight");
  TORCH_CHECK(grad.size(0) == x.size(0) && grad.size(1) == weight.size(0) &&
                  x.size(1) == weight.size(1),
              "grad, x and weight shapes disagree");
  TORCH_CHECK(grad.scalar_type() == x.scalar_type() && x.scalar_type() == weight.scalar_type(),
              "grad, x and weight dtypes differ");
  const int64_t M = x.size(0), N = x.size(1), K = weight.size(0);
  at::Tensor out = at::empty({M, N}, x.options());
  if (M == 0 || N == 0) return out;
  if (K == 0) return out.zero_();
  at::Tensor g_sum = grad.sum(1);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "add_linear_input_grad", [&] {
    const ClampSum<scalar_t> op{x.data_ptr<scalar_t>(), g_sum.data_ptr<scalar_t>(), M, N};
    at::Tensor bp = pack_panels(weight.data_ptr<scalar_t>(), N, K, 1, N, ClampSum<scalar_t>::V,
                                x.options());
    drive(grad.data_ptr<scalar_t>(), bp.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), M, N, K, op);
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(shiftadd, m) {
  m.def("add_linear_forward(Tensor x, Tensor weight, Tensor? bias) -> Tensor");
  m.def("add_linear_input_grad(Tensor grad, Tensor x, Tensor weight) -> Tensor");
}

TORCH_LIBRARY_IMPL(shiftadd, CPU, m) {
  m.impl("add_linear_forward", &add_linear_forward);
  m.impl("add_linear_input_grad", &add_linear_input_grad);
}
