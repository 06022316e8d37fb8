// The task loops of the MSDeformAttn CPU kernels. Included by
// ms_deform_attn_cpu.cpp once per instruction set, each time inside its own
// namespace and compiler target region (no include guard on purpose):
//   MSDA_TASKS_AVX2 = 0: portable C++ loops the compiler vectorises for the
//                        baseline ISA of the build (SSE2 on x86-64, NEON on arm64);
//   MSDA_TASKS_AVX2 = 1: the same loops, plus AVX2/FMA intrinsics for float
//                        inputs whose channel count is a multiple of 8.
// Expects Problem, Sample, bilinear_setup and location_grads in scope.

// Corner k of a sample: where its D channels start (the zero row when the corner
// is outside the map) and its weight (attention x bilinear, 0 when outside).
template <typename scalar_t, typename acc_t>
MSDA_ALWAYS_INLINE void corners(const Sample<acc_t>& s, acc_t attn, const scalar_t* level_base, int64_t D,
                                const scalar_t* zero_row, const scalar_t* ptr[4], acc_t weight[4]) {
  for (int k = 0; k < 4; ++k) {
    const bool inside = s.offset[k] >= 0;
    ptr[k] = inside ? level_base + s.offset[k] * D : zero_row;
    weight[k] = inside ? attn * s.weight[k] : acc_t(0);
  }
}

// acc[c] += sum_k w[k] * v[k][c]
template <typename scalar_t, typename acc_t>
MSDA_ALWAYS_INLINE void gather4(acc_t* __restrict__ acc, const scalar_t* const v[4], const acc_t w[4], int64_t D) {
  const scalar_t* __restrict__ v0 = v[0];
  const scalar_t* __restrict__ v1 = v[1];
  const scalar_t* __restrict__ v2 = v[2];
  const scalar_t* __restrict__ v3 = v[3];
#pragma omp simd
  for (int64_t c = 0; c < D; ++c) {
    acc[c] += w[0] * static_cast<acc_t>(v0[c]) + w[1] * static_cast<acc_t>(v1[c]) +
              w[2] * static_cast<acc_t>(v2[c]) + w[3] * static_cast<acc_t>(v3[c]);
  }
}

// dot[k] = g . v[k] for the four corners.
template <typename scalar_t, typename acc_t>
MSDA_ALWAYS_INLINE void dot4(acc_t dot[4], const acc_t* __restrict__ g, const scalar_t* const v[4], int64_t D) {
  const scalar_t* __restrict__ v0 = v[0];
  const scalar_t* __restrict__ v1 = v[1];
  const scalar_t* __restrict__ v2 = v[2];
  const scalar_t* __restrict__ v3 = v[3];
  acc_t d0 = 0, d1 = 0, d2 = 0, d3 = 0;
#pragma omp simd reduction(+ : d0, d1, d2, d3)
  for (int64_t c = 0; c < D; ++c) {
    const acc_t gc = g[c];
    d0 += gc * static_cast<acc_t>(v0[c]);
    d1 += gc * static_cast<acc_t>(v1[c]);
    d2 += gc * static_cast<acc_t>(v2[c]);
    d3 += gc * static_cast<acc_t>(v3[c]);
  }
  dot[0] = d0;
  dot[1] = d1;
  dot[2] = d2;
  dot[3] = d3;
}

#if MSDA_TASKS_AVX2
// float, D a multiple of 8: eight channels per register.
MSDA_ALWAYS_INLINE void gather4_avx2(float* acc, const float* const v[4], const float w[4], int64_t D) {
  const __m256 w0 = _mm256_set1_ps(w[0]), w1 = _mm256_set1_ps(w[1]);
  const __m256 w2 = _mm256_set1_ps(w[2]), w3 = _mm256_set1_ps(w[3]);
  for (int64_t c = 0; c < D; c += 8) {
    __m256 a = _mm256_loadu_ps(acc + c);
    a = _mm256_fmadd_ps(w0, _mm256_loadu_ps(v[0] + c), a);
    a = _mm256_fmadd_ps(w1, _mm256_loadu_ps(v[1] + c), a);
    a = _mm256_fmadd_ps(w2, _mm256_loadu_ps(v[2] + c), a);
    a = _mm256_fmadd_ps(w3, _mm256_loadu_ps(v[3] + c), a);
    _mm256_storeu_ps(acc + c, a);
  }
}

