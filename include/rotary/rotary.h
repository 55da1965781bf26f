/* rotary: rotary position embedding (RoPE) for CPU inference — the stable C ABI.
 *
 * Names and meanings here are fixed: new functions, enum values and config
 * fields are only ever added, never renamed or reordered. rotary_config
 * records its own size (struct_size, set by rotary_config_init); fields are
 * added only at its end, with 0 as their default, and the library reads the
 * fields a caller's struct has and takes the defaults of those it lacks: a
 * program built against an older header keeps working with a newer library
 * (ABI 1, soname librotary.so.1, since 0.2.0; docs/api.md).
 *
 * Every function that can fail returns a rotary_status; on failure nothing is
 * written to the caller's tensor and rotary_last_error() holds a message that
 * names the bad argument and its value.
 */
#ifndef ROTARY_ROTARY_H_
#define ROTARY_ROTARY_H_

#include <stddef.h>
#include <stdint.h>

#if defined(ROTARY_STATIC)
#define ROTARY_API
#elif defined(_WIN32)
#ifdef ROTARY_BUILDING_LIBRARY
#define ROTARY_API __declspec(dllexport)
#else
#define ROTARY_API __declspec(dllimport)
#endif
#else
#define ROTARY_API __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Opaque: frequency plan + cached cos/sin tables. rotary_apply* on one object
 * may be called from many threads at once. */
typedef struct rotary_rope rotary_rope;

typedef enum {
  ROTARY_OK = 0,
  ROTARY_INVALID_ARGUMENT = 1,
  ROTARY_OUT_OF_RANGE = 2,
  ROTARY_OUT_OF_MEMORY = 3,
  ROTARY_UNSUPPORTED = 4
} rotary_status;

/* Which components form a rotated pair (R = rotary_dim, M = R / 2):
 * NEOX ("half-split", HF rotate_half, ggml mode 2): pair i is (x[i], x[i + M]).
 * INTERLEAVED ("GPT-J", Meta's complex view, ggml mode 0): pair i is (x[2i], x[2i + 1]). */
typedef enum { ROTARY_NEOX = 0, ROTARY_INTERLEAVED = 1 } rotary_pairing;

typedef enum { ROTARY_F32 = 0, ROTARY_F16 = 1, ROTARY_BF16 = 2 } rotary_dtype;

/* How the per-pair frequencies are made (docs/math.md §2, §3; HF rope_scaling
 * "rope_type" in parentheses). The fields each scheme reads are listed in
 * rotary_config; every other scaling field is ignored by it. */
typedef enum {
  ROTARY_SCALING_DEFAULT = 0,      /* ("default") w_i = base^(-2i/R) */
  ROTARY_SCALING_LINEAR = 1,       /* ("linear") position interpolation: w_i / factor */
  ROTARY_SCALING_NTK = 2,          /* ("ntk") static NTK-aware: base' = base * (alpha or factor)^(R/(R-2)) */
  ROTARY_SCALING_DYNAMIC_NTK = 3,  /* ("dynamic") base recomputed from each call's length */
  ROTARY_SCALING_YARN = 4,         /* ("yarn") ramp between w_i and w_i / factor, plus attention factor */
  ROTARY_SCALING_LLAMA3 = 5,       /* ("llama3") Llama 3.1 three-band rule on wavelength */
  ROTARY_SCALING_LONGROPE = 6,     /* ("longrope", "su") w_i / short_factor[i] or / long_factor[i] */
  ROTARY_SCALING_FREQ_FACTORS = 7, /* ggml freq_factors: w_i / freq_factors[i] */
  ROTARY_SCALING_INV_FREQ = 8,     /* the caller's inv_freq vector, as given */
  ROTARY_SCALING_BOUNDED = 9       /* He & Xu: pi / (2 n_max) * w_i, positions < n_max */
} rotary_scaling;

