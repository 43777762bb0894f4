// Fused CPU kernels for GSM/GSF inference (and the gated shift's backward), built on first use by
// gateshift.models.temporal._native. Every kernel computes in float32 and rounds once to the
// tensors' dtype (float32 or bfloat16); layouts are contiguous (N*T, C, H, W) or channels_last.
//
// gated_shift: Z = X - G*X + shift(G*X) for frames without the channel interleave, in one pass
// over memory. Half 1 (channels [0, C/2)) takes the gated next frame, half 2 the gated previous
// one, zero outside the clip.
//
// affine_relu: U = max(0, X * scale[c] + shift[c]), the gate's BatchNorm (eval) and ReLU in one
// pass.
//
// gated_shift_backward: the gradients of gated_shift (training), in one pass over memory.
// D_1[t] = dZ_1[t-1] - dZ_1[t] and D_2[t] = dZ_2[t+1] - dZ_2[t] (dZ zero outside the clip);
// dX = dZ + G*D; dG[half] = sum over the half's channels of X*D, accumulated in float32.
//
// gate_fold: the gate planes G = tanh(bias + sums) from the 54 maps Y of the gate's 1x1
// convolution (_gate.py, _gate_by_fold): map g*27 + k*9 + 3*dy + dx of frame t + k - 1 at pixel
// (h + 1 - dy, w + 1 - dx) adds to plane g of frame t at (h, w), zero outside clip and image.

#include <torch/extension.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

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

