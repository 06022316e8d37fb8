// Per-element math of Multi-Scale Deformable Attention, shared by the CPU and
// the CUDA kernels so that the CPU tests exercise the exact arithmetic the GPU
// runs.
//
// Conventions (identical to Deformable DETR's ms_deform_attn_im2col_bilinear):
//  * a sampling location (x, y) in [0, 1] maps to pixel coordinates
//    w_im = x * W - 0.5, h_im = y * H - 0.5 (align_corners=False);
//  * a location contributes only when -1 < h_im < H and -1 < w_im < W;
//  * bilinear interpolation between the 4 neighbouring pixels, a corner that
//    falls outside the map reads as zero (zero padding).
//
// The kernels loop over corners and channels themselves (that is where the CPU
// and GPU strategies differ); everything that decides *which* pixels are read
// and *with what weights*, and the chain rule back to the location and the
// attention weight, lives here.
#pragma once

#include <c10/macros/Macros.h>
#include <cstdint>

namespace envdoctor {
namespace msda {

// One bilinear sample: up to four corners. offset[k] is the pixel index
// h * W + w inside the level, or -1 when the corner is outside the map.
// weight[k] is the interpolation weight, dweight_dw/dh its derivative with
// respect to the pixel coordinates w_im/h_im.
template <typename acc_t>
struct Sample {
  int64_t offset[4];
  acc_t weight[4];
  acc_t dweight_dw[4];
  acc_t dweight_dh[4];
};

// Fills `s` for location (x, y) on a level of size H x W. Returns false when
// the location is entirely outside (nothing is sampled, gradients are zero).
template <typename acc_t>
C10_HOST_DEVICE inline bool bilinear_setup(acc_t x, acc_t y, int64_t H, int64_t W,
                                           Sample<acc_t>& s) {
  const acc_t h_im = y * static_cast<acc_t>(H) - acc_t(0.5);
  const acc_t w_im = x * static_cast<acc_t>(W) - acc_t(0.5);
  // The negated form also rejects NaN locations (every comparison is false).
  if (!(h_im > acc_t(-1) && w_im > acc_t(-1) && h_im < static_cast<acc_t>(H) &&
        w_im < static_cast<acc_t>(W))) {
    return false;
  }
  // floor() of a value > -1 is >= -1, so the int conversion below is safe.
  const acc_t h_floor = h_im >= acc_t(0) ? static_cast<acc_t>(static_cast<int64_t>(h_im))
                                         : acc_t(-1);
  const acc_t w_floor = w_im >= acc_t(0) ? static_cast<acc_t>(static_cast<int64_t>(w_im))
                                         : acc_t(-1);
  const int64_t h_low = static_cast<int64_t>(h_floor);
  const int64_t w_low = static_cast<int64_t>(w_floor);
  const int64_t h_high = h_low + 1;
  const int64_t w_high = w_low + 1;

  const acc_t lh = h_im - h_floor;
  const acc_t lw = w_im - w_floor;
  const acc_t hh = acc_t(1) - lh;
  const acc_t hw = acc_t(1) - lw;

  const bool h_low_in = h_low >= 0;
  const bool w_low_in = w_low >= 0;
  const bool h_high_in = h_high <= H - 1;
  const bool w_high_in = w_high <= W - 1;

  // Corner order: (low, low), (low, high), (high, low), (high, high).
  s.offset[0] = (h_low_in && w_low_in) ? h_low * W + w_low : -1;
  s.offset[1] = (h_low_in && w_high_in) ? h_low * W + w_high : -1;
  s.offset[2] = (h_high_in && w_low_in) ? h_high * W + w_low : -1;
  s.offset[3] = (h_high_in && w_high_in) ? h_high * W + w_high : -1;

  s.weight[0] = hh * hw;
  s.weight[1] = hh * lw;
  s.weight[2] = lh * hw;
  s.weight[3] = lh * lw;

  s.dweight_dw[0] = -hh;
  s.dweight_dw[1] = hh;
  s.dweight_dw[2] = -lh;
  s.dweight_dw[3] = lh;

  s.dweight_dh[0] = -hw;
  s.dweight_dh[1] = -lw;
  s.dweight_dh[2] = hw;
  s.dweight_dh[3] = lw;
  return true;
}

// Gradients of one (location, attention weight) pair from the four
// corner dot products dot[k] = sum_c grad_out[c] * value_k[c] (zero for
// corners outside the map).
//
//   out[c]          += attn * sum_k weight[k] * value_k[c]
//   d out / d attn   = sum_k weight[k] * dot[k]
//   d out / d x      = attn * W * sum_k dweight_dw[k] * dot[k]   (w_im = x*W - 0.5)
//   d out / d y      = attn * H * sum_k dweight_dh[k] * dot[k]
template <typename acc_t>
C10_HOST_DEVICE inline void location_grads(const Sample<acc_t>& s, const acc_t dot[4], acc_t attn,
                                           int64_t H, int64_t W, acc_t& grad_attn,
                                           acc_t& grad_x, acc_t& grad_y) {
  acc_t ga = 0, gw = 0, gh = 0;
#pragma unroll
  for (int k = 0; k < 4; ++k) {
    ga += s.weight[k] * dot[k];
    gw += s.dweight_dw[k] * dot[k];
    gh += s.dweight_dh[k] * dot[k];
  }
  grad_attn = ga;
  grad_x = attn * static_cast<acc_t>(W) * gw;
  grad_y = attn * static_cast<acc_t>(H) * gh;
}

// Flat index of channel 0 of pixel `pixel` of head `head` in a value tensor
// laid out [N, S, M, D]: the channel dimension is innermost and contiguous.
C10_HOST_DEVICE inline int64_t value_index(int64_t batch, int64_t pixel, int64_t head,
                                           int64_t S, int64_t M, int64_t D) {
  return ((batch * S + pixel) * M + head) * D;
}

}  // namespace msda
}  // namespace envdoctor
