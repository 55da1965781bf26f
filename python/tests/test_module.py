"""The rotary Python module on numpy arrays: dtypes, strides, positions, q+k,
packed QKV, configuration keywords, targets, errors and the GIL."""
import re
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import rotary
from conftest import (FULL_TABLE_BOUND, ROUND_TRIP_BOUND, SYNTHESIZED_BOUND, default_inv_freq, from_bf16,
                      reference, to_bf16)

F32_BOUND = FULL_TABLE_BOUND  # max |rotary - float64 truth| / max |x| for f32 storage


def max_error(got, want, scale):
    return float(np.max(np.abs(np.asarray(got, np.float64) - want)) / scale)


@pytest.mark.parametrize("pairing", ["neox", "interleaved"])
@pytest.mark.parametrize("rotary_dim", [64, 24])
def test_f32_matches_float64_reference_and_inverts(rng, pairing, rotary_dim):
    rope = rotary.Rope(head_dim=64, rotary_dim=rotary_dim, pairing=pairing, base=10000.0)
    x = rng.standard_normal((2, 7, 3, 64)).astype(np.float32)
    positions = np.broadcast_to(np.arange(7) + 1000, (2, 7))
    y = x.copy()
    assert rope.apply(y, offset=1000) is y  # in place returns its argument
    want = reference(x, positions, default_inv_freq(rotary_dim), pairing)
    assert max_error(y, want, np.abs(x).max()) < F32_BOUND
    np.testing.assert_array_equal(y[..., rotary_dim:], x[..., rotary_dim:])  # the tail passes through
    rope.apply(y, offset=1000, inverse=True)
    assert max_error(y, x, np.abs(x).max()) < ROUND_TRIP_BOUND


def test_three_dimensional_array_is_batch_one(rng):
    rope = rotary.Rope(head_dim=32)
    x = rng.standard_normal((5, 2, 32)).astype(np.float32)
    y4 = rope.apply(x[None].copy(), offset=3)
    y3 = rope.apply(x.copy(), offset=3)
    np.testing.assert_array_equal(y3, y4[0])


def test_explicit_positions_equal_offsets_and_add_the_offset(rng):
    rope = rotary.Rope(head_dim=16)
    x = rng.standard_normal((2, 4, 2, 16)).astype(np.float32)
    by_offset = rope.apply(x.copy(), offset=10)
    ids = np.tile(np.arange(4), (2, 1))  # int64 [batch, seq]
    np.testing.assert_array_equal(rope.apply(x.copy(), ids, 10), by_offset)
    np.testing.assert_array_equal(rope.apply(x.copy(), (ids + 10).astype(np.int32)), by_offset)  # any integer type
    np.testing.assert_array_equal(rope.apply(x[:1].copy(), [10, 11, 12, 13]), by_offset[:1])  # [seq] for batch 1
    with pytest.raises(rotary.Error, match="expected \\[batch, seq\\] = \\[2, 4\\]"):
        rope.apply(x.copy(), np.arange(4))
    with pytest.raises(rotary.Error, match="shape \\[8\\]"):  # as many entries, but which is which?
        rope.apply(x.copy(), np.arange(8))
    with pytest.raises(rotary.Error, match="shape \\[4, 2\\]"):  # [seq, batch]
        rope.apply(x.copy(), ids.T.copy())
    with pytest.raises(rotary.Error, match="integers"):
        rope.apply(x.copy(), ids.astype(np.float64))


def test_out_of_place_into_every_dtype(rng):
    rope = rotary.Rope(head_dim=32, base=500000.0)
    x = rng.standard_normal((1, 6, 4, 32)).astype(np.float32)
    x_before = x.copy()
    want = rope.apply(x.copy(), offset=7)

    out32 = np.empty_like(x)
    assert rope.apply(x, offset=7, out=out32) is out32
    np.testing.assert_array_equal(out32, want)
    np.testing.assert_array_equal(x, x_before)  # the source is untouched

    out16 = rope.apply(x, offset=7, out=np.empty(x.shape, np.float16))
    np.testing.assert_array_equal(out16, want.astype(np.float16))  # rounded once, to nearest even

    outbf = rope.apply(x, offset=7, out=np.empty(x.shape, np.uint16), out_dtype="bf16")
    np.testing.assert_array_equal(outbf, to_bf16(want))

    # Read-only sources are fine out of place.
    x.flags.writeable = False
    np.testing.assert_array_equal(rope.apply(x, offset=7, out=np.empty_like(want)), want)