// tanh without a libm call, so that loops over it vectorise: its Taylor series for |x| < 0.55
// and 1 - 2 / (exp(2|x|) + 1) above, with exp from a Cody-Waite reduction and a degree-7
// polynomial. Within 1.5 float ulps of the exact value (tested against torch.tanh).
inline float exp_small(float x) {  // x in [0, 18]
  const float magic = 12582912.0f;  // 1.5 * 2^23: adding and subtracting it rounds to integer
  const float n = (x * 1.44269504088896341f + magic) - magic;
  const float r = (x - n * 0.693145751953125f) - n * 1.428606765330187045e-06f;  // |r| <= ln2/2
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const uint32_t bits = uint32_t(int32_t(n) + 127) << 23;  // 2^n, n in [0, 26]
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

inline float fast_tanh(float x) {
  const float m = x < 0.0f ? -x : x;
  const float a = m > 9.0f ? 9.0f : m;  // tanh(9) rounds to 1
  const float s = a * a;
  float q = -0.00023912911424355248f;  // x^19 ... x^3 coefficients of the series
  q = q * s + 0.000590027440945586f;
  q = q * s + -0.0014558343870513183f;
  q = q * s + 0.003592128036572481f;
  q = q * s + -0.008863235529902197f;
  q = q * s + 0.021869488536155203f;
  q = q * s + -0.05396825396825397f;
  q = q * s + 0.13333333333333333f;
  q = q * s + -0.3333333333333333f;
  const float series = a + a * s * q;
  const float far = 1.0f - 2.0f / (exp_small(2.0f * a) + 1.0f);
  const float t = a < 0.55f ? series : far;
  return x != x ? x : (x < 0.0f ? -t : t);  // NaN stays NaN
}

// gated_shift, channels_last: frames (N, T, H*W pixels, C), gate (N*T, H, W, 2). A task owns
// one pixel of one clip through all its frames; half 1 walks the frames forwards and half 2
// backwards, so out may be x itself: every neighbour is read before it is overwritten.
template <typename T>
void shift_channels_last(const T* x, const T* gate, T* out, int64_t clips, int64_t segments,
                         int64_t pixels, int64_t channels) {
  const int64_t half = channels / 2;
  at::parallel_for(0, clips * pixels, 16, [&](int64_t begin, int64_t end) {
    for (int64_t q = begin; q < end; ++q) {
      const int64_t first = (q / pixels) * segments * pixels + q % pixels;  // frame 0's pixel
      for (int64_t t = 0; t < segments; ++t) {  // half 1 takes the next frame
        const int64_t i = first + t * pixels;
        const bool inside = t + 1 < segments;
        const float keep = 1.0f - load(gate, i * 2);
        const float take = inside ? load(gate, (i + pixels) * 2) : 0.0f;
        const T* xi = x + i * channels;
        const T* xo = inside ? xi + pixels * channels : xi;
        T* zi = out + i * channels;
#pragma omp simd
        for (int64_t c = 0; c < half; ++c) store(zi, c, keep * load(xi, c) + take * load(xo, c));
      }
      for (int64_t t = segments - 1; t >= 0; --t) {  // half 2 takes the previous frame
        const int64_t i = first + t * pixels;
        const bool inside = t > 0;
        const float keep = 1.0f - load(gate, i * 2 + 1);
        const float take = inside ? load(gate, (i - pixels) * 2 + 1) : 0.0f;
        const T* xi = x + i * channels + half;
        const T* xo = inside ? xi - pixels * channels : xi;
        T* zi = out + i * channels + half;
#pragma omp simd
        for (int64_t c = 0; c < half; ++c) store(zi, c, keep * load(xi, c) + take * load(xo, c));
      }
    }
  });
}

// gated_shift, contiguous: frames (N, T, C, H*W), gate (N*T, 2, H*W). A task owns one channel
// of one clip, walking its frames in the same orders, so out may again be x.
template <typename T>
void shift_contiguous(const T* x, const T* gate, T* out, int64_t clips, int64_t segments,
                      int64_t pixels, int64_t channels) {
  const int64_t half = channels / 2;
  at::parallel_for(0, clips * channels, 4, [&](int64_t begin, int64_t end) {
    for (int64_t q = begin; q < end; ++q) {
      const int64_t n = q / channels, c = q % channels, h = c / half;
      for (int64_t s = 0; s < segments; ++s) {
        const int64_t t = h == 0 ? s : segments - 1 - s;  // half 1 forwards, half 2 backwards
        const int64_t frame = n * segments + t;
        const bool inside = h == 0 ? t + 1 < segments : t > 0;
        const int64_t other = inside ? (h == 0 ? frame + 1 : frame - 1) : frame;
        const T* g = gate + (frame * 2 + h) * pixels;
        const T* go = gate + (other * 2 + h) * pixels;
        const T* xi = x + (frame * channels + c) * pixels;
        const T* xo = x + (other * channels + c) * pixels;
        T* zi = out + (frame * channels + c) * pixels;
        const float on = inside ? 1.0f : 0.0f;
#pragma omp simd
        for (int64_t p = 0; p < pixels; ++p) {
          const float xv = load(xi, p);
          store(zi, p, xv - load(g, p) * xv + on * load(go, p) * load(xo, p));
        }
      }
    }
  });
}

// gated_shift_backward, channels_last: frames (N, T, H*W pixels, C), gate (N*T, H, W, 2),
// grad_gate (N*T, H, W, 2) float32. A task owns one pixel of one clip through all its frames,
// so the neighbouring frame's dZ at that pixel was read one step before (still in cache).
template <typename T>
void shift_backward_channels_last(const T* x, const T* gate, const T* grad, T* grad_x,
                                  float* grad_gate, int64_t clips, int64_t segments,
                                  int64_t pixels, int64_t channels) {
  const int64_t half = channels / 2;
  constexpr int64_t kChunk = 256;
  at::parallel_for(0, clips * pixels, 16, [&](int64_t begin, int64_t end) {
    float products[kChunk];
    for (int64_t q = begin; q < end; ++q) {
      const int64_t first = (q / pixels) * segments * pixels + q % pixels;  // frame 0's pixel
      for (int64_t t = 0; t < segments; ++t) {
        const int64_t i = first + t * pixels;
        for (int64_t h = 0; h < 2; ++h) {  // half 1 reads dZ of frame t-1, half 2 of frame t+1
          const bool inside = h == 0 ? t > 0 : t + 1 < segments;
          const int64_t other = inside ? (h == 0 ? i - pixels : i + pixels) : i;
          const float on = inside ? 1.0f : 0.0f;
          const float g = load(gate, i * 2 + h);
          const int64_t base = i * channels + h * half, obase = other * channels + h * half;
          float sum = 0.0f;
          // the products go through a float buffer: a reduction in the same loop as the
          // bfloat16 conversions did not vectorise
          for (int64_t c0 = 0; c0 < half; c0 += kChunk) {
            const int64_t len = std::min(kChunk, half - c0);
#pragma omp simd
            for (int64_t c = 0; c < len; ++c) {
              const float dz = load(grad, base + c0 + c);
              const float d = on * load(grad, obase + c0 + c) - dz;
              products[c] = load(x, base + c0 + c) * d;
              store(grad_x, base + c0 + c, dz + g * d);
            }
            float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
            for (int64_t c = 0; c < len; ++c) acc += products[c];
            sum += acc;
          }
          grad_gate[i * 2 + h] = sum;
        }
      }
    }
  });
}

// gated_shift_backward, contiguous: frames (N, T, C, H*W), gate and grad_gate (N*T, 2, H*W).
// A task owns one half of one frame: its channels in turn, summing into its gradient plane.
// (Walking the frames inside each channel, to find the neighbour's dZ in cache, was slower:
// short strided runs instead of whole planes.)
template <typename T>
void shift_backward_contiguous(const T* x, const T* gate, const T* grad, T* grad_x,
                               float* grad_gate, int64_t clips, int64_t segments, int64_t pixels,
                               int64_t channels) {
  const int64_t half = channels / 2;
  at::parallel_for(0, clips * segments * 2, 1, [&](int64_t begin, int64_t end) {
    for (int64_t q = begin; q < end; ++q) {
      const int64_t frame = q / 2, h = q % 2, t = frame % segments;
      const bool inside = h == 0 ? t > 0 : t + 1 < segments;
      const int64_t other = inside ? (h == 0 ? frame - 1 : frame + 1) : frame;
      const float on = inside ? 1.0f : 0.0f;
      const T* g = gate + (frame * 2 + h) * pixels;
      float* acc = grad_gate + (frame * 2 + h) * pixels;
      std::fill(acc, acc + pixels, 0.0f);
      for (int64_t c = h * half; c < (h + 1) * half; ++c) {
        const int64_t base = (frame * channels + c) * pixels;
        const int64_t obase = (other * channels + c) * pixels;
#pragma omp simd
        for (int64_t p = 0; p < pixels; ++p) {
          const float dz = load(grad, base + p);
          const float d = on * load(grad, obase + p) - dz;
          acc[p] += load(x, base + p) * d;
          store(grad_x, base + p, dz + load(g, p) * d);
        }
      }
    }
  });
}

inline float relu(float v) { return v < 0.0f ? 0.0f : v; }  // NaN stays NaN, as in torch.relu

// affine_relu, channels_last: x (P, C) with P = N*T*H*W pixels.
template <typename T>
void affine_relu_channels_last(const T* x, const float* scale, const float* shift, T* out,
                               int64_t pixels, int64_t channels) {
  at::parallel_for(0, pixels, std::max<int64_t>(1, 32768 / channels), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const T* xi = x + i * channels;
      T* ui = out + i * channels;
#pragma omp simd
      for (int64_t c = 0; c < channels; ++c) store(ui, c, relu(load(xi, c) * scale[c] + shift[c]));
    }
  });
}