// The four dot products with one horizontal reduction for all of them
// (three hadds and one add instead of a reduction per corner).
MSDA_ALWAYS_INLINE void dot4_avx2(float dot[4], const float* g, const float* const v[4], int64_t D) {
  __m256 p0 = _mm256_setzero_ps(), p1 = _mm256_setzero_ps(), p2 = _mm256_setzero_ps(), p3 = _mm256_setzero_ps();
  for (int64_t c = 0; c < D; c += 8) {
    const __m256 gc = _mm256_loadu_ps(g + c);
    p0 = _mm256_fmadd_ps(gc, _mm256_loadu_ps(v[0] + c), p0);
    p1 = _mm256_fmadd_ps(gc, _mm256_loadu_ps(v[1] + c), p1);
    p2 = _mm256_fmadd_ps(gc, _mm256_loadu_ps(v[2] + c), p2);
    p3 = _mm256_fmadd_ps(gc, _mm256_loadu_ps(v[3] + c), p3);
  }
  const __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(p0, p1), _mm256_hadd_ps(p2, p3));
  _mm_storeu_ps(dot, _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1)));
}

MSDA_ALWAYS_INLINE void axpy_avx2(float* gv, float w, const float* g, int64_t D) {
  const __m256 wv = _mm256_set1_ps(w);
  for (int64_t c = 0; c < D; c += 8) {
    _mm256_storeu_ps(gv + c, _mm256_fmadd_ps(wv, _mm256_loadu_ps(g + c), _mm256_loadu_ps(gv + c)));
  }
}
#endif

// Forward tasks [begin, end): a task is (batch, head, block of queries) and writes
// the output rows of that head for those queries. value is head-major [N, M, S, D],
// sampling locations and attention weights too ([N, M, Lq, L, P(, 2)]).
// FIXED_D > 0 compiles the channel loops for that channel count; 0 handles any.
template <typename scalar_t, int FIXED_D>
void forward_tasks(const Problem<scalar_t>& pr, int64_t begin, int64_t end) {
  using acc_t = at::opmath_type<scalar_t>;
  const Dims& d = pr.d;
  const int64_t D = FIXED_D > 0 ? FIXED_D : d.channels, M = d.heads, L = d.levels, P = d.points;
  const int64_t S = d.spatial, Lq = d.queries;
  const int64_t blocks = (Lq + pr.query_block - 1) / pr.query_block;
#if MSDA_TASKS_AVX2
  const bool vector_path = std::is_same<scalar_t, float>::value && D % 8 == 0;
#endif
  acc_t fixed_acc[FIXED_D > 0 ? FIXED_D : 1];
  std::vector<acc_t> dynamic_acc(FIXED_D > 0 ? 0 : D);
  acc_t* __restrict__ acc = FIXED_D > 0 ? fixed_acc : dynamic_acc.data();

  for (int64_t task = begin; task < end; ++task) {
    const int64_t block = task % blocks, m = (task / blocks) % M, b = task / (blocks * M);
    const int64_t q_end = std::min(Lq, (block + 1) * pr.query_block);
    const scalar_t* head_base = pr.value + (b * M + m) * S * D;
    for (int64_t q = block * pr.query_block; q < q_end; ++q) {
      const int64_t row = b * Lq + q;
      for (int64_t c = 0; c < D; ++c) acc[c] = acc_t(0);
      const int64_t head_row = ((b * M + m) * Lq + q) * L;  // loc/attn are head-major
      for (int64_t l = 0; l < L; ++l) {
        const int64_t H = pr.lv->height[l], W = pr.lv->width[l];
        const scalar_t* level_base = head_base + pr.lv->start[l] * D;
        for (int64_t p = 0; p < P; ++p) {
          const int64_t idx = (head_row + l) * P + p;
          Sample<acc_t> s;
          if (!bilinear_setup<acc_t>(static_cast<acc_t>(pr.loc[2 * idx]), static_cast<acc_t>(pr.loc[2 * idx + 1]),
                                     H, W, s)) {
            continue;
          }
          const scalar_t* v[4];
          acc_t w[4];
          corners<scalar_t, acc_t>(s, static_cast<acc_t>(pr.attn[idx]), level_base, D, pr.zero_row, v, w);
#if MSDA_TASKS_AVX2
          if constexpr (std::is_same<scalar_t, float>::value) {
            if (vector_path) {
              gather4_avx2(acc, v, w, D);
              continue;
            }
          }
#endif
          gather4<scalar_t, acc_t>(acc, v, w, D);
        }
      }
      scalar_t* __restrict__ o = pr.out + (row * M + m) * D;
      for (int64_t c = 0; c < D; ++c) o[c] = static_cast<scalar_t>(acc[c]);
    }
  }
}

