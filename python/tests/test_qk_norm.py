"""qk-norm through the Python module: per-head RMSNorm, RoPE and q_scale in one pass.

Checked against a float64 numpy oracle of docs/math.md §8 (norm -> RoPE -> scale) within
§8's f32 bound, 4e-6 * max|y|; against Hugging Face's Qwen3 / Gemma 3 / OLMo 2 forms written
in torch (Qwen3RMSNorm, Gemma3RMSNorm, Olmo2RMSNorm, rotate_half, apply_rotary_pos_emb) when
torch is there; and for the argument errors.
"""
import os

import numpy as np
import pytest

import rotary
from conftest import default_inv_freq, reference, to_bf16

BOUND = 4e-6  # of max |y|


def need_torch():
    if os.environ.get("ROTARY_REQUIRE_TORCH") == "1":  # set by ctest when torch was there at configure time
        import torch

        return torch
    return pytest.importorskip("torch")


def normalized(x, w, eps=1e-6, offset=0.0, whole_token=False):
    """§8.1 in float64 over the last axis (whole_token: over the last two, the token's heads)."""
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64) + offset
    if whole_token:
        flat = x.reshape(x.shape[:-2] + (-1,))
        r = 1.0 / np.sqrt(np.mean(flat * flat, axis=-1, keepdims=True) + eps)
        return (flat * r * w.reshape(-1)).reshape(x.shape)
    r = 1.0 / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps)
    return x * r * w


def expect_close(got, want, what=""):
    got = np.asarray(got, dtype=np.float64)
    assert np.all(np.isfinite(got)), what
    assert np.max(np.abs(got - want)) <= BOUND * np.max(np.abs(want)), what


@pytest.mark.parametrize("pairing", ["neox", "interleaved"])
@pytest.mark.parametrize("rotary_dim", [128, 64])
def test_apply_qk_matches_the_float64_oracle(pairing, rotary_dim):
    rng = np.random.default_rng(1)
    rope = rotary.Rope(head_dim=128, rotary_dim=rotary_dim, base=1e6, pairing=pairing)
    q = rng.uniform(-3, 3, (2, 5, 8, 128)).astype(np.float32)
    k = rng.uniform(-1, 1, (2, 5, 2, 128)).astype(np.float32)
    wq = rng.uniform(0.5, 1.5, 128).astype(np.float32)
    wk = rng.uniform(0.5, 1.5, 128).astype(np.float32)
    positions = rng.integers(0, 4000, (2, 5))
    q_in, k_in = q.copy(), k.copy()
    rope.apply_qk(q, k, positions, q_scale=0.125, q_norm=wq, k_norm=wk, norm_eps=1e-6)
    inv_freq = default_inv_freq(rotary_dim, 1e6)
    expect_close(q, 0.125 * reference(normalized(q_in, wq), positions, inv_freq, pairing), "q")
    expect_close(k, reference(normalized(k_in, wk), positions, inv_freq, pairing), "k")


def test_apply_with_norm_in_place_out_of_place_and_bf16():
    rng = np.random.default_rng(2)
    rope = rotary.Rope(head_dim=64)
    x = rng.uniform(-2, 2, (1, 6, 4, 64)).astype(np.float32)
    w = rng.uniform(-1, 1, 64).astype(np.float32)  # Gemma stores w; the gain is 1 + w
    want = reference(normalized(x, w, 1e-5, 1.0), np.arange(3, 9)[None, :], default_inv_freq(64))
    out = np.empty_like(x)
    rope.apply(x, offset=3, out=out, norm=w, norm_eps=1e-5, norm_offset=1.0)
    expect_close(out, want)
    out_bf16 = np.empty(x.shape, dtype=np.uint16)
    rope.apply(x, offset=3, out=out_bf16, out_dtype="bf16", norm=w, norm_eps=1e-5, norm_offset=1.0)
    assert np.array_equal(out_bf16, to_bf16(out)), "bf16: the f32 result rounded once"
    rope.apply(x, offset=3, norm=w, norm_eps=1e-5, norm_offset=1.0)
    assert np.array_equal(x, out), "in place: the same bits"


