#!/usr/bin/python3
"""Generate the TorchScript example models of the inferd example repository.

Run with Debian's interpreter (it ships torch 1.13 and torchvision 0.14):

    /usr/bin/python3 examples/generate_models.py --out examples/models

Writes <out>/<model>/1/model.pt for each model. Weights are randomly
initialised with a fixed seed (no downloads), so the output is deterministic.
A model whose model.pt is newer than this script is skipped unless --force.
"""

import argparse
import os
import sys
import time

import torch
import torch.nn as nn


class Dither(nn.Module):
    """Posterize to `levels` levels with ordered (Bayer 4x4) dithering.

    Input and output: FP32 [N, 3, H, W] with values in [0, 1]; H and W may be
    any size (the Bayer matrix is tiled to the input).
    """

    def __init__(self, levels: int = 4):
        super().__init__()
        self.levels = levels
        bayer = torch.tensor(
            [[0, 8, 2, 10], [12, 4, 14, 6], [3, 11, 1, 9], [15, 7, 13, 5]],
            dtype=torch.float32,
        )
        # Thresholds in (0, 1): (b + 0.5) / 16.
        self.register_buffer("bayer", (bayer + 0.5) / 16.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.size(2)
        w = x.size(3)
        rows = torch.arange(h, device=x.device) % 4
        cols = torch.arange(w, device=x.device) % 4
        threshold = self.bayer.index_select(0, rows).index_select(1, cols)  # [H, W]
        steps = float(self.levels - 1)
        y = torch.floor(x.clamp(0.0, 1.0) * steps + threshold) / steps
        return y.clamp(0.0, 1.0)


def build_resnet18() -> torch.jit.ScriptModule:
    import torchvision

    model = torchvision.models.resnet18(weights=None).eval()
    return torch.jit.script(model)


def build_mlp() -> torch.jit.ScriptModule:
    model = nn.Sequential(
        nn.Linear(16, 64),
        nn.ReLU(),
        nn.Linear(64, 64),
        nn.ReLU(),
        nn.Linear(64, 4),
    ).eval()
    return torch.jit.script(model)


def build_dither() -> torch.jit.ScriptModule:
    return torch.jit.script(Dither(levels=4).eval())


# name -> (builder, [(input shape, expected output shape), ...]) for self-checks.
MODELS = {
    "resnet18": (
        build_resnet18,
        [((1, 3, 224, 224), (1, 1000)), ((8, 3, 224, 224), (8, 1000))],
    ),
    "mlp": (build_mlp, [((1, 16), (1, 4)), ((8, 16), (8, 4))]),
    "dither": (
        build_dither,
        [((1, 3, 64, 48), (1, 3, 64, 48)), ((2, 3, 37, 101), (2, 3, 37, 101))],
    ),
}


def check(path: str, cases) -> None:
    """Load the saved file and check the output shape for each case."""
    module = torch.jit.load(path)
    module.eval()
    with torch.inference_mode():
        for in_shape, out_shape in cases:
            y = module(torch.rand(*in_shape))
            if tuple(y.shape) != out_shape or y.dtype != torch.float32:
                raise RuntimeError(
                    f"{path}: input {in_shape} gave {tuple(y.shape)} {y.dtype}, "
                    f"expected {out_shape} float32"
                )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "models"),
                        help="model repository root (default: examples/models)")
    parser.add_argument("--force", action="store_true", help="regenerate existing models")
    parser.add_argument("--models", default=",".join(MODELS),
                        help="comma-separated subset (default: all)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = parser.parse_args()

    torch.set_num_threads(max(1, args.threads))
    script_mtime = os.path.getmtime(os.path.abspath(__file__))
    names = [n for n in args.models.split(",") if n]
    for name in names:
        if name not in MODELS:
            print(f"unknown model {name!r}; known: {', '.join(MODELS)}", file=sys.stderr)
            return 2
    for name in names:
        builder, cases = MODELS[name]
        path = os.path.join(args.out, name, "1", "model.pt")
        if (not args.force and os.path.exists(path)
                and os.path.getmtime(path) > script_mtime):
            print(f"{name}: up to date ({path})")
            continue
        start = time.monotonic()
        torch.manual_seed(0)
        module = builder()
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = path + ".tmp"
        torch.jit.save(module, tmp)
        check(tmp, cases)
        os.replace(tmp, path)
        print(f"{name}: wrote {path} in {time.monotonic() - start:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
