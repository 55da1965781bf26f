"""Ropes over a caller's cos/sin cache, read in place (Rope.from_onnx_cache, Rope.from_vllm_cache).

Pair i at position p rotates by the cache's own cos[p, i] and sin[p, i], whatever they are, so
the oracle here is a float64 rotation by the cache's values (not by any frequencies): the caches
below hold random angles scaled by an attention factor, which no rope of rotary's own could
produce. Checked against it:
  - both pairings, partial rotary (rotary_dim < head_dim), explicit positions, f32/f16/bf16
    caches, caches with a row stride of their own (cos and sin interleaved by rows);
  - ONNX RotaryEmbedding (opset 23) and vLLM's RotaryEmbedding.forward_native, restated here in
    numpy and torch, on their own layouts;
  - vLLM's one array and ONNX's two, same f32 values: the same bits;
  - the rope keeps the cache alive and lets it go with itself; the inverse; the errors.
The f32 bound is the other tests' (5 * 2^-24 * max|x| times the cache's largest |cos|, |sin|).
"""
import gc
import os
import weakref

import numpy as np
import pytest

import rotary
from conftest import FULL_TABLE_BOUND, ROUND_TRIP_BOUND, from_bf16, rotate_pairs, to_bf16

if os.environ.get("ROTARY_REQUIRE_TORCH") == "1":  # set by ctest when torch was there at configure time
    import torch
else:
    try:
        import torch
    except ImportError:
        torch = None
needs_torch = pytest.mark.skipif(torch is None, reason="needs torch")

F32_BOUND = FULL_TABLE_BOUND  # max |rotary - float64 rotation by the cache's values| / (max|x| * max|cos, sin|)


# ---- caches and the float64 oracle ----

def random_cache(rng, rows, pairs, scale=1.0):
    """cos, sin [rows, pairs] in float64 of random angles times scale: no frequency plan gives them."""
    angle = rng.uniform(-np.pi, np.pi, (rows, pairs))
    return scale * np.cos(angle), scale * np.sin(angle)


def stored(values, dtype):
    """float64 values as a cache array of dtype ('f32', 'f16', 'bf16' as uint16 bits)."""
    if dtype == "bf16":
        return to_bf16(values.astype(np.float32)).reshape(values.shape)
    return values.astype(np.float32 if dtype == "f32" else np.float16)


def values_of(cache, dtype):
    """A cache array's values in float64."""
    if dtype == "bf16":
        return from_bf16(np.ascontiguousarray(cache)).reshape(cache.shape).astype(np.float64)
    return np.asarray(cache, np.float64)


def rotate_by(x, cos, sin, positions, pairing, inverse=False):
    """float64: x [batch, seq, heads, head_dim], pair i at (b, s) rotated by cos[positions[b, s], i],
    sin[...] (the inverse: by (cos, -sin) / (cos^2 + sin^2)); the components after 2 * pairs pass."""
    x = np.asarray(x, np.float64)
    c = cos[positions][:, :, None, :]
    s = sin[positions][:, :, None, :]
    if inverse:
        norm = c * c + s * s
        c, s = c / norm, -s / norm
    return rotate_pairs(x, c, s, pairing)


def f32_atol(x, cos, sin):
    return F32_BOUND * np.abs(x).max() * max(np.abs(cos).max(), np.abs(sin).max())


# ---- against the float64 rotation by the cache's values ----