/* Where the cos/sin values of a position come from (docs/table-memory.md).
 * Every mode gives the same rotation; they trade memory for a little work per
 * (batch, seq) row and, for ON_THE_FLY, a few f32 ulps of accuracy. */
typedef enum {
  ROTARY_TABLE_AUTO = 0,      /* FULL when max_positions rows of it fit the cache budget, else COMPACT */
  ROTARY_TABLE_FULL = 1,      /* a row per position: rotary_dim floats (neox: cos and sin of each
                                 pair) or 2 * rotary_dim (interleaved); 131072 positions at
                                 head_dim 128 (neox) = 64 MiB */
  ROTARY_TABLE_COMPACT = 2,   /* rows of the K low positions and of the multiples of K (K ~ sqrt(max_positions)),
                                 combined by angle addition: 2K rows, 512 KiB for the example above */
  ROTARY_TABLE_ON_THE_FLY = 3, /* no rows: cos/sin evaluated per row from inv_freq (exact argument
                                  reduction in double, f32 sin/cos): 0 bytes, a few f32 ulps */
  ROTARY_TABLE_BORROWED = 4     /* the caller's cos/sin (rotary_create_borrowed): reported by
                                   rotary_table_mode_of, not a config value */
} rotary_table_mode;

/* A caller's array of `count` doubles. Read only during the call it is passed
 * to: rotary_create copies it, so it may be freed right after. */
typedef struct {
  const double* values;
  int64_t count;
} rotary_array;

typedef struct {
  uint32_t struct_size;   /* sizeof(rotary_config) of the caller's header: set by rotary_config_init. */
  int32_t head_dim;       /* D: even, 2..ROTARY_MAX_HEAD_DIM. Default 128. */
  int32_t rotary_dim;     /* even, 2..head_dim; the first rotary_dim components rotate,
                             the rest are left untouched. 0 (the default): head_dim. */
  rotary_pairing pairing; /* Default ROTARY_NEOX. */
  double base;            /* theta base, finite and > 1. Default 10000. */
  int64_t max_positions;  /* positions the table covers up front (built on the first
                             apply), >= 1. Default 4096. Longer positions grow it. */
  int64_t position_limit; /* positions must be < this; bounds table memory. Default 2^24. */

  /* Frequency scaling: the model config's rope_scaling block, under HF's names.
   * 0 means "not given" wherever a default or a derivation exists (see each field).
   * R = rotary_dim, M = R / 2, L0 = the original context length. */
  rotary_scaling scaling; /* rope_type. Default ROTARY_SCALING_DEFAULT. */
  double factor;          /* s, > 0. LINEAR, NTK, DYNAMIC_NTK, YARN, LONGROPE: if 0, derived as
                             max_position_embeddings / original_max_position_embeddings when both
                             are given, else an error. LLAMA3: 0 means 8. Default 0. */
  int64_t original_max_position_embeddings; /* L0, >= 2. YARN, LONGROPE: 0 falls back to
                             max_position_embeddings. LLAMA3: 0 means 8192. Default 0. */
  int64_t max_position_embeddings; /* the model config's top-level value, >= 2. DYNAMIC_NTK: its L0
                             (as HF), falling back to original_max_position_embeddings. Default 0. */
  double attention_factor; /* m, > 0: multiplies cos and sin (any scheme). 0: the scheme's own
                             (YARN 0.1 ln s + 1, LONGROPE sqrt(1 + ln s / ln L0), others 1). Default 0. */
  double alpha;           /* NTK-alpha (ExLlama alpha_value, Hunyuan "alpha"), > 0: NTK uses it in
                             place of factor: base' = base * alpha^(R/(R-2)). Default 0. */
  double beta_fast;       /* YARN: turns over L0 where the ramp starts. Default 32. */
  double beta_slow;       /* YARN: turns over L0 where the ramp ends, 0 < beta_slow <= beta_fast. Default 1. */
  double mscale;          /* YARN (DeepSeek), >= 0: with mscale_all_dim, m = g(s, mscale) /
                             g(s, mscale_all_dim), g(s, mu) = 0.1 mu ln s + 1. Default 0. */
  double mscale_all_dim;  /* YARN (DeepSeek), >= 0: see rotary_softmax_scale_factor. Default 0. */
  int32_t truncate;       /* YARN: 1 rounds the correction range to whole pairs (HF default), 0 not. Default 1. */
  double low_freq_factor;  /* LLAMA3, > 0. Default 1. */
  double high_freq_factor; /* LLAMA3, > low_freq_factor. Default 4. */
  rotary_array short_factor; /* LONGROPE: M divisors used while a call's length <= L0. */
  rotary_array long_factor;  /* LONGROPE: M divisors used once a call's length > L0. */
  rotary_array freq_factors; /* FREQ_FACTORS: M divisors, > 0 (ggml's rope_freqs / rope_factors). */
  rotary_array inv_freq;     /* INV_FREQ: the M frequencies to use, finite and >= 0. */
  int64_t n_max;          /* BOUNDED: the longest sequence, >= 1; positions >= n_max are
                             ROTARY_OUT_OF_RANGE. Default 0 (must be set). */
  rotary_table_mode table_mode; /* how cos/sin are stored. Default ROTARY_TABLE_AUTO. */
  /* Multi-axis RoPE (docs/math.md §7): a token has several position ids and each rotated pair
   * reads one of them. Applied with rotary_apply_axes; the other entry points give every axis
   * the same id (text tokens). */
  int32_t mrope_section[4]; /* M-RoPE: pairs per position axis (t, h, w[, e]), summing to
                               rotary_dim / 2 (HF's rope_scaling.mrope_section). Default 0s. */
  int32_t mrope_section_count; /* entries of mrope_section in use: 0 (no M-RoPE), 3 (HF's rules) or
                               4 (ggml's, whose 4th axis e takes the leftover pairs). Default 0. */
  int32_t mrope_interleaved; /* 1: the axes alternate along the pairs (Qwen3-VL); 0: one contiguous
                               section per axis (Qwen2-VL). Default 0. */
  int32_t vision_2d;      /* 1: 2D vision RoPE over (row, col) (Qwen2-VL's vision encoder): the first
                             rotary_dim / 4 pairs read the row, the rest the column, both with the
                             frequencies of rotary_dim / 2. DEFAULT scaling only. Default 0. */
} rotary_config;

