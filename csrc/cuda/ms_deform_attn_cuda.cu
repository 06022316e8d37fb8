// CUDA kernels of MSDeformAttn.
//
// Layout of the work: one thread per (batch, query, head, channel group); a
// channel group is VEC consecutive channels (16 bytes: 4 float, 8 half/bf16,
// 2 double), so the threads of a warp read consecutive 16-byte chunks of the
// same pixel row (coalesced), with a single vector load when the channel count
// allows it and element loads otherwise. Any channel count works (30, 71, 1025,
// 2048...): the last group of a head masks the channels past D. There is no
// im2col_step: the whole batch is one launch. Accumulation is in float32 for
// half/bfloat16 (at::opmath_type).
//
// Backward: each group computes its part of the 4 corner dot products; the
// parts of one head row are summed with warp shuffles (segments of 1..32 lanes,
// or whole warps plus one atomic per warp for heads wider than 32 groups), which
// replaces the original's shared-memory reduction variants chosen by channel
// count. grad_value is scattered with atomics into an opmath buffer.
//
// The sampling math (which pixels, which weights, the chain rule) is in
// ../ms_deform_attn_math.h and is the same code the CPU kernel runs.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/ops/zeros.h>
// Only c10/cuda headers: ATen/cuda/CUDAContext.h pulls in cuSPARSE/cuBLAS headers,
// which minimal toolkits (and this op) do not need, and it slows the compile.
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>
#include <torch/library.h>

#include <tuple>

#include "../ms_deform_attn.h"
#include "../ms_deform_attn_math.h"

namespace envdoctor {
namespace msda {

int64_t cuda_runtime_version_compiled() { return CUDART_VERSION; }

namespace {

constexpr int kThreads = 256;

template <typename scalar_t>
constexpr int vec_width() {
  return 16 / static_cast<int>(sizeof(scalar_t));
}

template <typename scalar_t, int VEC>
struct alignas(sizeof(scalar_t) * VEC) Pack {
  scalar_t v[VEC];
};

// Loads channels [c0, c0 + VEC) of one pixel row into `out`, zero past D.
template <typename scalar_t, typename acc_t, int VEC, bool ALIGNED>
__device__ __forceinline__ void load_group(const scalar_t* __restrict__ row, int64_t c0, int64_t D,
                                           acc_t (&out)[VEC]) {
  if (ALIGNED) {
    const Pack<scalar_t, VEC> p = *reinterpret_cast<const Pack<scalar_t, VEC>*>(row + c0);
#pragma unroll
    for (int j = 0; j < VEC; ++j) out[j] = static_cast<acc_t>(p.v[j]);
  } else {
#pragma unroll
    for (int j = 0; j < VEC; ++j) out[j] = c0 + j < D ? static_cast<acc_t>(row[c0 + j]) : acc_t(0);
  }
}

struct Shape {
  int64_t N, S, M, D, Lq, L, P;
  int64_t groups;  // channel groups per head: ceil(D / VEC)
};

template <typename scalar_t, int VEC, bool ALIGNED>
__global__ void forward_kernel(const scalar_t* __restrict__ value, const int64_t* __restrict__ shapes,
                               const int64_t* __restrict__ starts, const scalar_t* __restrict__ loc,
                               const scalar_t* __restrict__ attn, scalar_t* __restrict__ out, Shape sh,
                               int64_t total) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (t >= total) return;
  const int64_t group = t % sh.groups;
  const int64_t head_row = t / sh.groups;  // (b * Lq + q) * M + m
  const int64_t m = head_row % sh.M;
  const int64_t b = head_row / (sh.M * sh.Lq);
  const int64_t c0 = group * VEC;
  acc_t acc[VEC];
#pragma unroll
  for (int j = 0; j < VEC; ++j) acc[j] = acc_t(0);
  for (int64_t l = 0; l < sh.L; ++l) {
    const int64_t H = shapes[2 * l], W = shapes[2 * l + 1], start = starts[l];
    for (int64_t p = 0; p < sh.P; ++p) {
      const int64_t idx = (head_row * sh.L + l) * sh.P + p;
      Sample<acc_t> s;
      if (!bilinear_setup<acc_t>(static_cast<acc_t>(loc[2 * idx]), static_cast<acc_t>(loc[2 * idx + 1]), H, W, s))
        continue;
      const acc_t a = static_cast<acc_t>(attn[idx]);
#pragma unroll
      for (int k = 0; k < 4; ++k) {
        if (s.offset[k] < 0) continue;
        acc_t v[VEC];
        load_group<scalar_t, acc_t, VEC, ALIGNED>(
            value + value_index(b, start + s.offset[k], m, sh.S, sh.M, sh.D), c0, sh.D, v);
        const acc_t coeff = a * s.weight[k];
#pragma unroll
        for (int j = 0; j < VEC; ++j) acc[j] += coeff * v[j];
      }
    }
  }
  scalar_t* o = out + head_row * sh.D;
  if (ALIGNED) {
    Pack<scalar_t, VEC> p;
#pragma unroll
    for (int j = 0; j < VEC; ++j) p.v[j] = static_cast<scalar_t>(acc[j]);
    *reinterpret_cast<Pack<scalar_t, VEC>*>(o + c0) = p;
  } else {
#pragma unroll
    for (int j = 0; j < VEC; ++j)
      if (c0 + j < sh.D) o[c0 + j] = static_cast<scalar_t>(acc[j]);
  }
}

// lanes: threads per head row (a power of two <= 32, or a multiple of 32).
// seg:   shuffle segment width = min(lanes, 32).
template <typename scalar_t, int VEC, bool ALIGNED>
__global__ void backward_kernel(const scalar_t* __restrict__ grad_out, const scalar_t* __restrict__ value,
                                const int64_t* __restrict__ shapes, const int64_t* __restrict__ starts,
                                const scalar_t* __restrict__ loc, const scalar_t* __restrict__ attn,
                                at::opmath_type<scalar_t>* __restrict__ grad_value,
                                at::opmath_type<scalar_t>* __restrict__ grad_loc,
                                at::opmath_type<scalar_t>* __restrict__ grad_attn, Shape sh, int lanes, int seg,
                                int64_t rows) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t head_row = t / lanes;
  const int64_t group = t % lanes;
  const bool row_ok = head_row < rows;
  const bool active = row_ok && group < sh.groups;
  const bool leader = (threadIdx.x % seg) == 0;
  const bool direct = lanes <= 32;  // one segment per row: plain stores, no atomics
  const int64_t m = row_ok ? head_row % sh.M : 0;
  const int64_t b = row_ok ? head_row / (sh.M * sh.Lq) : 0;
  const int64_t c0 = group * VEC;
  acc_t g[VEC];
#pragma unroll
  for (int j = 0; j < VEC; ++j) g[j] = acc_t(0);
  if (active) load_group<scalar_t, acc_t, VEC, ALIGNED>(grad_out + head_row * sh.D, c0, sh.D, g);