def test_f16_and_bf16_storage_in_place(rng):
    rope = rotary.Rope(head_dim=64)
    x = rng.standard_normal((2, 3, 2, 64)).astype(np.float32)
    half = x.astype(np.float16)
    want = rope.apply(half.astype(np.float32), offset=50)
    rope.apply(half, offset=50)
    np.testing.assert_array_equal(half, want.astype(np.float16))

    bf = to_bf16(x)
    want = rope.apply(from_bf16(bf).reshape(x.shape), offset=50)
    rope.apply(bf, offset=50, dtype="bf16")
    np.testing.assert_array_equal(bf, to_bf16(want))

    # f16 bits in a uint16 array too, and bf16 -> f32 out of place.
    bits = x.astype(np.float16).view(np.uint16)
    rope.apply(bits, offset=50, dtype="f16")
    np.testing.assert_array_equal(bits.view(np.float16), rope.apply(x.astype(np.float16), offset=50))
    bf = to_bf16(x)
    out = rope.apply(bf, offset=50, dtype="bf16", out=np.empty(x.shape, np.float32))
    np.testing.assert_array_equal(out, rope.apply(from_bf16(bf).reshape(x.shape), offset=50))


def test_strided_views_rotate_only_what_they_show(rng):
    rope = rotary.Rope(head_dim=16)
    x = rng.standard_normal((2, 5, 6, 16)).astype(np.float32)
    y = x.copy()
    rope.apply(y[:, :, ::2], offset=4)  # every other head
    np.testing.assert_array_equal(y[:, :, 1::2], x[:, :, 1::2])
    np.testing.assert_array_equal(y[:, :, ::2], rope.apply(np.ascontiguousarray(x[:, :, ::2]), offset=4))

    # HF's [batch, heads, seq, head_dim] layout, seen as [batch, seq, heads, head_dim].
    hf = np.ascontiguousarray(x.transpose(0, 2, 1, 3))
    rope.apply(hf.transpose(0, 2, 1, 3), offset=4)
    np.testing.assert_array_equal(hf.transpose(0, 2, 1, 3), rope.apply(x.copy(), offset=4))


def test_bad_layouts_are_errors_with_messages(rng):
    rope = rotary.Rope(head_dim=16)
    x = rng.standard_normal((1, 4, 2, 32)).astype(np.float32)
    with pytest.raises(rotary.Error, match="last axis \\(head_dim\\) must be contiguous"):
        rope.apply(x[..., ::2])
    bad = np.lib.stride_tricks.as_strided(x, shape=(1, 3, 2, 16), strides=(512, 130, 64, 4))
    with pytest.raises(rotary.Error, match="not a multiple of the item size"):
        rope.apply(bad)
    with pytest.raises(rotary.Error, match="head_dim = 16, got 32"):
        rope.apply(x)
    with pytest.raises(rotary.Error, match="stride_seq must be >= 1"):
        rope.apply(x[:, ::-1, :, :16])
    with pytest.raises(rotary.Error, match="shape \\[batch, seq, heads, head_dim\\]"):
        rope.apply(x[0, 0])
    with pytest.raises(rotary.Error, match="needs dtype='bf16'"):
        rope.apply(np.zeros((1, 1, 1, 16), np.uint16))
    with pytest.raises(rotary.Error, match="float64"):
        rope.apply(np.zeros((1, 1, 1, 16)))
    readonly = np.zeros((1, 1, 1, 16), np.float32)
    readonly.flags.writeable = False
    with pytest.raises(rotary.Error, match="read-only"):
        rope.apply(readonly)
    with pytest.raises(rotary.Error, match="byte order"):  # big-endian data would be rotated as garbage
        rope.apply(np.zeros((1, 1, 1, 16), ">f4"))
    with pytest.raises(rotary.Error, match="byte order"):
        rope.apply(np.zeros((1, 1, 1, 16), np.float32), out=np.zeros((1, 1, 1, 16), ">f2"))
    with pytest.raises(rotary.Error, match="empty"):
        rope.apply(np.zeros((0, 1, 16), np.float32))
    with pytest.raises(rotary.Error, match="dtype must be"):
        rope.apply(np.zeros((1, 1, 1, 16), np.float32), dtype=5)
    # The library's own validation: status and message, nothing written.
    y = x[..., :16].copy()
    with pytest.raises(rotary.Error) as info:
        rope.apply(y, offset=-1)
    assert info.value.status == rotary.OUT_OF_RANGE and "offset" in str(info.value)
    assert isinstance(info.value, ValueError)
    np.testing.assert_array_equal(y, x[..., :16])


