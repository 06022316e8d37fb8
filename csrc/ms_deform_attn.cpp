// Schema of the envdoctor MSDeformAttn operators and the input checks shared by
// every backend. The device files only register kernels for their dispatch key
// (TORCH_LIBRARY_IMPL); autograd and the fake (meta) kernels are registered once,
// from Python, in envdoctor/ops/_registration.py.
#include "ms_deform_attn.h"

#include <torch/library.h>

#include <sstream>

namespace envdoctor {
namespace msda {

namespace {

std::string sizes_str(const at::Tensor& t) {
  std::ostringstream out;
  out << t.sizes();
  return out.str();
}

void check_same_device(const at::Tensor& value, const at::Tensor& other, const char* name) {
  TORCH_CHECK(other.device() == value.device(), "ms_deform_attn: ", name,
              " must be on the same device as value (", value.device(), "), got ",
              other.device());
}

}  // namespace

Dims check_inputs(const at::Tensor& value, const at::Tensor& spatial_shapes,
                  const at::Tensor& level_start_index, const at::Tensor& sampling_loc,
                  const at::Tensor& attn_weight) {
  TORCH_CHECK(value.dim() == 4, "ms_deform_attn: value must be 4-D [N, S, M, D], got shape ",
              sizes_str(value));
  Dims d;
  d.batch = value.size(0);
  d.spatial = value.size(1);
  d.heads = value.size(2);
  d.channels = value.size(3);

  TORCH_CHECK(spatial_shapes.dim() == 2 && spatial_shapes.size(1) == 2,
              "ms_deform_attn: spatial_shapes must be [L, 2], got shape ", sizes_str(spatial_shapes));
  TORCH_CHECK(spatial_shapes.scalar_type() == at::kLong,
              "ms_deform_attn: spatial_shapes must be int64, got ", spatial_shapes.scalar_type());
  d.levels = spatial_shapes.size(0);
  TORCH_CHECK(level_start_index.dim() == 1 && level_start_index.size(0) == d.levels,
              "ms_deform_attn: level_start_index must be [L] = [", d.levels, "], got shape ",
              sizes_str(level_start_index));
  TORCH_CHECK(level_start_index.scalar_type() == at::kLong,
              "ms_deform_attn: level_start_index must be int64, got ",
              level_start_index.scalar_type());

  TORCH_CHECK(sampling_loc.dim() == 6, "ms_deform_attn: sampling_locations must be 6-D "
              "[N, Lq, M, L, P, 2], got shape ", sizes_str(sampling_loc));
  d.queries = sampling_loc.size(1);
  d.points = sampling_loc.size(4);
  TORCH_CHECK(sampling_loc.size(0) == d.batch && sampling_loc.size(2) == d.heads &&
                  sampling_loc.size(3) == d.levels && sampling_loc.size(5) == 2,
              "ms_deform_attn: sampling_locations must be [N, Lq, M, L, P, 2] = [", d.batch,
              ", Lq, ", d.heads, ", ", d.levels, ", P, 2], got shape ", sizes_str(sampling_loc));
  TORCH_CHECK(attn_weight.dim() == 5 && attn_weight.size(0) == d.batch &&
                  attn_weight.size(1) == d.queries && attn_weight.size(2) == d.heads &&
                  attn_weight.size(3) == d.levels && attn_weight.size(4) == d.points,
              "ms_deform_attn: attention_weights must be [N, Lq, M, L, P] = [", d.batch, ", ",
              d.queries, ", ", d.heads, ", ", d.levels, ", ", d.points, "], got shape ",
              sizes_str(attn_weight));

  TORCH_CHECK(sampling_loc.scalar_type() == value.scalar_type(),
              "ms_deform_attn: sampling_locations must have value's dtype ", value.scalar_type(),
              ", got ", sampling_loc.scalar_type());
  TORCH_CHECK(attn_weight.scalar_type() == value.scalar_type(),
              "ms_deform_attn: attention_weights must have value's dtype ", value.scalar_type(),
              ", got ", attn_weight.scalar_type());
  check_same_device(value, spatial_shapes, "spatial_shapes");
  check_same_device(value, level_start_index, "level_start_index");
  check_same_device(value, sampling_loc, "sampling_locations");
  check_same_device(value, attn_weight, "attention_weights");
  return d;
}

void check_grad_output(const at::Tensor& grad_output, const Dims& d, const at::Tensor& value) {
  TORCH_CHECK(grad_output.dim() == 3 && grad_output.size(0) == d.batch &&
                  grad_output.size(1) == d.queries && grad_output.size(2) == d.heads * d.channels,
              "ms_deform_attn_backward: grad_output must be [N, Lq, M*D] = [", d.batch, ", ",
              d.queries, ", ", d.heads * d.channels, "], got shape ", sizes_str(grad_output));
  TORCH_CHECK(grad_output.scalar_type() == value.scalar_type(),
              "ms_deform_attn_backward: grad_output must have value's dtype ", value.scalar_type(),
              ", got ", grad_output.scalar_type());
  check_same_device(value, grad_output, "grad_output");
}

namespace {

// 0 for a CPU-only build. Python compares it with torch.version.cuda at load time.
int64_t cuda_version() {
#ifdef WITH_CUDA
  return cuda_runtime_version_compiled();
#else
  return 0;
#endif
}

}  // namespace

}  // namespace msda
}  // namespace envdoctor

TORCH_LIBRARY(envdoctor, m) {
  m.def(
      "ms_deform_attn(Tensor value, Tensor spatial_shapes, Tensor level_start_index, "
      "Tensor sampling_locations, Tensor attention_weights) -> Tensor");
  m.def(
      "ms_deform_attn_backward(Tensor grad_output, Tensor value, Tensor spatial_shapes, "
      "Tensor level_start_index, Tensor sampling_locations, Tensor attention_weights) "
      "-> (Tensor, Tensor, Tensor)");
  m.def("_cuda_version() -> int", &envdoctor::msda::cuda_version);
  m.def("_cpu_isa() -> str", &envdoctor::msda::cpu_kernel_isa);
}
