"""deepinterpret: explain deep learning models on PyTorch and PaddlePaddle.

import deepinterpret as it
sg = it.SmoothGradInterpreter(model, device="cpu")
gradients = sg.interpret("cat.jpg", visual=False)
"""

from . import adapters, data, evaluators, interpreters, viz, zoo
from .adapters import adapt
from .data import Normalization
from .evaluators import (
    DeletionInsertion,
    Infidelity,
    InfidelityNLP,
    InterpreterEvaluator,
    LocalFidelity,
    ModelRandomization,
    Monotonicity,
    Perturbation,
    PerturbationNLP,
    PointGame,
    PointGameSegmentation,
    SensitivityMax,
)
from .interpreters import (
    BTCVInterpreter,
    BTNLPInterpreter,
    ConsensusInterpreter,
    GACVInterpreter,
    GAInterpreter,
    GANLPInterpreter,
    GLIMECVInterpreter,
    GradCAMInterpreter,
    GradCAMPlusPlusInterpreter,
    GradShapCVInterpreter,
    InputGradientInterpreter,
    InputOutputInterpreter,
    IntermediateLayerInterpreter,
    Interpreter,
    IntGradCVInterpreter,
    LayerCAMInterpreter,
    LIMECVInterpreter,
    LIMENLPInterpreter,
    NormLIMECVInterpreter,
    NormLIMENLPInterpreter,
    OcclusionInterpreter,
    RolloutInterpreter,
    ScoreCAMInterpreter,
    SmoothGradInterpreter,
    SmoothGradInterpreterV2,
    TAMInterpreter,
    TransformerInterpreter,
)

__version__ = "0.1.0"

# The original's alias.
SmoothGradCVInterpreter = SmoothGradInterpreter

__all__ = [
    "BTCVInterpreter",
    "BTNLPInterpreter",
    "GACVInterpreter",
    "GAInterpreter",
    "GANLPInterpreter",
    "RolloutInterpreter",
    "TAMInterpreter",
    "TransformerInterpreter",
    "DeletionInsertion",
    "Infidelity",
    "InfidelityNLP",
    "InterpreterEvaluator",
    "LocalFidelity",
    "ModelRandomization",
    "Monotonicity",
    "Perturbation",
    "PerturbationNLP",
    "PointGame",
    "PointGameSegmentation",
    "SensitivityMax",
    "evaluators",
    "ConsensusInterpreter",
    "GLIMECVInterpreter",
    "LIMECVInterpreter",
    "LIMENLPInterpreter",
    "NormLIMECVInterpreter",
    "NormLIMENLPInterpreter",
    "OcclusionInterpreter",
    "GradCAMInterpreter",
    "GradCAMPlusPlusInterpreter",
    "GradShapCVInterpreter",
    "IntermediateLayerInterpreter",
    "LayerCAMInterpreter",
    "ScoreCAMInterpreter",
    "InputGradientInterpreter",
    "InputOutputInterpreter",
    "IntGradCVInterpreter",
    "Interpreter",
    "Normalization",
    "SmoothGradCVInterpreter",
    "SmoothGradInterpreter",
    "SmoothGradInterpreterV2",
    "__version__",
    "adapt",
    "adapters",
    "data",
    "interpreters",
    "viz",
    "zoo",
]
