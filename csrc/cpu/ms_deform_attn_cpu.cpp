// CPU kernels of MSDeformAttn.
//
//  * Both kernels first copy `value` head-major ([N, S, M, D] -> [N, M, S, D]):
//    one head's pixels are then contiguous, so a head's slice (S x D, about 0.7 MB
//    for Mask2Former at 512x512) stays in the core's L2 cache and TLB whatever the
//    sampling pattern. In value's own layout the 1 KiB pixel stride (M = 8,
//    D = 32 floats) maps all rows of a head onto a sixteenth of the cache sets.
//  * Forward: tasks are (batch, head, block of queries); a task writes its output
//    rows only. Per sample the four corners are fetched once, the bilinear weights
//    computed once (ms_deform_attn_math.h) and folded into the attention weight,
//    and one fused loop over the contiguous channels adds the four corners.
//  * Backward: tasks are (batch, head[, block of queries]) and own disjoint parts of
//    grad_value: no atomics, no races. When there are fewer (batch, head) pairs
//    than twice the threads, the queries are split into blocks, each block
//    accumulates into its own copy of grad_value, and the copies are summed.
//    The four corner dot products grad_out . value_k share one pass and one
//    horizontal reduction.
//  * float16 and bfloat16 inputs are read as they are and accumulated in float
//    (at::opmath_type), grad_value included; float32 and float64 in their own type.
//  * Vector width: at::vec picks its instruction set at compile time, and an
//    extension built with the default flags gets its generic (SSE2-level) code. So
//    the task loops (ms_deform_attn_cpu_tasks.h) are compiled twice on x86-64: for
//    the baseline ISA, and in an AVX2+FMA target region with intrinsics for float
//    and D a multiple of 8. The AVX2 copy runs when this CPU has AVX2/FMA/F16C and
//    torch's own choice (at::get_cpu_capability(), lowered by
//    ATEN_CPU_CAPABILITY=default) allows it, so the binary runs on any x86-64 CPU.
//    An AVX-512 copy was not faster than AVX2 for D = 32 in our runs (the loops are
//    bound by loads and the sample setup, not by FMA width), so there is none.
// Tasks are handed out dynamically (an atomic counter), not in one static chunk
// per thread: on a shared machine one slowed thread must not hold up the call.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <ATen/Version.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/zeros_like.h>
#include <torch/library.h>

#include <algorithm>
#include <atomic>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

#include "../ms_deform_attn.h"
#include "../ms_deform_attn_math.h"

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define MSDA_X86_VARIANTS 1
#include <immintrin.h>
#endif
#define MSDA_ALWAYS_INLINE inline __attribute__((always_inline))