/* A caller's cos/sin cache (ONNX RotaryEmbedding's cos_cache and sin_cache, vLLM's cos_sin_cache,
 * a runtime's own): pair i at position p rotates by cos[p * row_stride + i] and sin[p * row_stride + i],
 * i < rotary_dim / 2, in either pairing, as stored (any attention factor is the caller's). A rope
 * object made over it (rotary_create_borrowed) reads it in place, never copies it: it must stay
 * alive and unchanged while calls run. docs/table-memory.md says what precision it gives up. */
typedef struct {
  uint32_t struct_size; /* sizeof(rotary_borrowed_table) of the caller's header: set by rotary_borrowed_table_init. */
  rotary_dtype dtype;   /* of cos and sin: F32, F16 or BF16. Default ROTARY_F32. */
  const void* cos;      /* position 0's cos of pair 0. Default NULL (must be set). */
  const void* sin;      /* position 0's sin of pair 0. Default NULL (must be set). */
  int64_t row_stride;   /* elements from one position's values to the next, in [rotary_dim / 2, 2^32]. Default 0. */
  int64_t rows;         /* positions held: every position must be below it. Default 0 (must be set). */
} rotary_borrowed_table;

/* A [batch, seq, heads, head_dim] tensor view. Strides are in elements; the
 * head_dim components of one head are contiguous. Heads must not overlap. */
typedef struct {
  void* data;
  rotary_dtype dtype;
  int64_t batch, seq, heads;
  int64_t stride_batch, stride_seq, stride_head;
} rotary_tensor;

#define ROTARY_MAX_HEAD_DIM 4096

