"""The zoo's EfficientNet-Lite0 on scikit-image's photographs: the model card's top-5 table, PyTorch / Paddle
agreement, how the padding and normalisation were established, and deletion / insertion of IG, Grad-CAM, LIME,
KernelSHAP and a random map (with one-sided Wilcoxon signed-rank tests against the random map, paired by image).

    python benchmarks/evaluate_imagenet.py [--skip-evaluation] [--readme-figure docs/images/efficientnet_photos.png]

Needs the `imagenet` extra. The numbers in zoo/MODEL_CARD.md and docs/evaluation.md come from here.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from scipy.stats import wilcoxon

import deepinterpret as it
from deepinterpret.zoo import architectures, imagenet

# 10 perturbation steps per curve (11 points): each curve is 11 forwards at 224 px.
SETTINGS = {
    "the seed's settings, pixels (grey fill, Σ|·|)": dict(limit_number_generated_samples=10),
    "16×16 regions (grey fill, Σ|·|)": dict(patch=16, limit_number_generated_samples=10),
}


def _probabilities(logits: np.ndarray) -> np.ndarray:
    p = np.exp(logits - logits.max(1, keepdims=True))
    return p / p.sum(1, keepdims=True)


def predictions_table(entry) -> None:
    photos = imagenet.photographs()
    interpreter = it.Interpreter(entry.model, normalization=entry.normalization)
    data = interpreter._load_images(list(photos.values()), 224, 224).data
    logits = interpreter.adapter.to_numpy(interpreter.adapter.predict(data, 8, output="logit"))
    print("| photograph | top-5 (probability) |\n|---|---|")
    for name, top in zip(photos, imagenet.top_k(_probabilities(logits)), strict=True):
        print(f"| `{name}` | " + ", ".join(f"{c} {p:.3f}" for c, p in top) + " |")
    paddle = it.zoo.load("efficientnet-lite0", framework="paddle")
    adapter = it.Interpreter(paddle.model, normalization=paddle.normalization).adapter
    difference = np.abs(adapter.to_numpy(adapter.predict(data, 8, output="logit")) - logits).max()
    print(f"\nPyTorch vs Paddle, largest logit difference over the {len(photos)} photographs: {difference:.2e}")


def preprocessing_evidence() -> None:
    """Which normalisation and padding the weights were trained with."""
    state = imagenet.state_dict()
    weight, running_mean = state["_conv_stem.weight"], state["_bn0.running_mean"]
    imagenet_mean = np.array([0.485, 0.456, 0.406])
    # With pixels normalised as (x - m) / s, the stem's BatchNorm saw a mean of W · ((mean pixel - m) / s).
    predicted = (
        weight * ((imagenet_mean - np.array(imagenet.MEAN)) / np.array(imagenet.STD))[None, :, None, None]
    ).sum((1, 2, 3))
    print(
        "\nstem BatchNorm running mean vs W·(mean ImageNet pixel, normalised with 127/255, 128/255): correlation "
        f"{np.corrcoef(predicted, running_mean)[0, 1]:.3f} over 32 channels (with ImageNet's mean/std the "
        "prediction is 0 for every channel)"
    )
    # Padding: the accepted classes' probability under TF SAME vs symmetric padding, over 18 views of each
    # photograph (shorter side 224, 256 and 288; left / centre / right crops; mirrored or not).
    accepted = {"chelsea": imagenet.CAT_CLASSES, "coffee": ("espresso", "cup", "coffee mug"),
                "rocket": ("missile", "projectile", "space shuttle"), "camera": ("tripod", "reflex camera"),
                "motorcycle": ("moped", "motor scooter")}  # fmt: skip
    names = imagenet.class_names()
    photos = imagenet.photographs(tuple(accepted))
    norm = it.data.Normalization(imagenet.MEAN, imagenet.STD)
    views = {}
    for name, photo in photos.items():
        batches = []
        for short in (224, 256, 288):
            scaled = it.data.load_images(photo, short, None, norm).images[0]
            h, w = scaled.shape[:2]
            for top, left in (((h - 224) // 2, (w - 224) // 2), (0, 0), (h - 224, w - 224)):
                crop = scaled[top : top + 224, left : left + 224]
                batches += [crop, crop[:, ::-1]]
        views[name] = norm.apply(np.ascontiguousarray(np.stack(batches)))
    same = imagenet.build("torch")
    symmetric = architectures.efficientnet_lite0_torch()
    symmetric.load_state_dict(same.state_dict())
    for module in symmetric.modules():  # the same convolutions with symmetric padding (k - 1) / 2
        if isinstance(module, torch.nn.Conv2d):
            module._conv_forward = lambda x, w, b, m=module: torch.nn.functional.conv2d(
                x, w, b, m.stride, (w.shape[-1] - 1) // 2, 1, m.groups
            )
    for label, model in (("TF SAME padding", same), ("symmetric padding", symmetric.eval())):
        ll, top1 = [], 0
        for name, x in views.items():
            with torch.no_grad():
                p = _probabilities(model(torch.from_numpy(x)).numpy())
            columns = [names.index(c) for c in accepted[name]]
            ll.append(np.log(p[:, columns].sum(1)).mean())
            top1 += int(np.isin(p.argmax(1), columns).sum())
        total = sum(len(x) for x in views.values())
        per = ", ".join(f"{v:.2f}" for v in ll)
        print(f"{label}: mean log-probability of the accepted classes {np.mean(ll):.3f} (per photograph {per}); "
              f"top-1 accepted in {top1}/{total} views")  # fmt: skip


def evaluation(entry, lime_samples: int) -> None:
    photos = imagenet.photographs()
    norm = entry.normalization
    loader = it.Interpreter(entry.model, normalization=norm)
    images = loader._load_images(list(photos.values()), 224, 224).images
    n = len(images)
    start = time.perf_counter()
    ig = it.IntGradCVInterpreter(entry.model, normalization=norm).interpret(
        images, steps=16, resize_to=None, visual=False, batch_size=16
    )
    cam = it.GradCAMInterpreter(entry.model, normalization=norm).interpret(
        images, imagenet.CAM_LAYER, resize_to=None, visual=False
    )
    surrogates = {}
    for name, cls in (("LIME", it.LIMECVInterpreter), ("KernelSHAP", it.KernelSHAPCVInterpreter)):
        surrogate = cls(entry.model, normalization=norm, random_seed=0)
        surrogates[name] = []
        for image in images:
            surrogate.interpret(image, num_samples=lime_samples, resize_to=None, visual=False, segmentation="slic",
                                segmentation_kwargs={"n_segments": 40})  # fmt: skip
            surrogates[name].append(surrogate.lime_results)
    maps = {"IG": list(ig), "Grad-CAM": list(cam), **surrogates,
            "random": list(np.random.default_rng(0).random((n, 224, 224)))}  # fmt: skip
    print(f"\n{n} photographs; explanations took {time.perf_counter() - start:.0f} s")
    evaluator = it.DeletionInsertion(entry.model, normalization=norm)
    for title, settings in SETTINGS.items():
        scores = {k: ([], []) for k in maps}
        for i in range(n):
            for k, m in maps.items():
                r = evaluator.evaluate(images[i], m[i], resize_to=None, **settings)
                scores[k][0].append(r["deletion_score"])
                scores[k][1].append(r["insertion_score"])
        print(f"\n{title}\n\n| map | deletion ↓ | p (< random) | insertion ↑ | p (> random) |\n|---|---|---|---|---|")
        for k, (dele, ins) in scores.items():
            if k == "random":
                print(f"| random | {np.mean(dele):.4f} | – | {np.mean(ins):.4f} | – |")
                continue
            p_del = wilcoxon(dele, scores["random"][0], alternative="less").pvalue
            p_ins = wilcoxon(ins, scores["random"][1], alternative="greater").pvalue
            print(f"| {k} | {np.mean(dele):.4f} | {p_del:.1e} | {np.mean(ins):.4f} | {p_ins:.1e} |")


def readme_figure(entry, path: str) -> None:
    """Two photographs, the class the model saw, and five explanations of it (the README's first picture)."""
    from deepinterpret.cli import PHOTO_DEMO
    from deepinterpret.viz import ReportRow, comparison_figure, magnitude_map

    photos = imagenet.photographs(("chelsea", "coffee"))
    norm = entry.normalization
    loader = it.Interpreter(entry.model, normalization=norm)
    images = loader._load_images(list(photos.values()), 224, 224).images
    probabilities = loader.predict_proba(images, None)
    maps = {
        "Integrated Gradients": it.IntGradCVInterpreter(entry.model, normalization=norm).interpret(
            images, steps=16, resize_to=None, visual=False
        ),
        "SmoothGrad": it.SmoothGradInterpreter(entry.model, normalization=norm).interpret(
            images, n_samples=16, resize_to=None, visual=False, random_seed=0
        ),
        "Grad-CAM": it.GradCAMInterpreter(entry.model, normalization=norm).interpret(
            images, imagenet.CAM_LAYER, resize_to=None, visual=False
        ),
        "LRP (epsilon_plus)": it.LRPCVInterpreter(entry.model, normalization=norm).interpret(
            images, resize_to=None, visual=False, composite="epsilon_plus"
        ),
    }
    lime = it.LIMECVInterpreter(entry.model, normalization=norm, random_seed=0)
    from deepinterpret.evaluators.base import explanation_map

    lime_maps = []
    for image in images:
        lime.interpret(image, resize_to=None, visual=False, **{**PHOTO_DEMO["lime"], "num_samples": 300})
        lime_maps.append(np.maximum(explanation_map(lime.lime_results, 224, 224), 0))
    maps["LIME"] = lime_maps
    rows = []
    for i, top in enumerate(imagenet.top_k(probabilities, 1)):
        title = f"EfficientNet-Lite0 sees\n{top[0][0]} ({top[0][1]:.2f})"
        rows.append(ReportRow(images[i], title, {k: magnitude_map(v[i]) for k, v in maps.items()}))
    print("README figure:", comparison_figure(rows, path, dpi=80))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-evaluation", action="store_true")
    parser.add_argument("--skip-table", action="store_true", help="no predictions table, no preprocessing evidence")
    parser.add_argument("--lime-samples", type=int, default=200)
    parser.add_argument("--readme-figure", default=None)
    args = parser.parse_args()
    entry = it.zoo.load("efficientnet-lite0")
    if not args.skip_table:
        predictions_table(entry)
        preprocessing_evidence()
    if args.readme_figure:
        readme_figure(entry, args.readme_figure)
    if not args.skip_evaluation:
        evaluation(entry, args.lime_samples)


if __name__ == "__main__":
    main()