namespace envdoctor {
namespace msda {

namespace {

enum class Isa { Baseline, Avx2 };

Isa detect_isa() {
#ifdef MSDA_X86_VARIANTS
  // torch's own choice (its CPU detection, lowered by ATEN_CPU_CAPABILITY=default)
  // caps ours, so one switch turns the vector code off for torch and this op alike.
  const std::string cap = at::get_cpu_capability();
  __builtin_cpu_init();
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                    __builtin_cpu_supports("f16c");
  if ((cap == "AVX512" || cap == "AVX2") && avx2) return Isa::Avx2;
#endif
  return Isa::Baseline;
}

Isa cpu_isa() {
  static const Isa isa = detect_isa();
  return isa;
}

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

// Everything one call's tasks read and write.
template <typename scalar_t>
struct Problem {
  using acc_t = at::opmath_type<scalar_t>;
  Dims d;
  const Levels* lv;
  const scalar_t* value;  // head-major copy [N, M, S, D]
  const scalar_t* loc;
  const scalar_t* attn;
  const scalar_t* zero_row;  // D zeros, read in place of a corner outside the map
  // forward
  scalar_t* out = nullptr;
  int64_t query_block = 1;  // queries per forward task
  // backward
  const scalar_t* grad_out = nullptr;
  acc_t* grad_value = nullptr;  // [chunks, N, M, S, D] in acc_t
  scalar_t* grad_loc = nullptr;
  scalar_t* grad_attn = nullptr;
  int64_t chunks = 1;            // query blocks per (batch, head, level) in the backward
  int64_t chunk_queries = 0;     // queries per block
};

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

// The task loops, compiled once per instruction set (see the header comment).
namespace baseline {
#define MSDA_TASKS_AVX2 0
#include "ms_deform_attn_cpu_tasks.h"
#undef MSDA_TASKS_AVX2
}  // namespace baseline

#ifdef MSDA_X86_VARIANTS
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
#endif
namespace avx2 {
#define MSDA_TASKS_AVX2 1
#include "ms_deform_attn_cpu_tasks.h"
#undef MSDA_TASKS_AVX2
}  // namespace avx2
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#endif

template <typename scalar_t>
using TaskFn = void (*)(const Problem<scalar_t>&, int64_t, int64_t);

template <typename scalar_t, int FIXED_D>
TaskFn<scalar_t> pick(bool backward) {
#ifdef MSDA_X86_VARIANTS
  if (cpu_isa() == Isa::Avx2) {
    return backward ? avx2::backward_tasks<scalar_t, FIXED_D> : avx2::forward_tasks<scalar_t, FIXED_D>;
  }
#endif
  return backward ? baseline::backward_tasks<scalar_t, FIXED_D> : baseline::forward_tasks<scalar_t, FIXED_D>;
}

// 32 channels per head: d_model 256 with 8 heads (Deformable DETR, Mask2Former).
template <typename scalar_t>
void run_tasks(const Problem<scalar_t>& pr, int64_t tasks, bool backward) {
  const TaskFn<scalar_t> fn = pr.d.channels == 32 ? pick<scalar_t, 32>(backward) : pick<scalar_t, 0>(backward);
  parallel_tasks(tasks, [&](int64_t t) { fn(pr, t, t + 1); });
}

// [N, X, M, ...] -> a contiguous [N, M, X, ...] copy (value [N, S, M, D], sampling
// locations [N, Lq, M, L, P, 2], attention weights [N, Lq, M, L, P]). One head's
// pixels are then contiguous (D channels apart instead of M * D), which keeps a
// head's slice in cache and its pages in the TLB (in value's own layout a 1 KiB pixel
// stride, M = 8 and D = 32 floats, maps every row of a head to the same few cache
// sets), and a task for one head reads its locations and weights in whole cache lines
// instead of 96 bytes out of every 768.
at::Tensor head_major(const at::Tensor& t) { return t.transpose(1, 2).contiguous(); }

at::Tensor from_head_major(const at::Tensor& t) { return t.transpose(1, 2).contiguous(); }

template <typename scalar_t>
Problem<scalar_t> problem(const Dims& d, const Levels& lv, const at::Tensor& value, const at::Tensor& loc,
                          const at::Tensor& attn, const std::vector<scalar_t>& zero_row) {
  Problem<scalar_t> pr;
  pr.d = d;
  pr.lv = &lv;
  pr.value = value.const_data_ptr<scalar_t>();
  pr.loc = loc.const_data_ptr<scalar_t>();
  pr.attn = attn.const_data_ptr<scalar_t>();
  pr.zero_row = zero_row.data();
  return pr;
}

at::Tensor ms_deform_attn_cpu(const at::Tensor& value_in, const at::Tensor& spatial_shapes,
                              const at::Tensor& level_start_index,
                              const at::Tensor& sampling_loc_in, const at::Tensor& attn_in) {
  const Dims d = check_inputs(value_in, spatial_shapes, level_start_index, sampling_loc_in, attn_in);
  if (d.batch * d.queries * d.heads * d.channels == 0) {
    return at::zeros({d.batch, d.queries, d.heads * d.channels}, value_in.options());
  }
  const at::Tensor value = head_major(value_in);
  const at::Tensor loc = head_major(sampling_loc_in);
  const at::Tensor attn = head_major(attn_in);
  // Every output element is written by exactly one task (zeros where nothing is sampled).
  at::Tensor out = at::empty({d.batch, d.queries, d.heads * d.channels}, value.options());
  const Levels lv = read_levels(spatial_shapes, level_start_index);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, value.scalar_type(), "ms_deform_attn_cpu", [&] {
    const std::vector<scalar_t> zero_row(d.channels, scalar_t(0));
    Problem<scalar_t> pr = problem<scalar_t>(d, lv, value, loc, attn, zero_row);
    pr.out = out.data_ptr<scalar_t>();
    // Enough queries per task that scheduling costs nothing, few enough to balance.
    const int64_t work_per_query = std::max<int64_t>(1, d.levels * d.points * 4 * d.channels);
    pr.query_block = std::max<int64_t>(1, std::min<int64_t>(d.queries, (1 << 16) / work_per_query));
    const int64_t blocks = (d.queries + pr.query_block - 1) / pr.query_block;
    run_tasks(pr, d.batch * d.heads * blocks, /*backward=*/false);
  });
  return out;
}

// Query blocks per (batch, head) in the backward: 1 unless there are fewer
// (batch, head) pairs than twice the threads.
int64_t backward_chunks(const Dims& d) {
  const int64_t pairs = d.batch * d.heads;
  const int64_t wanted = 2 * static_cast<int64_t>(at::get_num_threads());
  if (pairs <= 0 || pairs >= wanted) return 1;
  return std::max<int64_t>(1, std::min<int64_t>(d.queries, (wanted + pairs - 1) / pairs));
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> ms_deform_attn_backward_cpu(
    const at::Tensor& grad_out_in, const at::Tensor& value_in, const at::Tensor& spatial_shapes,
    const at::Tensor& level_start_index, const at::Tensor& sampling_loc_in,
    const at::Tensor& attn_in) {
  const Dims d = check_inputs(value_in, spatial_shapes, level_start_index, sampling_loc_in, attn_in);
  check_grad_output(grad_out_in, d, value_in);
  const at::Tensor grad_out = grad_out_in.contiguous();
  if (grad_out.numel() == 0 || value_in.numel() == 0) {
    return std::make_tuple(at::zeros_like(value_in, at::MemoryFormat::Contiguous),
                           at::zeros_like(sampling_loc_in, at::MemoryFormat::Contiguous),
                           at::zeros_like(attn_in, at::MemoryFormat::Contiguous));
  }
  const at::Tensor value = head_major(value_in);
  const at::Tensor loc = head_major(sampling_loc_in);
  const at::Tensor attn = head_major(attn_in);
  // Written head-major like loc/attn (samples outside the maps stay zero), permuted back at the end.
  at::Tensor grad_loc_hm = at::zeros_like(loc);
  at::Tensor grad_attn_hm = at::zeros_like(attn);
  const Levels lv = read_levels(spatial_shapes, level_start_index);
  const int64_t chunks = backward_chunks(d);
  at::Tensor grad_value;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, value.scalar_type(), "ms_deform_attn_backward_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    // grad_value is accumulated head-major in acc_t, one copy per query block,
    // then summed over the blocks and copied to value's layout and dtype.
    at::Tensor accum = at::zeros({chunks, d.batch, d.heads, d.spatial, d.channels},
                                 value.options().dtype(c10::CppTypeToScalarType<acc_t>::value));
    const std::vector<scalar_t> zero_row(d.channels, scalar_t(0));
    Problem<scalar_t> pr = problem<scalar_t>(d, lv, value, loc, attn, zero_row);
    pr.grad_out = grad_out.const_data_ptr<scalar_t>();
    pr.grad_value = accum.data_ptr<acc_t>();
    pr.grad_loc = grad_loc_hm.data_ptr<scalar_t>();
    pr.grad_attn = grad_attn_hm.data_ptr<scalar_t>();
    pr.chunks = chunks;
    pr.chunk_queries = (d.queries + chunks - 1) / chunks;
    run_tasks(pr, chunks * d.batch * d.heads, /*backward=*/true);
    const at::Tensor total = chunks == 1 ? accum.select(0, 0) : accum.sum(0);
    grad_value = at::empty({d.batch, d.spatial, d.heads, d.channels}, value.options());
    grad_value.copy_(total.permute({0, 2, 1, 3}));
  });
  return std::make_tuple(grad_value, from_head_major(grad_loc_hm), from_head_major(grad_attn_hm));
}

}  // namespace

// Which instruction set the CPU kernels use in this process: "avx2" or "baseline".
std::string cpu_kernel_isa() {
  switch (cpu_isa()) {
    case Isa::Avx2:
      return "avx2";
    default:
      return "baseline";
  }
}

}  // namespace msda
}  // namespace envdoctor

TORCH_LIBRARY_IMPL(envdoctor, CPU, m) {
  m.impl("ms_deform_attn", &envdoctor::msda::ms_deform_attn_cpu);
  m.impl("ms_deform_attn_backward", &envdoctor::msda::ms_deform_attn_backward_cpu);
}
