"""torch tensors (any DLPack producer) in every entry point, viewed in place: bit-identical to the
numpy path on the same values, in f32, f16 and bf16, strided (HF's [batch, heads, seq, head_dim]
seen as .transpose(1, 2)), with torch positions, out of place, q + k, packed QKV and multi-axis ids."""
import os

import numpy as np
import pytest

import rotary

if os.environ.get("ROTARY_REQUIRE_TORCH") == "1":  # set by ctest when torch was there at configure time
    import torch
else:
    torch = pytest.importorskip("torch")


def as_numpy(t):
    """The values of a CPU tensor as the numpy path takes them (bf16 as uint16 bits), copied."""
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().view(np.uint16).copy(), "bf16"
    return t.numpy().copy(), None


def bits(t):
    return t.view(torch.int16 if t.element_size() == 2 else torch.int32).numpy().tobytes()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_in_place_equals_the_numpy_path(dtype):
    rope = rotary.Rope(head_dim=64, rope_theta=500000.0)
    t = torch.randn(2, 5, 3, 64, generator=torch.Generator().manual_seed(0)).to(dtype)
    a, declared = as_numpy(t)
    positions = torch.tensor([[0, 1, 2, 3, 4], [100, 101, 102, 103, 104]])
    assert rope.apply(t, positions=positions) is t
    rope.apply(a, positions=positions.numpy(), dtype=declared)
    assert bits(t) == a.tobytes()


def test_hf_layout_strided_and_requires_grad():
    rope = rotary.Rope(head_dim=64)
    q = torch.randn(1, 4, 6, 64, generator=torch.Generator().manual_seed(1), requires_grad=True)  # [b, heads, seq, d]
    want = q.detach().transpose(1, 2).contiguous()
    rope.apply(want)
    rope.apply(q.transpose(1, 2))  # a strided view of q's memory, rotated there
    assert torch.equal(q.detach().transpose(1, 2), want)


def test_out_of_place_qk_and_packed_qkv():
    rope = rotary.Rope(head_dim=32)
    g = torch.Generator().manual_seed(2)
    q, k = torch.randn(1, 3, 4, 32, generator=g), torch.randn(1, 3, 2, 32, generator=g)
    q_out, k_out = torch.empty(1, 3, 4, 32, dtype=torch.bfloat16), torch.empty(1, 3, 2, 32, dtype=torch.bfloat16)
    got = rope.apply_qk(q, k, positions=torch.tensor([[7, 8, 9]]), q_scale=0.5, q_out=q_out, k_out=k_out)
    assert got[0] is q_out and got[1] is k_out
    want_q, want_k = q.numpy().copy(), k.numpy().copy()
    rope.apply_qk(want_q, want_k, positions=np.array([[7, 8, 9]]), q_scale=0.5)
    assert torch.equal(q_out, torch.from_numpy(want_q).bfloat16())
    assert torch.equal(k_out, torch.from_numpy(want_k).bfloat16())
    qkv = torch.randn(1, 3, (4 + 2 * 2) * 32, generator=g)
    want = qkv.numpy().copy()
    assert rope.apply_packed_qkv(qkv, 4, 2, offset=11) is qkv
    rope.apply_packed_qkv(want, 4, 2, offset=11)
    assert bits(qkv) == want.tobytes()


def test_multi_axis_ids_as_a_torch_tensor():
    rope = rotary.Rope(head_dim=128, rope_theta=1e6, rope_scaling={"rope_type": "default", "mrope_section": [16, 24, 24]})
    x = torch.randn(1, 4, 2, 128, generator=torch.Generator().manual_seed(3))
    a = x.numpy().copy()
    ids = torch.tensor([[[5, 5, 5, 5]], [[5, 6, 6, 7]], [[5, 6, 7, 8]]])
    rope.apply(x, positions=ids)
    rope.apply(a, positions=ids.numpy())
    assert bits(x) == a.tobytes()


def test_hf_drop_in_from_a_config_object():
    """Rope.from_hf_config reads a PretrainedConfig-like object (head_dim from hidden_size / heads);
    hf_apply returns new rotated tensors in HF's layout, torch or numpy, equal to apply_qk's."""
    import types
    config = types.SimpleNamespace(hidden_size=256, num_attention_heads=4, rope_theta=10000.0,
                                   partial_rotary_factor=0.5, rope_scaling={"rope_type": "linear", "factor": 2.0})
    rope = rotary.Rope.from_hf_config(config)
    assert (rope.head_dim, rope.rotary_dim) == (64, 32)
    g = torch.Generator().manual_seed(4)
    q, k = torch.randn(2, 4, 5, 64, generator=g), torch.randn(2, 2, 5, 64, generator=g)
    ids = torch.arange(10).reshape(2, 5) * 3
    q_hf, k_hf = rope.hf_apply(q, k, ids)
    want_q, want_k = q.transpose(1, 2).numpy().copy(), k.transpose(1, 2).numpy().copy()
    rope.apply_qk(want_q, want_k, positions=ids.numpy())
    assert torch.equal(q_hf.transpose(1, 2), torch.from_numpy(want_q))
    assert torch.equal(k_hf.transpose(1, 2), torch.from_numpy(want_k))
    q_np, _ = rope.hf_apply(q.numpy(), k.numpy(), ids.numpy())
    assert np.array_equal(q_np, q_hf.numpy()) and not torch.equal(q_hf, q)  # new tensors, inputs untouched
    with pytest.raises(rotary.Error, match="head_dim nor hidden_size"):
        rotary.Rope.from_hf_config({"rope_theta": 1e4})


def test_shift_moves_cached_keys_by_delta_positions():
    """rope.shift is apply(inverse=True) at the old positions, then apply at the new ones, bit for bit."""
    rope = rotary.Rope(head_dim=64, rope_theta=10000.0)
    k = torch.randn(1, 6, 2, 64, generator=torch.Generator().manual_seed(5)).bfloat16()
    want = k.clone()
    rope.apply(want, offset=100, inverse=True)
    rope.apply(want, offset=100 - 40)
    assert rope.shift(k, -40, offset=100) is k
    assert torch.equal(k, want)
    before = k.clone()
    with pytest.raises(rotary.Error, match="negative"):
        rope.shift(k, -200, offset=100)  # the new positions start at -100
    assert torch.equal(k, before)


def test_what_cannot_be_viewed_in_place_is_an_error():
    rope = rotary.Rope(head_dim=8)
    with pytest.raises(rotary.Error, match="numpy array or a tensor that exports DLPack"):
        rope.apply([[[[0.0] * 8]]])
    with pytest.raises(rotary.Error, match="int64 .*not supported|arrays of int64"):
        rope.apply(torch.zeros(1, 1, 1, 8, dtype=torch.int64))
    with pytest.raises(rotary.Error, match="head_dim\\) must be contiguous"):
        rope.apply(torch.zeros(1, 1, 8, 2).transpose(2, 3))
