"""rotary's multi-axis RoPE against the Hugging Face multimodal formulas, written here in torch.

The functions below restate transformers' Qwen2-VL (Qwen2VLRotaryEmbedding.forward,
apply_multimodal_rotary_pos_emb: sectioned M-RoPE), Qwen3-VL (apply_interleaved_mrope) and the
Qwen2-VL vision encoder (VisionRotaryEmbedding, rot_pos_emb, apply_rotary_pos_emb_vision: 2D
RoPE over (row, col)), computed in float64 as the truth. rotary is configured from the model
config the way a user passes it (rope_theta and the rope_scaling block with mrope_section) and
given HF's position_ids [3, batch, seq] (vision: [2, batch, seq] = (row, col)).
"""
import os

import numpy as np
import pytest

import rotary
from conftest import FULL_TABLE_BOUND

if os.environ.get("ROTARY_REQUIRE_TORCH") == "1":  # set by ctest when torch was there at configure time
    import torch
else:
    torch = pytest.importorskip("torch")


def rotate_half(x):
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2 :]
    return torch.cat((-x2, x1), dim=-1)


def mrope_freqs(inv_freq, position_ids):
    """Qwen2VLRotaryEmbedding.forward's angles: [3, batch, seq, dim / 2]."""
    inv_freq_expanded = inv_freq[None, None, :, None].expand(3, position_ids.shape[1], -1, 1)
    position_ids_expanded = position_ids[:, :, None, :].to(inv_freq.dtype)
    return (inv_freq_expanded @ position_ids_expanded).transpose(2, 3)


def apply_multimodal_rotary_pos_emb(q, cos, sin, mrope_section, unsqueeze_dim=1):
    """Qwen2-VL: chunk i of the doubled cos/sin table (mrope_section * 2) from axis i % 3."""
    mrope_section = mrope_section * 2
    cos = torch.cat([m[i % 3] for i, m in enumerate(cos.split(mrope_section, dim=-1))], dim=-1).unsqueeze(unsqueeze_dim)
    sin = torch.cat([m[i % 3] for i, m in enumerate(sin.split(mrope_section, dim=-1))], dim=-1).unsqueeze(unsqueeze_dim)
    return (q * cos) + (rotate_half(q) * sin)


def apply_interleaved_mrope(freqs, mrope_section):
    """Qwen3-VL: t's angles, with the slots of h and w overwritten (stride 3)."""
    freqs_t = freqs[0].clone()
    for dim, offset in enumerate((1, 2), start=1):
        length = mrope_section[dim] * 3
        idx = slice(offset, length, 3)
        freqs_t[..., idx] = freqs[dim, ..., idx]
    return freqs_t


