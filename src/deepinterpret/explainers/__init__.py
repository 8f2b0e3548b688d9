"""Two-line task explainers for Hugging Face models (transformers-interpret's API), on deepinterpret's methods."""

from .image import ImageClassificationExplainer
from .text import (
    BaseExplainer,
    MultiLabelClassificationExplainer,
    PairwiseSequenceClassificationExplainer,
    QuestionAnsweringExplainer,
    SequenceClassificationExplainer,
    TokenClassificationExplainer,
    ZeroShotClassificationExplainer,
)

__all__ = [
    "BaseExplainer",
    "ImageClassificationExplainer",
    "MultiLabelClassificationExplainer",
    "PairwiseSequenceClassificationExplainer",
    "QuestionAnsweringExplainer",
    "SequenceClassificationExplainer",
    "TokenClassificationExplainer",
    "ZeroShotClassificationExplainer",
]