// Backward tasks [begin, end): a task is (query block, batch, head) and is the only
// writer of its block's copy of grad_value for that head (all levels).
template <typename scalar_t, int FIXED_D>
void backward_tasks(const Problem<scalar_t>& pr, int64_t begin, int64_t end) {
  using acc_t = at::opmath_type<scalar_t>;
  const Dims& d = pr.d;
  const int64_t D = FIXED_D > 0 ? FIXED_D : d.channels, M = d.heads, L = d.levels, P = d.points;
  const int64_t S = d.spatial, Lq = d.queries, N = d.batch;
#if MSDA_TASKS_AVX2
  const bool vector_path = std::is_same<scalar_t, float>::value && D % 8 == 0;
#endif
  std::vector<acc_t> g_buffer(std::is_same<scalar_t, acc_t>::value ? 0 : D);

  for (int64_t task = begin; task < end; ++task) {
    const int64_t m = task % M, b = (task / M) % N, chunk = task / (M * N);
    const int64_t q_begin = chunk * pr.chunk_queries, q_end = std::min(Lq, q_begin + pr.chunk_queries);
    const int64_t head_offset = (b * M + m) * S * D;
    const scalar_t* head_base = pr.value + head_offset;
    acc_t* grad_head_base = pr.grad_value + chunk * (N * M * S * D) + head_offset;

    for (int64_t q = q_begin; q < q_end; ++q) {
      const int64_t row = b * Lq + q;
      const scalar_t* g_in = pr.grad_out + (row * M + m) * D;
      // grad_out row in acc_t: read in place when it already is, else converted once.
      const acc_t* __restrict__ g;
      if constexpr (std::is_same<scalar_t, acc_t>::value) {
        g = g_in;
      } else {
        for (int64_t c = 0; c < D; ++c) g_buffer[c] = static_cast<acc_t>(g_in[c]);
        g = g_buffer.data();
      }
      const int64_t head_row = ((b * M + m) * Lq + q) * L;  // loc/attn are head-major
      for (int64_t l = 0; l < L; ++l) {
        const int64_t H = pr.lv->height[l], W = pr.lv->width[l];
        const scalar_t* level_base = head_base + pr.lv->start[l] * D;
        acc_t* grad_level_base = grad_head_base + pr.lv->start[l] * D;
        for (int64_t p = 0; p < P; ++p) {
          const int64_t idx = (head_row + l) * P + p;
          Sample<acc_t> s;
          if (!bilinear_setup<acc_t>(static_cast<acc_t>(pr.loc[2 * idx]), static_cast<acc_t>(pr.loc[2 * idx + 1]),
                                     H, W, s)) {
            continue;
          }
          const acc_t a = static_cast<acc_t>(pr.attn[idx]);
          const scalar_t* v[4];
          acc_t w[4];
          corners<scalar_t, acc_t>(s, a, level_base, D, pr.zero_row, v, w);
          acc_t dot[4];
          bool done = false;
#if MSDA_TASKS_AVX2
          if constexpr (std::is_same<scalar_t, float>::value) {
            if (vector_path) {
              dot4_avx2(dot, g, v, D);
              for (int k = 0; k < 4; ++k) {
                if (s.offset[k] >= 0) axpy_avx2(grad_level_base + s.offset[k] * D, w[k], g, D);
              }
              done = true;
            }
          }
#endif
          if (!done) {
            dot4<scalar_t, acc_t>(dot, g, v, D);
            for (int k = 0; k < 4; ++k) {
              if (s.offset[k] < 0) continue;
              acc_t* __restrict__ gv = grad_level_base + s.offset[k] * D;
              const acc_t wk = w[k];
#pragma omp simd
              for (int64_t c = 0; c < D; ++c) gv[c] += wk * g[c];
            }
          }
          acc_t grad_attn, grad_x, grad_y;
          location_grads<acc_t>(s, dot, a, H, W, grad_attn, grad_x, grad_y);
          pr.grad_attn[idx] = static_cast<scalar_t>(grad_attn);
          pr.grad_loc[2 * idx] = static_cast<scalar_t>(grad_x);
          pr.grad_loc[2 * idx + 1] = static_cast<scalar_t>(grad_y);
        }
      }
    }
  }
}
