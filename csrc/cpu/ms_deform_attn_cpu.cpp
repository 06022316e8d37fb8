// CPU kernels of MSDeformAttn. Real kernels, parallel with at::parallel_for:
//  * forward parallelises over blocks of (batch, query) rows: every output row
//    belongs to exactly one task, and the channel loop is innermost and
//    contiguous so the compiler vectorises it;
//  * backward parallelises over (batch, head, level): grad_value of head m in
//    level l is only written by the samples of head m in level l, so the tasks
//    never write the same memory and no atomics or per-thread buffers are needed.
// Tasks are handed out dynamically (an atomic counter), not in one static chunk
// per thread: on a shared machine one slowed thread must not hold up the call.
// The sampling math comes from ../ms_deform_attn_math.h, shared with CUDA.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/zeros_like.h>
#include <torch/library.h>

#include <algorithm>
#include <atomic>
#include <tuple>
#include <vector>

#include "../ms_deform_attn.h"
#include "../ms_deform_attn_math.h"

namespace envdoctor {
namespace msda {
namespace {

// Level geometry copied out of the (small) int64 tensors once per call.
struct Levels {
  std::vector<int64_t> height, width, start;
};

Levels read_levels(const at::Tensor& spatial_shapes, const at::Tensor& level_start_index) {
  const at::Tensor shapes = spatial_shapes.contiguous();
  const at::Tensor starts = level_start_index.contiguous();
  const int64_t* sp = shapes.data_ptr<int64_t>();
  const int64_t* st = starts.data_ptr<int64_t>();
  Levels lv;
  for (int64_t l = 0; l < shapes.size(0); ++l) {
    lv.height.push_back(sp[2 * l]);
    lv.width.push_back(sp[2 * l + 1]);
    lv.start.push_back(st[l]);
  }
  return lv;
}

// The channel loops. __restrict__ and `omp simd` let the compiler vectorise them:
// without the pragma a floating-point sum reduction is never vectorised (it
// would reorder additions), and the dot product is half of the backward's work.
template <typename scalar_t>
inline void axpy(scalar_t* __restrict__ out, const scalar_t* __restrict__ x, scalar_t a, int64_t n) {
#pragma omp simd
  for (int64_t c = 0; c < n; ++c) out[c] += a * x[c];
}

template <typename scalar_t>
inline scalar_t dot_and_axpy(scalar_t* __restrict__ grad_v, const scalar_t* __restrict__ g,
                             const scalar_t* __restrict__ v, scalar_t a, int64_t n) {
  scalar_t acc = 0;
#pragma omp simd reduction(+ : acc)
  for (int64_t c = 0; c < n; ++c) {
    acc += g[c] * v[c];
    grad_v[c] += a * g[c];
  }
  return acc;
}

// Runs f(task) for task in [0, tasks) on the intra-op threads, each thread
// pulling the next task when it is done with the previous one.
template <typename F>
void parallel_tasks(int64_t tasks, const F& f) {
  if (tasks <= 0) return;
  std::atomic<int64_t> next{0};
  const int64_t workers = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), tasks));
  at::parallel_for(0, workers, 1, [&](int64_t begin, int64_t end) {
    for (int64_t w = begin; w < end; ++w) {
      for (int64_t t = next.fetch_add(1); t < tasks; t = next.fetch_add(1)) f(t);
    }
  });
}

// Rows per forward task: enough work that scheduling costs nothing, small enough
// to balance.
int64_t rows_per_task(int64_t work_per_row) {
  return std::max<int64_t>(1, (1 << 16) / std::max<int64_t>(1, work_per_row));
}

// FIXED_D > 0 compiles the channel loops for that channel count (fully unrolled,
// no vector-loop prologue/epilogue per corner); 0 handles any count.
template <typename scalar_t, int FIXED_D>
void forward_kernel(const scalar_t* value, const Levels& lv, const scalar_t* loc,
                    const scalar_t* attn, scalar_t* out, const Dims& d) {
  const int64_t D = FIXED_D > 0 ? FIXED_D : d.channels, M = d.heads, L = d.levels, P = d.points, S = d.spatial;
  const int64_t rows = d.batch * d.queries;
  const int64_t block = rows_per_task(M * L * P * 4 * D);
  parallel_tasks((rows + block - 1) / block, [&](int64_t task) {
    const int64_t end = std::min(rows, (task + 1) * block);
    for (int64_t row = task * block; row < end; ++row) {
      const int64_t b = row / d.queries;
      for (int64_t m = 0; m < M; ++m) {
        scalar_t* o = out + (row * M + m) * D;
        const int64_t head_row = (row * M + m) * L;
        for (int64_t l = 0; l < L; ++l) {
          const int64_t H = lv.height[l], W = lv.width[l], start = lv.start[l];
          for (int64_t p = 0; p < P; ++p) {
            const int64_t idx = (head_row + l) * P + p;
            Sample<scalar_t> s;
            if (!bilinear_setup<scalar_t>(loc[2 * idx], loc[2 * idx + 1], H, W, s)) continue;
            const scalar_t a = attn[idx];
            for (int k = 0; k < 4; ++k) {
              if (s.offset[k] < 0) continue;
              axpy(o, value + value_index(b, start + s.offset[k], m, S, M, D), a * s.weight[k], D);
            }
          }
        }
      }
    }
  });
}

