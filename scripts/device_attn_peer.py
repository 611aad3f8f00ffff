#!/usr/bin/env python3
"""Times PyTorch's scaled_dot_product_attention, the peer of rodimus's windowed attention.

Shape as bench/ops/bench_window_attention.cpp: one sequence, 16 query heads of 128, window
2048 back, T in {4096, 16384}; bf16 inputs. Rodimus+ shares one key head across the 16 query
heads; SDPA has no shared-key form, so the key head is expanded to 16 (a broadcast view made
contiguous outside the timing). Three rows per T:

  flash-causal   the flash backend with is_causal=True: the full causal attention, no window
                 (the flash backend takes no mask, so it cannot skip the blocks outside the
                 window: it does T/2 keys per query on average instead of <= 2049);
  mem-eff-window the memory-efficient backend with the sliding-window mask as a bf16 additive
                 bias (the fastest SDPA backend that applies the window);
  math-window    skipped (it materialises [16, T, T] scores).

`tflops` counts the useful work inside the window only: 4 x hd x H x sum_p min(p + 1, 2049),
the same figure bench_window_attention reports. Median of triton.testing.do_bench. Prints a
table and one `CSV,sdpa,...` line per row.
"""
import sys


def main():
    import torch
    import triton
    from torch.nn.attention import SDPBackend, sdpa_kernel
    import torch.nn.functional as F

    dev = torch.device("cuda")
    H, hd, wb = 16, 128, 2048
    print(f"device_attn_peer: SDPA on {torch.cuda.get_device_name(0)}, torch {torch.__version__}",
          flush=True)
    print(f"{'backend':<16} {'T':>6} {'ms':>9} {'tok/s':>12} {'TFLOP/s':>8}", flush=True)
    torch.manual_seed(0)
    torch.set_grad_enabled(False)
    for t in (4096, 16384):
        q = torch.randn(1, H, t, hd, device=dev, dtype=torch.bfloat16)
        k = torch.randn(1, 1, t, hd, device=dev, dtype=torch.bfloat16).expand(1, H, t, hd).contiguous()
        v = torch.randn(1, H, t, hd, device=dev, dtype=torch.bfloat16)
        p = torch.arange(t, device=dev)
        pairs = float(torch.clamp(p + 1, max=wb + 1).sum())
        flops = 4.0 * hd * H * pairs
        rows = []

        def flash():
            with sdpa_kernel([SDPBackend.FLASH_ATTENTION]):
                return F.scaled_dot_product_attention(q, k, v, is_causal=True)

        rows.append(("flash-causal", flash))
        allowed = (p[None, :] <= p[:, None]) & (p[:, None] - p[None, :] <= wb)
        bias = torch.zeros(t, t, device=dev, dtype=torch.bfloat16)
        bias.masked_fill_(~allowed, float("-inf"))
        bias = bias[None, None]

        def mem_eff():
            with sdpa_kernel([SDPBackend.EFFICIENT_ATTENTION]):
                return F.scaled_dot_product_attention(q, k, v, attn_mask=bias)

        rows.append(("mem-eff-window", mem_eff))
        for name, fn in rows:
            try:
                fn()
                torch.cuda.synchronize()
                ms = triton.testing.do_bench(fn, warmup=25, rep=200, return_mode="median")
            except RuntimeError as e:  # a backend that refuses the shape
                print(f"{name:<16} {t:>6} failed: {str(e).splitlines()[0]}", flush=True)
                continue
            print(f"{name:<16} {t:>6} {ms:9.3f} {t / ms * 1e3:12.0f} {flops / ms * 1e-9:8.1f}",
                  flush=True)
            print(f"CSV,sdpa,{name},{t},{ms:.4f}", flush=True)
        del bias


if __name__ == "__main__":
    sys.exit(main())
