// Portable SIMD helpers for the shiftadd kernels: GCC/Clang vector extensions sized to the
// machine's widest float vectors (-march=native), so one source serves AVX-512 and AVX2.
// Every helper also accepts a plain scalar T, so a kernel body can be written once for a full
// vector of channels and for the scalar tail.
#pragma once

#include <cstdint>
#include <cstring>

namespace shiftadd {

#if defined(__AVX512F__)
constexpr int64_t kVecBytes = 64;
#else
constexpr int64_t kVecBytes = 32;
#endif

template <typename T>
struct VecOf;
template <>
struct VecOf<float> {
  typedef float type __attribute__((vector_size(kVecBytes)));
};
template <>
struct VecOf<double> {
  typedef double type __attribute__((vector_size(kVecBytes)));
};
template <typename T>
using Vec = typename VecOf<T>::type;
template <typename T>
constexpr int64_t kLanes = kVecBytes / static_cast<int64_t>(sizeof(T));

// Unaligned load/store of V (a Vec<T> or a scalar T) at p.
template <typename V, typename T>
inline V load(const T* p) {
  V v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
template <typename V, typename T>
inline void store(T* p, V v) {
  std::memcpy(p, &v, sizeof(v));
}
// x in every lane; x - (+0) == x exactly, so this folds to one broadcast.
template <typename V, typename T>
inline V splat(T x) {
  return x - V{};
}
template <typename V>
inline V vmin(V a, V b) {
  return a < b ? a : b;
}
template <typename V>
inline V vmax(V a, V b) {
  return a > b ? a : b;
}
template <typename V>
inline V vabs(V a) {
  return vmax<V>(a, -a);
}

}  // namespace shiftadd
