// Declarations shared by the schema file and the device kernels.
#pragma once

#include <ATen/core/Tensor.h>

#include <string>

namespace envdoctor {
namespace msda {

// Sizes of one call, after validation.
struct Dims {
  int64_t batch;     // N
  int64_t spatial;   // S = sum over levels of H * W
  int64_t heads;     // M
  int64_t channels;  // D (per head)
  int64_t queries;   // Lq
  int64_t levels;    // L
  int64_t points;    // P
};

// Checks ranks, sizes, dtypes and devices; every message states expected vs got.
Dims check_inputs(const at::Tensor& value, const at::Tensor& spatial_shapes,
                  const at::Tensor& level_start_index, const at::Tensor& sampling_loc,
                  const at::Tensor& attn_weight);

void check_grad_output(const at::Tensor& grad_output, const Dims& d, const at::Tensor& value);

// Instruction set the CPU kernels run with in this process: "avx512", "avx2" or
// "baseline" (chosen at run time, see cpu/ms_deform_attn_cpu.cpp).
std::string cpu_kernel_isa();

#ifdef WITH_CUDA
// CUDART_VERSION the CUDA kernels were compiled against (e.g. 13000).
int64_t cuda_runtime_version_compiled();
#endif

}  // namespace msda
}  // namespace envdoctor
