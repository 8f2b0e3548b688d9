"""Interpreters: one file per algorithm family, each a pure function plus the seed's public class(es)."""

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
from .gradient_shap import GradShapCVInterpreter, gradient_shap
from .integrated_gradients import QUADRATURES, IntGradCVInterpreter, integrated_gradients, quadrature
from .smoothgrad import SmoothGradInterpreter, SmoothGradInterpreterV2, smooth_grad

__all__ = [
    "QUADRATURES",
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
]