/* Sets the first struct_size bytes of *config: every field its default and
 * struct_size. Call it through rotary_config_init, which passes the size of
 * the struct this header declares. */
ROTARY_API void rotary_config_init_sized(rotary_config* config, size_t struct_size);
static inline void rotary_config_init(rotary_config* config) {
  rotary_config_init_sized(config, sizeof(rotary_config));
}
/* config: from rotary_config_init (a struct_size it did not set is an error). */
ROTARY_API rotary_status rotary_create(const rotary_config* config, rotary_rope** out);
ROTARY_API void rotary_destroy(rotary_rope* rope); /* NULL is a no-op */

/* Sets the first struct_size bytes of *table to the defaults and struct_size; call it through
 * rotary_borrowed_table_init (or one of the two layouts below). */
ROTARY_API void rotary_borrowed_table_init_sized(rotary_borrowed_table* table, size_t struct_size);
static inline void rotary_borrowed_table_init(rotary_borrowed_table* table) {
  rotary_borrowed_table_init_sized(table, sizeof(rotary_borrowed_table));
}
/* ONNX RotaryEmbedding (opset 23): cos_cache and sin_cache, each [rows, rotary_dim / 2]. */
static inline void rotary_borrowed_table_onnx(rotary_borrowed_table* table, const void* cos_cache,
                                              const void* sin_cache, int64_t rows, int32_t rotary_dim,
                                              rotary_dtype dtype) {
  rotary_borrowed_table_init(table);
  table->dtype = dtype;
  table->cos = cos_cache;
  table->sin = sin_cache;
  table->row_stride = rotary_dim / 2;
  table->rows = rows;
}
/* vLLM: cos_sin_cache [rows, rotary_dim], each row rotary_dim / 2 cos values then as many sin values. */
static inline void rotary_borrowed_table_vllm(rotary_borrowed_table* table, const void* cos_sin_cache, int64_t rows,
                                              int32_t rotary_dim, rotary_dtype dtype) {
  rotary_borrowed_table_init(table);
  table->dtype = dtype;
  table->cos = cos_sin_cache;
  table->sin = cos_sin_cache ? (const char*)cos_sin_cache + (size_t)(rotary_dim / 2) * (dtype == ROTARY_F32 ? 4u : 2u)
                             : NULL;
  table->row_stride = rotary_dim;
  table->rows = rows;
}
/* A rope object over the caller's table: no table of its own (rotary_table_bytes 0, mode
 * ROTARY_TABLE_BORROWED). The config gives head_dim, rotary_dim, pairing and the multi-axis layout;
 * its frequencies are the table's, so scaling must be ROTARY_SCALING_DEFAULT, attention_factor 0 and
 * table_mode AUTO (base and max_positions are validated but not used). Positions must be below
 * table->rows (and position_limit). The inverse rotates by (cos, -sin) / (cos^2 + sin^2): the inverse
 * of the table's rotation, whatever attention factor it carries (a row of zeros gives NaN). */
ROTARY_API rotary_status rotary_create_borrowed(const rotary_config* config, const rotary_borrowed_table* table,
                                                rotary_rope** out);

/* In place. positions == NULL: (b, s) is at position offset + s.
 * Otherwise (b, s) is at positions[b * seq + s] + offset (int64). They are
 * checked, then read again: they must not change until the call returns. */
ROTARY_API rotary_status rotary_apply(const rotary_rope* rope, const rotary_tensor* x,
                                      const int64_t* positions, int64_t offset);
/* Undoes rotary_apply for the same positions. */
ROTARY_API rotary_status rotary_apply_inverse(const rotary_rope* rope, const rotary_tensor* x,
                                              const int64_t* positions, int64_t offset);

/* Out of place: reads src, writes dst (each with its own dtype and strides, e.g.
 * f32 -> bf16 when writing k into a KV cache). Components rotary_dim..head_dim
 * are copied (converted). dst may be exactly src (in place); any other overlap
 * is ROTARY_INVALID_ARGUMENT. */
