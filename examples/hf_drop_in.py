"""rotary as a drop-in for Hugging Face's RoPE in a Llama attention block: HF's own formula
(LlamaRotaryEmbedding's cos/sin, apply_rotary_pos_emb, then scaled dot-product attention, restated here
as transformers writes them) and the same attention with the two RoPE lines replaced by

    rope = rotary.Rope.from_hf_config(config)            # once, from the model config
    q, k = rope.hf_apply(q, k, position_ids)              # per layer call

The attention outputs agree to float32 rounding (printed).

    PYTHONPATH=build/python /usr/bin/python3 examples/hf_drop_in.py
"""
import math
import sys

import torch

import rotary

CONFIG = {  # Llama 3.1 8B's attention, shortened to 4 heads
    "hidden_size": 512, "num_attention_heads": 4, "num_key_value_heads": 2, "rope_theta": 500000.0,
    "max_position_embeddings": 131072,
    "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                     "original_max_position_embeddings": 8192},
}


def llama3_inv_freq(config, dtype=torch.float32):
    """transformers' _compute_llama3_parameters (in `dtype`: HF's is float32)."""
    head_dim = config["hidden_size"] // config["num_attention_heads"]
    s = config["rope_scaling"]
    inv_freq = 1.0 / (config["rope_theta"] ** (torch.arange(0, head_dim, 2, dtype=torch.int64).to(dtype) / head_dim))
    low_wavelen = s["original_max_position_embeddings"] / s["low_freq_factor"]
    high_wavelen = s["original_max_position_embeddings"] / s["high_freq_factor"]
    wavelen = 2 * math.pi / inv_freq
    inv_freq_llama = torch.where(wavelen > low_wavelen, inv_freq / s["factor"], inv_freq)
    smooth = (s["original_max_position_embeddings"] / wavelen - s["low_freq_factor"]) / (
        s["high_freq_factor"] - s["low_freq_factor"])
    smoothed = (1 - smooth) * inv_freq_llama / s["factor"] + smooth * inv_freq_llama
    is_medium = ~(wavelen < high_wavelen) * ~(wavelen > low_wavelen)
    return torch.where(is_medium, smoothed, inv_freq_llama)


def rotate_half(x):
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2 :]
    return torch.cat((-x2, x1), dim=-1)


def hf_rope(q, k, position_ids, inv_freq, dtype=torch.float32):
    """LlamaRotaryEmbedding.forward (in `dtype`: HF's is float32) and apply_rotary_pos_emb."""
    freqs = (inv_freq[None, :, None].to(dtype) @ position_ids[:, None, :].to(dtype)).transpose(1, 2)
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos()[:, None], emb.sin()[:, None]
    return (q * cos) + (rotate_half(q) * sin), (k * cos) + (rotate_half(k) * sin)


def attention(q, k, v):
    """eager_attention_forward: GQA heads repeated, causal softmax(q k^T / sqrt(d)) v."""
    groups = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
    scores = (q @ k.transpose(2, 3)) / math.sqrt(q.shape[-1])
    seq = q.shape[2]
    scores = scores.masked_fill(torch.ones(seq, seq, dtype=torch.bool).triu(1), float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


def main():
    head_dim = CONFIG["hidden_size"] // CONFIG["num_attention_heads"]
    generator = torch.Generator().manual_seed(0)
    batch, seq = 2, 64
    q = torch.randn(batch, CONFIG["num_attention_heads"], seq, head_dim, generator=generator)
    k = torch.randn(batch, CONFIG["num_key_value_heads"], seq, head_dim, generator=generator)
    v = torch.randn(batch, CONFIG["num_key_value_heads"], seq, head_dim, generator=generator)
    position_ids = torch.stack([torch.arange(seq), torch.arange(seq) + 9000])  # the second row past 8192

    inv_freq = llama3_inv_freq(CONFIG)
    hf_q, hf_k = hf_rope(q, k, position_ids, inv_freq)
    rope = rotary.Rope.from_hf_config(CONFIG)
    rotary_q, rotary_k = rope.hf_apply(q, k, position_ids)
    # The same formula in float64: the truth both are measured against.
    true_q, true_k = hf_rope(q.double(), k.double(), position_ids, llama3_inv_freq(CONFIG, torch.float64),
                             torch.float64)
    true_out = attention(true_q, true_k, v.double())

    for name, (q_, k_) in (("HF (float32)", (hf_q, hf_k)), ("rotary drop-in", (rotary_q, rotary_k))):
        out = attention(q_, k_, v)
        print(f"{name:<15} max error vs float64: q {(q_ - true_q).abs().max().item():.2e}, "
              f"k {(k_ - true_k).abs().max().item():.2e}, attention output {(out - true_out).abs().max().item():.2e}")
    print("(HF rounds inv_freq and the angles p * inv_freq to float32, which loses accuracy as positions grow; "
          "rotary's tables are exact in double)")
    rotary_error = (attention(rotary_q, rotary_k, v) - true_out).abs().max().item()
    return 0 if rotary_error < 1e-5 else 1


if __name__ == "__main__":
    sys.exit(main())
