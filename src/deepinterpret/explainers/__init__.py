"""Two-line task explainers for Hugging Face models (transformers-interpret's API), on deepinterpret's methods."""

from .generation import GenerationExplainer, GenerationResult
from .image import ImageClassificationExplainer
from .text import (
    TEXT_METHODS,
    BaseExplainer,
    MultiLabelClassificationExplainer,
    PairwiseSequenceClassificationExplainer,
    QuestionAnsweringExplainer,
    SequenceClassificationExplainer,
    TokenClassificationExplainer,
    ZeroShotClassificationExplainer,
)

__all__ = [
    "TEXT_METHODS",
    "BaseExplainer",
    "GenerationExplainer",
    "GenerationResult",
    "ImageClassificationExplainer",
    "MultiLabelClassificationExplainer",
    "PairwiseSequenceClassificationExplainer",
    "QuestionAnsweringExplainer",
    "SequenceClassificationExplainer",
    "TokenClassificationExplainer",
    "ZeroShotClassificationExplainer",
]