def test_qk_together_with_q_scale_and_gqa(rng):
    rope = rotary.Rope(head_dim=32, pairing="interleaved")
    q = rng.standard_normal((2, 5, 8, 32)).astype(np.float32)
    k = rng.standard_normal((2, 5, 2, 32)).astype(np.float32)
    scale = 1 / np.sqrt(32)
    want_q = rope.apply(q.copy(), offset=9) * np.float32(scale)
    want_k = rope.apply(k.copy(), offset=9)

    q2, k2 = q.copy(), k.copy()
    got_q, got_k = rope.apply_qk(q2, k2, offset=9, q_scale=scale)
    assert got_q is q2 and got_k is k2
    # Two roundings of q * scale apart at most: both within the f32 bound of the exact value.
    np.testing.assert_allclose(q2, want_q, rtol=0, atol=2 * FULL_TABLE_BOUND * scale * np.abs(q).max())
    np.testing.assert_array_equal(k2, want_k)

    q_out, k_out = np.empty_like(q), np.empty(k.shape, np.uint16)
    with pytest.raises(rotary.Error, match="both q_out and k_out"):
        rope.apply_qk(q, k, q_out=q_out)
    # Out of place: q and k share their destination dtype.
    q_out = np.empty(q.shape, np.uint16)
    rope.apply_qk(q, k, offset=9, q_out=q_out, k_out=k_out, out_dtype="bf16")
    np.testing.assert_array_equal(k_out, to_bf16(want_k))
    np.testing.assert_array_equal(q_out, to_bf16(rope.apply(q.copy(), offset=9)))


def test_packed_qkv(rng):
    rope = rotary.Rope(head_dim=16)
    q_heads, kv_heads = 4, 2
    qkv = rng.standard_normal((2, 3, (q_heads + 2 * kv_heads) * 16)).astype(np.float32)
    views = qkv.reshape(2, 3, q_heads + 2 * kv_heads, 16)
    want_q = rope.apply(views[:, :, :q_heads].copy(), offset=5) * np.float32(0.5)
    want_k = rope.apply(views[:, :, q_heads : q_heads + kv_heads].copy(), offset=5)
    want_v = views[:, :, q_heads + kv_heads :].copy()
    assert rope.apply_packed_qkv(qkv, q_heads, kv_heads, offset=5, q_scale=0.5) is qkv
    np.testing.assert_allclose(views[:, :, :q_heads], want_q, rtol=0,
                               atol=2 * FULL_TABLE_BOUND * 0.5 * np.abs(qkv).max())
    np.testing.assert_array_equal(views[:, :, q_heads : q_heads + kv_heads], want_k)
    np.testing.assert_array_equal(views[:, :, q_heads + kv_heads :], want_v)
    with pytest.raises(rotary.Error, match="last axis must be"):
        rope.apply_packed_qkv(qkv, q_heads, 1)


