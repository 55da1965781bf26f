"""rotary against the Hugging Face Llama rotary formulas, written here in torch.

The functions below restate transformers' modeling_rope_utils (_compute_*_rope_parameters)
and modeling_llama (LlamaRotaryEmbedding.forward, rotate_half, apply_rotary_pos_emb), plus
GPT-J's pairwise form (rotate_every_two) for the interleaved pairing. HF computes them in
float32; `dtype` lets the same formulas run in float64 as the truth.

Each case passes rotary the model config as HF has it (rope_theta, partial_rotary_factor,
max_position_embeddings and the rope_scaling block) and checks:
  - against the formulas in float64: within the f32 bound, 5 * 2^-24 * max|x| * m;
  - against the formulas in float32, as users run them: within the f32 bound plus the
    float32 formula's own angle error, which grows with the position (see the last test).
"""
import math
import os

import numpy as np
import pytest

import rotary
from conftest import FULL_TABLE_BOUND

if os.environ.get("ROTARY_REQUIRE_TORCH") == "1":  # set by ctest when torch was there at configure time
    import torch
else:
    torch = pytest.importorskip("torch")

F32_BOUND = FULL_TABLE_BOUND  # max |rotary - truth| / (max|x| * m)


# ---- transformers' _compute_*_rope_parameters, with `dtype` in place of .float() ----

def rotary_dim_of(config):
    return int(config["head_dim"] * config.get("partial_rotary_factor", 1.0))


def compute_default_parameters(config, seq_len, dtype):
    base, dim = config["rope_theta"], rotary_dim_of(config)
    inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).to(dtype) / dim))
    return inv_freq, 1.0


def compute_linear_parameters(config, seq_len, dtype):
    inv_freq, attention_factor = compute_default_parameters(config, seq_len, dtype)
    return inv_freq / config["rope_scaling"]["factor"], attention_factor


def compute_dynamic_ntk_parameters(config, seq_len, dtype):
    base, dim = config["rope_theta"], rotary_dim_of(config)
    max_position_embeddings = config["max_position_embeddings"]
    factor = config["rope_scaling"]["factor"]
    seq_len = max(seq_len, max_position_embeddings)  # below L0 the base is unchanged
    base = base * ((factor * seq_len / max_position_embeddings) - (factor - 1)) ** (dim / (dim - 2))
    inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).to(dtype) / dim))
    return inv_freq, 1.0


