// Fused CPU kernels for GSM inference, built on first use by gateshift.models.temporal._native.
//
// gated_shift: Z = X - G*X + shift(G*X) for frames without the channel interleave, in one pass
// over memory. Half 1 (channels [0, C/2)) takes the gated next frame, half 2 the gated previous
// one, zero outside the clip. Sums run in float32 and are rounded once to the frames' dtype.

#include <torch/extension.h>

#include <ATen/Parallel.h>

#include <cstdint>
#include <cstring>

namespace {

inline float load(const float* p, int64_t i) { return p[i]; }
inline void store(float* p, int64_t i, float v) { p[i] = v; }

// bfloat16 by its bits, so that the loops vectorise: widening is a shift, narrowing rounds
// to nearest even (NaN stays NaN), as c10::BFloat16 does.
inline float load(const at::BFloat16* p, int64_t i) {
  uint32_t bits = uint32_t(reinterpret_cast<const uint16_t*>(p)[i]) << 16;
  float v;
  std::memcpy(&v, &bits, sizeof v);
  return v;
}
inline void store(at::BFloat16* p, int64_t i, float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  uint32_t rounded = (bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16;
  reinterpret_cast<uint16_t*>(p)[i] = v != v ? uint16_t(0x7FC0) : uint16_t(rounded);
}

// channels_last: frames (N*T, H, W, C) in memory, gate (N*T, H, W, 2).
template <typename T>
void shift_channels_last(const T* x, const T* gate, T* out, int64_t frames, int64_t segments,
                         int64_t pixels, int64_t channels) {
  const int64_t half = channels / 2;
  at::parallel_for(0, frames * pixels, 64, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {  // i = frame * pixels + pixel
      const int64_t t = (i / pixels) % segments;
      for (int64_t h = 0; h < 2; ++h) {
        const bool inside = h == 0 ? t + 1 < segments : t > 0;
        const int64_t other = h == 0 ? i + pixels : i - pixels;  // same pixel, next/previous frame
        const float keep = 1.0f - load(gate, i * 2 + h);
        const float take = inside ? load(gate, other * 2 + h) : 0.0f;
        const T* xi = x + i * channels + h * half;
        const T* xo = x + (inside ? other : i) * channels + h * half;
        T* zi = out + i * channels + h * half;
#pragma omp simd
        for (int64_t c = 0; c < half; ++c) store(zi, c, keep * load(xi, c) + take * load(xo, c));
      }
    }
  });
}

// contiguous: frames (N*T, C, H*W), gate (N*T, 2, H*W).
template <typename T>
void shift_contiguous(const T* x, const T* gate, T* out, int64_t frames, int64_t segments,
                      int64_t pixels, int64_t channels) {
  const int64_t half = channels / 2;
  at::parallel_for(0, frames * channels, 4, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {  // row = frame * channels + channel
      const int64_t frame = row / channels, c = row % channels, h = c / half;
      const int64_t t = frame % segments;
      const bool inside = h == 0 ? t + 1 < segments : t > 0;
      const int64_t other = h == 0 ? frame + 1 : frame - 1;
      const T* g = gate + (frame * 2 + h) * pixels;
      const T* go = gate + ((inside ? other : frame) * 2 + h) * pixels;
      const T* xi = x + row * pixels;
      const T* xo = x + ((inside ? other : frame) * channels + c) * pixels;
      T* zi = out + row * pixels;
      const float on = inside ? 1.0f : 0.0f;
#pragma omp simd
      for (int64_t p = 0; p < pixels; ++p) {
        const float xv = load(xi, p);
        store(zi, p, xv - load(g, p) * xv + on * load(go, p) * load(xo, p));
      }
    }
  });
}

template <typename T>
void dispatch(const at::Tensor& x, const at::Tensor& gate, at::Tensor& out, int64_t segments,
              bool channels_last) {
  const int64_t frames = x.size(0), channels = x.size(1), pixels = x.size(2) * x.size(3);
  const T* xp = x.const_data_ptr<T>();
  const T* gp = gate.const_data_ptr<T>();
  T* op = out.mutable_data_ptr<T>();
  if (channels_last) {
    shift_channels_last(xp, gp, op, frames, segments, pixels, channels);
  } else {
    shift_contiguous(xp, gp, op, frames, segments, pixels, channels);
  }
}

}  // namespace

// x: (N*T, C, H, W) float32 or bfloat16, contiguous or channels_last; gate: (N*T, 2, H, W) of
// the same dtype and layout. The Python side checks all of that before calling.
at::Tensor gated_shift(const at::Tensor& x, const at::Tensor& gate, int64_t segments,
                       bool channels_last) {
  at::Tensor out = at::empty_like(x);
  if (x.scalar_type() == at::kFloat) {
    dispatch<float>(x, gate, out, segments, channels_last);
  } else {
    dispatch<at::BFloat16>(x, gate, out, segments, channels_last);
  }
  return out;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("gated_shift", &gated_shift, "GSM gated shift, one pass (inference)");
}