// affine_relu, contiguous: x (N*T*C rows, H*W).
template <typename T>
void affine_relu_contiguous(const T* x, const float* scale, const float* shift, T* out,
                            int64_t rows, int64_t channels, int64_t pixels) {
  at::parallel_for(0, rows, std::max<int64_t>(1, 32768 / pixels), [&](int64_t b, int64_t e) {
    for (int64_t row = b; row < e; ++row) {
      const float a = scale[row % channels], s = shift[row % channels];
      const T* xi = x + row * pixels;
      T* ui = out + row * pixels;
#pragma omp simd
      for (int64_t p = 0; p < pixels; ++p) store(ui, p, relu(load(xi, p) * a + s));
    }
  });
}

// gate_fold, channels_last: y (N*T, H, W, 54), gate (N*T, H, W, 2). One output row per task.
template <typename T>
void fold_channels_last(const T* y, float bias0, float bias1, T* gate, int64_t frames,
                        int64_t segments, int64_t height, int64_t width) {
  at::parallel_for(0, frames * height, 8, [&](int64_t begin, int64_t end) {
    std::vector<float> acc0(width), acc1(width);
    for (int64_t row = begin; row < end; ++row) {
      const int64_t f = row / height, h = row % height, t = f % segments;
      std::fill(acc0.begin(), acc0.end(), bias0);
      std::fill(acc1.begin(), acc1.end(), bias1);
      for (int64_t k = 0; k < 3; ++k) {  // temporal tap k reads frame t + k - 1
        if (t + k - 1 < 0 || t + k - 1 >= segments) continue;
        for (int64_t dy = 0; dy < 3; ++dy) {  // offset dy lands on row h from row h + 1 - dy
          const int64_t hs = h + 1 - dy;
          if (hs < 0 || hs >= height) continue;
          const T* src = y + ((f + k - 1) * height + hs) * width * 54 + k * 9 + dy * 3;
          for (int64_t dx = 0; dx < 3; ++dx) {  // and on column w from column w + 1 - dx
            const int64_t lo = dx == 2 ? 1 : 0, hi = dx == 0 ? width - 1 : width;
            const T* s = src + (1 - dx) * 54 + dx;
            float* a0 = acc0.data();
            float* a1 = acc1.data();
#pragma omp simd
            for (int64_t w = lo; w < hi; ++w) {
              a0[w] += load(s, w * 54);
              a1[w] += load(s, w * 54 + 27);
            }
          }
        }
      }
      T* g = gate + row * width * 2;
#pragma omp simd
      for (int64_t w = 0; w < width; ++w) {
        store(g, 2 * w, fast_tanh(acc0[w]));
        store(g, 2 * w + 1, fast_tanh(acc1[w]));
      }
    }
  });
}