def test_whole_token_norm_of_olmo2():
    rng = np.random.default_rng(3)
    rope = rotary.Rope(head_dim=32)
    q = rng.uniform(-2, 2, (1, 3, 4, 32)).astype(np.float32)
    k = rng.uniform(-2, 2, (1, 3, 2, 32)).astype(np.float32)
    wq = rng.uniform(0.5, 1.5, 4 * 32).astype(np.float32)  # heads * head_dim: one norm per token
    wk = rng.uniform(0.5, 1.5, 2 * 32).astype(np.float32)
    q_in, k_in = q.copy(), k.copy()
    rope.apply_qk(q, k, q_norm=wq, k_norm=wk)
    positions = np.arange(3)[None, :]
    expect_close(q, reference(normalized(q_in, wq.reshape(4, 32), whole_token=True), positions, default_inv_freq(32)))
    expect_close(k, reference(normalized(k_in, wk.reshape(2, 32), whole_token=True), positions, default_inv_freq(32)))


def test_packed_qkv_with_norm_leaves_v():
    rng = np.random.default_rng(4)
    rope = rotary.Rope(head_dim=64)
    qkv = rng.uniform(-2, 2, (2, 3, (4 + 2 * 2) * 64)).astype(np.float32)
    before = qkv.copy()
    wq = rng.uniform(0.5, 1.5, 64).astype(np.float32)
    wk = rng.uniform(0.5, 1.5, 64).astype(np.float32)
    rope.apply_packed_qkv(qkv, 4, 2, q_norm=wq, k_norm=wk, q_scale=0.5)
    heads = before.reshape(2, 3, 8, 64)
    got = qkv.reshape(2, 3, 8, 64)
    positions = np.tile(np.arange(3), (2, 1))
    inv_freq = default_inv_freq(64)
    expect_close(got[:, :, :4], 0.5 * reference(normalized(heads[:, :, :4], wq), positions, inv_freq), "q")
    expect_close(got[:, :, 4:6], reference(normalized(heads[:, :, 4:6], wk), positions, inv_freq), "k")
    assert np.array_equal(got[:, :, 6:], heads[:, :, 6:]), "v untouched"


def test_bad_norm_arguments_are_errors_and_write_nothing():
    rope = rotary.Rope(head_dim=16)
    q = np.ones((1, 2, 2, 16), dtype=np.float32)
    k = np.ones((1, 2, 1, 16), dtype=np.float32)
    before = q.copy()
    with pytest.raises(rotary.Error, match="q_norm: expected 16 floats"):
        rope.apply_qk(q, k, q_norm=np.ones(8, dtype=np.float32))
    with pytest.raises(rotary.Error, match="both hold head_dim floats"):
        rope.apply_qk(q, k, q_norm=np.ones(32, dtype=np.float32), k_norm=np.ones(16, dtype=np.float32))
    with pytest.raises(rotary.Error, match="norm.eps"):
        rope.apply(q, norm=np.ones(16, dtype=np.float32), norm_eps=0.0)
    with pytest.raises(rotary.Error, match=r"norm.q_weight\[3\]"):
        w = np.ones(16, dtype=np.float32)
        w[3] = np.nan
        rope.apply(q, norm=w)
    with pytest.raises(rotary.Error, match="inverse"):
        rope.apply(q, norm=np.ones(16, dtype=np.float32), inverse=True)
    assert np.array_equal(q, before)


# ---- Hugging Face's forms, restated in torch ----

def hf_rms_norm(torch, x, weight, eps, form):
    """Qwen3RMSNorm (weight in the model dtype, after casting back), Gemma3RMSNorm ((1 + w) in
    float32) and Olmo2RMSNorm (over the whole projection: x is [..., heads * head_dim])."""
    dtype = x.dtype
    h = x.to(torch.float32)
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
    if form == "qwen3":
        return weight * h.to(dtype)
    if form == "gemma3":
        return (h * (1.0 + weight.float())).to(dtype)
    return (weight * h).to(dtype)  # olmo2