ROTARY_API rotary_status rotary_apply_to(const rotary_rope* rope, const rotary_tensor* src,
                                         const rotary_tensor* dst, const int64_t* positions,
                                         int64_t offset);
ROTARY_API rotary_status rotary_apply_inverse_to(const rotary_rope* rope, const rotary_tensor* src,
                                                 const rotary_tensor* dst, const int64_t* positions,
                                                 int64_t offset);

/* Moves x, rotated at positions + offset (NULL positions: offset + s), to those positions + delta:
 * rotary_apply_inverse at the old positions, then rotary_apply at the new ones, bit for bit
 * (llama.cpp's context shift of a KV cache's keys); both sets are checked before either writes. */
ROTARY_API rotary_status rotary_shift(const rotary_rope* rope, const rotary_tensor* x, const int64_t* positions,
                                      int64_t offset, int64_t delta);

/* q and k at the same positions in one pass (one table row read per (b, s) for
 * both), in place. q and k may have different head counts (grouped-query
 * attention) and must not overlap. Every component of q (rotated or not) is
 * multiplied by q_scale (1: none), e.g. 1/sqrt(head_dim) folded into the pass. */
ROTARY_API rotary_status rotary_apply_qk(const rotary_rope* rope, const rotary_tensor* q,
                                         const rotary_tensor* k, const int64_t* positions,
                                         int64_t offset, float q_scale);
/* The same out of place: q_src -> q_dst and k_src -> k_dst (a dst may be exactly
 * its src). q and k share their source dtype, and their destination dtype. */
ROTARY_API rotary_status rotary_apply_qk_to(const rotary_rope* rope, const rotary_tensor* q_src,
                                            const rotary_tensor* q_dst, const rotary_tensor* k_src,
                                            const rotary_tensor* k_dst, const int64_t* positions,
                                            int64_t offset, float q_scale);

/* Views of a packed QKV buffer, the output of a fused QKV projection laid out
 * [batch, seq, (q_heads + 2 * kv_heads) * head_dim]: q heads, then k heads,
 * then v heads in every (b, s) row. Any of q, k, v may be NULL. */
ROTARY_API rotary_status rotary_packed_qkv_views(void* data, rotary_dtype dtype, int64_t batch, int64_t seq,
                                                 int64_t q_heads, int64_t kv_heads, int32_t head_dim,
                                                 rotary_tensor* q, rotary_tensor* k, rotary_tensor* v);
/* Rotates the q and k heads of a packed QKV buffer in place (head_dim from the
 * rope), leaving v untouched: rotary_packed_qkv_views + rotary_apply_qk. */
ROTARY_API rotary_status rotary_apply_packed_qkv(const rotary_rope* rope, void* data, rotary_dtype dtype,
                                                 int64_t batch, int64_t seq, int64_t q_heads,
                                                 int64_t kv_heads, const int64_t* positions,
                                                 int64_t offset, float q_scale);

/* Multi-axis positions (M-RoPE, 2D vision RoPE; docs/math.md §7). `positions` holds `axes` arrays
 * of batch * seq ids, axis-major: [axes, batch, seq] (HF's position_ids of these models); offset is
 * added to every axis. axes is rotary_axis_count(rope), or 1: one id per token for every axis (as
 * rotary_apply*: for M-RoPE, text tokens). positions == NULL: offset + s on every axis. Rotates q_src -> q_dst and,
 * unless k_src and k_dst are both NULL, k_src -> k_dst in the same pass (a dst may be its src: in
 * place); q_scale multiplies all of q; inverse != 0 undoes the forward rotation. */
ROTARY_API rotary_status rotary_apply_axes(const rotary_rope* rope, const rotary_tensor* q_src,
                                           const rotary_tensor* q_dst, const rotary_tensor* k_src,
                                           const rotary_tensor* k_dst, const int64_t* positions,
                                           int32_t axes, int64_t offset, float q_scale, int32_t inverse);