def compute_yarn_parameters(config, seq_len, dtype):
    base, dim = config["rope_theta"], rotary_dim_of(config)
    scaling = config["rope_scaling"]
    factor = scaling["factor"]
    attention_factor = scaling.get("attention_factor")
    mscale, mscale_all_dim = scaling.get("mscale"), scaling.get("mscale_all_dim")
    original_max_position_embeddings = (scaling.get("original_max_position_embeddings")
                                        or config["max_position_embeddings"])

    def get_mscale(scale, mscale=1):
        if scale <= 1:
            return 1.0
        return 0.1 * mscale * math.log(scale) + 1.0

    if attention_factor is None:
        if mscale and mscale_all_dim:
            attention_factor = float(get_mscale(factor, mscale) / get_mscale(factor, mscale_all_dim))
        else:
            attention_factor = get_mscale(factor)
    beta_fast = scaling.get("beta_fast") or 32
    beta_slow = scaling.get("beta_slow") or 1

    def find_correction_dim(num_rotations, dim, base, max_position_embeddings):
        return (dim * math.log(max_position_embeddings / (num_rotations * 2 * math.pi))) / (2 * math.log(base))

    def find_correction_range(low_rot, high_rot, dim, base, max_position_embeddings, truncate):
        low = find_correction_dim(low_rot, dim, base, max_position_embeddings)
        high = find_correction_dim(high_rot, dim, base, max_position_embeddings)
        if truncate:
            low, high = math.floor(low), math.ceil(high)
        return max(low, 0), min(high, dim - 1)

    def linear_ramp_factor(min, max, dim):
        if min == max:
            max += 0.001
        linear_func = (torch.arange(dim, dtype=dtype) - min) / (max - min)
        return torch.clamp(linear_func, 0, 1)

    pos_freqs = base ** (torch.arange(0, dim, 2).to(dtype) / dim)
    inv_freq_extrapolation = 1.0 / pos_freqs
    inv_freq_interpolation = 1.0 / (factor * pos_freqs)
    truncate = scaling.get("truncate", True)
    low, high = find_correction_range(beta_fast, beta_slow, dim, base, original_max_position_embeddings, truncate)
    inv_freq_extrapolation_factor = 1 - linear_ramp_factor(low, high, dim // 2)
    inv_freq = (inv_freq_interpolation * (1 - inv_freq_extrapolation_factor)
                + inv_freq_extrapolation * inv_freq_extrapolation_factor)
    return inv_freq, attention_factor


def compute_longrope_parameters(config, seq_len, dtype):
    base, dim = config["rope_theta"], rotary_dim_of(config)
    scaling = config["rope_scaling"]
    long_factor, short_factor = scaling["long_factor"], scaling["short_factor"]
    factor, attention_factor = scaling.get("factor"), scaling.get("attention_factor")
    if "original_max_position_embeddings" in config:  # Phi-3: the factor follows from the lengths
        original_max_position_embeddings = config["original_max_position_embeddings"]
        factor = config["max_position_embeddings"] / original_max_position_embeddings
    else:
        original_max_position_embeddings = config["max_position_embeddings"]
    if attention_factor is None:
        if factor <= 1.0:
            attention_factor = 1.0
        else:
            attention_factor = math.sqrt(1 + math.log(factor) / math.log(original_max_position_embeddings))
    if seq_len and seq_len > original_max_position_embeddings:
        ext_factors = torch.tensor(long_factor, dtype=dtype)
    else:
        ext_factors = torch.tensor(short_factor, dtype=dtype)
    inv_freq_shape = torch.arange(0, dim, 2, dtype=torch.int64).to(dtype) / dim
    inv_freq = 1.0 / (ext_factors * base**inv_freq_shape)
    return inv_freq, attention_factor


def compute_llama3_parameters(config, seq_len, dtype):
    inv_freq, attention_factor = compute_default_parameters(config, seq_len, dtype)
    scaling = config["rope_scaling"]
    factor = scaling["factor"]
    low_freq_factor, high_freq_factor = scaling["low_freq_factor"], scaling["high_freq_factor"]
    old_context_len = scaling["original_max_position_embeddings"]
    low_freq_wavelen = old_context_len / low_freq_factor
    high_freq_wavelen = old_context_len / high_freq_factor
    wavelen = 2 * math.pi / inv_freq
    inv_freq_llama = torch.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
    smooth_factor = (old_context_len / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
    smoothed_inv_freq = (1 - smooth_factor) * inv_freq_llama / factor + smooth_factor * inv_freq_llama
    is_medium_freq = ~(wavelen < high_freq_wavelen) * ~(wavelen > low_freq_wavelen)
    inv_freq_llama = torch.where(is_medium_freq, smoothed_inv_freq, inv_freq_llama)
    return inv_freq_llama, attention_factor


ROPE_INIT_FUNCTIONS = {
    "default": compute_default_parameters,
    "linear": compute_linear_parameters,
    "dynamic": compute_dynamic_ntk_parameters,
    "yarn": compute_yarn_parameters,
    "longrope": compute_longrope_parameters,
    "llama3": compute_llama3_parameters,
}


# ---- LlamaRotaryEmbedding.forward, rotate_half, apply_rotary_pos_emb; GPT-J's pairs ----

def rotary_embedding(config, position_ids, dtype):
    """cos, sin [batch, seq, rotary_dim] as LlamaRotaryEmbedding.forward (with its dynamic
    update: the plan of seq_len = max(position_ids) + 1)."""
    rope_type = config.get("rope_scaling", {}).get("rope_type", "default")
    seq_len = int(position_ids.max()) + 1
    inv_freq, attention_scaling = ROPE_INIT_FUNCTIONS[rope_type](config, seq_len, dtype)
    inv_freq_expanded = inv_freq[None, :, None].to(dtype).expand(position_ids.shape[0], -1, 1)
    position_ids_expanded = position_ids[:, None, :].to(dtype)
    freqs = (inv_freq_expanded @ position_ids_expanded).transpose(1, 2)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos() * attention_scaling, emb.sin() * attention_scaling


def rotate_half(x):
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2 :]
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary_pos_emb(q, k, cos, sin, unsqueeze_dim=1):
    cos = cos.unsqueeze(unsqueeze_dim)
    sin = sin.unsqueeze(unsqueeze_dim)
    q_embed = (q * cos) + (rotate_half(q) * sin)
    k_embed = (k * cos) + (rotate_half(k) * sin)
    return q_embed, k_embed


def rotate_every_two(x):
    x1 = x[..., ::2]
    x2 = x[..., 1::2]
    return torch.stack((-x2, x1), dim=-1).flatten(-2)


def apply_rotary_pos_emb_pairs(x, cos, sin, unsqueeze_dim=1):
    """GPT-J: pair (x[2i], x[2i+1]) turns by angle i; cos/sin of each angle repeated twice."""
    half = cos.shape[-1] // 2
    cos = torch.repeat_interleave(cos[..., :half], 2, dim=-1).unsqueeze(unsqueeze_dim)
    sin = torch.repeat_interleave(sin[..., :half], 2, dim=-1).unsqueeze(unsqueeze_dim)
    return (x * cos) + (rotate_every_two(x) * sin)


def hf_apply(config, q, k, position_ids, pairing, dtype):
    """q [batch, q_heads, seq, head_dim], k [batch, kv_heads, seq, head_dim] (HF's layout);
    partial rotary as GPT-NeoX/Phi do: rotate the first rotary_dim components, pass the rest."""
    q, k = q.to(dtype), k.to(dtype)
    dim = rotary_dim_of(config)
    cos, sin = rotary_embedding(config, position_ids, dtype)
    q_rot, q_pass = q[..., :dim], q[..., dim:]
    k_rot, k_pass = k[..., :dim], k[..., dim:]
    if pairing == "neox":
        q_rot, k_rot = apply_rotary_pos_emb(q_rot, k_rot, cos, sin)
    else:
        q_rot, k_rot = apply_rotary_pos_emb_pairs(q_rot, cos, sin), apply_rotary_pos_emb_pairs(k_rot, cos, sin)
    return torch.cat((q_rot, q_pass), dim=-1), torch.cat((k_rot, k_pass), dim=-1)


# ---- rotary on the same arrays ----

def rotary_apply(config, q, k, position_ids, pairing):
    """rotary from the model config as HF has it, on numpy views of HF's [batch, heads, seq, head_dim]."""
    keys = ("head_dim", "partial_rotary_factor", "rope_theta", "max_position_embeddings",
            "original_max_position_embeddings", "rope_scaling")
    rope = rotary.Rope(pairing=pairing, **{key: config[key] for key in keys if key in config})
    q_out = q.numpy().copy()
    k_out = k.numpy().copy()
    # HF's layout seen as rotary's [batch, seq, heads, head_dim]: strided views, no copies.
    rope.apply_qk(q_out.transpose(0, 2, 1, 3), k_out.transpose(0, 2, 1, 3), position_ids.numpy())
    return q_out, k_out


def attention_factor_of(config, seq_len):
    rope_type = config.get("rope_scaling", {}).get("rope_type", "default")
    return ROPE_INIT_FUNCTIONS[rope_type](config, seq_len, torch.float64)[1]


def torch_f32_angle_error(max_angle):
    """Bound on the float32 formula's own error per unit |x|: its inv_freq (pow, division) and its
    product with the position are each rounded to float32 (a few ulp of the angle), and so are cos/sin."""
    return 8 * 2.0**-24 * (max_angle + 1)


PHI3_SHORT = [1.0 + 0.05 * i for i in range(32)]
PHI3_LONG = [1.0 + 0.4 * i for i in range(32)]

CASES = {
    "default": {"head_dim": 128, "rope_theta": 10000.0},
    "llama3.1": {"head_dim": 128, "rope_theta": 500000.0,
                 "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                  "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}},
    "linear": {"head_dim": 64, "rope_theta": 10000.0, "rope_scaling": {"rope_type": "linear", "factor": 4.0}},
    "dynamic": {"head_dim": 64, "rope_theta": 10000.0, "max_position_embeddings": 512,
                "rope_scaling": {"rope_type": "dynamic", "factor": 2.0}},
    "yarn": {"head_dim": 64, "rope_theta": 10000.0, "max_position_embeddings": 4096,
             "rope_scaling": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 1024}},
    "yarn-deepseek": {"head_dim": 64, "rope_theta": 10000.0, "max_position_embeddings": 16384,
                      "rope_scaling": {"rope_type": "yarn", "factor": 40.0, "original_max_position_embeddings": 4096,
                                       "beta_fast": 32, "beta_slow": 1, "mscale": 0.707, "mscale_all_dim": 1.0}},
    "longrope": {"head_dim": 96, "partial_rotary_factor": 2 / 3, "rope_theta": 10000.0,
                 "max_position_embeddings": 131072, "original_max_position_embeddings": 4096,
                 "rope_scaling": {"rope_type": "longrope", "short_factor": PHI3_SHORT, "long_factor": PHI3_LONG}},
    "partial": {"head_dim": 80, "partial_rotary_factor": 0.4, "rope_theta": 10000.0},
}