  // Every thread runs the same L * P iterations so that the shuffles below see
  // the whole warp; inactive threads contribute zeros.
  for (int64_t l = 0; l < sh.L; ++l) {
    const int64_t H = shapes[2 * l], W = shapes[2 * l + 1], start = starts[l];
    for (int64_t p = 0; p < sh.P; ++p) {
      const int64_t idx = (head_row * sh.L + l) * sh.P + p;
      Sample<acc_t> s;
      bool inside = false;
      acc_t a = acc_t(0);
      if (row_ok) {
        inside = bilinear_setup<acc_t>(static_cast<acc_t>(loc[2 * idx]), static_cast<acc_t>(loc[2 * idx + 1]),
                                       H, W, s);
        a = static_cast<acc_t>(attn[idx]);
      }
      acc_t dot[4] = {acc_t(0), acc_t(0), acc_t(0), acc_t(0)};
      if (inside && active) {
#pragma unroll
        for (int k = 0; k < 4; ++k) {
          if (s.offset[k] < 0) continue;
          const int64_t base = value_index(b, start + s.offset[k], m, sh.S, sh.M, sh.D);
          acc_t v[VEC];
          load_group<scalar_t, acc_t, VEC, ALIGNED>(value + base, c0, sh.D, v);
          const acc_t coeff = a * s.weight[k];
#pragma unroll
          for (int j = 0; j < VEC; ++j) {
            dot[k] += g[j] * v[j];
            if (c0 + j < sh.D) atomicAdd(grad_value + base + c0 + j, coeff * g[j]);
          }
        }
      }
#pragma unroll
      for (int k = 0; k < 4; ++k)
        for (int offset = seg / 2; offset > 0; offset /= 2)
          dot[k] += __shfl_down_sync(0xffffffffu, dot[k], offset, seg);
      if (inside && leader) {
        acc_t ga, gx, gy;
        location_grads<acc_t>(s, dot, a, H, W, ga, gx, gy);
        if (direct) {
          grad_attn[idx] = ga;
          grad_loc[2 * idx] = gx;
          grad_loc[2 * idx + 1] = gy;
        } else {
          atomicAdd(grad_attn + idx, ga);
          atomicAdd(grad_loc + 2 * idx, gx);
          atomicAdd(grad_loc + 2 * idx + 1, gy);
        }
      }
    }
  }
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

int next_pow2(int64_t x) {
  int p = 1;
  while (p < x) p *= 2;
  return p;
}

bool aligned16(const void* ptr) { return reinterpret_cast<uintptr_t>(ptr) % 16 == 0; }

Shape make_shape(const Dims& d, int vec) {
  return Shape{d.batch, d.spatial, d.heads, d.channels, d.queries, d.levels, d.points, ceil_div(d.channels, vec)};
}

at::Tensor ms_deform_attn_cuda(const at::Tensor& value_in, const at::Tensor& spatial_shapes_in,
                               const at::Tensor& level_start_index_in, const at::Tensor& loc_in,
                               const at::Tensor& attn_in) {
  const Dims d = check_inputs(value_in, spatial_shapes_in, level_start_index_in, loc_in, attn_in);
  c10::cuda::CUDAGuard guard(value_in.device());
  const at::Tensor value = value_in.contiguous(), loc = loc_in.contiguous(), attn = attn_in.contiguous();
  const at::Tensor shapes = spatial_shapes_in.contiguous(), starts = level_start_index_in.contiguous();
  at::Tensor out = at::zeros({d.batch, d.queries, d.heads * d.channels}, value.options());
  if (out.numel() == 0) return out;
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, value.scalar_type(), "ms_deform_attn_cuda", [&] {
    constexpr int VEC = vec_width<scalar_t>();
    const Shape sh = make_shape(d, VEC);
    const int64_t total = d.batch * d.queries * d.heads * sh.groups;
    const dim3 grid(static_cast<unsigned>(ceil_div(total, kThreads)));
    const bool aligned = d.channels % VEC == 0 && aligned16(value.const_data_ptr()) && aligned16(out.data_ptr());
    auto launch = [&](auto kernel) {
      kernel<<<grid, kThreads, 0, stream>>>(value.const_data_ptr<scalar_t>(), shapes.const_data_ptr<int64_t>(),
                                            starts.const_data_ptr<int64_t>(), loc.const_data_ptr<scalar_t>(),
                                            attn.const_data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), sh, total);
    };
    if (aligned) launch(forward_kernel<scalar_t, VEC, true>);
    else launch(forward_kernel<scalar_t, VEC, false>);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> ms_deform_attn_backward_cuda(
    const at::Tensor& grad_out_in, const at::Tensor& value_in, const at::Tensor& spatial_shapes_in,
    const at::Tensor& level_start_index_in, const at::Tensor& loc_in, const at::Tensor& attn_in) {
  const Dims d = check_inputs(value_in, spatial_shapes_in, level_start_index_in, loc_in, attn_in);
  check_grad_output(grad_out_in, d, value_in);
  c10::cuda::CUDAGuard guard(value_in.device());
  const at::Tensor grad_out = grad_out_in.contiguous(), value = value_in.contiguous();
  const at::Tensor loc = loc_in.contiguous(), attn = attn_in.contiguous();
  const at::Tensor shapes = spatial_shapes_in.contiguous(), starts = level_start_index_in.contiguous();
  const auto acc_type = at::toOpMathType(value.scalar_type());
  at::Tensor grad_value = at::zeros(value.sizes(), value.options().dtype(acc_type));
  at::Tensor grad_loc = at::zeros(loc.sizes(), loc.options().dtype(acc_type));
  at::Tensor grad_attn = at::zeros(attn.sizes(), attn.options().dtype(acc_type));
  if (grad_out.numel() > 0 && value.numel() > 0) {
    auto stream = c10::cuda::getCurrentCUDAStream();
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, value.scalar_type(), "ms_deform_attn_backward_cuda", [&] {
      using acc_t = at::opmath_type<scalar_t>;
      constexpr int VEC = vec_width<scalar_t>();
      const Shape sh = make_shape(d, VEC);
      const int lanes = sh.groups <= 32 ? next_pow2(sh.groups) : static_cast<int>(ceil_div(sh.groups, 32) * 32);
      const int seg = lanes < 32 ? lanes : 32;
      const int64_t rows = d.batch * d.queries * d.heads;
      const dim3 grid(static_cast<unsigned>(ceil_div(rows * lanes, kThreads)));
      const bool aligned = d.channels % VEC == 0 && aligned16(value.const_data_ptr()) &&
                           aligned16(grad_out.const_data_ptr());
      auto launch = [&](auto kernel) {
        kernel<<<grid, kThreads, 0, stream>>>(
            grad_out.const_data_ptr<scalar_t>(), value.const_data_ptr<scalar_t>(), shapes.const_data_ptr<int64_t>(),
            starts.const_data_ptr<int64_t>(), loc.const_data_ptr<scalar_t>(), attn.const_data_ptr<scalar_t>(),
            grad_value.data_ptr<acc_t>(), grad_loc.data_ptr<acc_t>(), grad_attn.data_ptr<acc_t>(), sh, lanes, seg,
            rows);
      };
      if (aligned) launch(backward_kernel<scalar_t, VEC, true>);
      else launch(backward_kernel<scalar_t, VEC, false>);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  }
  const auto dtype = value.scalar_type();
  return std::make_tuple(grad_value.to(dtype), grad_loc.to(dtype), grad_attn.to(dtype));
}

}  // namespace
}  // namespace msda
}  // namespace envdoctor

TORCH_LIBRARY_IMPL(envdoctor, CUDA, m) {
  m.impl("ms_deform_attn", &envdoctor::msda::ms_deform_attn_cuda);
  m.impl("ms_deform_attn_backward", &envdoctor::msda::ms_deform_attn_backward_cuda);
}
