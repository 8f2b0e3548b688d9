"""Incremental occlusion (Krypton, Nakandala et al., SIGMOD 2019) against plain occlusion, side by side in one run.

For each model and window: plain ``OcclusionInterpreter`` and ``incremental=True`` on the same images, interleaved,
best of ``--repeats``; process CPU time on one thread (``OMP_NUM_THREADS=1``: steady on a shared machine), the
multiply-accumulates of convolutions and linear layers each computed (the incremental one counts only the boxes it
recomputed) and the largest difference between the two maps.

  * the zoo's digits CNN (32 px; three conv / BatchNorm / ReLU stages, global pooling, linear head);
  * a ResNet-18-layout network (basic blocks 2-2-2-2, widths 64-512, random weights, BatchNorm statistics of four
    scikit-image photographs) at ``--size`` px on those photographs: every layer local up to the global pooling
    before the head (maps of the logit: a random network's probabilities over 1,000 classes barely move).

    python benchmarks/bench_occlusion_incremental.py [--size 224] [--repeats 2] [--batch-size 64] [--images 1]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from skimage import data  # noqa: E402
from torch import nn  # noqa: E402

import deepinterpret as it  # noqa: E402
from deepinterpret.data import load_images  # noqa: E402


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        identity = x if self.down is None else self.down(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += identity
        return self.relu(out)


def resnet18_layout(calibration: np.ndarray, classes: int = 1000) -> nn.Module:
    """ResNet-18's layers (11.7 M parameters), random weights; the BatchNorm statistics those of ``calibration``
    (so that the activations keep their scale through the depth and the logits respond to what a window hides)."""
    torch.manual_seed(0)
    layers = [nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1)]
    cin = 64
    for width, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        layers += [BasicBlock(cin, width, stride), BasicBlock(width, width, 1)]
        cin = width
    model = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, classes))
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = None  # the running statistics = the calibration batch's
    with torch.no_grad():
        model.train()(torch.from_numpy(calibration))
    return model.eval()


def compare(name, interpreter, x, window: int, stride: int, batch_size: int, repeats: int, output: str) -> None:
    results, times = {}, {"plain": [], "incremental": []}
    for _ in range(repeats):
        for mode in times:
            start = time.process_time()
            results[mode] = interpreter.interpret(
                x,
                window,
                strides=stride,
                visual=False,
                batch_size=batch_size,
                output=output,
                incremental=mode == "incremental",
            )
            times[mode].append(time.process_time() - start)
            if mode == "incremental":
                report = dict(interpreter.last_passes)
    plain, fast = min(times["plain"]), min(times["incremental"])
    windows = (int(np.ceil((x.shape[-1] - window) / stride)) + 1) * (int(np.ceil((x.shape[-2] - window) / stride)) + 1)
    difference = float(np.abs(results["plain"] - results["incremental"]).max())
    scale = float(np.abs(results["plain"]).max())
    print(
        f"| {name} | {window}/{stride} | {len(x)}x{windows} | {plain:.2f} | {fast:.2f} | {plain / fast:.2f}x | "
        f"{report['macs'] / report['plain_macs']:.3f} | {difference:.1e} of {scale:.3g} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--images", type=int, default=1, help="images for the ResNet-18 layout")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, CPU, {torch.get_num_threads()} thread; process CPU time, best of {args.repeats}")
    print("| model | window / stride | images x windows | plain s | incremental s | speed-up | MACs ratio | max diff |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")

    entry = it.zoo.load("digits-cnn")
    digits = it.OcclusionInterpreter(entry.model, normalization=entry.normalization)
    x = digits._load_images(it.zoo.digits_split().test_images[:8][..., None], 32, None).data
    for window, stride in ((4, 2), (3, 1), (8, 4)):
        compare("digits CNN 32 px", digits, x, window, stride, args.batch_size, args.repeats, "probability")

    pictures = [data.chelsea(), data.astronaut(), data.coffee(), data.rocket()]
    photos = np.concatenate([load_images(p, resize_to=args.size, crop_to=args.size).data for p in pictures])
    resnet = it.OcclusionInterpreter(resnet18_layout(np.concatenate([photos, photos[:, :, :, ::-1]])))
    photo = photos[: args.images]
    for window, stride in ((16, 16), (32, 16), (56, 28)):
        name = f"ResNet-18 layout {args.size} px (logit)"
        compare(name, resnet, photo, window, stride, args.batch_size, args.repeats, "logit")


if __name__ == "__main__":
    main()
