"""Interpreters: one file per algorithm family, each a pure function plus InterpretDL's public class(es)."""

from .attention import (
    BTCVInterpreter,
    BTNLPInterpreter,
    GACVInterpreter,
    GAInterpreter,
    GANLPInterpreter,
    RolloutInterpreter,
    TAMInterpreter,
    TransformerInterpreter,
)
from .base import InputGradientInterpreter, InputOutputInterpreter, Interpreter, accumulate_gradients
from .cam import (
    GradCAMInterpreter,
    GradCAMPlusPlusInterpreter,
    IntermediateLayerInterpreter,
    LayerCAMInterpreter,
    ScoreCAMInterpreter,
    gradient_cam,
    score_cam,
)
from .cam_variants import (
    AblationCAMInterpreter,
    EigenCAMInterpreter,
    HiResCAMInterpreter,
    XGradCAMInterpreter,
    ablation_cam,
    eigen_cam,
)
from .consensus import ConsensusInterpreter
from .deeplift import DeepLIFTInterpreter, deeplift
from .glime import GLIMECVInterpreter, NormLIMECVInterpreter, NormLIMENLPInterpreter
from .gradient_shap import GradShapCVInterpreter, gradient_shap
from .gradients import (
    DeconvNetInterpreter,
    GuidedBackpropInterpreter,
    GuidedGradCAMInterpreter,
    InputXGradientInterpreter,
    SaliencyInterpreter,
    guided_grad_cam,
    rule_gradients,
)
from .integrated_gradients import QUADRATURES, IntGradCVInterpreter, integrated_gradients, quadrature
from .lime import KernelSHAPCVInterpreter, KernelSHAPNLPInterpreter, LIMECVInterpreter, LIMENLPInterpreter
from .lrp import COMPOSITES, LRPCVInterpreter
from .occlusion import OcclusionInterpreter, occlusion
from .rise import RISEInterpreter, rise
from .smoothgrad import SmoothGradInterpreter, SmoothGradInterpreterV2, smooth_grad
from .text_gradients import GradShapNLPInterpreter, IntGradNLPInterpreter, SmoothGradNLPInterpreter

__all__ = [
    "DeconvNetInterpreter",
    "DeepLIFTInterpreter",
    "GuidedBackpropInterpreter",
    "GuidedGradCAMInterpreter",
    "InputXGradientInterpreter",
    "SaliencyInterpreter",
    "deeplift",
    "guided_grad_cam",
    "rule_gradients",
    "COMPOSITES",
    "LRPCVInterpreter",
    "GradShapNLPInterpreter",
    "IntGradNLPInterpreter",
    "SmoothGradNLPInterpreter",
    "BTCVInterpreter",
    "BTNLPInterpreter",
    "GACVInterpreter",
    "GAInterpreter",
    "GANLPInterpreter",
    "RolloutInterpreter",
    "TAMInterpreter",
    "TransformerInterpreter",
    "QUADRATURES",
    "ConsensusInterpreter",
    "GLIMECVInterpreter",
    "LIMECVInterpreter",
    "LIMENLPInterpreter",
    "NormLIMECVInterpreter",
    "NormLIMENLPInterpreter",
    "OcclusionInterpreter",
    "occlusion",
    "GradCAMInterpreter",
    "GradCAMPlusPlusInterpreter",
    "IntermediateLayerInterpreter",
    "LayerCAMInterpreter",
    "ScoreCAMInterpreter",
    "gradient_cam",
    "score_cam",
    "GradShapCVInterpreter",
    "InputGradientInterpreter",
    "InputOutputInterpreter",
    "IntGradCVInterpreter",
    "Interpreter",
    "SmoothGradInterpreter",
    "SmoothGradInterpreterV2",
    "accumulate_gradients",
    "gradient_shap",
    "integrated_gradients",
    "quadrature",
    "smooth_grad",
    "RISEInterpreter",
    "rise",
    "KernelSHAPCVInterpreter",
    "KernelSHAPNLPInterpreter",
    "HiResCAMInterpreter",
    "XGradCAMInterpreter",
    "EigenCAMInterpreter",
    "AblationCAMInterpreter",
    "ablation_cam",
    "eigen_cam",
]
