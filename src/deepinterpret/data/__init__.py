"""Inputs: images and text in, model-ready batches and target classes out."""

from .images import IMAGENET, UNIT, ImageBatch, Normalization, as_normalization, load_images
from .targets import (
    OutputFunction,
    OutputTarget,
    RegressionOutput,
    SegmentationRegion,
    as_target,
    resolve_label_lists,
    resolve_labels,
)
from .text import TextBatch, as_texts, encode_texts, encode_with, marker_words, merge_words

__all__ = [
    "IMAGENET",
    "UNIT",
    "ImageBatch",
    "Normalization",
    "as_normalization",
    "load_images",
    "resolve_labels",
    "resolve_label_lists",
    "OutputTarget",
    "OutputFunction",
    "RegressionOutput",
    "SegmentationRegion",
    "as_target",
    "TextBatch",
    "as_texts",
    "encode_texts",
    "encode_with",
    "marker_words",
    "merge_words",
]