def test_configuration_keywords_and_rope_scaling_blocks():
    llama3 = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
              "original_max_position_embeddings": 8192}
    from_block, _ = rotary.plan(head_dim=128, rope_theta=500000.0, rope_scaling=llama3)
    from_keywords, m = rotary.plan(head_dim=128, base=500000.0, scaling="llama3", factor=8.0,
                                   original_max_position_embeddings=8192)
    np.testing.assert_array_equal(from_block, from_keywords)
    assert m == 1.0 and from_block.dtype == np.float64 and from_block.shape == (64,)
    # Fast pairs unchanged, slow pairs divided by the factor.
    plain = default_inv_freq(128, 500000.0)
    assert from_block[0] == pytest.approx(plain[0]) and from_block[-1] == pytest.approx(plain[-1] / 8)

    inv, m = rotary.plan(head_dim=64, partial_rotary_factor=0.5, rope_scaling={"type": "linear", "factor": 4})
    np.testing.assert_allclose(inv, default_inv_freq(32) / 4, rtol=1e-15)

    inv, m = rotary.plan(head_dim=16, rope_scaling={"rope_type": "yarn", "factor": 4.0,
                                                    "original_max_position_embeddings": 64, "beta_fast": None})
    np.testing.assert_allclose(inv, [1, 0.2371708245, 0.05, 0.00790569415, 0.0025, 0.000790569415, 0.00025,
                                     7.90569415e-05], rtol=1e-9)  # docs/math.md §2.4 example
    assert m == pytest.approx(1.138629436)
    assert rotary.softmax_scale_factor(head_dim=64, scaling="yarn", factor=40, original_max_position_embeddings=4096,
                                       mscale=1, mscale_all_dim=1) == pytest.approx(1.873854207)

    inv, _ = rotary.plan(head_dim=8, scaling="longrope", short_factor=[1, 2, 3, 4], long_factor=[5, 6, 7, 8],
                         original_max_position_embeddings=16, max_position_embeddings=64, seq_len=100)
    np.testing.assert_allclose(inv, default_inv_freq(8) / [5, 6, 7, 8], rtol=1e-15)

    # original_max_position_embeddings at the top level and in rope_scaling: the top level's wins, in either order.
    yarn = {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 2048}
    top_level, _ = rotary.plan(head_dim=64, rope_scaling={**yarn, "original_max_position_embeddings": 4096})
    for config in ({"rope_scaling": yarn, "original_max_position_embeddings": 4096},
                   {"original_max_position_embeddings": 4096, "rope_scaling": yarn}):
        inv, _ = rotary.plan(head_dim=64, **config)
        np.testing.assert_array_equal(inv, top_level)
    assert not np.array_equal(rotary.plan(head_dim=64, rope_scaling=yarn)[0], top_level)

    with pytest.raises(rotary.Error, match="unknown configuration key 'rope_thetta'"):
        rotary.Rope(rope_thetta=1e6)
    with pytest.raises(rotary.Error, match="unknown scaling 'yarnn'"):
        rotary.Rope(scaling="yarnn")
    with pytest.raises(rotary.Error, match="pairing"):
        rotary.Rope(pairing="gptj")
    with pytest.raises(rotary.Error, match="rotary_dim"):
        rotary.Rope(head_dim=64, rotary_dim=65)
    # Values of the wrong type or range name their key.
    with pytest.raises(rotary.Error, match="head_dim: 128.0"):
        rotary.Rope(head_dim=128.0)
    with pytest.raises(rotary.Error, match="head_dim: 1099511627776"):
        rotary.Rope(head_dim=2**40)
    with pytest.raises(rotary.Error, match="factor: '2'"):
        rotary.Rope(scaling="linear", factor="2")
    with pytest.raises(rotary.Error, match="rope_scaling: \\[1\\]"):
        rotary.Rope(rope_scaling=[1])
    for factor in (0, -0.5, float("nan"), 1e10):
        with pytest.raises(rotary.Error, match="partial_rotary_factor must be in"):
            rotary.Rope(head_dim=64, partial_rotary_factor=factor)
    with pytest.raises(rotary.Error, match="disagree"):
        rotary.Rope(head_dim=64, rotary_dim=32, partial_rotary_factor=0.75)
    assert rotary.Rope(head_dim=64, rotary_dim=32, partial_rotary_factor=0.5).rotary_dim == 32

    rope = rotary.Rope(head_dim=64, rotary_dim=32, pairing="interleaved", max_positions=16)
    assert (rope.head_dim, rope.rotary_dim, rope.pairing) == (64, 32, "interleaved")
    assert rope.table_count == 1 and rope.table_bytes == 0
    rope.apply(np.zeros((1, 1, 1, 64), np.float32))
    assert rope.table_bytes > 0


def test_every_supported_target_gives_the_same_rotation(rng):
    names = [name for name, supported in rotary.compiled_targets() if supported]
    assert names and rotary.target_source() == "default"
    rope = rotary.Rope(head_dim=40, rotary_dim=36)
    x = rng.standard_normal((2, 9, 3, 40)).astype(np.float32)
    want = reference(x, np.broadcast_to(np.arange(9) + 70000, (2, 9)), default_inv_freq(36))
    for name in names:
        rotary.set_target(name)
        assert rotary.active_target() == name and rotary.target_source() == "rotary_set_target"
        assert max_error(rope.apply(x.copy(), offset=70000), want, np.abs(x).max()) < F32_BOUND, name
    with pytest.raises(rotary.Error, match="not a target of this build"):
        rotary.set_target("NOT_A_TARGET")
    rotary.set_target("auto")
    assert rotary.target_source() == "default"
    assert rotary.version() == rotary.__version__