/* qk-norm (docs/math.md §8): an RMSNorm of every head of q and of k before the rotation (Qwen3,
 * Qwen3-VL, Gemma 3), or of all heads of a token together (OLMo 2), over all head_dim components:
 *   r = 1 / sqrt(mean of x^2 + eps),   u = (x * r) * (weight + weight_offset)
 * then RoPE on u, then q_scale; components past rotary_dim are written normalized. Computed in f32
 * in a fixed order: the same r on every target, at every thread count. A head holding NaN or Inf
 * gets NaN (only that head; only that token with whole_token). */
typedef struct {
  uint32_t struct_size;  /* sizeof(rotary_qk_norm) of the caller's header: set by rotary_qk_norm_init. */
  const float* q_weight; /* head_dim floats shared by every q head, finite; whole_token: q heads * head_dim,
                            head-major. NULL: q is rotated without a norm. Read during the call only. */
  const float* k_weight; /* the same for k. */
  double eps;            /* added to the mean square: finite, > 0 once rounded to float. Default 1e-6. */
  double weight_offset;  /* finite; 0 (Qwen3, OLMo 2) or 1 (Gemma 3's 1 + w). Default 0. */
  int32_t whole_token;   /* 1: one norm over all heads of a token, each tensor's own (OLMo 2). Default 0. */
} rotary_qk_norm;
/* Sets the first struct_size bytes of *norm to the defaults (no weights) and struct_size; call it
 * through rotary_qk_norm_init. */
ROTARY_API void rotary_qk_norm_init_sized(rotary_qk_norm* norm, size_t struct_size);
static inline void rotary_qk_norm_init(rotary_qk_norm* norm) {
  rotary_qk_norm_init_sized(norm, sizeof(rotary_qk_norm));
}
/* rotary_apply_axes (forward) with qk-norm first: q_src -> q_dst and, unless k_src and k_dst are both
 * NULL, k_src -> k_dst, each normalized by *norm, rotated at its positions (axes: 1, or
 * rotary_axis_count(rope) for multi-axis ids), q times q_scale, in one pass. In place when a dst
 * is its src. For a packed QKV buffer, pass the views of rotary_packed_qkv_views. */
ROTARY_API rotary_status rotary_apply_qk_norm(const rotary_rope* rope, const rotary_tensor* q_src,
                                              const rotary_tensor* q_dst, const rotary_tensor* k_src,
                                              const rotary_tensor* k_dst, const int64_t* positions, int32_t axes,
                                              int64_t offset, float q_scale, const rotary_qk_norm* norm);
/* How k_cache and v_cache store values (rotary_apply_options.cache_format; docs/math.md §9.2-9.4).
 * The byte formats read the cache tensors as bytes: their dtype field is ignored and their strides are
 * in bytes; a head is head_dim bytes (FP8) or head_dim / 32 * 34 (q8_0). */
typedef enum {
  ROTARY_CACHE_TENSOR = 0,   /* each cache tensor's own dtype: f32, f16 or bf16, rounded to nearest even */
  ROTARY_CACHE_FP8_E4M3 = 1, /* OCP E4M3 byte of x / scale, nearest even, saturating at +-448 (NaN: 0x7F) */
  ROTARY_CACHE_FP8_E5M2 = 2, /* OCP E5M2 byte of x / scale, nearest even, saturating at +-57344 */
  ROTARY_CACHE_Q8_0 = 3      /* ggml block_q8_0 records (f16 d, 32 int8), as quantize_row_q8_0_ref;
                                head_dim a multiple of 32 */
} rotary_cache_format;

/* Everything a call can take besides its tensors, in a struct that can grow: rotary_apply_with
 * covers every other apply entry point (positions, multi-axis ids, per-sequence offsets, q_scale,
 * the inverse, qk-norm). The position of (b, s) on axis a is
 *   (positions ? positions[(a * batch + b) * seq + s] : s) + offset + (batch_offsets ? batch_offsets[b] : 0)
 * so that left-padded and continuous batches need no position array. */
