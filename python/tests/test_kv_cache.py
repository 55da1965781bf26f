"""The KV-cache write of apply_qk (k_out=, v=, v_out=, slot_mapping=, cache_dtype=, k_scale=, v_scale=;
docs/math.md §9): k rotated and v converted into paged caches at each token's slot, in the same pass that
rotates q.

- f32 / f16 / bf16 caches: each addressed slot of k_out holds rotary's own out-of-place apply of k into an
  array of the cache's dtype, bit for bit; of v_out, v rounded once to nearest even (numpy's astype for f16,
  a restated rounding for bf16); every other byte of the caches' memory keeps its sentinel; q is apply_qk's;
  k and v are not modified. Both pairings, partial rotary, vLLM's layout (a layer of a [layers, ...]
  allocation) and vLLM CPU's [num_blocks, kv_heads, block_size, head_dim] as a transposed view; explicit,
  multi-axis and per-sequence positions, q_out; torch tensors (a torch bf16 cache) too.
- fp8_e4m3 / fp8_e5m2 with scales: against an independent reference of §9.3 (the nearest of all finite
  codes found by exact comparison, ties to the even code, saturation, NaN -> 0x7F | sign), applied to the
  rotated k in f32 (and to v) divided by float32(scale); the spec's examples; torch's float8 where it has it.
- q8_0: against ggml's quantize_row_q8_0_ref restated in numpy, §9.4's example record included.
- Bad calls: a rotary.Error naming the problem, with q, k, v and both caches untouched.
"""
import os

import numpy as np
import pytest

import rotary

try:
    import torch
except ImportError:
    if os.environ.get("ROTARY_REQUIRE_TORCH") == "1":  # ctest found torch at configure time: it must import
        raise
    torch = None
needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed")

BATCH, SEQ, Q_HEADS, KV_HEADS, HEAD_DIM = 2, 5, 4, 2, 64
NUM_BLOCKS, BLOCK_SIZE = 5, 4  # 20 slots for 10 tokens
SENTINEL = 0x7B                # every byte of a cache's memory before the call


# ---- References, independent of the library ----

def bf16_rne(x):
    """float32 -> bf16 bit patterns (uint16): the top half of the binary32, rounded to nearest even; NaN stays
    NaN (quiet)."""
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    lower = bits & 0xFFFF
    upper = bits >> 16
    round_up = (lower > 0x8000) | ((lower == 0x8000) & ((upper & 1) == 1))
    out = (upper + round_up).astype(np.uint16)
    nan = np.isnan(np.asarray(x, dtype=np.float32))
    out[nan] = (upper[nan] | 0x40).astype(np.uint16)
    return out


