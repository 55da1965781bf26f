"""What rotary buys a PyTorch user: Hugging Face's RoPE (LlamaRotaryEmbedding's cos/sin and
apply_rotary_pos_emb, restated here as transformers writes them) against rotary's apply_qk on the same
torch tensors, shapes and dtypes, in one run. Prints the time of each, the speedup, and both errors
against a float64 evaluation of the same formula (in units of max|x|).

    PYTHONPATH=build/python /usr/bin/python3 examples/bench_vs_hf.py [--quick] [--plot=FILE.png]

HF's path is timed as a model runs it: the cos/sin of the call's positions (rotary_emb.forward), then
apply_rotary_pos_emb, which returns new q and k. rotary rotates q and k in place, in HF's
[batch, heads, seq, head_dim] layout through a strided view (no copy).
"""
import argparse
import sys
import time

import numpy as np
import torch

import rotary

HEAD_DIM, Q_HEADS, KV_HEADS, THETA = 128, 32, 8, 500000.0
SHAPES = {"decode16": (16, 1, 1000), "prefill512": (1, 512, 0), "prefill4k": (1, 4096, 0)}  # batch, seq, first position
QUICK_SHAPES = {"tiny": (1, 8, 5)}


def rotate_half(x):
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2 :]
    return torch.cat((-x2, x1), dim=-1)


def hf_rope(q, k, position_ids, inv_freq, compute_dtype):
    """LlamaRotaryEmbedding.forward (cos/sin computed in compute_dtype, cast to q's dtype) and
    apply_rotary_pos_emb, as transformers writes them."""
    freqs = (inv_freq[None, :, None].to(compute_dtype) @ position_ids[:, None, :].to(compute_dtype)).transpose(1, 2)
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos().to(q.dtype)[:, None], emb.sin().to(q.dtype)[:, None]
    return (q * cos) + (rotate_half(q) * sin), (k * cos) + (rotate_half(k) * sin)


def best_time(fn, repeats):
    fn()  # warm-up: tables, allocator, thread pool
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def run(shapes, dtypes, repeats):
    rope = rotary.Rope(head_dim=HEAD_DIM, rope_theta=THETA)
    inv_freq = 1.0 / (THETA ** (torch.arange(0, HEAD_DIM, 2, dtype=torch.float64) / HEAD_DIM))
    rows = []
    for shape, (batch, seq, first) in shapes.items():
        position_ids = (torch.arange(seq) + first)[None].expand(batch, seq).contiguous()
        generator = torch.Generator().manual_seed(0)
        q0 = torch.randn(batch, Q_HEADS, seq, HEAD_DIM, generator=generator)
        k0 = torch.randn(batch, KV_HEADS, seq, HEAD_DIM, generator=generator)
        truth_q, truth_k = hf_rope(q0.double(), k0.double(), position_ids, inv_freq, torch.float64)
        scale = max(q0.abs().max().item(), k0.abs().max().item())
        for dtype in dtypes:
            q, k = q0.to(dtype), k0.to(dtype)
            hf_q, hf_k = hf_rope(q, k, position_ids, inv_freq, torch.float32)
            rq, rk = q.clone(), k.clone()
            rope.apply_qk(rq.transpose(1, 2), rk.transpose(1, 2), positions=position_ids)
            errors = [max((got_q.double() - truth_q).abs().max().item(), (got_k.double() - truth_k).abs().max().item())
                      / scale for got_q, got_k in ((hf_q, hf_k), (rq, rk))]
            hf_s = best_time(lambda: hf_rope(q, k, position_ids, inv_freq, torch.float32), repeats)
            work_q, work_k = q.clone(), k.clone()
            rotary_s = best_time(lambda: rope.apply_qk(work_q.transpose(1, 2), work_k.transpose(1, 2),
                                                        positions=position_ids), repeats)
            rows.append((shape, str(dtype).replace("torch.", ""), hf_s, rotary_s, errors[0], errors[1]))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one tiny shape, few repeats (a smoke test)")
    parser.add_argument("--plot", metavar="FILE.png", help="also draw the speedups (needs matplotlib)")
    args = parser.parse_args()
    shapes = QUICK_SHAPES if args.quick else SHAPES
    rows = run(shapes, [torch.float32, torch.bfloat16], repeats=2 if args.quick else 20)
    print(f"rotary {rotary.version()} ({rotary.active_target()}), torch {torch.__version__} "
          f"({torch.get_num_threads()} threads); q {Q_HEADS} heads, k {KV_HEADS}, head_dim {HEAD_DIM}")
    print(f"{'shape':<11} {'dtype':<9} {'HF ms':>9} {'rotary ms':>10} {'speedup':>8} {'HF error':>10} {'rotary error':>13}")
    for shape, dtype, hf_s, rotary_s, hf_error, rotary_error in rows:
        print(f"{shape:<11} {dtype:<9} {hf_s * 1e3:9.3f} {rotary_s * 1e3:10.3f} {hf_s / rotary_s:7.1f}x "
              f"{hf_error:10.2e} {rotary_error:13.2e}")
    print("errors: max |result - float64 truth| / max|x|; HF computes cos/sin in float32 and rounds them to the "
          "tensor's dtype, rotary rounds once, from f32 arithmetic on float64-exact tables")
    if args.plot:
        try:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            print("--plot needs matplotlib (apt-get install python3-matplotlib)", file=sys.stderr)
            return 1
        labels = [f"{r[0]}\n{r[1]}" for r in rows]
        plt.bar(range(len(rows)), [r[2] / r[3] for r in rows])
        plt.xticks(range(len(rows)), labels)
        plt.ylabel("speedup over HF's apply_rotary_pos_emb")
        plt.tight_layout()
        plt.savefig(args.plot)
        print(f"plot: {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
