#!/usr/bin/python3
"""Generate the TorchScript example models of the inferd example repository.

Run with Debian's interpreter (it ships torch 1.13 and torchvision 0.14):

    /usr/bin/python3 examples/generate_models.py --out examples/models

Writes <out>/<model>/1/model.pt for each model. Weights are randomly
initialised with a fixed seed (no downloads), so the output is deterministic.
A model whose model.pt is newer than this script is skipped unless --force.

mlp_int8 and resnet18_int8 are INT8 variants of mlp and resnet18 with the same
weights: mlp_int8 dynamically quantized (weights INT8, activations quantized per
batch at run time), resnet18_int8 statically quantized (fused conv-bn-relu,
activation ranges calibrated on 32 seeded random images). Each is compared with
its FP32 model on seeded inputs and the largest absolute output difference is
printed. If static quantization fails on this torch/CPU, resnet18_int8 is
skipped with a message (its directory then has no version, so inferd lists it
as unavailable) and the script still succeeds.
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


def resnet18_fp32() -> nn.Module:
    import torchvision

    return torchvision.models.resnet18(weights=None).eval()


def mlp_fp32() -> nn.Module:
    return nn.Sequential(
        nn.Linear(16, 64),
        nn.ReLU(),
        nn.Linear(64, 64),
        nn.ReLU(),
        nn.Linear(64, 4),
    ).eval()


def build_resnet18() -> torch.jit.ScriptModule:
    return torch.jit.script(resnet18_fp32())


def build_mlp() -> torch.jit.ScriptModule:
    return torch.jit.script(mlp_fp32())


def build_mlp_int8() -> torch.jit.ScriptModule:
    """mlp's weights (same seed), every Linear dynamically quantized to INT8."""
    model = torch.ao.quantization.quantize_dynamic(mlp_fp32(), {nn.Linear}, dtype=torch.qint8)
    return torch.jit.script(model)


def quantized_engine() -> str:
    """The quantized engine to convert with: the one libtorch picks by default
    (inferd does not set one), if it is usable, else the first supported."""
    supported = torch.backends.quantized.supported_engines
    current = torch.backends.quantized.engine
    if current in supported and current != "none":
        return current
    for engine in ("x86", "fbgemm", "onednn", "qnnpack"):
        if engine in supported:
            return engine
    raise RuntimeError(f"no quantized engine in {supported}")


def build_resnet18_int8() -> torch.jit.ScriptModule:
    """resnet18's weights (same seed), statically quantized to INT8."""
    import torchvision

    fp32_state = resnet18_fp32().state_dict()  # consumes the seed as build_resnet18 does
    engine = quantized_engine()
    torch.backends.quantized.engine = engine
    model = torchvision.models.quantization.resnet18(weights=None, quantize=False).eval()
    model.load_state_dict(fp32_state)
    model.fuse_model()
    model.qconfig = torch.ao.quantization.get_default_qconfig(engine)
    torch.ao.quantization.prepare(model, inplace=True)
    calibration = torch.Generator().manual_seed(1)
    with torch.inference_mode():
        for _ in range(4):  # 32 images, uniform in [0, 1) like inferd bench's payloads
            model(torch.rand(8, 3, 224, 224, generator=calibration))
    torch.ao.quantization.convert(model, inplace=True)
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
    "mlp_int8": (build_mlp_int8, [((1, 16), (1, 4)), ((8, 16), (8, 4))]),
    "resnet18_int8": (
        build_resnet18_int8,
        [((1, 3, 224, 224), (1, 1000)), ((8, 3, 224, 224), (8, 1000))],
    ),
}

# Quantized model -> (its FP32 model, seeded comparison input shape). Written
# only if the largest absolute difference from FP32 is below
# MAX_RELATIVE_DIFF x the largest absolute FP32 output (a broken conversion,
# not INT8 rounding, fails it).
QUANTIZED = {
    "mlp_int8": (mlp_fp32, (1000, 16)),
    "resnet18_int8": (resnet18_fp32, (8, 3, 224, 224)),
}
MAX_RELATIVE_DIFF = 0.25
# Models that are skipped with a message, not an error, if they cannot be made.
OPTIONAL = {"resnet18_int8": "static quantization unavailable"}


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


def compare_with_fp32(path: str, reference_builder, shape) -> str:
    """Largest absolute output difference of the saved model from its FP32
    model (same seed) on seeded uniform inputs; top-1 agreement for
    classifiers."""
    torch.manual_seed(0)
    reference = reference_builder()
    module = torch.jit.load(path)
    module.eval()
    x = torch.rand(*shape, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        want = reference(x)
        got = module(x)
    diff = (got - want).abs().max().item()
    scale = want.abs().max().item()
    if not diff <= MAX_RELATIVE_DIFF * scale:  # also catches NaN
        raise RuntimeError(f"{path}: largest difference from FP32 {diff:.4g} exceeds "
                           f"{MAX_RELATIVE_DIFF} x the largest FP32 output {scale:.4g}")
    text = f"largest |int8 - fp32| {diff:.4g} (largest |fp32| {scale:.4g}) over {shape[0]} inputs"
    if want.size(1) >= 10:
        agree = (got.argmax(1) == want.argmax(1)).float().mean().item()
        text += f", top-1 agreement {agree:.0%}"
    return text


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
        version_dir = os.path.dirname(path)
        made_dir = not os.path.isdir(version_dir)
        tmp = path + ".tmp"
        try:
            torch.manual_seed(0)
            module = builder()
            os.makedirs(version_dir, exist_ok=True)
            torch.jit.save(module, tmp)
            check(tmp, cases)
            note = ""
            if name in QUANTIZED:
                note = "; " + compare_with_fp32(tmp, *QUANTIZED[name])
        except Exception as e:  # noqa: BLE001 - reported, then skipped or raised
            if name not in OPTIONAL:
                raise
            if os.path.exists(tmp):
                os.remove(tmp)
            if made_dir and os.path.isdir(version_dir) and not os.listdir(version_dir):
                os.rmdir(version_dir)
            print(f"{name}: {OPTIONAL[name]} ({type(e).__name__}: {e})")
            continue
        os.replace(tmp, path)
        print(f"{name}: wrote {path} in {time.monotonic() - start:.1f}s{note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