def bf16_to_f32(bits):
    return (np.asarray(bits, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)


def to_cache_dtype(x, cache_dtype):
    """float32 values rounded once to a tensor cache's storage (bf16 as uint16 bits)."""
    x = np.asarray(x, dtype=np.float32)
    if cache_dtype == "f32":
        return x.copy()
    if cache_dtype == "f16":
        with np.errstate(over="ignore"):  # 65520 and beyond: inf, as IEEE
            return x.astype(np.float16)  # numpy rounds to nearest even
    return bf16_rne(x)


FP8 = {  # exponent bits, mantissa bits, bias, largest finite code
    "fp8_e4m3": (4, 3, 7, 0x7E),
    "fp8_e5m2": (5, 2, 15, 0x7B),
}


def fp8_decode(code, fmt):
    """The value of a non-negative finite code (0 .. the largest), as a float."""
    e_bits, m_bits, bias, _ = FP8[fmt]
    e, m = code >> m_bits, code & ((1 << m_bits) - 1)
    if e == 0:
        return m / (1 << m_bits) * 2.0 ** (1 - bias)
    return (1 + m / (1 << m_bits)) * 2.0 ** (e - bias)


def fp8_reference(y, scale, fmt):
    """§9.3: z = float32(y) / float32(scale) in f32; NaN -> 0x7F | sign; |z| >= max -> the largest code | sign;
    else the nearest of all finite codes, ties to the even code, the sign of z kept (-0, and negative values
    that round to 0, -> 0x80). The distances are exact: every f32 and every code is an integer multiple of
    2^-149, so all are compared as Python integers in units of 2^-160."""
    _, _, _, top = FP8[fmt]
    z = (np.asarray(y, dtype=np.float32) / np.float32(scale)).astype(np.float32).ravel()
    unit = 2.0**160
    codes = np.array([int(fp8_decode(c, fmt) * unit) for c in range(top + 1)], dtype=object)
    sign = np.where(np.signbit(z), 0x80, 0).astype(np.uint8)
    magnitude = np.abs(z)
    saturated = ~np.isnan(z) & (magnitude >= np.float32(fp8_decode(top, fmt)))
    rounded = ~np.isnan(z) & ~saturated
    exact = np.array([int(float(a) * unit) for a in magnitude[rounded]], dtype=object)
    distance = np.abs(exact[:, None] - codes[None, :])  # [values, codes], exact
    best = distance.min(axis=1)
    nearest = distance == best[:, None]
    ties = nearest.sum(axis=1) == 2
    assert (nearest.sum(axis=1) <= 2).all()
    chosen = np.argmax(nearest, axis=1)  # the lower code, unless a tie goes to the even one
    chosen[ties & (chosen % 2 == 1)] += 1
    out = np.full(z.size, 0x7F, np.uint8)  # NaN
    out[saturated] = top
    out[rounded] = chosen.astype(np.uint8)
    return (out | sign).reshape(np.shape(y))


def q8_0_reference(x):
    """ggml's quantize_row_q8_0_ref on x [..., head_dim] (float32): per 32 components, amax, d = amax / 127
    (f32), id = 1 / d (f32; 0 if d is 0), the record's d as binary16 little-endian (nearest even), then
    q = roundf(x * id): the f32 product rounded half away from zero. Returns [..., head_dim / 32 * 34] bytes."""
    x = np.asarray(x, dtype=np.float32)
    blocks = x.reshape(-1, 32)
    amax = np.max(np.abs(blocks), axis=1)
    d = (amax / np.float32(127)).astype(np.float32)
    inv = np.zeros_like(d)
    np.divide(np.float32(1), d, out=inv, where=d != 0)
    with np.errstate(over="ignore"):
        d_half = d.astype("<f2")
    product = (blocks * inv[:, None]).astype(np.float32)
    # roundf exactly: the fraction product - trunc(product) is exact in f32 (|product| < 2^23), so no sum
    # like |p| + 0.5 can round up (0.49999997 + 0.5 would).
    whole = np.trunc(product)
    fraction = product - whole
    q = whole + np.sign(product) * (np.abs(fraction) >= np.float32(0.5))
    records = np.concatenate([d_half[:, None].view(np.uint8), q.astype(np.int8).view(np.uint8)], axis=1)
    return records.reshape(*x.shape[:-1], x.shape[-1] // 32 * 34)


# ---- Caches in memory, and what a write should leave there ----

LAYOUTS = ["vllm", "vllm_cpu"]


def storage_shape(layout, width):
    if layout == "vllm":  # layer 1 of a [layers, num_blocks, block_size, kv_heads, ...] allocation
        return (2, NUM_BLOCKS, BLOCK_SIZE, KV_HEADS, width)
    return (NUM_BLOCKS, KV_HEADS, BLOCK_SIZE, width)  # vLLM CPU


def cache_view(storage, layout):
    """The [num_blocks, block_size, kv_heads, width] view of a cache's storage (numpy or torch)."""
    if layout == "vllm":
        return storage[1]
    if torch is not None and isinstance(storage, torch.Tensor):
        return storage.transpose(1, 2)
    return storage.swapaxes(1, 2)


def numpy_storage(layout, width, dtype):
    storage = np.empty(storage_shape(layout, width), dtype)
    storage.view(np.uint8)[...] = SENTINEL
    return storage


def scatter(view, values, slots):
    """values [batch, seq, kv_heads, width] into view [num_blocks, block_size, kv_heads, width] at the slots."""
    flat = values.reshape(-1, *values.shape[2:])
    for i, slot in enumerate(np.asarray(slots).ravel()):
        if slot >= 0:
            view[slot // BLOCK_SIZE, slot % BLOCK_SIZE] = flat[i]


def expected_storage(layout, width, dtype, k_values, slots):
    storage = numpy_storage(layout, width, dtype)
    scatter(cache_view(storage, layout), k_values, slots)
    return storage


def random_slots(rng, count=BATCH * SEQ):
    slots = rng.permutation(NUM_BLOCKS * BLOCK_SIZE)[:count].astype(np.int64)
    slots[3] = -1  # padding: not written
    slots[7] = -1
    return slots.reshape(BATCH, SEQ)


def same_bytes(a, b):
    return np.array_equal(np.ascontiguousarray(a).view(np.uint8), np.ascontiguousarray(b).view(np.uint8))


def qkv(rng, dtype=np.float32, scale=1.0):
    q = (scale * rng.standard_normal((BATCH, SEQ, Q_HEADS, HEAD_DIM))).astype(np.float32)
    k = (scale * rng.standard_normal((BATCH, SEQ, KV_HEADS, HEAD_DIM))).astype(np.float32)
    v = (scale * rng.standard_normal((BATCH, SEQ, KV_HEADS, HEAD_DIM))).astype(np.float32)
    if dtype == "bf16":
        return bf16_rne(q), bf16_rne(k), bf16_rne(v)
    return q.astype(dtype), k.astype(dtype), v.astype(dtype)


def with_rounding_ties(v):
    """v (float32) with values exactly halfway between two bf16 values, and between two f16 values, of both
    parities, in token (0, 2) head 1 (written in every test): a truncating or ties-away rounding differs."""
    v = v.copy()
    upper = np.array([0x3F80, 0x3F81, 0xBF80, 0xBF81, 0x4049, 0x404A, 0x0001, 0x7F7F], np.uint32)
    bf16_ties = ((upper << 16) | 0x8000).view(np.float32)  # the last one rounds up to +inf
    f16_ties = np.array([1 + 2.0**-11, 1 + 2.0**-10 + 2.0**-11, -(3 + 2.0**-10), 2.0**-14 + 2.0**-25, 1000.25,
                         1000.75, 1.5 * 2.0**-24, 2.0**-25, 65520.0], np.float32)  # the last one rounds to inf
    v[0, 2, 1, : len(bf16_ties)] = bf16_ties
    v[0, 2, 1, 16 : 16 + len(f16_ties)] = f16_ties
    return v


def as_f32(x, dtype):
    return bf16_to_f32(x) if dtype == "bf16" else np.asarray(x, dtype=np.float32)


POSITIONS = np.array([[0, 1, 2, 3, 4], [37, 38, 90, 91, 1000]])


# ---- (a) f32, f16, bf16 caches ----

TENSOR_DTYPES = {"f32": np.float32, "f16": np.float16, "bf16": np.uint16}


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("cache_dtype", ["f32", "f16", "bf16"])
@pytest.mark.parametrize("src", [np.float32, "bf16"])
@pytest.mark.parametrize("pairing,rotary_dim", [("neox", 64), ("interleaved", 64), ("neox", 48)])
def test_tensor_caches_hold_rotarys_own_conversion(rng, layout, cache_dtype, src, pairing, rotary_dim):
    rope = rotary.Rope(head_dim=HEAD_DIM, rotary_dim=rotary_dim, pairing=pairing, rope_theta=500000.0)
    declared = "bf16" if src == "bf16" else None
    q, k, v = qkv(rng, src)
    if src == np.float32:
        v = with_rounding_ties(v)
    slots = random_slots(rng)
    storage_dtype = TENSOR_DTYPES[cache_dtype]
    # Expected: q from apply_qk (k rotated in a scratch copy); k from apply out of place into an array of the
    # cache's dtype; v rounded once from its f32 value.
    want_q, _ = rope.apply_qk(q.copy(), k.copy(), POSITIONS, q_scale=0.125, dtype=declared)
    k_rotated = np.empty(k.shape, storage_dtype)
    rope.apply(k, POSITIONS, out=k_rotated, dtype=declared, out_dtype=cache_dtype)
    want_k = expected_storage(layout, HEAD_DIM, storage_dtype, k_rotated, slots)
    want_v = expected_storage(layout, HEAD_DIM, storage_dtype, to_cache_dtype(as_f32(v, src), cache_dtype), slots)

    k_storage = numpy_storage(layout, HEAD_DIM, storage_dtype)
    v_storage = numpy_storage(layout, HEAD_DIM, storage_dtype)
    k_before, v_before = k.copy(), v.copy()
    # cache_dtype is inferred from f32 and f16 arrays (here in one layout; said in the other); numpy bf16
    # (uint16) always says it.
    inferred = cache_dtype != "bf16" and layout == "vllm"
    got = rope.apply_qk(q, k, POSITIONS, q_scale=0.125, dtype=declared, k_out=cache_view(k_storage, layout), v=v,
                        v_out=cache_view(v_storage, layout), slot_mapping=slots,
                        cache_dtype=None if inferred else cache_dtype)
    assert got[0] is q
    assert same_bytes(q, want_q)
    assert same_bytes(k_storage, want_k)
    assert same_bytes(v_storage, want_v)
    assert same_bytes(k, k_before) and same_bytes(v, v_before)
    assert not same_bytes(k_storage, numpy_storage(layout, HEAD_DIM, storage_dtype))  # it wrote


@pytest.mark.parametrize("cache_dtype", ["bf16", "fp8_e4m3", "q8_0"])
@pytest.mark.parametrize("pairing", ["neox", "interleaved"])
def test_qk_norm_comes_before_the_cache_write(rng, cache_dtype, pairing):
    """q_norm / k_norm with a cache write: q as apply_qk with the norms makes it; k's slots hold what apply with
    k's norm writes (f32, then one rounding into the format: bf16, fp8 of k / k_scale, q8_0 records); v copied
    without a norm (Gemma's 1 + w: norm_offset=1)."""
    rope = rotary.Rope(head_dim=HEAD_DIM, pairing=pairing, rope_theta=1e6)
    q, k, v = qkv(rng, np.float32, scale=3.0)
    wq = rng.uniform(-0.5, 0.5, HEAD_DIM).astype(np.float32)
    wk = rng.uniform(-0.5, 0.5, HEAD_DIM).astype(np.float32)
    norm = dict(q_norm=wq, k_norm=wk, norm_eps=1e-6, norm_offset=1.0)
    slots = random_slots(rng)
    want_q, _ = rope.apply_qk(q.copy(), k.copy(), POSITIONS, q_scale=0.125, **norm)
    k_normalized = rope.apply(k.copy(), POSITIONS, norm=wk, norm_eps=1e-6, norm_offset=1.0)
    width = HEAD_DIM // 32 * 34 if cache_dtype == "q8_0" else HEAD_DIM
    storage_dtype = np.uint16 if cache_dtype == "bf16" else np.uint8
    if cache_dtype == "bf16":
        k_bytes, v_bytes = bf16_rne(k_normalized), bf16_rne(v)
    elif cache_dtype == "q8_0":
        k_bytes, v_bytes = q8_0_reference(k_normalized), q8_0_reference(v)
    else:
        k_bytes, v_bytes = fp8_reference(k_normalized, 0.25, cache_dtype), fp8_reference(v, 0.5, cache_dtype)
    want_k = expected_storage("vllm", width, storage_dtype, k_bytes, slots)
    want_v = expected_storage("vllm", width, storage_dtype, v_bytes, slots)
    k_storage = numpy_storage("vllm", width, storage_dtype)
    v_storage = numpy_storage("vllm", width, storage_dtype)
    scales = dict(k_scale=0.25, v_scale=0.5) if cache_dtype.startswith("fp8") else {}
    rope.apply_qk(q, k, POSITIONS, q_scale=0.125, k_out=cache_view(k_storage, "vllm"), v=v,
                  v_out=cache_view(v_storage, "vllm"), slot_mapping=slots, cache_dtype=cache_dtype, **scales, **norm)
    assert same_bytes(q, want_q)
    assert same_bytes(k_storage, want_k)
    assert same_bytes(v_storage, want_v)


def test_flashinfers_k_and_v_in_one_buffer(rng):
    """FlashInfer's paged cache holds k and v in one [num_blocks, 2, block_size, kv_heads, head_dim] array:
    k_out=cache[:, 0] and v_out=cache[:, 1] interleave block by block, are apart, and get what separate caches
    get."""
    rope = rotary.Rope(head_dim=HEAD_DIM)
    q, k, v = qkv(rng)
    slots = random_slots(rng)
    k_alone = numpy_storage("vllm_cpu", HEAD_DIM, np.float16)
    v_alone = numpy_storage("vllm_cpu", HEAD_DIM, np.float16)
    want_q, _ = rope.apply_qk(q.copy(), k, POSITIONS, k_out=cache_view(k_alone, "vllm_cpu"), v=v,
                              v_out=cache_view(v_alone, "vllm_cpu"), slot_mapping=slots)
    both = np.empty((NUM_BLOCKS, 2, BLOCK_SIZE, KV_HEADS, HEAD_DIM), np.float16)
    both.view(np.uint8)[...] = SENTINEL
    rope.apply_qk(q, k, POSITIONS, k_out=both[:, 0], v=v, v_out=both[:, 1], slot_mapping=slots)
    assert same_bytes(q, want_q)
    assert same_bytes(both[:, 0], cache_view(k_alone, "vllm_cpu"))
    assert same_bytes(both[:, 1], cache_view(v_alone, "vllm_cpu"))


def mrope():
    return rotary.Rope(head_dim=HEAD_DIM, rope_theta=1e6, mrope_section=[8, 12, 12])


@pytest.mark.parametrize("kind", ["multi_axis", "sequence_offsets", "q_out", "flat_slots"])
def test_positions_and_q_out_with_the_cache_write(rng, kind):
    """The other apply_qk arguments keep their meaning with a cache write: k's slots hold apply's rotation at
    the same positions, q is apply_qk's (or goes to q_out, q untouched)."""
    q, k, v = qkv(rng)
    v = with_rounding_ties(v)
    slots = random_slots(rng)
    rope = mrope() if kind == "multi_axis" else rotary.Rope(head_dim=HEAD_DIM)
    if kind == "multi_axis":
        where = dict(positions=np.stack([POSITIONS, POSITIONS + 3, 2 * POSITIONS]))
    elif kind == "sequence_offsets":
        where = dict(offset=np.array([7, 300]))
    else:
        where = dict(positions=POSITIONS)
    want_q, _ = rope.apply_qk(q.copy(), k.copy(), q_scale=0.5, **where)
    k_rotated = np.empty(k.shape, np.float16)
    rope.apply(k, out=k_rotated, **where)
    k_storage = numpy_storage("vllm_cpu", HEAD_DIM, np.float16)
    v_storage = numpy_storage("vllm_cpu", HEAD_DIM, np.float16)
    q_in = q.copy()
    extra = {}
    if kind == "q_out":
        extra["q_out"] = np.empty_like(q)
    k_cache = k_storage.swapaxes(1, 2)
    got = rope.apply_qk(q_in, k, q_scale=0.5, k_out=k_cache, v=v, v_out=v_storage.swapaxes(1, 2),
                        slot_mapping=slots.ravel() if kind == "flat_slots" else slots, **where, **extra)
    assert got[1] is k_cache
    if kind == "q_out":
        assert got[0] is extra["q_out"] and same_bytes(q_in, q)
    else:
        assert got[0] is q_in
    assert same_bytes(got[0], want_q)
    assert same_bytes(k_storage, expected_storage("vllm_cpu", HEAD_DIM, np.float16, k_rotated, slots))
    assert same_bytes(v_storage, expected_storage("vllm_cpu", HEAD_DIM, np.float16, to_cache_dtype(v, "f16"), slots))


def test_without_slot_mapping_k_out_is_still_the_out_of_place_k(rng):
    """Backward compatibility: q_out and k_out without slot_mapping write rotated q and k out of place."""
    rope = rotary.Rope(head_dim=HEAD_DIM)
    q, k, _ = qkv(rng)
    q_out, k_out = np.empty_like(q), np.empty_like(k)
    got = rope.apply_qk(q, k, POSITIONS, q_out=q_out, k_out=k_out)
    assert got[0] is q_out and got[1] is k_out
    want_q, want_k = rope.apply_qk(q.copy(), k.copy(), POSITIONS)
    assert same_bytes(q_out, want_q) and same_bytes(k_out, want_k)


@needs_torch
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("src,cache", [("f32", "bf16"), ("bf16", "bf16"), ("bf16", "f16")])
def test_torch_tensors_and_a_torch_bf16_cache(rng, layout, src, cache):
    rope = rotary.Rope(head_dim=HEAD_DIM, pairing="interleaved")
    q, k, v = qkv(rng, "bf16" if src == "bf16" else np.float32)
    if src == "f32":
        v = with_rounding_ties(v)
    slots = random_slots(rng)
    declared = "bf16" if src == "bf16" else None

    def tensor(a):  # torch 1.13 has no uint16: through int16
        if src == "bf16":
            return torch.from_numpy(a.view(np.int16).copy()).view(torch.bfloat16)
        return torch.from_numpy(a.copy())

    tq, tk, tv = tensor(q), tensor(k), tensor(v)
    torch_dtype = torch.bfloat16 if cache == "bf16" else torch.float16
    k_storage = torch.empty(storage_shape(layout, HEAD_DIM), dtype=torch_dtype)
    v_storage = torch.empty_like(k_storage)
    for t in (k_storage, v_storage):
        t.view(torch.int16).numpy().view(np.uint8)[...] = SENTINEL
    got = rope.apply_qk(tq, tk, torch.from_numpy(POSITIONS), k_out=cache_view(k_storage, layout), v=tv,
                        v_out=cache_view(v_storage, layout), slot_mapping=torch.from_numpy(slots))
    assert got[0] is tq
    # The same call's parts through the numpy path.
    want_q, _ = rope.apply_qk(q.copy(), k.copy(), POSITIONS, dtype=declared)
    k_rotated = np.empty(k.shape, TENSOR_DTYPES[cache])
    rope.apply(k, POSITIONS, out=k_rotated, dtype=declared, out_dtype=cache)
    storage_np = TENSOR_DTYPES[cache]
    want_k = expected_storage(layout, HEAD_DIM, storage_np, k_rotated, slots)
    want_v = expected_storage(layout, HEAD_DIM, storage_np, to_cache_dtype(as_f32(v, src), cache), slots)
    raw = lambda t: t.view(torch.int16).numpy() if t.element_size() == 2 else t.numpy()  # noqa: E731
    assert same_bytes(raw(tq), want_q)
    assert same_bytes(raw(k_storage), want_k)
    assert same_bytes(raw(v_storage), want_v)
    assert same_bytes(raw(tk), k) and same_bytes(raw(tv), v)


# ---- (b) fp8 caches ----

NEG_NAN = float(np.array([0xFFC00000], np.uint32).view(np.float32)[0])

# §9.3's examples (scale 1): value, E4M3 byte, E5M2 byte (None: the spec gives none); then what its rules say
# of infinities, NaN's sign, saturation past the largest finite value, and a negative value rounded to 0.
FP8_EXAMPLES = [
    (1.0, 0x38, 0x3C), (-2.5, 0xC2, 0xC1), (448.0, 0x7E, 0x5F), (464.0, 0x7E, None), (500.0, 0x7E, 0x60),
    (1e5, 0x7E, 0x7B), (np.inf, 0x7E, 0x7B), (0.1, 0x1D, 0x2E), (1.0625, 0x38, None), (1.1875, 0x3A, None),
    (1.125, None, 0x3C), (1.375, None, 0x3E), (2.0**-9, 0x01, None), (2.0**-10, 0x00, None),
    (1.5 * 2.0**-10, 0x01, None), (2.0**-16, None, 0x01), (2.0**-17, None, 0x00), (-0.0, 0x80, 0x80),
    (np.nan, 0x7F, 0x7F),
    (-np.inf, 0xFE, 0xFB), (NEG_NAN, 0xFF, 0xFF), (57344.0, 0x7E, 0x7B), (61440.0, 0x7E, 0x7B), (-1e-30, 0x80, 0x80),
]
EXAMPLE_VALUES = np.array([e[0] for e in FP8_EXAMPLES], np.float32)
assert np.signbit(EXAMPLE_VALUES[20]) and np.isnan(EXAMPLE_VALUES[20])


def spec_bytes(fmt):
    """[(index, byte)] of the examples the spec (or its rules) gives for fmt."""
    column = 1 if fmt == "fp8_e4m3" else 2
    return [(i, e[column]) for i, e in enumerate(FP8_EXAMPLES) if e[column] is not None]


@pytest.mark.parametrize("fmt", ["fp8_e4m3", "fp8_e5m2"])
def test_the_fp8_reference_gives_the_spec_examples(fmt):
    got = fp8_reference(EXAMPLE_VALUES, 1.0, fmt)
    assert [(i, int(got[i])) for i, _ in spec_bytes(fmt)] == spec_bytes(fmt)


def scaled_ties(fmt, scale, count):
    """float32 values y whose f32 quotient y / float32(scale) is exactly halfway between two adjacent codes:
    the rounding of that quotient decides, so dividing in float64 or by an exact scale, or multiplying by
    1 / scale, gives other codes for some of them."""
    _, _, _, top = FP8[fmt]
    s = np.float32(scale)
    found = []
    for c in range(top):
        middle = np.float32((fp8_decode(c, fmt) + fp8_decode(c + 1, fmt)) / 2)
        guess = np.float32(middle * s)
        for y in (guess, np.nextafter(guess, np.float32(0)), np.nextafter(guess, np.float32(np.inf))):
            if np.float32(y / s) == middle:
                found.append(y)
    found = np.array(found, np.float32)
    return np.resize(np.concatenate([found, -found]), count)


def with_examples(v):
    """v with §9.3's examples (scale 1) in token (0, 0) head 0, and their negatives in token (1, 4) head 1."""
    v = v.copy()
    v[0, 0, 0, : len(EXAMPLE_VALUES)] = EXAMPLE_VALUES
    v[1, 4, 1, : len(EXAMPLE_VALUES)] = -EXAMPLE_VALUES
    return v


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("fmt", ["fp8_e4m3", "fp8_e5m2"])
@pytest.mark.parametrize("k_scale,v_scale", [(1.0, 1.0), (0.0478, 3.7), (2.0**-3, 1e-3)])
@pytest.mark.parametrize("pairing", ["neox", "interleaved"])
def test_fp8_caches_hold_the_reference_bytes(rng, layout, fmt, k_scale, v_scale, pairing):
    rope = rotary.Rope(head_dim=HEAD_DIM, pairing=pairing)
    q, k, v = qkv(rng, scale=4.0)
    k[0, 1, 1, :6] = [1e6, -1e6, 1e-30, -1e-30, 0.0, 300.0]  # saturate, round to 0 (-0 kept), ...
    v = with_examples(v)
    ties = scaled_ties(fmt, v_scale, 2 * KV_HEADS * HEAD_DIM).reshape(2, KV_HEADS, HEAD_DIM)
    v[0, 2], v[1, 1] = ties[0], ties[1]
    slots = random_slots(rng)
    slots[0, 0], slots[1, 4] = 6, 13  # the example tokens are written (and tokens 2 and 6, the ties, are)
    # The reference on rotary's rotated k in f32 (apply out of place to an f32 array) and on v.
    k_rotated = np.empty(k.shape, np.float32)
    rope.apply(k, POSITIONS, out=k_rotated)
    want_k = expected_storage(layout, HEAD_DIM, np.uint8, fp8_reference(k_rotated, k_scale, fmt), slots)
    want_v = expected_storage(layout, HEAD_DIM, np.uint8, fp8_reference(v, v_scale, fmt), slots)
    want_q, _ = rope.apply_qk(q.copy(), k.copy(), POSITIONS)

    k_storage, v_storage = numpy_storage(layout, HEAD_DIM, np.uint8), numpy_storage(layout, HEAD_DIM, np.uint8)
    k_before, v_before = k.copy(), v.copy()
    rope.apply_qk(q, k, POSITIONS, k_out=cache_view(k_storage, layout), v=v, v_out=cache_view(v_storage, layout),
                  slot_mapping=slots, cache_dtype=fmt, k_scale=k_scale, v_scale=v_scale)
    assert same_bytes(q, want_q)
    assert same_bytes(k, k_before) and same_bytes(v, v_before)
    assert np.array_equal(k_storage, want_k), np.argwhere(k_storage != want_k)[:5]
    assert np.array_equal(v_storage, want_v), np.argwhere(v_storage != want_v)[:5]
    if k_scale == 1.0 and v_scale == 1.0:  # the spec's bytes themselves
        row = cache_view(v_storage, layout)[6 // BLOCK_SIZE, 6 % BLOCK_SIZE, 0]
        assert [(i, int(row[i])) for i, _ in spec_bytes(fmt)] == spec_bytes(fmt)


@needs_torch
@pytest.mark.parametrize("fmt", ["fp8_e4m3", "fp8_e5m2"])
def test_fp8_bytes_equal_torchs_float8_within_range(rng, fmt):
    """torch's float8 conversion rounds to nearest even too (it saturates differently: only values below the
    largest finite are compared)."""
    torch_dtype = getattr(torch, {"fp8_e4m3": "float8_e4m3fn", "fp8_e5m2": "float8_e5m2"}[fmt], None)
    if torch_dtype is None:
        pytest.skip(f"torch {torch.__version__} has no float8 dtypes")
    rope = rotary.Rope(head_dim=HEAD_DIM)
    q, k, v = qkv(rng, scale=40.0)
    slots = np.arange(BATCH * SEQ, dtype=np.int64).reshape(BATCH, SEQ)
    kc, vc = np.zeros((NUM_BLOCKS, BLOCK_SIZE, KV_HEADS, HEAD_DIM), np.uint8), np.zeros(
        (NUM_BLOCKS, BLOCK_SIZE, KV_HEADS, HEAD_DIM), np.uint8)
    rope.apply_qk(q, k, k_out=kc, v=v, v_out=vc, slot_mapping=slots, cache_dtype=fmt, v_scale=0.75)
    z = torch.from_numpy(v) / torch.tensor(0.75, dtype=torch.float32)
    want = z.to(torch_dtype).view(torch.uint8).numpy().reshape(-1, KV_HEADS, HEAD_DIM)
    got = vc.reshape(-1, KV_HEADS, HEAD_DIM)[: BATCH * SEQ]
    inside = np.abs(z.numpy().reshape(-1, KV_HEADS, HEAD_DIM)) < fp8_decode(FP8[fmt][3], fmt)
    assert np.array_equal(got[inside], want[inside])


# ---- (c) q8_0 caches ----

def test_the_q8_0_reference_gives_the_spec_example():
    x = np.arange(32, dtype=np.float32) - 16
    record = q8_0_reference(x)
    assert list(record[:6]) == [0x08, 0x30, 0x81, 0x89, 0x91, 0x99]
    quants = record[2:].view(np.int8)
    assert quants[1] == -119 and quants[14] == -16 and quants[16] == 0 and quants[31] == 119
    ties = np.array([127.0] + [2.5 if j % 2 else -0.5 for j in range(1, 32)], np.float32)
    ties[5] = np.nextafter(np.float32(0.5), np.float32(0))  # 0.49999997: roundf gives 0, not floor(x + 0.5) = 1
    ties[6] = -ties[5]
    quants = q8_0_reference(ties)[2:].view(np.int8)
    assert list(quants[:3]) == [127, 3, -1] and quants[5] == 0 and quants[6] == 0  # half away from zero
    # §9.4's block where ggml-cpu's x86 quantizer (id = 127 / amax) gives 3: x * (1 / d) = 3.5000002 -> 4.
    x86 = np.zeros(32, np.float32)
    x86[:2] = [55.79623795, 1.537691593]
    assert q8_0_reference(x86)[2:].view(np.int8)[1] == 4


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("pairing", ["neox", "interleaved"])
def test_q8_0_caches_hold_ggmls_reference_records(rng, layout, pairing):
    rope = rotary.Rope(head_dim=HEAD_DIM, pairing=pairing)
    width = HEAD_DIM // 32 * 34
    q, k, v = qkv(rng, scale=30.0)
    # Known blocks in v: §9.4's x_j = j - 16, ties with amax 127, amax 1e-6 (half(d) = 0), amax 1e7 (inf),
    # and a block of zeros.
    j = np.arange(32, dtype=np.float32)
    v[0, 0, 0, :32] = j - 16
    v[0, 0, 0, 32:] = np.where(j % 2 == 1, 2.5, -0.5)
    v[0, 0, 0, 32] = 127
    v[0, 0, 0, 32 + 5] = np.nextafter(np.float32(0.5), np.float32(0))
    v[0, 0, 0, 32 + 6] = -np.nextafter(np.float32(0.5), np.float32(0))
    v[1, 0, 0, :32] = 0.25 * j
    v[1, 0, 0, :2] = [55.79623795, 1.537691593]  # ggml-cpu x86's quantizer gives 3, the reference 4
    v[0, 1, 0, :32] = 1e-7 * j
    v[0, 1, 0, 5] = 1e-6
    v[0, 1, 0, 32:] = j
    v[0, 1, 0, 32 + 9] = -1e7
    v[1, 0, 1, :32] = 0
    slots = random_slots(rng)
    slots[0, 0], slots[0, 1], slots[1, 0] = 19, 0, 10
    k_rotated = np.empty(k.shape, np.float32)
    rope.apply(k, POSITIONS, out=k_rotated)
    want_k = expected_storage(layout, width, np.uint8, q8_0_reference(k_rotated), slots)
    want_v = expected_storage(layout, width, np.uint8, q8_0_reference(v), slots)
    want_q, _ = rope.apply_qk(q.copy(), k.copy(), POSITIONS)

    k_storage, v_storage = numpy_storage(layout, width, np.uint8), numpy_storage(layout, width, np.uint8)
    k_before, v_before = k.copy(), v.copy()
    rope.apply_qk(q, k, POSITIONS, k_out=cache_view(k_storage, layout), v=v, v_out=cache_view(v_storage, layout),
                  slot_mapping=slots, cache_dtype="q8_0")
    assert same_bytes(q, want_q)
    assert same_bytes(k, k_before) and same_bytes(v, v_before)
    assert np.array_equal(k_storage, want_k), np.argwhere(k_storage != want_k)[:5]
    assert np.array_equal(v_storage, want_v), np.argwhere(v_storage != want_v)[:5]
    example = cache_view(v_storage, layout)[19 // BLOCK_SIZE, 19 % BLOCK_SIZE, 0]
    assert list(example[:6]) == [0x08, 0x30, 0x81, 0x89, 0x91, 0x99]
    assert list(example[34 + 2 : 34 + 5].view(np.int8)) == [127, 3, -1]
    assert list(example[34 + 7 : 34 + 9].view(np.int8)) == [0, 0]
    assert cache_view(v_storage, layout)[10 // BLOCK_SIZE, 10 % BLOCK_SIZE, 0, 3].view(np.int8) == 4
    extremes = cache_view(v_storage, layout)[0, 0, 0]
    assert extremes[:2].view("<u2")[0] == 0 and extremes[34:36].view("<u2")[0] == 0x7C00  # half(d): 0, +inf
    assert extremes[2:34].view(np.int8).any()  # the quants are still set where half(d) = 0
    assert not cache_view(v_storage, layout)[10 // BLOCK_SIZE, 10 % BLOCK_SIZE, 1, :34].any()  # zeros: d 0, q 0


# ---- (d) bad calls ----

def error_cases(rng):
    """(what, keywords for apply_qk, status, message), against the good call's arrays in `good`."""
    good = {}
    q, k, v = qkv(rng)
    good.update(q=q, k=k, v=v, slots=random_slots(rng))
    for name in ("kc", "vc"):
        good[name] = np.full((NUM_BLOCKS, BLOCK_SIZE, KV_HEADS, HEAD_DIM), 7.0, np.float16)
    for name in ("kb", "vb"):
        good[name] = np.full((NUM_BLOCKS, BLOCK_SIZE, KV_HEADS, HEAD_DIM), SENTINEL, np.uint8)
    twice, beyond = good["slots"].copy(), good["slots"].copy()
    twice[1, 0] = twice[0, 0]
    beyond[0, 4] = NUM_BLOCKS * BLOCK_SIZE
    f16 = dict(k_out=good["kc"], v=v, v_out=good["vc"], slot_mapping=good["slots"])
    fp8 = dict(k_out=good["kb"], v=v, v_out=good["vb"], slot_mapping=good["slots"], cache_dtype="fp8_e4m3")
    three_heads = np.zeros((NUM_BLOCKS, BLOCK_SIZE, 3, HEAD_DIM), np.float16)
    read_only = good["kc"].copy()
    read_only.flags.writeable = False
    IA, OOR = rotary.INVALID_ARGUMENT, rotary.OUT_OF_RANGE
    cases = [
        ("repeated slot", {**f16, "slot_mapping": twice}, IA, "slot_mapping[0] and slot_mapping[5] are both"),
        ("slot out of range", {**f16, "slot_mapping": beyond}, OOR,
         "slot_mapping[4] = 20 is not below num_blocks * block_size = 5 * 4 = 20"),
        ("cache kv heads", {**f16, "k_out": three_heads, "v_out": three_heads.copy()}, IA, "k_out has 3 kv heads"),
        ("cache last axis", {**f16, "k_out": good["kc"][..., :32]}, IA, "last axis must be head_dim = 64"),
        ("3-D cache", {**f16, "k_out": good["kc"][0]}, IA, "a paged cache is [num_blocks, block_size, kv_heads"),
        ("caches of two shapes", {**f16, "v_out": good["vc"][:3]}, IA, "the two caches have the same shape"),
        ("cache over k", {**f16, "k_out": k, "v_out": np.zeros_like(k), "slot_mapping": np.arange(10).reshape(2, 5)},
         IA, "k_cache and k_src may overlap"),
        ("read-only cache", {**f16, "k_out": read_only}, IA, "k_out is read-only"),
        ("uint8 cache without cache_dtype", {**fp8, "cache_dtype": None}, IA,
         "k_out is a uint8 array: say what its bytes hold with cache_dtype="),
        ("uint16 cache without cache_dtype", {**f16, "k_out": good["kc"].view(np.uint16),
                                              "v_out": good["vc"].view(np.uint16)}, IA,
         "k_out is a uint16 array: give cache_dtype='bf16'"),
        ("cache_dtype not the array's", {**f16, "cache_dtype": "bf16"}, IA,
         "k_out holds float16, not cache_dtype='bf16'"),
        ("v_out not k_out's dtype", {**f16, "v_out": good["vc"].astype(np.float32)}, IA,
         "v_out holds float32, not cache_dtype='f16' (k_out's dtype)"),
        ("fp8 in a float array", {**f16, "cache_dtype": "fp8_e5m2"}, IA, "the cache must be a uint8 array"),
        ("unknown cache_dtype", {**fp8, "cache_dtype": "int4"}, IA, "cache_dtype must be 'f32', 'f16', 'bf16'"),
        ("q8_0 head_dim 48", None, IA, "cache_dtype='q8_0' needs head_dim a multiple of 32"),
        ("negative scale", {**fp8, "k_scale": -1.0}, IA, "k_scale = -1.0: a scale must be finite and > 0"),
        ("zero scale", {**fp8, "v_scale": 0.0}, IA, "v_scale = 0.0: a scale must be finite and > 0"),
        ("infinite scale", {**fp8, "v_scale": float("inf")}, IA, "v_scale = inf: a scale must be finite"),
        ("NaN scale", {**fp8, "k_scale": float("nan")}, IA, "k_scale = nan"),
        ("scale 0 as a float32", {**fp8, "k_scale": 1e-50}, IA,
         "k_scale = 1e-50: a scale must be finite and > 0 as a float32"),
        ("scale of an f16 cache", {**f16, "k_scale": 2.0}, IA, "k_scale = 2.0 is for fp8 caches only"),
        ("slot_mapping shape", {**f16, "slot_mapping": good["slots"][:, :4]}, IA,
         "slot_mapping has shape [2, 4]; expected [batch, seq] = [2, 5] or [batch * seq] = [10]"),
        ("slot_mapping floats", {**f16, "slot_mapping": good["slots"].astype(np.float64)}, IA,
         "slot_mapping must be integers"),
        ("no v_out", {**f16, "v_out": None}, IA, "missing v_out="),
        ("no k_out, v", {**f16, "k_out": None, "v": None}, IA, "missing k_out=, v="),
        ("v without slot_mapping", {**f16, "slot_mapping": None}, IA, "belong to the KV-cache write"),
        ("v shape", {**f16, "v": v[:, :, :1]}, IA, "v and k have the same shape"),
        ("norm weight length", {**f16, "k_norm": np.ones(HEAD_DIM - 1, np.float32)}, IA, "k_norm"),
    ]
    return good, cases


def test_bad_calls_are_errors_that_write_nothing(rng):
    good, cases = error_cases(rng)
    rope = rotary.Rope(head_dim=HEAD_DIM)
    arrays = ("q", "k", "v", "kc", "vc", "kb", "vb")
    before = {name: good[name].copy() for name in arrays}
    seen = set()
    for what, keywords, status, message in cases:
        if keywords is None:  # q8_0 with head_dim 48: its own rope and arrays
            r48 = rotary.Rope(head_dim=48)
            q48, k48, v48 = (x[..., :48].copy() for x in (good["q"], good["k"], good["v"]))
            kb48 = np.full((NUM_BLOCKS, BLOCK_SIZE, KV_HEADS, 48 // 32 * 34), SENTINEL, np.uint8)
            vb48 = kb48.copy()
            q0 = q48.copy()
            with pytest.raises(rotary.Error) as info:
                r48.apply_qk(q48, k48, k_out=kb48, v=v48, v_out=vb48, slot_mapping=good["slots"], cache_dtype="q8_0")
            assert same_bytes(q48, q0) and (kb48 == SENTINEL).all() and (vb48 == SENTINEL).all(), what
        else:
            with pytest.raises(rotary.Error) as info:
                rope.apply_qk(good["q"], good["k"], POSITIONS, **keywords)
        assert info.value.status == status, (what, str(info.value))
        assert message in str(info.value), (what, str(info.value))
        for name in arrays:
            assert same_bytes(good[name], before[name]), (what, name)
        seen.add(what)
    assert len(seen) == len(cases)
    # The good calls go through and write.
    rope.apply_qk(good["q"].copy(), good["k"], POSITIONS, k_out=good["kc"], v=good["v"], v_out=good["vc"],
                  slot_mapping=good["slots"])
    rope.apply_qk(good["q"].copy(), good["k"], POSITIONS, k_out=good["kb"], v=good["v"], v_out=good["vb"],
                  slot_mapping=good["slots"], cache_dtype="fp8_e4m3")
    assert not same_bytes(good["kc"], before["kc"]) and not same_bytes(good["vb"], before["vb"])