typedef struct {
  uint32_t struct_size;          /* sizeof(rotary_apply_options) of the caller's header: set by rotary_apply_options_init. */
  const int64_t* positions;      /* NULL: s; else axes arrays of batch * seq ids, axis-major. Default NULL. */
  int32_t axes;                  /* 1, or rotary_axis_count(rope) (rotary_apply_axes). Default 1. */
  int64_t offset;                /* added to every position. Default 0. */
  const int64_t* batch_offsets;  /* NULL, or batch ids, one per sequence, added to its positions. Default NULL. */
  float q_scale;                 /* multiplies all of q (finite). Default 1. */
  int32_t inverse;               /* 1: undo the forward rotation (not with norm). Default 0. */
  const rotary_qk_norm* norm;    /* qk-norm before the rotation (rotary_apply_qk_norm), or NULL. Default NULL. */
  /* The KV-cache write in the same pass (docs/api.md "Paged KV caches"): k rotated into k_cache and v converted
   * into v_cache, at the slot of each token. A cache is a rotary_tensor seen as [num_blocks, block_size, kv_heads,
   * head_dim] (batch = num_blocks, seq = block_size, any strides with head_dim contiguous: vLLM's layout and its
   * CPU backend's [num_blocks, kv_heads, block_size, head_dim] are both views). With a cache, k_src is read and not
   * written: k_dst must be NULL. Forward only. With norm, q and k are normalized first; v is copied as it is. */
  const rotary_tensor* k_cache;  /* Default NULL. */
  const rotary_tensor* v_src;    /* v [batch, seq, kv_heads, head_dim], as k. Default NULL. */
  const rotary_tensor* v_cache;  /* Default NULL. */
  const int64_t* slot_mapping;   /* batch * seq slots: token (b, s) goes to block slot / block_size, row
                                    slot % block_size; a negative slot is not written. Slots must be below
                                    num_blocks * block_size, and distinct. Read once, at the call's start.
                                    Default NULL. */
  rotary_cache_format cache_format; /* how both caches store values. Default ROTARY_CACHE_TENSOR. */
  double k_scale;                /* FP8: k_cache holds fp8(k / k_scale); finite and > 0 as a float, or 0 for 1.
                                    Default 0 (1). */
  double v_scale;                /* FP8: the same for v_cache. Default 0 (1). */
} rotary_apply_options;
/* Sets the first struct_size bytes of *options to the defaults and struct_size; call it through
 * rotary_apply_options_init. */
ROTARY_API void rotary_apply_options_init_sized(rotary_apply_options* options, size_t struct_size);
static inline void rotary_apply_options_init(rotary_apply_options* options) {
  rotary_apply_options_init_sized(options, sizeof(rotary_apply_options));
}
/* q_src -> q_dst and, unless k_src and k_dst are both NULL, k_src -> k_dst in one pass (a dst may be its
 * src: in place), as *options says (NULL: the defaults). Read-only arrays it points to are read during
 * the call only and must not change until it returns. */
ROTARY_API rotary_status rotary_apply_with(const rotary_rope* rope, const rotary_tensor* q_src, const rotary_tensor* q_dst,
                                           const rotary_tensor* k_src, const rotary_tensor* k_dst,
                                           const rotary_apply_options* options);
/* Position ids per token the rope reads: 1, 2 (vision_2d), 3 or 4 (mrope_section_count); 0 if rope is NULL. */
ROTARY_API int32_t rotary_axis_count(const rotary_rope* rope);

/* Thread-local text of this thread's last failure ("" if none yet). */
ROTARY_API const char* rotary_last_error(void);

/* Kernel target in use, e.g. "AVX3", "AVX2", "NEON", "EMU128", "SCALAR".
 * "NONE" when ROTARY_TARGET names a target this build or CPU cannot run
 * (then rotary_create and rotary_apply fail with ROTARY_UNSUPPORTED). */