@pytest.mark.parametrize("dtype", ["f32", "f16", "bf16"])
@pytest.mark.parametrize("pairing", ["neox", "interleaved"])
@pytest.mark.parametrize("head_dim, rotary_dim", [(64, 64), (80, 48)])
def test_onnx_cache_rotates_by_its_own_values(rng, dtype, pairing, head_dim, rotary_dim):
    rows, pairs = 300, rotary_dim // 2
    cos64, sin64 = random_cache(rng, rows, pairs, scale=1.25)
    cos_cache, sin_cache = stored(cos64, dtype), stored(sin64, dtype)
    declared = "bf16" if dtype == "bf16" else None
    rope = rotary.Rope.from_onnx_cache(cos_cache, sin_cache, head_dim=head_dim, pairing=pairing, dtype=declared)
    assert (rope.head_dim, rope.rotary_dim, rope.pairing) == (head_dim, rotary_dim, pairing)
    assert (rope.table_mode, rope.table_bytes) == ("borrowed", 0)
    cos, sin = values_of(cos_cache, dtype), values_of(sin_cache, dtype)

    x = rng.standard_normal((2, 6, 3, head_dim)).astype(np.float32)
    positions = rng.integers(0, rows, (2, 6))  # unordered, repeats allowed
    positions[0, 0], positions[1, 5] = 0, rows - 1  # the first and the last row
    y = x.copy()
    assert rope.apply(y, positions) is y
    want = rotate_by(x, cos, sin, positions, pairing)
    np.testing.assert_allclose(y, want, rtol=0, atol=f32_atol(x, cos, sin))
    np.testing.assert_array_equal(y[..., rotary_dim:], x[..., rotary_dim:])  # the tail passes through

    # positions + offset, and offset alone (positions offset + s)
    y = rope.apply(x.copy(), positions // 2, 100)
    np.testing.assert_allclose(y, rotate_by(x, cos, sin, positions // 2 + 100, pairing), rtol=0,
                               atol=f32_atol(x, cos, sin))
    y = rope.apply(x.copy(), offset=rows - 6)
    np.testing.assert_allclose(y, rotate_by(x, cos, sin, np.tile(np.arange(rows - 6, rows), (2, 1)), pairing),
                               rtol=0, atol=f32_atol(x, cos, sin))


@pytest.mark.parametrize("pairing", ["neox", "interleaved"])
def test_vllm_cache_rotates_by_its_own_values(rng, pairing):
    rows, head_dim, rotary_dim = 200, 64, 32
    cos, sin = random_cache(rng, rows, rotary_dim // 2, scale=0.8)
    cache = np.concatenate([cos, sin], axis=1).astype(np.float32)
    cache.flags.writeable = False  # only read
    rope = rotary.Rope.from_vllm_cache(cache, head_dim=head_dim, is_neox_style=pairing == "neox")
    assert (rope.head_dim, rope.rotary_dim, rope.pairing, rope.table_mode) == (head_dim, rotary_dim, pairing,
                                                                               "borrowed")
    cos, sin = values_of(cache[:, : rotary_dim // 2], "f32"), values_of(cache[:, rotary_dim // 2 :], "f32")
    q = rng.standard_normal((3, 5, 4, head_dim)).astype(np.float32)
    k = rng.standard_normal((3, 5, 2, head_dim)).astype(np.float32)
    positions = rng.integers(0, rows, (3, 5))
    q_out, k_out = rope.apply_qk(q.copy(), k.copy(), positions)
    np.testing.assert_allclose(q_out, rotate_by(q, cos, sin, positions, pairing), rtol=0, atol=f32_atol(q, cos, sin))
    np.testing.assert_allclose(k_out, rotate_by(k, cos, sin, positions, pairing), rtol=0, atol=f32_atol(k, cos, sin))


@pytest.mark.parametrize("layout", ["onnx", "vllm"])
def test_caches_with_a_row_stride_of_their_own(rng, layout):
    """Rows wider than the values read (a slice of a larger buffer), read in place."""
    rows, pairs, head_dim = 50, 16, 32
    cos, sin = random_cache(rng, rows, pairs)
    if layout == "onnx":  # cos and sin rows alternating in one buffer: row stride 2 * pairs
        buf = np.stack([cos, sin], axis=1).astype(np.float32)  # [rows, 2, pairs]
        rope = rotary.Rope.from_onnx_cache(buf[:, 0], buf[:, 1], pairing="interleaved")
        cos, sin = values_of(buf[:, 0], "f32"), values_of(buf[:, 1], "f32")
        pairing = "interleaved"
    else:  # vLLM rows with 8 floats of padding after each
        buf = np.zeros((rows, 2 * pairs + 8), np.float32)
        buf[:, : 2 * pairs] = np.concatenate([cos, sin], axis=1)
        rope = rotary.Rope.from_vllm_cache(buf[:, : 2 * pairs])
        cos, sin = values_of(buf[:, :pairs], "f32"), values_of(buf[:, pairs : 2 * pairs], "f32")
        pairing = "neox"
    x = rng.standard_normal((1, 7, 2, head_dim)).astype(np.float32)
    positions = rng.integers(0, rows, (1, 7))
    y = rope.apply(x.copy(), positions)
    np.testing.assert_allclose(y, rotate_by(x, cos, sin, positions, pairing), rtol=0, atol=f32_atol(x, cos, sin))


def test_mrope_sections_read_each_axis_row(rng):
    """**config's multi-axis layout over a borrowed cache: pair i reads the row of its section's axis."""
    rows, head_dim, section = 40, 32, [4, 6, 6]
    cos, sin = random_cache(rng, rows, head_dim // 2)
    cos_cache, sin_cache = cos.astype(np.float32), sin.astype(np.float32)
    rope = rotary.Rope.from_onnx_cache(cos_cache, sin_cache,
                                       rope_scaling={"rope_type": "mrope", "mrope_section": section})
    assert rope.axis_count == 3
    x = rng.standard_normal((1, 5, 2, head_dim)).astype(np.float32)
    ids = rng.integers(0, rows, (3, 1, 5))
    y = rope.apply(x.copy(), ids)
    axis = np.repeat([0, 1, 2], section)  # the axis of each pair
    cos, sin = values_of(cos_cache, "f32"), values_of(sin_cache, "f32")
    pair = np.arange(head_dim // 2)
    c = cos[ids[axis][..., 0, :].T, pair][None, :, None, :]  # [1, seq, 1, pairs]: cos[ids[axis[i], 0, s], i]
    s = sin[ids[axis][..., 0, :].T, pair][None, :, None, :]
    want = x.astype(np.float64)
    a, b = want[..., : head_dim // 2].copy(), want[..., head_dim // 2 :].copy()
    want[..., : head_dim // 2], want[..., head_dim // 2 :] = a * c - b * s, a * s + b * c
    np.testing.assert_allclose(y, want, rtol=0, atol=f32_atol(x, cos, sin))


# ---- ONNX RotaryEmbedding (opset 23), restated in numpy ----

def onnx_rotary_embedding(X, cos_cache, sin_cache, position_ids, interleaved=0, rotary_embedding_dim=0,
                          num_heads=0):
    """onnx/reference/ops/op_rotary_embedding.py, evaluated in float64: X [batch, heads, seq, head_size]
    or [batch, seq, hidden] (num_heads given); caches [max_pos, rotary_embedding_dim / 2]."""
    X = np.asarray(X, np.float64)
    cos_cache, sin_cache = np.asarray(cos_cache, np.float64), np.asarray(sin_cache, np.float64)
    original_shape = X.shape
    if X.ndim == 4:
        X = np.transpose(X, (0, 2, 1, 3))  # [batch, seq, heads, head_size]
    else:
        X = X.reshape(X.shape[0], X.shape[1], num_heads, X.shape[2] // num_heads)
    head_size = X.shape[3]
    if not rotary_embedding_dim:
        rotary_embedding_dim = head_size
    x_rotate, x_not_rotate = X[..., :rotary_embedding_dim], X[..., rotary_embedding_dim:]
    half = rotary_embedding_dim // 2
    cos = np.expand_dims(cos_cache[position_ids][:, :, :half], axis=2)
    sin = np.expand_dims(sin_cache[position_ids][:, :, :half], axis=2)
    if interleaved:
        x1, x2 = x_rotate[..., 0::2], x_rotate[..., 1::2]
    else:
        x1, x2 = np.split(x_rotate, 2, axis=-1)
    real = cos * x1 - sin * x2
    imag = sin * x1 + cos * x2
    if interleaved:
        x_rotate = np.concatenate((real[..., None], imag[..., None]), axis=-1).reshape(x_rotate.shape)
    else:
        x_rotate = np.concatenate((real, imag), axis=-1)
    out = np.concatenate((x_rotate, x_not_rotate), axis=-1)
    return out.reshape(original_shape) if len(original_shape) == 3 else np.transpose(out, (0, 2, 1, 3))


def onnx_caches(max_pos, rotary_dim, base, dtype):
    """cos_cache, sin_cache as an exporter builds them: float32 angles, then the model's dtype."""
    inv_freq = 1.0 / (base ** (np.arange(0, rotary_dim, 2, dtype=np.float32) / np.float32(rotary_dim)))
    freqs = np.outer(np.arange(max_pos, dtype=np.float32), inv_freq.astype(np.float32))
    return np.cos(freqs).astype(dtype), np.sin(freqs).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("interleaved", [0, 1])
def test_onnx_rotary_embedding_4d_input(rng, dtype, interleaved):
    """X [batch, num_heads, seq, head_size], rotary_embedding_dim < head_size, rotated in place through
    the [batch, seq, heads, head_dim] view of ONNX's layout."""
    batch, heads, seq, head_size, rotary_embedding_dim = 2, 3, 9, 64, 32
    cos_cache, sin_cache = onnx_caches(128, rotary_embedding_dim, 10000.0, dtype)
    X = rng.standard_normal((batch, heads, seq, head_size)).astype(dtype)
    position_ids = rng.integers(0, 128, (batch, seq))
    want = onnx_rotary_embedding(X, cos_cache, sin_cache, position_ids, interleaved, rotary_embedding_dim)

    rope = rotary.Rope.from_onnx_cache(cos_cache, sin_cache, head_dim=head_size,
                                       pairing="interleaved" if interleaved else "neox")
    Y = X.copy()
    rope.apply(Y.transpose(0, 2, 1, 3), position_ids)
    # f32: within the f32 bound; f16 output: rounded once to f16 (half an ulp, 2^-11 relative) as well.
    rtol = 0 if dtype == np.float32 else 2.0**-11
    np.testing.assert_allclose(Y.astype(np.float64), want, rtol=rtol, atol=F32_BOUND * np.abs(X).max())


@pytest.mark.parametrize("interleaved", [0, 1])
def test_onnx_rotary_embedding_3d_input_f16_caches(rng, interleaved):
    """X [batch, seq, hidden] with num_heads, full rotary; f16 caches rotating an f32 X: the caches' values."""
    batch, seq, num_heads, head_size = 2, 7, 4, 32
    cos_cache, sin_cache = onnx_caches(64, head_size, 500000.0, np.float16)
    X = rng.standard_normal((batch, seq, num_heads * head_size)).astype(np.float32)
    position_ids = rng.integers(0, 64, (batch, seq))
    want = onnx_rotary_embedding(X, cos_cache, sin_cache, position_ids, interleaved, num_heads=num_heads)
    rope = rotary.Rope.from_onnx_cache(cos_cache, sin_cache, pairing="interleaved" if interleaved else "neox")
    Y = X.copy()
    rope.apply(Y.reshape(batch, seq, num_heads, head_size), position_ids)
    np.testing.assert_allclose(Y, want, rtol=0, atol=F32_BOUND * np.abs(X).max())


def test_vllm_layout_and_onnx_layout_give_the_same_bits(rng):
    """One f32 cos_sin_cache (read by the kernels as full-table rows) and its halves as ONNX's two arrays
    (converted per row): bit-identical, in both pairings, q + k and out of place."""
    rows, rotary_dim, head_dim = 500, 64, 96
    cos, sin = random_cache(rng, rows, rotary_dim // 2, scale=1.1)
    cache = np.concatenate([cos, sin], axis=1).astype(np.float32)
    cos_cache = np.ascontiguousarray(cache[:, : rotary_dim // 2])
    sin_cache = np.ascontiguousarray(cache[:, rotary_dim // 2 :])
    q = rng.standard_normal((2, 8, 4, head_dim)).astype(np.float32)
    k = rng.standard_normal((2, 8, 2, head_dim)).astype(np.float32)
    positions = rng.integers(0, rows, (2, 8))
    for pairing in ("neox", "interleaved"):
        vllm = rotary.Rope.from_vllm_cache(cache, head_dim=head_dim, is_neox_style=pairing == "neox")
        onnx = rotary.Rope.from_onnx_cache(cos_cache, sin_cache, head_dim=head_dim, pairing=pairing)
        a = vllm.apply_qk(q.copy(), k.copy(), positions, q_scale=0.125)
        b = onnx.apply_qk(q.copy(), k.copy(), positions, q_scale=0.125)
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
        out_a = vllm.apply(q, positions, out=np.empty_like(q))
        out_b = onnx.apply(q, positions, out=np.empty_like(q))
        np.testing.assert_array_equal(out_a, out_b)
        # and both are the rotation by those values
        np.testing.assert_allclose(out_a, rotate_by(q, values_of(cos_cache, "f32"), values_of(sin_cache, "f32"),
                                                    positions, pairing), rtol=0, atol=f32_atol(q, cos, sin))


# ---- vLLM's RotaryEmbedding.forward_native, restated in torch ----

def vllm_cos_sin_cache(base, rotary_dim, max_position_embeddings, dtype):
    """RotaryEmbedding._compute_cos_sin_cache, in float32, then the model's dtype."""
    inv_freq = 1.0 / (base ** (torch.arange(0, rotary_dim, 2, dtype=torch.float) / rotary_dim))
    t = torch.arange(max_position_embeddings, dtype=torch.float)
    freqs = torch.einsum("i,j -> ij", t, inv_freq)
    return torch.cat((freqs.cos(), freqs.sin()), dim=-1).to(dtype)


def vllm_apply_rotary_emb_torch(x, cos, sin, is_neox_style):
    cos = cos.unsqueeze(-2).to(x.dtype)
    sin = sin.unsqueeze(-2).to(x.dtype)
    if is_neox_style:
        x1, x2 = torch.chunk(x, 2, dim=-1)
    else:
        x1, x2 = x[..., ::2], x[..., 1::2]
    o1 = x1 * cos - x2 * sin
    o2 = x2 * cos + x1 * sin
    if is_neox_style:
        return torch.cat((o1, o2), dim=-1)
    return torch.stack((o1, o2), dim=-1).flatten(-2)


def vllm_forward_native(positions, query, key, cos_sin_cache, head_size, rotary_dim, is_neox_style):
    """query [num_tokens, num_heads * head_size], key [num_tokens, num_kv_heads * head_size]; new tensors."""
    positions = positions.flatten()
    num_tokens = positions.shape[0]
    cos_sin = cos_sin_cache.index_select(0, positions)
    cos, sin = cos_sin.chunk(2, dim=-1)
    out = []
    for x in (query, key):
        shape = x.shape
        x = x.view(num_tokens, -1, head_size)
        x_rot = vllm_apply_rotary_emb_torch(x[..., :rotary_dim], cos, sin, is_neox_style)
        out.append(torch.cat((x_rot, x[..., rotary_dim:]), dim=-1).reshape(shape))
    return out


@needs_torch
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("is_neox_style", [True, False])
@pytest.mark.parametrize("head_size, rotary_dim", [(128, 128), (64, 32)])
def test_vllm_forward_native(dtype, is_neox_style, head_size, rotary_dim):
    """vLLM's cache and tensors as vLLM has them (torch, [num_tokens, heads * head_size]), rotated in
    place by apply_qk: as forward_native evaluated in float64 on the same values, within the f32 bound
    (float32) or one rounding to bf16 (bfloat16, never worse than forward_native's own bf16 arithmetic)."""
    torch_dtype = getattr(torch, dtype)
    num_heads, num_kv_heads, num_tokens, max_pos = 8, 2, 12, 4096
    cache = vllm_cos_sin_cache(1e6, rotary_dim, max_pos, torch_dtype)
    g = torch.Generator().manual_seed(7)
    query = torch.randn(num_tokens, num_heads * head_size, generator=g).to(torch_dtype)
    key = torch.randn(num_tokens, num_kv_heads * head_size, generator=g).to(torch_dtype)
    positions = torch.randint(0, max_pos, (num_tokens,), generator=g)
    positions[-1] = max_pos - 1
    truth = vllm_forward_native(positions, query.double(), key.double(), cache.double(), head_size, rotary_dim,
                                is_neox_style)
    native = vllm_forward_native(positions, query, key, cache, head_size, rotary_dim, is_neox_style)

    rope = rotary.Rope.from_vllm_cache(cache, head_dim=head_size, is_neox_style=is_neox_style)
    assert rope.rotary_dim == rotary_dim and rope.table_mode == "borrowed"
    q, k = query.clone(), key.clone()
    got = rope.apply_qk(q.view(num_tokens, num_heads, head_size), k.view(num_tokens, num_kv_heads, head_size),
                        positions)
    assert got[0].data_ptr() == q.data_ptr()  # in place, through views of vLLM's tensors
    scale = max(query.abs().max().item(), key.abs().max().item())
    rtol = 0 if dtype == "float32" else 2.0**-8  # half a bf16 ulp
    for mine, theirs, want in zip((q, k), native, truth):
        assert torch.isfinite(mine).all()
        np.testing.assert_allclose(mine.double().numpy(), want.numpy(), rtol=rtol, atol=F32_BOUND * scale)
        if dtype == "float32":  # both within the f32 bound of the truth
            np.testing.assert_allclose(mine.numpy(), theirs.numpy(), rtol=0, atol=2 * F32_BOUND * scale)
        else:
            assert (mine.double() - want).abs().max() <= (theirs.double() - want).abs().max()


@needs_torch
def test_torch_bf16_onnx_caches_and_strided_torch_cache(rng):
    """torch caches through DLPack: bf16 ONNX caches, and a vLLM cache that is a column slice."""
    rows, pairs, head_dim = 64, 16, 32
    cos, sin = random_cache(rng, rows, pairs)
    cos_t, sin_t = torch.from_numpy(cos).to(torch.bfloat16), torch.from_numpy(sin).to(torch.bfloat16)
    rope = rotary.Rope.from_onnx_cache(cos_t, sin_t)
    x = rng.standard_normal((1, 6, 2, head_dim)).astype(np.float32)
    positions = rng.integers(0, rows, (1, 6))
    cos64, sin64 = cos_t.double().numpy(), sin_t.double().numpy()
    np.testing.assert_allclose(rope.apply(x.copy(), positions), rotate_by(x, cos64, sin64, positions, "neox"),
                               rtol=0, atol=f32_atol(x, cos64, sin64))
    # the same bits as numpy's uint16 with dtype='bf16'
    bits = rotary.Rope.from_onnx_cache(cos_t.view(torch.int16).numpy().view(np.uint16),
                                       sin_t.view(torch.int16).numpy().view(np.uint16), dtype="bf16")
    np.testing.assert_array_equal(bits.apply(x.copy(), positions), rope.apply(x.copy(), positions))

    wide = torch.zeros(rows, 2 * pairs + 4)
    wide[:, : 2 * pairs] = torch.cat((cos_t.float(), sin_t.float()), dim=-1)
    strided = rotary.Rope.from_vllm_cache(wide[:, : 2 * pairs])
    np.testing.assert_array_equal(strided.apply(x.copy(), positions), rope.apply(x.copy(), positions))


# ---- lifetime, inverse, errors ----

def test_the_rope_keeps_a_numpy_cache_alive(rng):
    rows, pairs = 100, 32
    cos, sin = random_cache(rng, rows, pairs)
    cache = np.concatenate([cos, sin], axis=1).astype(np.float32)
    alive = weakref.ref(cache)
    rope = rotary.Rope.from_vllm_cache(cache)
    x = rng.standard_normal((1, 4, 2, 2 * pairs)).astype(np.float32)
    positions = np.array([[3, 99, 0, 50]])
    before = rope.apply(x.copy(), positions)
    del cache
    gc.collect()
    assert alive() is not None
    garbage = [np.full((rows, 2 * pairs), np.nan, np.float32) for _ in range(8)]  # would reuse freed memory
    np.testing.assert_array_equal(rope.apply(x.copy(), positions), before)
    del garbage, rope
    gc.collect()
    assert alive() is None  # released with the rope


@needs_torch
def test_the_rope_keeps_torch_caches_alive(rng):
    rows, pairs = 100, 32
    cos, sin = random_cache(rng, rows, pairs)
    cos_t, sin_t = torch.from_numpy(cos).half(), torch.from_numpy(sin).half()
    alive = [weakref.ref(cos_t), weakref.ref(sin_t)]
    rope = rotary.Rope.from_onnx_cache(cos_t, sin_t, pairing="interleaved")
    x = torch.randn(1, 4, 2, 2 * pairs, generator=torch.Generator().manual_seed(3))
    positions = torch.tensor([[3, 99, 0, 50]])
    before = rope.apply(x.clone(), positions)
    del cos_t, sin_t
    gc.collect()
    assert all(a() is not None for a in alive)
    garbage = [torch.full((rows, pairs), float("nan"), dtype=torch.float16) for _ in range(8)]
    assert torch.equal(rope.apply(x.clone(), positions), before)
    del garbage, rope
    gc.collect()
    assert all(a() is None for a in alive)


@pytest.mark.parametrize("dtype", ["f32", "bf16"])
@pytest.mark.parametrize("pairing", ["neox", "interleaved"])
def test_inverse_undoes_apply(rng, dtype, pairing):
    """The inverse rotates by (c, -s) / (c^2 + s^2): exact for a scaled cache and for bf16 values, whose
    c^2 + s^2 is not 1 (a plain (c, -s) would miss by ~2^-8)."""
    rows, head_dim = 80, 48
    cos, sin = random_cache(rng, rows, head_dim // 2, scale=1.14 if dtype == "f32" else 1.0)
    declared = "bf16" if dtype == "bf16" else None
    rope = rotary.Rope.from_onnx_cache(stored(cos, dtype), stored(sin, dtype), pairing=pairing, dtype=declared)
    x = rng.standard_normal((2, 5, 3, head_dim)).astype(np.float32)
    positions = rng.integers(0, rows, (2, 5))
    y = rope.apply(x.copy(), positions)
    c, s = values_of(stored(cos, dtype), dtype), values_of(stored(sin, dtype), dtype)
    np.testing.assert_allclose(rope.apply(x.copy(), positions, inverse=True),
                               rotate_by(x, c, s, positions, pairing, inverse=True), rtol=0,
                               atol=F32_BOUND * np.abs(x).max() / np.sqrt(c * c + s * s).min())
    rope.apply(y, positions, inverse=True)
    np.testing.assert_allclose(y, x, rtol=0, atol=ROUND_TRIP_BOUND * np.abs(x).max())


def test_positions_beyond_the_cache_are_errors_that_write_nothing(rng):
    rows = 16
    cos, sin = random_cache(rng, rows, 8)
    rope = rotary.Rope.from_onnx_cache(cos.astype(np.float32), sin.astype(np.float32))
    x = rng.standard_normal((1, 3, 2, 16)).astype(np.float32)
    y = x.copy()
    rope.apply(y, [[0, 15, 7]])  # the last row is fine
    for call in (lambda t: rope.apply(t, [[0, rows, 7]]),
                 lambda t: rope.apply(t, offset=rows - 2),
                 lambda t: rope.apply(t, [[0, 1, 2]], rows - 2),
                 lambda t: rope.apply_qk(t, t[:, :, :1].copy(), [[1, 2, rows + 100]]),
                 lambda t: rope.apply(t, [[0, rows, 7]], inverse=True)):
        y = x.copy()
        with pytest.raises(rotary.Error, match="table.rows = 16") as e:
            call(y)
        assert e.value.status == rotary.OUT_OF_RANGE
        np.testing.assert_array_equal(y, x)


@pytest.mark.parametrize("config, match", [
    ({"scaling": "linear"}, "scaling scheme"),
    ({"rope_type": "llama3"}, "scaling scheme"),
    ({"rope_scaling": {"rope_type": "yarn", "factor": 4.0}}, "'factor' does not apply"),
    ({"rope_theta": 1e6}, "'rope_theta' does not apply"),
    ({"base": 500000.0}, "'base' does not apply"),
    ({"attention_factor": 1.2}, "'attention_factor' does not apply"),
    ({"inv_freq": [1.0] * 8}, "'inv_freq' does not apply"),
    ({"max_positions": 64}, "'max_positions' does not apply"),
    ({"table_mode": "full"}, "table_mode = 1 with a borrowed table"),  # the library's check
    ({"table_mode": "borrowed"}, "not a setting"),
    ({"rotary_dim": 8}, "rotary_dim = 8, but the cache holds rotary_dim / 2 = 8 pairs"),
    ({"interleaved": 1}, "pairing='interleaved'"),
    ({"mrope_section": [2, 2, 2]}, "mrope_section must add up"),  # the library's check
    ({"head_dim": 8}, "rotary_dim must be even and in \\[2, head_dim = 8\\]"),
])
def test_keywords_that_do_not_apply_are_errors(config, match):
    cache = np.ones((4, 8), np.float32)
    with pytest.raises(rotary.Error, match=match) as e:
        rotary.Rope.from_onnx_cache(cache, cache, **config)
    assert e.value.status == rotary.INVALID_ARGUMENT
    # the ones that apply
    rope = rotary.Rope.from_onnx_cache(cache, cache, scaling="default", position_limit=4, rotary_dim=16,
                                       partial_rotary_factor=0.5, head_dim=32, mrope_section=[2, 3, 3],
                                       mrope_interleaved=True)
    assert (rope.head_dim, rope.rotary_dim, rope.axis_count) == (32, 16, 3)
    assert rotary.Rope.from_vllm_cache(np.ones((4, 8), np.float32), vision_2d=True).axis_count == 2


def test_bad_caches_are_errors_with_messages():
    c = np.ones((10, 8), np.float32)
    onnx, vllm = rotary.Rope.from_onnx_cache, rotary.Rope.from_vllm_cache
    cases = [
        (lambda: onnx(c[None], c[None]), "cos_cache: expected a 2-D cache"),
        (lambda: vllm(np.ones((2, 10, 8), np.float32)), "cos_sin_cache: expected a 2-D cache"),
        (lambda: onnx(c.ravel(), c.ravel()), "expected a 2-D cache .* got 1 dimensions"),
        (lambda: onnx(c, c[:5]), "cos_cache is \\[10, 8\\] but sin_cache \\[5, 8\\]"),
        (lambda: onnx(c, c[:, :4]), "cos_cache is \\[10, 8\\] but sin_cache \\[10, 4\\]"),
        (lambda: onnx(c, c.astype(np.float16)), "same dtype"),
        (lambda: onnx(c, np.ones((20, 8), np.float32)[::2]), "same row stride, got 8 and 16"),
        (lambda: onnx(c, np.ones((8, 10), np.float32).T), "sin_cache: the last axis must be contiguous"),
        (lambda: onnx(c[:0], c[:0]), "cos_cache has no rows"),
        (lambda: vllm(np.ones((4, 7), np.float32)), "rows of 7 values"),
        (lambda: vllm(np.ones((4, 8))), "float64 are not supported"),
        (lambda: vllm(np.ones((4, 8), np.uint16)), "uint16 array needs dtype='bf16'"),
        (lambda: vllm(np.ones((4, 8), np.float32)[::-1]), "without overlapping"),
        (lambda: vllm(np.ones((4, 8), np.float32), pairing="neox"), "is_neox_style"),
        (lambda: vllm([[1.0, 0.0]]), "numpy array or a tensor that exports DLPack"),
    ]
    for call, match in cases:
        with pytest.raises(rotary.Error, match=match):
            call()
