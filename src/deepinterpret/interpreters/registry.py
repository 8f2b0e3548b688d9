"""The image methods by command-line name, with the options each one takes. Later interpreter families add
their entries here; the CLI and the demo enumerate this table."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .attention import BTCVInterpreter, GACVInterpreter, RolloutInterpreter, TAMInterpreter
from .cam import GradCAMInterpreter, GradCAMPlusPlusInterpreter, LayerCAMInterpreter, ScoreCAMInterpreter
from .cam_variants import AblationCAMInterpreter, EigenCAMInterpreter, HiResCAMInterpreter, XGradCAMInterpreter
from .deeplift import DeepLIFTInterpreter
from .gradient_shap import GradShapCVInterpreter
from .gradients import (
    DeconvNetInterpreter,
    GuidedBackpropInterpreter,
    GuidedGradCAMInterpreter,
    InputXGradientInterpreter,
    SaliencyInterpreter,
)
from .integrated_gradients import IntGradCVInterpreter
from .lrp import LRPCVInterpreter
from .occlusion import OcclusionInterpreter
from .rise import RISEInterpreter
from .smoothgrad import SmoothGradInterpreter


@dataclass(frozen=True)
class MethodSpec:
    name: str
    cls: type
    summary: str
    options: tuple[str, ...]  # interpret() keyword arguments that the CLI exposes
    demo: dict[str, Any] = field(default_factory=dict)  # settings for the quick demo
    needs_layer: bool = False  # takes target_layer_name (a convolutional layer)
    needs_attention: bool = False  # a Vision Transformer method (attention maps)
    takes_labels: bool = True  # explains a chosen class (Rollout is class-agnostic)
    convolutional: bool = False  # needs a network of convolutions, linear layers and element-wise layers (LRP)


IMAGE_METHODS: dict[str, MethodSpec] = {
    spec.name: spec
    for spec in (
        MethodSpec(
            "smoothgrad",
            SmoothGradInterpreter,
            "SmoothGrad: mean gradient over noisy copies",
            ("n_samples", "noise_amount", "gradient_of", "batch_size", "random_seed"),
            dict(n_samples=32, random_seed=0),
        ),
        MethodSpec(
            "intgrad",
            IntGradCVInterpreter,
            "Integrated Gradients from a baseline (zeros)",
            ("steps", "gradient_of", "batch_size", "method", "tolerance"),
            dict(steps=32),
        ),
        MethodSpec(
            "gradshap",
            GradShapCVInterpreter,
            "GradientSHAP: expected gradients with noise",
            ("n_samples", "noise_amount", "gradient_of", "batch_size", "random_seed"),
            dict(n_samples=32, random_seed=0),
        ),
        MethodSpec(
            "occlusion",
            OcclusionInterpreter,
            "Occlusion: score drop when a window is masked",
            ("sliding_window_shapes", "strides", "batch_size"),
            dict(sliding_window_shapes=4, strides=2),
        ),
        MethodSpec(
            "gradcam",
            GradCAMInterpreter,
            "Grad-CAM: channels weighted by mean gradient",
            ("gradient_of", "batch_size"),
            needs_layer=True,
        ),
        MethodSpec(
            "gradcam++",
            GradCAMPlusPlusInterpreter,
            "Grad-CAM++: positive gradients, weighted",
            ("gradient_of", "batch_size"),
            needs_layer=True,
        ),
        MethodSpec(
            "layercam",
            LayerCAMInterpreter,
            "LayerCAM: activations times positive gradients",
            ("gradient_of", "batch_size"),
            needs_layer=True,
        ),
        MethodSpec(
            "scorecam",
            ScoreCAMInterpreter,
            "Score-CAM: channels weighted by masked-input scores",
            ("batch_size",),
            needs_layer=True,
        ),
        MethodSpec(
            "lrp",
            LRPCVInterpreter,
            "LRP: the logit propagated back with relevance rules",
            ("composite", "batch_size"),
            convolutional=True,
        ),
        MethodSpec(
            "rollout",
            RolloutInterpreter,
            "Attention Rollout: attention maps multiplied through the blocks",
            ("start_layer", "batch_size"),
            needs_attention=True,
            takes_labels=False,
        ),
        MethodSpec(
            "tam",
            TAMInterpreter,
            "Transition Attention Maps: Markov chain x integrated attention gradient",
            ("start_layer", "steps", "gradient_of", "batch_size", "baselines"),
            dict(start_layer=0, steps=10, baselines="black"),
            needs_attention=True,
        ),
        MethodSpec(
            "ga",
            GACVInterpreter,
            "Generic Attention: attention x gradient, rolled out",
            ("start_layer", "gradient_of", "batch_size"),
            dict(start_layer=0),
            needs_attention=True,
        ),
        MethodSpec(
            "bt",
            BTCVInterpreter,
            "Bidirectional Transformer: perception x reasoning feedback",
            ("ap_mode", "start_layer", "steps", "gradient_of", "batch_size", "baselines"),
            dict(start_layer=0, steps=10, baselines="black"),
            needs_attention=True,
        ),
        MethodSpec(
            "saliency", SaliencyInterpreter, "Saliency: magnitude of the gradient", ("gradient_of", "batch_size")
        ),
        MethodSpec(
            "inputxgrad", InputXGradientInterpreter, "Input x Gradient of the logit", ("gradient_of", "batch_size")
        ),
        MethodSpec(
            "guidedbp",
            GuidedBackpropInterpreter,
            "Guided Backprop: only positive gradients pass the ReLUs",
            ("gradient_of", "batch_size"),
            convolutional=True,
        ),
        MethodSpec(
            "deconvnet",
            DeconvNetInterpreter,
            "DeconvNet: ReLUs pass the positive part of the gradient",
            ("gradient_of", "batch_size"),
            convolutional=True,
        ),
        MethodSpec(
            "guidedgradcam",
            GuidedGradCAMInterpreter,
            "Guided Grad-CAM: Guided Backprop x upsampled Grad-CAM",
            ("gradient_of", "batch_size"),
            needs_layer=True,
        ),
        MethodSpec(
            "rise",
            RISEInterpreter,
            "RISE: random masks weighted by the masked input's score",
            ("n_masks", "grid_size", "batch_size", "random_seed"),
            dict(n_masks=256, grid_size=4, batch_size=128, random_seed=0),
        ),
        MethodSpec(
            "hirescam",
            HiResCAMInterpreter,
            "HiResCAM: activations times gradients, element-wise",
            ("gradient_of", "batch_size"),
            needs_layer=True,
        ),
        MethodSpec(
            "deeplift",
            DeepLIFTInterpreter,
            "DeepLIFT (rescale rule) from a baseline (zeros)",
            ("gradient_of", "batch_size", "baselines"),
            convolutional=True,
        ),
        MethodSpec(
            "xgradcam",
            XGradCAMInterpreter,
            "XGrad-CAM: gradients averaged with the activations as weights",
            ("gradient_of", "batch_size"),
            needs_layer=True,
        ),
        MethodSpec(
            "eigencam",
            EigenCAMInterpreter,
            "Eigen-CAM: first principal component of the activations",
            ("batch_size",),
            needs_layer=True,
            takes_labels=False,
        ),
        MethodSpec(
            "ablationcam",
            AblationCAMInterpreter,
            "Ablation-CAM: channels weighted by the score drop without them",
            ("batch_size",),
            needs_layer=True,
        ),
    )
}


def get_method(name: str) -> MethodSpec:
    if name not in IMAGE_METHODS:
        raise ValueError(f"unknown method {name!r}; available: {', '.join(IMAGE_METHODS)}.")
    return IMAGE_METHODS[name]