def hf_mrope(q, position_ids, head_dim, theta, mrope_section, interleaved):
    """q [batch, heads, seq, head_dim] (HF's layout), in float64."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))
    freqs = mrope_freqs(inv_freq, position_ids)
    if interleaved:
        emb = torch.cat([apply_interleaved_mrope(freqs, mrope_section)] * 2, dim=-1)
        return (q * emb.cos()[:, None]) + (rotate_half(q) * emb.sin()[:, None])
    emb = torch.cat((freqs, freqs), dim=-1)
    return apply_multimodal_rotary_pos_emb(q, emb.cos(), emb.sin(), mrope_section)


def hf_vision(q, rows, cols, head_dim, theta):
    """VisionRotaryEmbedding(head_dim // 2) at each patch's (row, col), flattened, doubled,
    then apply_rotary_pos_emb_vision. q [tokens, heads, head_dim], in float64."""
    dim = head_dim // 2
    inv_freq = 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim))
    rotary_pos_emb = torch.cat((torch.outer(rows.double(), inv_freq), torch.outer(cols.double(), inv_freq)), dim=-1)
    emb = torch.cat((rotary_pos_emb, rotary_pos_emb), dim=-1)
    cos, sin = emb.cos()[:, None, :], emb.sin()[:, None, :]
    return (q * cos) + (rotate_half(q) * sin)


def qwen_vl_position_ids(batch, text, frames, grid_h, grid_w, after, step=1, start=0):
    """get_rope_index's layout: text counting up on all axes, an image or video block of
    frames x grid_h x grid_w tokens (temporal step `step`), then text from the block's max + 1."""
    rows = []
    for b in range(batch):
        p = start + b
        t, h, w = [], [], []
        for _ in range(text):
            t.append(p), h.append(p), w.append(p)
            p += 1
        for f in range(frames):
            for r in range(grid_h):
                for c in range(grid_w):
                    t.append(p + f * step), h.append(p + r), w.append(p + c)
        p = max(t + h + w) + 1
        for _ in range(after):
            t.append(p), h.append(p), w.append(p)
            p += 1
        rows.append([t, h, w])
    return torch.tensor(rows, dtype=torch.int64).permute(1, 0, 2).contiguous()  # [3, batch, seq]


MODELS = {
    # name: (head_dim, rope_theta, rope_scaling)
    "qwen2_vl": (128, 1e6, {"type": "mrope", "mrope_section": [16, 24, 24]}),
    "qwen2_5_vl": (128, 1e6, {"rope_type": "default", "mrope_section": [16, 24, 24]}),
    "qwen3_vl": (128, 5e6, {"rope_type": "default", "mrope_section": [24, 20, 20], "mrope_interleaved": True}),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_mrope_matches_hf(name):
    head_dim, theta, rope_scaling = MODELS[name]
    step = 2 if name == "qwen2_5_vl" else 1  # Qwen2.5-VL videos: tokens_per_second * second_per_grid_t
    position_ids = qwen_vl_position_ids(batch=2, text=5, frames=2, grid_h=3, grid_w=4, after=6, step=step, start=30)
    seq = position_ids.shape[-1]
    generator = torch.Generator().manual_seed(0)
    q = torch.randn(2, 4, seq, head_dim, generator=generator)
    want = hf_mrope(q.double(), position_ids, head_dim, theta, rope_scaling["mrope_section"],
                    rope_scaling.get("mrope_interleaved", False))
    rope = rotary.Rope(head_dim=head_dim, rope_theta=theta, rope_scaling=rope_scaling)
    assert rope.axis_count == 3
    got = q.numpy().copy()
    rope.apply(got.transpose(0, 2, 1, 3), positions=position_ids.numpy())  # HF's layout, strided
    error = np.abs(got - want.numpy()).max() / q.abs().max().item()
    assert error <= FULL_TABLE_BOUND, error


def test_apply_qk_and_inverse_with_axes():
    head_dim, theta, rope_scaling = MODELS["qwen3_vl"]
    position_ids = qwen_vl_position_ids(batch=1, text=3, frames=1, grid_h=4, grid_w=4, after=2)
    seq = position_ids.shape[-1]
    generator = torch.Generator().manual_seed(1)
    q = torch.randn(1, seq, 8, head_dim, generator=generator)
    k = torch.randn(1, seq, 2, head_dim, generator=generator)
    rope = rotary.Rope(head_dim=head_dim, rope_theta=theta, rope_scaling=rope_scaling)
    q_out, k_out = rope.apply_qk(q.numpy().copy(), k.numpy().copy(), positions=position_ids.numpy())
    for got, x in ((q_out, q), (k_out, k)):
        want = hf_mrope(x.double().transpose(1, 2), position_ids, head_dim, theta, rope_scaling["mrope_section"], True)
        assert np.abs(got - want.transpose(1, 2).numpy()).max() <= FULL_TABLE_BOUND * x.abs().max().item()
    back = rope.apply(q_out, positions=position_ids.numpy(), inverse=True)
    assert np.abs(back - q.numpy()).max() <= 3 * FULL_TABLE_BOUND * q.abs().max().item()


def test_text_positions_equal_plain_rope_bit_for_bit():
    head_dim, theta, rope_scaling = MODELS["qwen2_vl"]
    multi = rotary.Rope(head_dim=head_dim, rope_theta=theta, rope_scaling=rope_scaling)
    plain = rotary.Rope(head_dim=head_dim, rope_theta=theta)
    x = np.random.default_rng(2).standard_normal((2, 7, 3, head_dim)).astype(np.float32)
    ids = np.arange(14, dtype=np.int64).reshape(2, 7) * 13
    want = plain.apply(x.copy(), positions=ids)
    assert np.array_equal(multi.apply(x.copy(), positions=ids), want)  # [batch, seq]: every axis equal
    assert np.array_equal(multi.apply(x.copy(), positions=np.stack([ids] * 3)), want)


def test_vision_2d_matches_hf():
    head_dim, theta = 80, 10000.0
    # A 4 x 6 patch grid in HF's 2x2 merge-block order.
    rows, cols = [], []
    for block_row in range(2):
        for block_col in range(3):
            for dy in range(2):
                for dx in range(2):
                    rows.append(2 * block_row + dy)
                    cols.append(2 * block_col + dx)
    rows, cols = torch.tensor(rows), torch.tensor(cols)
    q = torch.randn(len(rows), 16, head_dim, generator=torch.Generator().manual_seed(3))
    want = hf_vision(q.double(), rows, cols, head_dim, theta)
    rope = rotary.Rope(head_dim=head_dim, rope_theta=theta, vision_2d=True)
    assert rope.axis_count == 2
    got = rope.apply(q.numpy()[None].copy(), positions=torch.stack((rows, cols))[:, None, :].numpy())
    assert np.abs(got[0] - want.numpy()).max() <= FULL_TABLE_BOUND * q.abs().max().item()


def test_bad_multi_axis_input_is_an_error():
    with pytest.raises(rotary.Error, match="add up to rotary_dim / 2 = 64"):
        rotary.Rope(head_dim=128, rope_scaling={"rope_type": "default", "mrope_section": [16, 24, 20]})
    rope = rotary.Rope(head_dim=128, rope_scaling={"rope_type": "default", "mrope_section": [16, 24, 24]})
    x = np.ones((1, 4, 2, 128), dtype=np.float32)
    with pytest.raises(rotary.Error, match="2 axes; this rope reads 3"):
        rope.apply(x, positions=np.zeros((2, 1, 4), dtype=np.int64))
    with pytest.raises(rotary.Error, match="positions has shape"):
        rope.apply(x, positions=np.zeros((3, 1, 5), dtype=np.int64))
    assert (x == 1).all()
