// CPU kernels of MSDeformAttn.
//
//  * Both kernels first copy `value` head-major ([N, S, M, D] -> [N, M, S, D]), and
//    the sampling locations and weights too ([N, Lq, M, ...] -> [N, M, Lq, ...]):
//    one head's pixels are then contiguous, so a head's slice (S x D, about 0.7 MB
//    for Mask2Former at 512x512) stays in the core's L2 cache and TLB whatever the
//    sampling pattern. In value's own layout the 1 KiB pixel stride (M = 8,
//    D = 32 floats) maps all rows of a head onto a sixteenth of the cache sets.
//    The copies and zero fills of a pass run in one parallel region (run_jobs).
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
#include <ATen/ops/empty_like.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/zeros_like.h>
#include <torch/library.h>

#include <algorithm>
#include <atomic>
#include <cstring>
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

// Layout changes and zero fills, all done in one parallel region per call: each
// at:: op is a parallel region of its own, and on a loaded machine every region
// costs a wait until all its threads have been scheduled.
//
// [N, X, M, ...] <-> [N, M, X, ...] copies (value [N, S, M, D], sampling locations
// [N, Lq, M, L, P, 2], attention weights [N, Lq, M, L, P]). Head-major, one head's
// pixels are contiguous (D channels apart instead of M * D), which keeps a head's
// slice in cache and its pages in the TLB (in value's own layout a 1 KiB pixel
// stride, M = 8 and D = 32 floats, maps every row of a head to the same few cache
// sets), and a task for one head reads its locations and weights in whole cache
// lines instead of 96 bytes out of every 768.
struct Job {
  const char* src;  // [A, B, C, row bytes], contiguous; nullptr: zero-fill dst
  char* dst;        // [A, C, B, row bytes]
  int64_t A, B, C, row;
};

Job transpose12(const at::Tensor& src, const at::Tensor& dst) {
  const int64_t row = src.dim() > 3 ? src.numel() / std::max<int64_t>(1, src.size(0) * src.size(1) * src.size(2)) : 1;
  return Job{static_cast<const char*>(src.const_data_ptr()), static_cast<char*>(dst.data_ptr()), src.size(0),
             src.size(1), src.size(2), row * static_cast<int64_t>(src.element_size())};
}

Job zero_fill(const at::Tensor& dst) {
  return Job{nullptr, static_cast<char*>(dst.data_ptr()), 1, 1, 1, dst.numel() * static_cast<int64_t>(dst.element_size())};
}

void run_jobs(const std::vector<Job>& jobs) {
  struct Block {
    size_t job;
    int64_t begin, end;  // (a, b) pairs, or bytes for a fill
  };
  std::vector<Block> blocks;
  constexpr int64_t kBlockBytes = 256 << 10;
  for (size_t j = 0; j < jobs.size(); ++j) {
    const Job& job = jobs[j];
    const int64_t units = job.src ? job.A * job.B : job.row;
    const int64_t unit_bytes = job.src ? job.C * job.row : 1;
    const int64_t step = std::max<int64_t>(1, kBlockBytes / std::max<int64_t>(1, unit_bytes));
    for (int64_t u = 0; u < units; u += step) blocks.push_back({j, u, std::min(units, u + step)});
  }
  parallel_tasks(static_cast<int64_t>(blocks.size()), [&](int64_t t) {
    const Block& blk = blocks[t];
    const Job& job = jobs[blk.job];
    if (!job.src) {
      std::memset(job.dst + blk.begin, 0, blk.end - blk.begin);
      return;
    }
    for (int64_t pair = blk.begin; pair < blk.end; ++pair) {
      const int64_t a = pair / job.B, b = pair % job.B;
      for (int64_t c = 0; c < job.C; ++c) {
        std::memcpy(job.dst + ((a * job.C + c) * job.B + b) * job.row, job.src + (pair * job.C + c) * job.row,
                    job.row);
      }
    }
  });
}

// Empty [N, M, X, ...] for a [N, X, M, ...] tensor (and back: the same swap).
at::Tensor swapped12(const at::Tensor& t) {
  std::vector<int64_t> sizes(t.sizes().begin(), t.sizes().end());
  std::swap(sizes[1], sizes[2]);
  return at::empty(sizes, t.options());
}

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
  const at::Tensor value_c = value_in.contiguous(), loc_c = sampling_loc_in.contiguous();
  const at::Tensor attn_c = attn_in.contiguous();
  const at::Tensor value = swapped12(value_c), loc = swapped12(loc_c), attn = swapped12(attn_c);
  run_jobs({transpose12(value_c, value), transpose12(loc_c, loc), transpose12(attn_c, attn)});
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
  const at::Tensor value_c = value_in.contiguous(), loc_c = sampling_loc_in.contiguous();
  const at::Tensor attn_c = attn_in.contiguous();
  const at::Tensor value = swapped12(value_c), loc = swapped12(loc_c), attn = swapped12(attn_c);
  // Written head-major like loc/attn (samples outside the maps stay zero), swapped back at the end.
  const at::Tensor grad_loc_hm = at::empty_like(loc), grad_attn_hm = at::empty_like(attn);
  const Levels lv = read_levels(spatial_shapes, level_start_index);
  const int64_t chunks = backward_chunks(d);
  at::Tensor grad_value, grad_loc, grad_attn;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, value.scalar_type(), "ms_deform_attn_backward_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    // grad_value is accumulated head-major in acc_t, one copy per query block,
    // then summed over the blocks and copied to value's layout and dtype.
    const at::Tensor accum = at::empty({chunks, d.batch, d.heads, d.spatial, d.channels},
                                       value.options().dtype(c10::CppTypeToScalarType<acc_t>::value));
    run_jobs({transpose12(value_c, value), transpose12(loc_c, loc), transpose12(attn_c, attn),
              zero_fill(grad_loc_hm), zero_fill(grad_attn_hm), zero_fill(accum)});
    const std::vector<scalar_t> zero_row(d.channels, scalar_t(0));
    Problem<scalar_t> pr = problem<scalar_t>(d, lv, value, loc, attn, zero_row);
    pr.grad_out = grad_out.const_data_ptr<scalar_t>();
    pr.grad_value = accum.data_ptr<acc_t>();
    pr.grad_loc = grad_loc_hm.data_ptr<scalar_t>();
    pr.grad_attn = grad_attn_hm.data_ptr<scalar_t>();
    pr.chunks = chunks;
    pr.chunk_queries = (d.queries + chunks - 1) / chunks;
    run_tasks(pr, chunks * d.batch * d.heads, /*backward=*/true);
    grad_value = at::empty({d.batch, d.spatial, d.heads, d.channels}, value.options());
    grad_loc = swapped12(grad_loc_hm);
    grad_attn = swapped12(grad_attn_hm);
    std::vector<Job> back = {transpose12(grad_loc_hm, grad_loc), transpose12(grad_attn_hm, grad_attn)};
    if (std::is_same<acc_t, scalar_t>::value && chunks == 1) {
      back.push_back(transpose12(accum.select(0, 0), grad_value));
      run_jobs(back);
    } else {
      run_jobs(back);
      grad_value.copy_((chunks == 1 ? accum.select(0, 0) : accum.sum(0)).permute({0, 2, 1, 3}));
    }
  });
  return std::make_tuple(grad_value, grad_loc, grad_attn);
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