ROTARY_API const char* rotary_active_target(void);

/* Targets compiled into this build, best first. */
ROTARY_API int32_t rotary_target_count(void);
ROTARY_API const char* rotary_target_name(int32_t index); /* NULL if out of range */
ROTARY_API int rotary_target_supported(int32_t index);    /* 1 if this CPU runs it */

/* Force a target by name (case-insensitive) for the whole process, overriding
 * the environment variable ROTARY_TARGET. NULL, "" or "auto": the best target
 * this CPU supports. An unknown or unsupported name is ROTARY_UNSUPPORTED and
 * changes nothing. */
ROTARY_API rotary_status rotary_set_target(const char* name);

/* Bytes of cos/sin table memory this rope object holds now. */
ROTARY_API int64_t rotary_table_bytes(const rotary_rope* rope);

/* Cos/sin tables this rope object holds now (0 for NULL): 1 for most schemes;
 * more while it keeps tables of dynamic NTK or LongRoPE lengths past L0, or of
 * apply_inverse with an attention factor != 1 (a few at most, bounded). */
ROTARY_API int32_t rotary_table_count(const rotary_rope* rope);

/* The table mode this rope object uses (ROTARY_TABLE_AUTO resolved; FULL for NULL). */
ROTARY_API rotary_table_mode rotary_table_mode_of(const rotary_rope* rope);

/* The process-wide table cache. Rope objects with equal frequency plans (same
 * frequencies, attention factor, pairing, table mode, position_limit) share one
 * table. When the tables' rows exceed the budget, the rows of the least recently
 * used tables that no call is reading are freed (rebuilt when needed again);
 * tables being read are never freed, so the cache may exceed the budget while
 * calls need more than it. A table leaves the cache with its last rope object.
 * The budget starts at ROTARY_CACHE_BUDGET (bytes, optional K/M/G/T suffix,
 * binary: "256M"; an invalid value is ignored) or 1 GiB. */
ROTARY_API rotary_status rotary_cache_set_budget(int64_t bytes); /* >= 0; evicts down to it */
ROTARY_API int64_t rotary_cache_budget(void);
ROTARY_API int64_t rotary_cache_bytes(void);  /* bytes of table rows held now */
ROTARY_API int32_t rotary_cache_tables(void); /* tables in the cache now */
ROTARY_API int64_t rotary_cache_trim(void);   /* frees the rows of every table no call is reading; returns bytes freed */

/* Why rotary_active_target() is what it is: "default" (the best target this
 * CPU supports), "ROTARY_TARGET" (the environment variable named one) or
 * "rotary_set_target" (a call named one). Naming "auto" is the default. */
ROTARY_API const char* rotary_target_source(void);

/* The library's version, "MAJOR.MINOR.PATCH", as built (e.g. "0.1.0"). */
ROTARY_API const char* rotary_version(void);

/* The frequency plan rotary_apply uses for a call whose largest position is
 * seq_len - 1 (seq_len in [1, the scheme's position limit]; only DYNAMIC_NTK and
 * LONGROPE depend on it): the M = rotary_dim / 2 inverse frequencies into
 * inv_freq_out (capacity >= M) and the attention factor m multiplying cos and sin
 * into *attention_factor_out. Either output may be NULL. Pure: no rope object, no tables. */
ROTARY_API rotary_status rotary_plan(const rotary_config* config, int64_t seq_len, double* inv_freq_out,
                                     int32_t capacity, double* attention_factor_out);

/* The factor the model's attention softmax scale (1/sqrt(d_qk)) is multiplied by:
 * g(s, mscale_all_dim)^2 for YARN with mscale_all_dim != 0 (DeepSeek-V2/V3,
 * docs/math.md §2.4.4), else 1. rotary_apply never applies it: it belongs to the
 * caller's attention. */
ROTARY_API rotary_status rotary_softmax_scale_factor(const rotary_config* config, double* factor_out);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* ROTARY_ROTARY_H_ */