def test_threads_share_one_rope(rng):
    rope = rotary.Rope(head_dim=64)
    xs = [rng.standard_normal((1, 64, 4, 64)).astype(np.float32) for _ in range(4)]
    wants = [rope.apply(x.copy(), offset=100 * i) for i, x in enumerate(xs)]
    results = [None] * len(xs)

    def work(i):
        y = xs[i].copy()
        for _ in range(20):
            rope.apply(y, offset=100 * i)
            rope.apply(y, offset=100 * i, inverse=True)
        results[i] = rope.apply(y, offset=100 * i)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(xs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # 20 round trips and an apply against one apply: at most 20 round trips' error apart.
    for got, want, x in zip(results, wants, xs):
        assert max_error(got, want, np.abs(x).max()) < 20 * ROUND_TRIP_BOUND


def test_the_gil_is_released_during_the_kernel():
    """While one thread is inside a long apply, the main thread keeps running
    Python code. Had the call held the GIL, the main thread could not run at
    all between the call's start and its end."""
    rotary.set_target(rotary.compiled_targets()[-1][0])  # the slowest target makes one call long
    rope = rotary.Rope(head_dim=128)
    seq = 64
    while True:  # one call of at least 100 ms
        x = np.ones((1, seq, 32, 128), np.float16)
        start = time.perf_counter()
        rope.apply(x)
        elapsed = time.perf_counter() - start
        if elapsed >= 0.1 or seq >= 65536:
            break
        seq *= 2
    assert elapsed >= 0.05, "could not make one call long enough to tell"

    window = {}

    def worker():
        window["begin"] = time.perf_counter()
        rope.apply(x)
        window["end"] = time.perf_counter()

    ticks = []
    thread = threading.Thread(target=worker)
    thread.start()
    while thread.is_alive():
        ticks.append(time.perf_counter())
    thread.join()
    begin, end = window["begin"], window["end"]
    inside = [begin] + [t for t in ticks if begin < t < end] + [end]
    longest_gap = max(b - a for a, b in zip(inside, inside[1:]))
    print(f"one apply took {end - begin:.3f} s; the main thread ran {len(inside) - 2} times meanwhile, "
          f"longest pause {longest_gap:.4f} s")
    assert longest_gap < 0.5 * (end - begin)


def test_readme_python_example_runs():
    """README.md's Python block, run as written, so it cannot drift from the module."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    assert blocks, "README.md has no python block"
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})


def test_table_modes_and_cache():
    x = np.random.default_rng(4).standard_normal((1, 3, 2, 64)).astype(np.float32)
    out = {}
    for mode in ("full", "compact", "on_the_fly"):
        rope = rotary.Rope(head_dim=64, max_positions=131072, table_mode=mode)
        assert rope.table_mode == mode
        out[mode] = rope.apply(x.copy(), offset=999_000)
        if mode == "on_the_fly":
            assert rope.table_bytes == 0
    apart = (SYNTHESIZED_BOUND + FULL_TABLE_BOUND) * np.abs(x).max()  # each within its bound of the truth
    np.testing.assert_allclose(out["compact"], out["full"], rtol=0, atol=apart)
    np.testing.assert_allclose(out["on_the_fly"], out["full"], rtol=0, atol=apart)
    assert rotary.Rope(head_dim=64).table_mode == "full"
    with pytest.raises(rotary.Error):
        rotary.Rope(head_dim=64, table_mode="tiny")

    budget = rotary.cache_budget()
    try:
        a = rotary.Rope(head_dim=64, base=777.0, max_positions=1)
        b = rotary.Rope(head_dim=64, base=777.0, max_positions=1)  # shares a's table
        a.apply(x.copy())
        assert b.table_bytes == a.table_bytes > 0
        assert rotary.cache_tables() >= 1 and rotary.cache_bytes() >= a.table_bytes
        rotary.set_cache_budget(0)
        assert a.table_bytes == 0
        assert rotary.cache_trim() == 0
        with pytest.raises(rotary.Error):
            rotary.set_cache_budget(-1)
    finally:
        rotary.set_cache_budget(budget)


def test_offset_per_sequence_equals_the_same_positions():
    """Ragged batches: offset as one integer per sequence ([batch]) instead of a position array."""
    rope = rotary.Rope(head_dim=32)
    rng = np.random.default_rng(7)
    q = rng.uniform(-1, 1, (3, 5, 4, 32)).astype(np.float32)
    k = rng.uniform(-1, 1, (3, 5, 2, 32)).astype(np.float32)
    offsets = np.array([0, 17, 4000])
    positions = offsets[:, None] + np.arange(5)[None, :]
    a = rope.apply(q.copy(), offset=offsets)
    b = rope.apply(q.copy(), positions)
    assert np.array_equal(a, b)
    w = rng.uniform(0.5, 1.5, 32).astype(np.float32)
    qa, ka = rope.apply_qk(q.copy(), k.copy(), offset=offsets, q_scale=0.25, q_norm=w, k_norm=w)
    qb, kb = rope.apply_qk(q.copy(), k.copy(), positions, q_scale=0.25, q_norm=w, k_norm=w)
    assert np.array_equal(qa, qb) and np.array_equal(ka, kb)
    with pytest.raises(rotary.Error, match="one per sequence is batch = 3"):
        rope.apply(q.copy(), offset=np.array([1, 2]))
    with pytest.raises(rotary.Error, match="offset must be an integer"):
        rope.apply(q.copy(), offset=1.5)
