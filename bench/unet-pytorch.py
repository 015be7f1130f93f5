# The model of `ladder bench` (src/cli/bench.ts over src/nn/unet.ts) rebuilt in plain PyTorch, timed the same way:
# forward, MSE loss, backward and an Adam update per step, median of the timed steps, JSON on stdout.
# Compare with `ladder --backend torch bench` at the same batch, size, widths and threads.
# Usage: python3 bench/unet-pytorch.py [--batch 32] [--size 28] [--channels 32,64,128] [--steps 5] [--threads N]
#        [--device cpu|cuda]
import argparse
import json
import math
import statistics
import sys
import time

try:
    import torch
    import torch.nn.functional as F
except ImportError:
    print("unet-pytorch: python3 has no torch (apt-get install python3-torch)", file=sys.stderr)
    sys.exit(0)

GROUPS = 8


class ResBlock(torch.nn.Module):
    """GroupNorm-SiLU-conv, adaptive GroupNorm (scale, shift from the embedding), SiLU-conv, skip: as unet.ts."""

    def __init__(self, cin, cout, emb):
        super().__init__()
        self.norm1 = torch.nn.GroupNorm(GROUPS, cin)
        self.conv1 = torch.nn.Conv2d(cin, cout, 3, padding=1)
        self.emb = torch.nn.Linear(emb, 2 * cout)
        self.norm2 = torch.nn.GroupNorm(GROUPS, cout, affine=False)
        self.conv2 = torch.nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = torch.nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x, e):
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.emb(F.silu(e))[:, :, None, None].chunk(2, dim=1)
        h = self.conv2(F.silu(self.norm2(h) * (1 + scale) + shift))
        return (x if self.skip is None else self.skip(x)) + h


class UNet(torch.nn.Module):
    """ladder's U-Net with one block per level, no attention, class-conditional (the bench configuration)."""

    def __init__(self, channels, classes=10):
        super().__init__()
        c0, emb = channels[0], 4 * channels[0]
        self.base = c0
        self.t1, self.t2 = torch.nn.Linear(c0, emb), torch.nn.Linear(emb, emb)
        self.cls = torch.nn.Embedding(classes + 1, emb)
        self.inp = torch.nn.Conv2d(1, c0, 3, padding=1)
        self.down, self.downs = torch.nn.ModuleList(), torch.nn.ModuleList()
        skips, ch = [c0], c0
        for i, c in enumerate(channels):
            self.down.append(ResBlock(ch, c, emb))
            ch = c
            skips.append(ch)
            if i < len(channels) - 1:
                self.downs.append(torch.nn.Conv2d(ch, ch, 3, stride=2, padding=1))
                skips.append(ch)
        self.mid1, self.mid2 = ResBlock(ch, ch, emb), ResBlock(ch, ch, emb)
        self.up, self.ups = torch.nn.ModuleList(), torch.nn.ModuleList()
        for i in reversed(range(len(channels))):
            blocks = torch.nn.ModuleList()
            for _ in range(2):
                blocks.append(ResBlock(ch + skips.pop(), channels[i], emb))
                ch = channels[i]
            self.up.append(blocks)
            if i > 0:
                self.ups.append(torch.nn.Conv2d(ch, ch, 3, padding=1))
        self.out_norm = torch.nn.GroupNorm(GROUPS, ch)
        self.out = torch.nn.Conv2d(ch, 1, 3, padding=1)

    def forward(self, x, t, labels):
        half = self.base // 2
        freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
        args = t[:, None] * freqs[None]
        e = self.t2(F.silu(self.t1(torch.cat([args.cos(), args.sin()], 1)))) + self.cls(labels)
        h = self.inp(x)
        skips = [h]
        for i, block in enumerate(self.down):
            h = block(h, e)
            skips.append(h)
            if i < len(self.downs):
                h = self.downs[i](h)
                skips.append(h)
        h = self.mid2(self.mid1(h, e), e)
        for j, blocks in enumerate(self.up):
            for block in blocks:
                h = block(torch.cat([h, skips.pop()], 1), e)
            if j < len(self.ups):
                size = skips[-1].shape[2:]
                h = self.ups[j](F.interpolate(h, scale_factor=2, mode="nearest")[:, :, : size[0], : size[1]])
        return self.out(F.silu(self.out_norm(h)))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--size", type=int, default=28)
    p.add_argument("--channels", default="32,64,128")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    dev = torch.device(a.device)
    net = UNet([int(c) for c in a.channels.split(",")]).to(dev)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x = torch.randn(a.batch, 1, a.size, a.size, device=dev)
    target = torch.randn(a.batch, 1, a.size, a.size, device=dev)
    t = torch.tensor([(i * 997) % 1000 for i in range(a.batch)], dtype=torch.float32, device=dev)
    labels = torch.tensor([i % 10 for i in range(a.batch)], device=dev)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.mse_loss(net(x, t, labels), target)
        loss.backward()
        opt.step()
        if dev.type == "cuda":
            torch.cuda.synchronize()  # the step's time is the work done, as ladder's bench reads its loss

    for _ in range(2):
        step()
    times = []
    for _ in range(a.steps):
        began = time.perf_counter()
        step()
        times.append(1000 * (time.perf_counter() - began))
    print(json.dumps({
        "benchmark": "unet-train-step", "backend": "pytorch " + torch.__version__, "device": a.device,
        "threads": a.threads,
        "params": sum(q.numel() for q in net.parameters()), "batch": a.batch, "size": a.size,
        "channels": [int(c) for c in a.channels.split(",")], "steps": a.steps,
        "msPerStepMedian": round(statistics.median(times)), "msPerStepMin": round(min(times)),
    }))


if __name__ == "__main__":
    main()