def hf_rope(torch, x, positions, inv_freq):
    """LlamaRotaryEmbedding + apply_rotary_pos_emb on x [batch, heads, seq, head_dim] in float32."""
    freqs = positions[:, None, :, None].float() * inv_freq[None, None, None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * emb.cos() + rotated * emb.sin()


@pytest.mark.parametrize("form", ["qwen3", "gemma3", "olmo2"])
def test_hf_norm_then_rope(form):
    torch = need_torch()
    gen = torch.Generator().manual_seed(5)
    batch, seq, q_heads, kv_heads, D = 2, 7, 8, 2, 128
    q = torch.randn(batch, seq, q_heads, D, generator=gen, dtype=torch.float32) * 3
    k = torch.randn(batch, seq, kv_heads, D, generator=gen, dtype=torch.float32)
    wq_size, wk_size = (q_heads * D, kv_heads * D) if form == "olmo2" else (D, D)
    wq = torch.rand(wq_size, generator=gen) + 0.5 - (1.0 if form == "gemma3" else 0.0)
    wk = torch.rand(wk_size, generator=gen) + 0.5 - (1.0 if form == "gemma3" else 0.0)
    positions = torch.randint(0, 30000, (batch, seq), generator=gen)
    base = 1e6
    inv_freq = 1.0 / (base ** (torch.arange(0, D, 2, dtype=torch.int64).float() / D))  # HF's, float32
    inv_freq64 = 1.0 / (base ** (torch.arange(0, D, 2, dtype=torch.float64) / D))  # exact

    def hf(x, w, heads):  # [batch, seq, heads, D] -> HF's result, [batch, seq, heads, D], in float64 maths
        x64, w64 = x.double(), w.double()
        if form == "olmo2":
            normed = hf_rms_norm(torch, x64.reshape(batch, seq, heads * D), w64, 1e-6, form).reshape(x.shape)
        else:
            normed = hf_rms_norm(torch, x64, w64, 1e-6, form)
        freqs = positions[:, None, :, None].double() * inv_freq64[None, None, None, :]
        emb = torch.cat((freqs, freqs), dim=-1)
        t = normed.transpose(1, 2)
        rotated = torch.cat((-t[..., D // 2 :], t[..., : D // 2]), dim=-1)
        return (t * emb.cos() + rotated * emb.sin()).transpose(1, 2)

    # HF in float64 (their formulas, exact maths) is the truth; rotary runs on the float32 tensors.
    want_q, want_k = hf(q, wq, q_heads) * 0.0625, hf(k, wk, kv_heads)
    rope = rotary.Rope(head_dim=D, base=base)
    q_out, k_out = q.clone(), k.clone()
    rope.apply_qk(q_out, k_out, positions, q_scale=0.0625, q_norm=wq.numpy(), k_norm=wk.numpy(),
                  norm_offset=1.0 if form == "gemma3" else 0.0)
    expect_close(q_out.numpy(), want_q.numpy(), "q")
    expect_close(k_out.numpy(), want_k.numpy(), "k")
    # bf16 tensors: the float32 result rounded once.
    q_bf16, k_bf16 = q.bfloat16(), k.bfloat16()
    q_ref, k_ref = q_bf16.float(), k_bf16.float()
    rope.apply_qk(q_ref, k_ref, positions, q_scale=0.0625, q_norm=wq.numpy(), k_norm=wk.numpy(),
                  norm_offset=1.0 if form == "gemma3" else 0.0)
    rope.apply_qk(q_bf16, k_bf16, positions, q_scale=0.0625, q_norm=wq.numpy(), k_norm=wk.numpy(),
                  norm_offset=1.0 if form == "gemma3" else 0.0)
    assert torch.equal(q_bf16, q_ref.bfloat16()) and torch.equal(k_bf16, k_ref.bfloat16())
    # HF's own float32 forward (the rounding it does), for scale: rotary is at least as close to the truth.
    hf32_q = hf_rope(torch, (hf_rms_norm(torch, q.reshape(batch, seq, -1), wq, 1e-6, form).reshape(q.shape)
                             if form == "olmo2" else hf_rms_norm(torch, q, wq, 1e-6, form)).transpose(1, 2),
                     positions, inv_freq).transpose(1, 2) * 0.0625
    err_hf = (hf32_q.double() - want_q).abs().max().item()
    err_rotary = (q_out.double() - want_q).abs().max().item()
    assert err_rotary <= max(err_hf, BOUND * want_q.abs().max().item())