// gate_fold, contiguous: y (N*T, 54, H, W), gate (N*T, 2, H, W). One output row per task.
template <typename T>
void fold_contiguous(const T* y, float bias0, float bias1, T* gate, int64_t frames,
                     int64_t segments, int64_t height, int64_t width) {
  const int64_t pixels = height * width;
  at::parallel_for(0, frames * 2 * height, 8, [&](int64_t begin, int64_t end) {
    std::vector<float> acc(width);
    for (int64_t row = begin; row < end; ++row) {  // row = (frame * 2 + group) * height + h
      const int64_t h = row % height, group = (row / height) % 2, f = row / (2 * height);
      const int64_t t = f % segments;
      std::fill(acc.begin(), acc.end(), group == 0 ? bias0 : bias1);
      float* a = acc.data();
      for (int64_t k = 0; k < 3; ++k) {
        if (t + k - 1 < 0 || t + k - 1 >= segments) continue;
        for (int64_t dy = 0; dy < 3; ++dy) {
          const int64_t hs = h + 1 - dy;
          if (hs < 0 || hs >= height) continue;
          const T* src = y + ((f + k - 1) * 54 + group * 27 + k * 9 + dy * 3) * pixels + hs * width;
          for (int64_t dx = 0; dx < 3; ++dx) {
            const int64_t lo = dx == 2 ? 1 : 0, hi = dx == 0 ? width - 1 : width;
            const T* s = src + dx * pixels + (1 - dx);
#pragma omp simd
            for (int64_t w = lo; w < hi; ++w) a[w] += load(s, w);
          }
        }
      }
      T* g = gate + row * width;
#pragma omp simd
      for (int64_t w = 0; w < width; ++w) store(g, w, fast_tanh(a[w]));
    }
  });
}

// Calls run(tag) with tag a null T* for the tensor's dtype, T = float or at::BFloat16.
template <typename F>
void by_dtype(const at::Tensor& t, F&& run) {
  if (t.scalar_type() == at::kFloat) {
    run(static_cast<float*>(nullptr));
  } else {
    run(static_cast<at::BFloat16*>(nullptr));
  }
}

template <typename P>
using Elem = std::remove_pointer_t<P>;

}  // namespace

// The Python side (_native.py) checks dtypes, devices, shapes and layouts before calling.

// x: (N*T, C, H, W) float32 or bfloat16, contiguous or channels_last, whole clips; gate:
// (N*T, 2, H, W) of the same dtype and layout. out: x's shape, dtype and layout, or x itself.
static void shift_into(const at::Tensor& x, const at::Tensor& gate, at::Tensor& out,
                       int64_t segments, bool channels_last) {
  const int64_t clips = x.size(0) / segments, channels = x.size(1);
  const int64_t pixels = x.size(2) * x.size(3);
  by_dtype(x, [&](auto* tag) {
    using T = Elem<decltype(tag)>;
    const T* xp = x.const_data_ptr<T>();
    const T* gp = gate.const_data_ptr<T>();
    T* op = out.mutable_data_ptr<T>();
    if (channels_last) {
      shift_channels_last(xp, gp, op, clips, segments, pixels, channels);
    } else {
      shift_contiguous(xp, gp, op, clips, segments, pixels, channels);
    }
  });
}

at::Tensor gated_shift(const at::Tensor& x, const at::Tensor& gate, int64_t segments,
                       bool channels_last) {
  at::Tensor out = at::empty_like(x);
  shift_into(x, gate, out, segments, channels_last);
  return out;
}

// The same, overwriting x.
void gated_shift_(at::Tensor& x, const at::Tensor& gate, int64_t segments, bool channels_last) {
  shift_into(x, gate, x, segments, channels_last);
}