def make_inputs(config, first_positions, seq, seed):
    generator = torch.Generator().manual_seed(seed)
    batch, q_heads, kv_heads = len(first_positions), 4, 2
    q = torch.randn(batch, q_heads, seq, config["head_dim"], generator=generator)
    k = torch.randn(batch, kv_heads, seq, config["head_dim"], generator=generator)
    # Per-row positions, e.g. left-padded prompts or a batch of decodes at different lengths.
    position_ids = torch.stack([torch.arange(seq, dtype=torch.int64) + first for first in first_positions])
    return q, k, position_ids


def check_case(config, pairing, first_positions, seq, seed=0):
    q, k, position_ids = make_inputs(config, first_positions, seq, seed)
    got_q, got_k = rotary_apply(config, q, k, position_ids, pairing)
    max_position = int(position_ids.max())
    scale = max(q.abs().max().item(), k.abs().max().item()) * attention_factor_of(config, max_position + 1)
    errors = {}
    for dtype in (torch.float64, torch.float32):
        want_q, want_k = hf_apply(config, q, k, position_ids, pairing, dtype)
        error = max(np.abs(got_q - want_q.double().numpy()).max(), np.abs(got_k - want_k.double().numpy()).max())
        errors[dtype] = error / scale
    assert errors[torch.float64] <= F32_BOUND, errors
    # The float32 formula's angles are off by up to a few ulp of position * inv_freq[0] (inv_freq[0] <= 1).
    assert errors[torch.float32] <= F32_BOUND + torch_f32_angle_error(max_position), errors
    return errors


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("pairing", ["neox", "interleaved"])
def test_prefill_matches_hf(name, pairing):
    check_case(CASES[name], pairing, first_positions=[0, 5], seq=48)


