"""The framework-neutral part of the adapter layer.

A :class:`ModelAdapter` is the only thing the algorithms talk to. It runs the model in batches, gives
gradients of a chosen output, draws seeded noise and tells which array namespace (``xp``) the
algorithms compute with. The orchestration shared by the PyTorch and Paddle adapters is ``framework.py``, over a
table of framework primitives (``torch_ops.py``, ``paddle_ops.py``); ``callable_adapter.py`` wraps plain callables.
The framework-neutral helpers (checks, seeded noise, numerics) live in :mod:`deepinterpret.core`; they are
re-exported here for the code that imports them from the adapters.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..core.batching import chunks
from ..core.noise import draw_noise, resolve_seed, sample_rng
from ..core.numerics import TRAIN_MODES, bilinear_matrix, gd_weights, softmax
from ..core.types import Array, Images, LayerName, Model, Objective, Targets
from ..core.validation import (
    OBJECTIVES,
    Device,
    check_batch_size,
    check_objective,
    check_positive_int,
    check_targets,
    parse_device,
)
from .interface import HookInterface, TrainingInterface
from .results import (
    HF_ATTENTIONS,
    AttentionResult,
    EmbeddingResult,
    GradientResult,
    LayerGradientResult,
    _StopForward,
    logits_of,
    wanted_gradients,
)
from .transformer_interface import TransformerInterface

__all__ = [
    "HF_ATTENTIONS",
    "OBJECTIVES",
    "TRAIN_MODES",
    "AttentionResult",
    "Device",
    "EmbeddingResult",
    "GradientResult",
    "LayerGradientResult",
    "ModelAdapter",
    "_StopForward",
    "bilinear_matrix",
    "check_batch_size",
    "check_objective",
    "check_positive_int",
    "chunks",
    "draw_noise",
    "gd_weights",
    "logits_of",
    "parse_device",
    "resolve_seed",
    "sample_rng",
    "softmax",
    "wanted_gradients",
]


class ModelAdapter(HookInterface, TransformerInterface, TrainingInterface):
    """Common interface over PyTorch modules, Paddle layers and plain callables.

    Subclasses implement :meth:`asarray`, :meth:`to_numpy`, :meth:`_forward_nograd`,
    :meth:`_input_gradient_batch` and :meth:`evaluation`. Later capabilities (layer capture,
    embeddings, attention maps) are added as further methods without changing these.
    """

    framework: str = "abstract"
    differentiable: bool = False
    #: what :meth:`input_gradient` can differentiate besides a target object
    objectives: tuple[str, ...] = OBJECTIVES
    xp: Any = None

    def __init__(self, model: Any, device: Device):
        self.model = model
        self.device = device

    # -- arrays -------------------------------------------------------------------------------
    def asarray(self, array: Any) -> Any:
        """``array`` (NumPy or framework tensor) as a float32 array of ``xp`` on the model's device."""
        raise NotImplementedError

    def to_numpy(self, array: Any) -> np.ndarray:
        raise NotImplementedError

    def matmul_into(self, a: Any, b: Any, out: Any) -> Any:
        """``a @ b`` (``xp`` arrays, batched) written into ``out``, an ``xp`` array made once and reused for every
        chunk of a loop: a fresh large buffer per chunk costs its allocation each time (on a CPU, the page faults
        of memory the allocator hands back to the system between chunks)."""
        return np.matmul(a, b, out=out)

    def multiply_into(self, a: Any, b: Any, out: Any) -> Any:
        """``a * b`` (broadcast) written into ``out``, as :meth:`matmul_into`."""
        return np.multiply(a, b, out=out)

    # -- model passes -------------------------------------------------------------------------
    def evaluation(self):
        """Context manager: the model in inference mode for the call, restored exactly afterwards."""
        raise NotImplementedError

    def _forward_nograd(self, x: Any) -> Any:
        raise NotImplementedError

    def _input_gradient_batch(self, x: Any, targets: Any, objective: str) -> GradientResult:
        raise NotImplementedError

    def max_positions(self) -> int | None:
        """How many tokens the model can take (its position table: ``config.max_position_embeddings``, less
        RoBERTa's padding offset), or ``None`` when it does not say."""
        config = getattr(self.model, "config", None)
        positions = getattr(config, "max_position_embeddings", None)
        if not isinstance(positions, int) or positions <= 0:
            return None
        if "roberta" in str(getattr(config, "model_type", "")) or "camembert" in str(getattr(config, "model_type", "")):
            positions -= int(getattr(config, "pad_token_id", None) or 0) + 1  # positions start after padding_idx
        return positions

    def weights_digest(self) -> str | None:
        """A digest of everything the model's outputs depend on that a cache key must cover: its class and every
        parameter and buffer (names, shapes, dtypes, values). ``None`` for a plain callable (nothing to digest:
        results of one are not cached)."""
        return None

    def predict(self, x: Images, batch_size: int = 64, output: str = "logit") -> Array:
        """Model outputs for ``x`` (already a model-ready batch), in chunks, without building a graph.

        ``output`` is ``"logit"`` or ``"probability"`` (softmax over the last axis).
        """
        if output not in ("logit", "probability"):
            raise ValueError(f"output must be 'logit' or 'probability'; got {output!r}.")
        x = self.asarray(x)
        parts = [self._forward_nograd(x[part]) for part in chunks(int(x.shape[0]), batch_size)]
        logits = self.xp.concat(parts, axis=0)
        return softmax(self.xp, logits) if output == "probability" else logits

    def scores(self, x: Images, targets: Targets, output: Any = "probability", batch_size: int = 64) -> np.ndarray:
        """What a perturbation method reads off each row of ``x``: the probability or logit of class ``targets[j]``
        (``output`` ``"probability"`` / ``"logit"``), or the value of a target object (``output`` callable, given
        ``targets`` as the row → input indices). In chunks, no graph; NumPy ``[B]``."""
        targets, x = np.asarray(targets), self.asarray(x)
        parts = [
            self.scores_of(self._forward_nograd(x[part]), targets[part], output)
            for part in chunks(int(x.shape[0]), batch_size)
        ]
        return np.concatenate(parts).astype(np.float32)

    def scores_of(self, logits: Any, targets: np.ndarray, output: Any = "probability") -> np.ndarray:
        """:meth:`scores` read off model outputs already computed (an ``xp`` array, e.g. a capture pass's)."""
        targets = np.asarray(targets)
        if callable(output):
            return self.to_numpy(output(logits, targets, self.asarray)).astype(np.float32)
        if output not in ("logit", "probability"):
            raise ValueError(f"output must be 'logit', 'probability' or a target object; got {output!r}.")
        values = self.to_numpy(softmax(self.xp, logits) if output == "probability" else logits)
        self.check_targets(targets, int(values.shape[-1]))
        rows = np.arange(len(targets)) if targets.ndim == 1 else np.arange(len(targets))[:, None]
        return values[rows, targets].astype(np.float32)  # [B], or [B, K] for K classes per row

    def scaled_layer_scores(
        self, x: Any, layer: str, factors: np.ndarray, targets: np.ndarray, output: Any = "logit"
    ) -> np.ndarray:
        """:meth:`scores` of one model batch ``x`` in which the output of ``layer`` is multiplied by ``factors``
        (a NumPy array that broadcasts against it, e.g. ``[B, C, 1, 1]`` to switch channels off row by row). One
        forward, no graph."""
        scale = self._framework_tensor(np.asarray(factors, dtype=np.float32))

        def hook(module, args, out):
            if isinstance(out, (tuple, list)):
                return (out[0] * scale, *out[1:])
            return out * scale

        with self._hooks([(layer, hook, False)]):
            return self.scores(x, targets, output, batch_size=max(1, int(np.asarray(targets).shape[0])))

    def _forward_inputs_nograd(self, inputs: tuple | dict, field: str | None = None) -> Any:
        raise TypeError(f"{type(self.model).__name__} cannot take token inputs.")

    def predict_inputs(
        self, inputs: tuple | dict, batch_size: int = 64, output: str = "probability", field: str | None = None
    ) -> np.ndarray:
        """Model outputs for several named or positional input arrays (e.g. ``input_ids``, ``attention_mask``)
        that share the batch axis, in chunks, without a graph; NumPy ``[N, classes]`` (``[N, L, classes]`` for a
        token classifier). Integer arrays go to the model as int64 tensors, float arrays as float32. ``field``
        names the output to read (e.g. ``start_logits``); by default the logits."""
        if output not in ("logit", "probability"):
            raise ValueError(f"output must be 'logit' or 'probability'; got {output!r}.")
        arrays = inputs if isinstance(inputs, dict) else dict(enumerate(inputs))
        total = int(next(iter(arrays.values())).shape[0])
        parts = []
        for part in chunks(total, batch_size):
            chunk = {k: np.asarray(v)[part] for k, v in arrays.items()}
            parts.append(
                self.to_numpy(
                    self._forward_inputs_nograd(chunk if isinstance(inputs, dict) else tuple(chunk.values()), field)
                )
            )
        logits = np.concatenate(parts).astype(np.float32)
        return softmax(np, logits) if output == "probability" else logits

    def input_gradient(self, x: Images, targets: Targets, objective: Objective = "probability") -> GradientResult:
        """Gradient of ``objective`` of class ``targets[i]`` for sample ``i`` w.r.t. ``x`` (one model batch).

        Only the input gradient is computed: no parameter receives ``.grad``.
        """
        if not self.differentiable:
            raise TypeError(
                f"{type(self.model).__name__} is a plain callable and cannot give gradients; gradient methods need "
                "a torch.nn.Module or paddle.nn.Layer. Use a perturbation method (LIME, Occlusion) for black boxes."
            )
        check_objective(objective)
        return self._input_gradient_batch(self.asarray(x), targets, objective)

    def resize(self, maps: Any, height: int, width: int) -> Any:
        """Bilinear resize of the last two axes of ``maps`` (an ``xp`` array), on the model's device."""
        h, w = int(maps.shape[-2]), int(maps.shape[-1])
        if (h, w) == (height, width):
            return maps
        rows = self.asarray(bilinear_matrix(height, h))
        cols = self.asarray(bilinear_matrix(width, w))
        return self.xp.matmul(self.xp.matmul(rows, maps), self.xp.permute_dims(cols, (1, 0)))

    # -- layers -------------------------------------------------------------------------------
    def layer_names(self) -> list[str]:
        """Names of the model's layers (PyTorch ``named_modules``, Paddle ``named_sublayers``), root excluded."""
        raise TypeError(f"a plain callable ({type(self.model).__name__}) has no layers to capture.")

    def find_layers(
        self, target_layer: LayerName | None = None, target_layer_pattern: str | None = None
    ) -> list[LayerName]:
        """The layer named exactly ``target_layer``, or every layer whose name matches the regular expression
        ``target_layer_pattern`` (``re.match``, as the original). An unknown name raises a ``ValueError`` that
        lists the closest valid names."""
        if (target_layer is None) == (target_layer_pattern is None):
            raise ValueError("give exactly one of target_layer and target_layer_pattern.")
        if target_layer is not None:
            if self._layer(target_layer) is not None:
                return [target_layer]
            names = self.layer_names()
            close = difflib.get_close_matches(target_layer, names, n=5, cutoff=0.3) or names[:5]
            raise ValueError(
                f"no layer named {target_layer!r} in {type(self.model).__name__}; closest names: "
                f"{', '.join(repr(n) for n in close)}."
            )
        found = self.match_layers(target_layer_pattern)
        if not found:
            names = self.layer_names()
            close = difflib.get_close_matches(target_layer_pattern, names, n=5, cutoff=0.3) or names[:5]
            raise ValueError(
                f"no layer name matches {target_layer_pattern!r}; closest names: {', '.join(repr(n) for n in close)}."
            )
        return found

    def match_layers(self, pattern: str) -> list[LayerName]:
        """The names of the layers that the regular expression ``pattern`` matches (``re.match``); may be empty."""
        try:
            compiled = re.compile(pattern)
        except re.error as err:
            raise ValueError(f"layer pattern {pattern!r} is not a valid regex: {err}.") from None
        return [n for n in self.layer_names() if compiled.match(n)]

    def _layer(self, name: str) -> Any:
        """The layer called ``name`` (a dotted path), or ``None``."""
        return None

    def parametrized_layers(self) -> list[str]:
        """Names of the layers that hold parameters of their own, in definition order."""
        raise TypeError(f"a plain callable ({type(self.model).__name__}) has no layers.")

    def randomized_copy(self, layers: Sequence[LayerName], seed: int) -> Model:
        """A deep copy of the model whose ``layers`` have their own parameters redrawn from N(0, σ²), σ each
        parameter's standard deviation (Adebayo et al. 2018). The model itself is not touched."""
        raise TypeError(f"a plain callable ({type(self.model).__name__}) cannot be randomised.")

    def capture_activations(self, x: Images, layers: Sequence[LayerName]) -> tuple[dict[LayerName, Array], Array]:
        """``({layer: output}, logits)`` for one model batch, without building a graph."""
        raise TypeError(f"a plain callable ({type(self.model).__name__}) has no layers to capture.")

    def layer_gradient(
        self, x: Images, layer: LayerName, targets: Targets, objective: Objective
    ) -> LayerGradientResult:
        """Activations of ``layer`` and the gradient of the objective w.r.t. them, for one model batch. The backward
        stops at the layer: no gradient is computed for any parameter, nor for the layers below."""
        raise TypeError(
            f"{type(self.model).__name__} is a plain callable and cannot give gradients; gradient methods need "
            "a torch.nn.Module or paddle.nn.Layer."
        )

    def incremental_occlusion(self) -> Any:
        """A runner of occluded copies of images that recomputes, layer by layer, only what the occluded box can
        change (Krypton): ``remember(x, images)``, then ``logits(images, occluded, boxes)``. Called inside
        :meth:`evaluation`. ``TypeError`` where the model cannot be walked so (here: not a PyTorch model)."""
        raise TypeError(f"incremental occlusion walks PyTorch models; this is a {self.framework} model.")

    # -- checks -------------------------------------------------------------------------------
    def check_targets(self, targets: np.ndarray, num_classes: int) -> None:
        """Raise ``ValueError`` when a target class is outside ``0..num_classes-1``."""
        check_targets(targets, num_classes)

    def expected_input_channels(self) -> int | None:
        """Channels the model's first convolution expects, when that can be read from the model."""
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({type(self.model).__name__}, device={self.device})"
