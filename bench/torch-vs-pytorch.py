# Times the bench/torch-backend.ts U-Net-like training step in plain PyTorch, for comparison with the
# TF.js torch backend (same layers, shapes, parameter count, Adam, noise drawn on the CPU each step).
# Usage: python3 bench/torch-vs-pytorch.py [--steps 10] [--batch 32] [--threads N] [--device cpu|cuda]
#        [--channels-last]
import argparse
import math
import os
import statistics
import sys
import time

try:
    import torch
    import torch.nn.functional as F
except ImportError:
    print("torch-vs-pytorch: python3 has no torch (apt-get install python3-torch, or pip install torch)")
    sys.exit(0)

GROUPS = 8
SIZE = 28


class Block(torch.nn.Module):
    """GroupNorm-SiLU-conv twice, a time-embedding shift, and a (1x1 when needed) skip."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.n1 = torch.nn.GroupNorm(GROUPS, cin)
        self.c1 = torch.nn.Conv2d(cin, cout, 3, padding=1)
        self.t = torch.nn.Linear(128, cout, bias=False)
        self.n2 = torch.nn.GroupNorm(GROUPS, cout)
        self.c2 = torch.nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = torch.nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x, temb):
        h = self.c1(F.silu(self.n1(x)))
        h = h + self.t(temb)[:, :, None, None]
        h = self.c2(F.silu(self.n2(h)))
        return (self.skip(x) if self.skip is not None else x) + h


class UNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.temb1 = torch.nn.Linear(32, 128, bias=False)
        self.temb2 = torch.nn.Linear(128, 128, bias=False)
        self.inp = torch.nn.Conv2d(1, 32, 3, padding=1)
        self.b28 = Block(32, 32)
        # TF.js 'same' with stride 2 pads bottom/right only; padding=1 gives the same output size.
        self.down1 = torch.nn.Conv2d(32, 64, 3, stride=2, padding=1)
        self.b14 = Block(64, 64)
        self.down2 = torch.nn.Conv2d(64, 128, 3, stride=2, padding=1)
        self.mid = Block(128, 128)
        self.up1 = torch.nn.Conv2d(128, 64, 3, padding=1)
        self.u14 = Block(128, 64)
        self.up2 = torch.nn.Conv2d(64, 32, 3, padding=1)
        self.u28 = Block(64, 32)
        self.out_n = torch.nn.GroupNorm(GROUPS, 32)
        self.out = torch.nn.Conv2d(32, 1, 3, padding=1)

    def forward(self, x, sigma):
        freqs = torch.exp(torch.arange(16, device=x.device) * (-math.log(1000) / 16))
        angles = sigma.log()[:, None] * freqs[None, :]
        h = self.temb1(torch.cat([angles.sin(), angles.cos()], 1))
        temb = self.temb2(F.silu(h))
        s28 = self.b28(self.inp(x), temb)
        s14 = self.b14(self.down1(s28), temb)
        mid = self.mid(self.down2(s14), temb)
        u14 = self.up1(F.interpolate(mid, size=(14, 14), mode="nearest"))
        d14 = self.u14(torch.cat([u14, s14], 1), temb)
        u28 = self.up2(F.interpolate(d14, size=(28, 28), mode="nearest"))
        d28 = self.u28(torch.cat([u28, s28], 1), temb)
        return self.out(F.silu(self.out_n(d28)))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--channels-last", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    model = UNet().to(device).to(memory_format=fmt)
    count = sum(p.numel() for p in model.parameters())
    opt = torch.optim.Adam(model.parameters(), lr=2e-4)
    gen = torch.Generator().manual_seed(0)
    times = []
    cpu_times = []
    loss = float("nan")
    for step in range(args.steps + 2):
        # Noise is drawn on the CPU and uploaded every step, as in the TF.js benchmark.
        clean = torch.randn(args.batch, 1, SIZE, SIZE, generator=gen)
        noise = torch.randn(args.batch, 1, SIZE, SIZE, generator=gen)
        sigma = torch.exp(torch.randn(args.batch, generator=gen) - 1)
        start = time.perf_counter()
        cpu_start = time.process_time()
        x0 = clean.to(device).contiguous(memory_format=fmt)
        eps = noise.to(device).contiguous(memory_format=fmt)
        s = sigma.to(device)
        xt = x0 + eps * s[:, None, None, None]
        opt.zero_grad(set_to_none=True)
        cost = torch.mean((model(xt, s) - eps) ** 2)
        cost.backward()
        opt.step()
        loss = cost.item()  # waits for the step to finish
        if step >= 2:
            times.append((time.perf_counter() - start) * 1000)
            cpu_times.append((time.process_time() - cpu_start) * 1000)
    print(
        f"pytorch {statistics.median(times):6.0f} ms/step, {statistics.median(cpu_times):6.0f} CPU ms/step "
        f"(median of {args.steps}; batch {args.batch}, "
        f"{SIZE}x{SIZE}, {count / 1e3:.0f}k params, {args.threads} threads, "
        f"{'channels_last' if args.channels_last else 'NCHW'}, torch {torch.__version__}, last loss {loss:.4f})"
    )


if __name__ == "__main__":
    main()