@pytest.mark.parametrize("name", sorted(CASES))
def test_far_positions_match_hf(name):
    """Positions past every scheme's original length (dynamic NTK's base grows, LongRoPE
    switches to long_factor, YaRN and Llama 3.1 interpolate)."""
    check_case(CASES[name], "neox", first_positions=[20000, 130000 - 8], seq=8, seed=1)


def test_decode_steps_match_hf():
    """A KV-cache loop: prefill 16 tokens, then one token per call, each as HF would run it."""
    config = CASES["llama3.1"]
    for first, seq in [(0, 16)] + [(p, 1) for p in range(16, 24)]:
        check_case(config, "neox", first_positions=[first], seq=seq, seed=first)


def test_dynamic_ntk_changes_base_past_the_original_length():
    config = CASES["dynamic"]
    inside, _ = compute_dynamic_ntk_parameters(config, 512, torch.float64)
    past, _ = compute_dynamic_ntk_parameters(config, 2048, torch.float64)
    rope_kwargs = {"head_dim": 64, "rope_theta": 10000.0, "max_position_embeddings": 512,
                   "rope_scaling": config["rope_scaling"]}
    np.testing.assert_allclose(rotary.plan(512, **rope_kwargs)[0], inside.numpy(), rtol=1e-12)
    np.testing.assert_allclose(rotary.plan(2048, **rope_kwargs)[0], past.numpy(), rtol=1e-12)
    assert past[-1] < inside[-1]


def test_position_999999_is_closer_to_float64_truth_than_the_float32_formula():
    """At position 999,999 the float32 formula's angle p * inv_freq carries ~0.03 rad of rounding;
    rotary computes angles in double and stays within the f32 bound."""
    config = CASES["default"]
    q, k, _ = make_inputs(config, [0], 4, seed=7)
    position_ids = torch.tensor([[999996, 999997, 999998, 999999]])
    got_q, got_k = rotary_apply(config, q, k, position_ids, "neox")
    truth_q, truth_k = hf_apply(config, q, k, position_ids, "neox", torch.float64)
    torch_q, torch_k = hf_apply(config, q, k, position_ids, "neox", torch.float32)
    scale = max(q.abs().max().item(), k.abs().max().item())

    def error(a, b):
        return max(np.abs(np.asarray(a, np.float64) - truth_q.numpy()).max(),
                   np.abs(np.asarray(b, np.float64) - truth_k.numpy()).max()) / scale

    rotary_error = error(got_q, got_k)
    torch_error = error(torch_q.double().numpy(), torch_k.double().numpy())
    print(f"\nposition 999999, max error / max|x| against float64: rotary {rotary_error:.2e}, "
          f"HF float32 formula {torch_error:.2e}")
    assert rotary_error <= F32_BOUND
    assert rotary_error < torch_error
    assert torch_error > 100 * rotary_error  # not a close call