// x, gate as for gated_shift; grad: dZ, x's shape, dtype and layout. Returns dX (x's dtype and
// layout) and dG (N*T, 2, H, W) float32 in x's layout.
std::vector<at::Tensor> gated_shift_backward(const at::Tensor& x, const at::Tensor& gate,
                                             const at::Tensor& grad, int64_t segments,
                                             bool channels_last) {
  const int64_t clips = x.size(0) / segments, channels = x.size(1);
  const int64_t pixels = x.size(2) * x.size(3);
  at::Tensor grad_x = at::empty_like(x);
  at::Tensor grad_gate = at::empty(
      {x.size(0), 2, x.size(2), x.size(3)},
      x.options().dtype(at::kFloat).memory_format(channels_last ? at::MemoryFormat::ChannelsLast
                                                                : at::MemoryFormat::Contiguous));
  by_dtype(x, [&](auto* tag) {
    using T = Elem<decltype(tag)>;
    const T* xp = x.const_data_ptr<T>();
    const T* gp = gate.const_data_ptr<T>();
    const T* dp = grad.const_data_ptr<T>();
    T* op = grad_x.mutable_data_ptr<T>();
    float* ggp = grad_gate.mutable_data_ptr<float>();
    if (channels_last) {
      shift_backward_channels_last(xp, gp, dp, op, ggp, clips, segments, pixels, channels);
    } else {
      shift_backward_contiguous(xp, gp, dp, op, ggp, clips, segments, pixels, channels);
    }
  });
  return {grad_x, grad_gate};
}

// x as for gated_shift; scale, shift: (C) contiguous float32.
at::Tensor affine_relu(const at::Tensor& x, const at::Tensor& scale, const at::Tensor& shift,
                       bool channels_last) {
  at::Tensor out = at::empty_like(x);
  const int64_t channels = x.size(1), pixels = x.size(2) * x.size(3);
  const float* a = scale.const_data_ptr<float>();
  const float* b = shift.const_data_ptr<float>();
  by_dtype(x, [&](auto* tag) {
    using T = Elem<decltype(tag)>;
    const T* xp = x.const_data_ptr<T>();
    T* op = out.mutable_data_ptr<T>();
    if (channels_last) {
      affine_relu_channels_last(xp, a, b, op, x.size(0) * pixels, channels);
    } else {
      affine_relu_contiguous(xp, a, b, op, x.size(0) * channels, channels, pixels);
    }
  });
  return out;
}

// y: (N*T, 54, H, W) float32 or bfloat16, contiguous or channels_last; bias: (2) contiguous
// float32 -> gate planes (N*T, 2, H, W) of y's dtype and layout.
at::Tensor gate_fold(const at::Tensor& y, const at::Tensor& bias, int64_t segments,
                     bool channels_last) {
  const int64_t frames = y.size(0), height = y.size(2), width = y.size(3);
  at::Tensor gate = at::empty(
      {frames, 2, height, width},
      y.options().memory_format(channels_last ? at::MemoryFormat::ChannelsLast
                                              : at::MemoryFormat::Contiguous));
  const float b0 = bias.const_data_ptr<float>()[0], b1 = bias.const_data_ptr<float>()[1];
  by_dtype(y, [&](auto* tag) {
    using T = Elem<decltype(tag)>;
    const T* yp = y.const_data_ptr<T>();
    T* gp = gate.mutable_data_ptr<T>();
    if (channels_last) {
      fold_channels_last(yp, b0, b1, gp, frames, segments, height, width);
    } else {
      fold_contiguous(yp, b0, b1, gp, frames, segments, height, width);
    }
  });
  return gate;
}

// float32 tanh as the gate kernels compute it (exposed for the tests).
at::Tensor tanh_float(const at::Tensor& x) {
  at::Tensor out = at::empty_like(x);
  const float* xp = x.const_data_ptr<float>();
  float* op = out.mutable_data_ptr<float>();
  const int64_t n = x.numel();
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) op[i] = fast_tanh(xp[i]);
  return out;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("gated_shift", &gated_shift, "GSM gated shift, one pass (inference)");
  m.def("gated_shift_", &gated_shift_, "GSM gated shift in place (inference)");
  m.def("gated_shift_backward", &gated_shift_backward, "gradients of gated_shift (training)");
  m.def("affine_relu", &affine_relu, "max(0, x * scale[c] + shift[c]), one pass");
  m.def("gate_fold", &gate_fold, "gate planes from the 54 maps of the gate's 1x1 conv");
  m.def("tanh_float", &tanh_float, "the kernels' float32 tanh");
}
