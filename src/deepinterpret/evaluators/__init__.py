"""Evaluators: how far an explanation can be trusted (faithfulness, robustness, localisation, sanity)."""

from . import faithfulness
from .base import InterpreterEvaluator, explanation_map
from .fidelity import Infidelity, LocalFidelity, Monotonicity, SensitivityMax, infidelity_score
from .generation import generation_faithfulness, generation_faithfulness_curves
from .localization import PointGame, PointGameSegmentation
from .perturbation import DeletionInsertion, Perturbation
from .sanity import ModelRandomization
from .scores import abpc, entropy, gini, sparsity
from .text import InfidelityNLP, PerturbationNLP

__all__ = [
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
    "explanation_map",
    "abpc",
    "entropy",
    "generation_faithfulness",
    "gini",
    "infidelity_score",
    "sparsity",
    "faithfulness",
    "generation_faithfulness_curves",
]
