"""Dataset-level interpreters that watch a training run: training dynamics, forgetting events, TIDY, the BHDF
mislabelled-sample detector, SGDNoise, and training-sample attribution (TracIn, influence functions)."""

from .bhdf import BHDFDetector, BHDFInterpreter
from .dynamics import (
    Dynamics,
    ForgettingEventsInterpreter,
    IndexedLoader,
    TidyReport,
    TrainingDynamics,
    forgetting_statistics,
    load_arrays,
    noise_scores,
    record_training,
    tidy,
    transform_dynamics,
)
from .influence import (
    GradientSimilarityInterpreter,
    InfluenceFunctionInterpreter,
    InfluenceResult,
    TracInInterpreter,
)
from .sgd_noise import sgd_noise

__all__ = [
    "BHDFDetector",
    "BHDFInterpreter",
    "Dynamics",
    "ForgettingEventsInterpreter",
    "IndexedLoader",
    "TidyReport",
    "TrainingDynamics",
    "forgetting_statistics",
    "load_arrays",
    "noise_scores",
    "record_training",
    "sgd_noise",
    "tidy",
    "transform_dynamics",
    "GradientSimilarityInterpreter",
    "InfluenceFunctionInterpreter",
    "InfluenceResult",
    "TracInInterpreter",
]
