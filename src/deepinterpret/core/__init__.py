"""The ground floor: framework-neutral helpers every layer may use (argument checks, seeded noise, the batching
engine, small numerics). Nothing here imports torch or paddle."""

from .noise import content_digest, content_digests, draw_noise, resolve_seed, sample_rng
from .numerics import TRAIN_MODES, bilinear_matrix, gd_weights, log_softmax_rows, softmax
from .types import Array, Images, LayerName, Objective, Seed, Targets, TokenInputs
from .validation import (
    OBJECTIVES,
    Device,
    check_batch_size,
    check_label,
    check_number,
    check_objective,
    check_optional_positive_int,
    check_positive_int,
    check_targets,
    parse_device,
)

__all__ = [
    "OBJECTIVES",
    "TRAIN_MODES",
    "Array",
    "Device",
    "Images",
    "LayerName",
    "Objective",
    "Seed",
    "Targets",
    "TokenInputs",
    "bilinear_matrix",
    "check_batch_size",
    "check_label",
    "check_number",
    "check_optional_positive_int",
    "check_objective",
    "check_positive_int",
    "check_targets",
    "content_digest",
    "content_digests",
    "draw_noise",
    "gd_weights",
    "log_softmax_rows",
    "parse_device",
    "resolve_seed",
    "sample_rng",
    "softmax",
]