template <typename scalar_t, int FIXED_D>
void backward_kernel(const scalar_t* grad_out, const scalar_t* value, const Levels& lv,
                     const scalar_t* loc, const scalar_t* attn, scalar_t* grad_value,
                     scalar_t* grad_loc, scalar_t* grad_attn, const Dims& d) {
  const int64_t D = FIXED_D > 0 ? FIXED_D : d.channels, M = d.heads, L = d.levels, P = d.points, S = d.spatial;
  const int64_t Lq = d.queries;
  parallel_tasks(d.batch * M * L, [&](int64_t task) {
    const int64_t l = task % L, m = (task / L) % M, b = task / (L * M);
    const int64_t H = lv.height[l], W = lv.width[l], start = lv.start[l];
    for (int64_t q = 0; q < Lq; ++q) {
      const int64_t row = b * Lq + q;
      const scalar_t* g = grad_out + (row * M + m) * D;
      const int64_t level_row = ((row * M + m) * L + l) * P;
      for (int64_t p = 0; p < P; ++p) {
        const int64_t idx = level_row + p;
        Sample<scalar_t> s;
        if (!bilinear_setup<scalar_t>(loc[2 * idx], loc[2 * idx + 1], H, W, s)) continue;
        const scalar_t a = attn[idx];
        scalar_t dot[4] = {0, 0, 0, 0};
        for (int k = 0; k < 4; ++k) {
          if (s.offset[k] < 0) continue;
          const int64_t base = value_index(b, start + s.offset[k], m, S, M, D);
          dot[k] = dot_and_axpy(grad_value + base, g, value + base, a * s.weight[k], D);
        }
        location_grads<scalar_t>(s, dot, a, H, W, grad_attn[idx], grad_loc[2 * idx],
                                 grad_loc[2 * idx + 1]);
      }
    }
  });
}

at::Tensor ms_deform_attn_cpu(const at::Tensor& value_in, const at::Tensor& spatial_shapes,
                              const at::Tensor& level_start_index,
                              const at::Tensor& sampling_loc_in, const at::Tensor& attn_in) {
  const Dims d = check_inputs(value_in, spatial_shapes, level_start_index, sampling_loc_in, attn_in);
  const at::Tensor value = value_in.contiguous();
  const at::Tensor loc = sampling_loc_in.contiguous();
  const at::Tensor attn = attn_in.contiguous();
  at::Tensor out = at::zeros({d.batch, d.queries, d.heads * d.channels}, value.options());
  if (out.numel() == 0) return out;
  const Levels lv = read_levels(spatial_shapes, level_start_index);
  AT_DISPATCH_FLOATING_TYPES(value.scalar_type(), "ms_deform_attn_cpu", [&] {
    auto run = [&](auto kernel) {
      kernel(value.const_data_ptr<scalar_t>(), lv, loc.const_data_ptr<scalar_t>(),
             attn.const_data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), d);
    };
    // 32 channels per head: d_model 256 with 8 heads (Deformable DETR, Mask2Former).
    if (d.channels == 32) run(forward_kernel<scalar_t, 32>);
    else run(forward_kernel<scalar_t, 0>);
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> ms_deform_attn_backward_cpu(
    const at::Tensor& grad_out_in, const at::Tensor& value_in, const at::Tensor& spatial_shapes,
    const at::Tensor& level_start_index, const at::Tensor& sampling_loc_in,
    const at::Tensor& attn_in) {
  const Dims d = check_inputs(value_in, spatial_shapes, level_start_index, sampling_loc_in, attn_in);
  check_grad_output(grad_out_in, d, value_in);
  const at::Tensor grad_out = grad_out_in.contiguous();
  const at::Tensor value = value_in.contiguous();
  const at::Tensor loc = sampling_loc_in.contiguous();
  const at::Tensor attn = attn_in.contiguous();
  at::Tensor grad_value = at::zeros_like(value);
  at::Tensor grad_loc = at::zeros_like(loc);
  at::Tensor grad_attn = at::zeros_like(attn);
  if (grad_out.numel() == 0 || value.numel() == 0) {
    return std::make_tuple(grad_value, grad_loc, grad_attn);
  }
  const Levels lv = read_levels(spatial_shapes, level_start_index);
  AT_DISPATCH_FLOATING_TYPES(value.scalar_type(), "ms_deform_attn_backward_cpu", [&] {
    auto run = [&](auto kernel) {
      kernel(grad_out.const_data_ptr<scalar_t>(), value.const_data_ptr<scalar_t>(), lv,
             loc.const_data_ptr<scalar_t>(), attn.const_data_ptr<scalar_t>(),
             grad_value.data_ptr<scalar_t>(), grad_loc.data_ptr<scalar_t>(),
             grad_attn.data_ptr<scalar_t>(), d);
    };
    if (d.channels == 32) run(backward_kernel<scalar_t, 32>);
    else run(backward_kernel<scalar_t, 0>);
  });
  return std::make_tuple(grad_value, grad_loc, grad_attn);
}

}  // namespace
}  // namespace msda
}  // namespace envdoctor

TORCH_LIBRARY_IMPL(envdoctor, CPU, m) {
  m.impl("ms_deform_attn", &envdoctor::msda::ms_deform_attn_cpu);
  m.impl("ms_deform_attn_backward", &envdoctor::msda::ms_deform_attn_backward_cpu);
}
