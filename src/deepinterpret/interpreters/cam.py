"""Class activation maps: Grad-CAM, Grad-CAM++, LayerCAM and Score-CAM, on one shared base.

All maps are ``ReLU(Σ_k w_k ⊙ A_k)`` over the channels ``A_k`` of a convolutional layer; the methods differ
only in the weights ``w``:

* Grad-CAM (Selvaraju et al. 2017, https://arxiv.org/abs/1610.02391): ``w_k`` = spatial mean of the gradient
  of the pre-softmax class score (the logit), as the paper, Captum's ``LayerGradCam`` and pytorch-grad-cam do;
  the original InterpretDL differentiated the softmax probability, which ``gradient_of="probability"``
  reproduces. On a layer that feeds global average pooling and a linear head this is CAM (Zhou et al. 2016)
  divided by ``h·w``. The original InterpretDL took the mean over channels instead of the paper's sum: a
  positive scale, nothing else.
* Grad-CAM++ (Chattopadhay et al. 2018, https://arxiv.org/abs/1710.11063): ``w_k = Σ_ij α_kij ReLU(g_kij)`` with
  the closed form ``α = g² / (2g² + Σ_ab A_kab · g³)`` that the paper derives for an exponential of the class
  score; hence the class logit is differentiated by default.
* LayerCAM (Jiang et al. 2021, https://ieeexplore.ieee.org/document/9462463): element-wise ``w = ReLU(g)``.
* Score-CAM (Wang et al. 2020, https://arxiv.org/abs/1910.01279): ``w_k`` = the softmax probability of the
  target class for the input masked by channel ``k`` (upsampled bilinearly, min-max normalised to [0, 1]; a
  constant channel gives an all-zero mask). No gradient: one forward for the activations, then the masked
  inputs in batches of ``batch_size`` with no graph built, so memory depends on ``batch_size``, not on the
  number of channels (the original ran one forward per channel).

Maps are returned at the layer's resolution, ``[N, h, w]``, as InterpretDL's Grad-CAM does (the original
Score-CAM returned the input resolution; the maps differ only by the bilinear upsampling that the
visualisation applies). Layers are named as in ``named_modules()`` (PyTorch) or ``named_sublayers()``
(Paddle); an unknown name raises an error that lists the closest valid ones.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..adapters import GradientResult, ModelAdapter, check_batch_size, check_objective, softmax
from ..core.batching import batches, joined, map_batches
from ..core.types import Array, ArrayNamespace, ImageInputs, Images, Labels, LayerName, Objective, SavePath
from ..core.validation import check_positive_int
from ..data import as_target, resolve_label_lists
from .base import Interpreter
from .feature_grid import as_feature_map
from .score_cam_plan import BLANK, plan_channels

_EPS = 1e-7

#: A CAM's channel weighting ``weights(xp, activations, gradients)`` (``[N, C, h, w]`` each) → weights that
#: broadcast against the activations.
ChannelWeights = Callable[[ArrayNamespace, Array, Array], Array]


def _feature_map(xp: ArrayNamespace, array: Array, layer: LayerName, x: Array) -> Array:
    """The layer's output (or its gradient) as ``[N, C, h, w]``; transformer tokens on their patch grid."""
    return as_feature_map(xp, array, layer, int(x.shape[-2]), int(x.shape[-1]))


def grad_cam_weights(xp: ArrayNamespace, activations: Array, gradients: Array) -> Array:
    """Grad-CAM: the spatial mean of the gradients, one weight per channel."""
    return xp.mean(gradients, axis=(2, 3), keepdims=True)


def grad_cam_plus_plus_weights(xp: ArrayNamespace, activations: Array, gradients: Array) -> Array:
    """Grad-CAM++: ``Σ_ij α_kij ReLU(g_kij)`` with ``α = g² / (2g² + Σ_ab A_kab g³)`` (0 where ``g = 0``)."""
    g2 = gradients * gradients
    denominator = 2 * g2 + xp.sum(activations, axis=(2, 3), keepdims=True) * g2 * gradients
    alpha = xp.where(gradients != 0, g2 / xp.where(denominator != 0, denominator, _EPS), 0.0)
    return xp.sum(alpha * xp.maximum(gradients, 0.0), axis=(2, 3), keepdims=True)


def layer_cam_weights(xp: ArrayNamespace, activations: Array, gradients: Array) -> Array:
    """LayerCAM: the positive part of each gradient, element-wise."""
    return xp.maximum(gradients, 0.0)


def combine(xp: ArrayNamespace, activations: Array, weights: Array) -> Array:
    """``ReLU(Σ_k w_k ⊙ A_k)`` → ``[N, h, w]``."""
    return xp.maximum(xp.sum(weights * activations, axis=1), 0.0)


def gradient_cam(
    adapter: ModelAdapter,
    x: Images,
    targets: np.ndarray | None,
    layer: LayerName,
    channel_weights: ChannelWeights = grad_cam_weights,
    objective: Objective = "logit",
    batch_size: int = 16,
) -> tuple[Array, np.ndarray, np.ndarray]:
    """A gradient-weighted CAM of ``layer`` for each input: ``(maps [N, h, w], targets, probabilities [N, K])``.

    One forward and one backward that stops at ``layer``, per chunk of ``batch_size`` images; with
    ``targets=None`` the predicted class of that same forward is explained. ``targets`` ``[N, K]`` (``K`` classes
    per image) gives maps ``[N, K, h, w]``: one forward and ``K`` backwards per chunk.
    """
    check_objective(objective)
    adapter.find_layers(layer)
    xp, x = adapter.xp, adapter.asarray(x)

    def run(part: slice):
        result = adapter.layer_gradient(x[part], layer, None if targets is None else targets[part], objective)
        if np.ndim(result.targets) == 2 and not callable(objective):  # K classes per image: [B, K, h, w]
            maps = _per_class_cam(xp, result, layer, x, channel_weights)
        else:
            acts, grads = (_feature_map(xp, a, layer, x) for a in (result.activations, result.gradients))
            maps = combine(xp, acts, channel_weights(xp, acts, grads))
        return maps, result.targets, adapter.to_numpy(result.logits)

    with adapter.evaluation():
        maps, used, logits = zip(*map_batches(int(x.shape[0]), batch_size, run), strict=True)
    return joined(xp, maps), np.concatenate(used), softmax(np, np.concatenate(logits))


def _per_class_cam(
    xp: ArrayNamespace, result: GradientResult, layer: LayerName, x: Array, channel_weights: ChannelWeights
) -> Array:
    """The maps ``[B, K, h, w]`` of a layer gradient taken for ``K`` classes per row (gradients ``[B, K, ...]``):
    the activations repeated for each class, every (row, class) pair weighted as one image would be."""
    rows, classes = (int(d) for d in result.gradients.shape[:2])
    shape = tuple(int(d) for d in result.activations.shape[1:])
    acts = xp.broadcast_to(result.activations[:, None], (rows, classes, *shape))
    acts, grads = (
        _feature_map(xp, xp.reshape(a, (rows * classes, *shape)), layer, x) for a in (acts, result.gradients)
    )
    maps = combine(xp, acts, channel_weights(xp, acts, grads))
    return xp.reshape(maps, (rows, classes, *tuple(int(d) for d in maps.shape[1:])))


def layer_activations(adapter: ModelAdapter, x: Images, layer: LayerName, batch_size: int) -> tuple[Array, Array]:
    """``(the raw output of layer for every input, the model's outputs)``, both ``xp`` arrays: one forward per
    chunk of ``batch_size`` inputs, no graph."""

    def run(part: slice):
        captured, logits = adapter.capture_activations(x[part], [layer])
        return captured[layer], logits

    acts, logits = zip(*map_batches(int(x.shape[0]), batch_size, run), strict=True)
    return joined(adapter.xp, acts), joined(adapter.xp, logits)


def score_cam(
    adapter: ModelAdapter,
    x: Images,
    targets: np.ndarray | None,
    layer: LayerName,
    batch_size: int = 16,
    progress: bool | None = None,
    output: Objective = "probability",
    top_k: int | None = None,
    report: dict | None = None,
) -> tuple[Array, np.ndarray, np.ndarray]:
    """Score-CAM of ``layer`` for each input: ``(maps [N, h, w], targets, probabilities [N, classes])``.

    ``output``: the probability of class ``targets[i]`` (the paper), ``"logit"``, or a target object (then
    ``targets`` are the input indices). ``targets`` ``[N, K]`` (several classes per input) gives maps
    ``[N, K, h, w]``, every class read off the same forwards. One forward per *distinct* masked input
    (:mod:`.score_cam_plan`: zero channels skipped, constant channels share the all-zero input, bit-identical
    channels one forward): the maps equal those of one forward per channel. ``top_k``: Faster Score-CAM, only the
    ``k`` channels of largest variance per image. ``report`` (a dict) receives the channel counts and ``forwards``,
    the model inputs sent through (activations included).
    """
    adapter.find_layers(layer)
    xp, x = adapter.xp, adapter.asarray(x)
    n, height, width = int(x.shape[0]), int(x.shape[-2]), int(x.shape[-1])
    with adapter.evaluation():
        acts, logits = layer_activations(adapter, x, layer, batch_size)
        probabilities = softmax(np, adapter.to_numpy(logits))
        acts = _feature_map(xp, acts, layer, x)
        if targets is None:
            targets = probabilities.argmax(axis=1)
        targets = np.asarray(targets)
        target_object = callable(output)
        if not target_object:
            adapter.check_targets(targets, probabilities.shape[1])
        classes = targets.reshape(n, -1)  # [N, K]; for a target object [N, 1] of input indices
        channels = int(acts.shape[1])
        plan = plan_channels(adapter.to_numpy(acts), top_k)
        scores = np.zeros((n, channels, classes.shape[1]), dtype=np.float32)
        found = np.zeros((len(plan.jobs), classes.shape[1]), dtype=np.float32)

        def read(inputs: Array, images: np.ndarray) -> np.ndarray:  # [b, K]
            wanted = classes[images, 0] if target_object else classes[images]
            values = adapter.scores(inputs, wanted, output, batch_size)
            return values.reshape(len(images), -1)

        if len(plan.jobs):
            for chunk in batches(1, batch_size, len(plan.jobs), progress=progress, desc="Score-CAM"):
                images, ks = plan.jobs[chunk.members, 0], plan.jobs[chunk.members, 1]
                masks = adapter.resize(acts[images, ks], height, width)  # [b, H, W]
                flat_masks = xp.reshape(masks, (masks.shape[0], -1))
                low = xp.min(flat_masks, axis=1)[:, None, None]
                span = xp.max(flat_masks, axis=1)[:, None, None] - low
                masks = xp.where(span > 0, (masks - low) / xp.where(span > 0, span, 1.0), 0.0)
                found[chunk.members] = read(x[images] * masks[:, None], images)
        used = plan.source >= 0
        scores[used] = found[plan.source[used]]
        if plan.needs_blank:
            if target_object:  # the target may depend on the input: one all-zero input per image
                blank = read(xp.zeros_like(x), np.arange(n))
            else:
                blank_probs = adapter.to_numpy(adapter.predict(xp.zeros_like(x[:1]), 1, output=output))[0]
                blank = blank_probs[classes]  # [N, K]
            for i in range(n):
                scores[i, plan.source[i] == BLANK] = blank[i]
    if report is not None:
        report.clear()
        report.update(plan.counts(), forwards=n + plan.counts()["forwards"], images=n)
    weights = adapter.asarray(np.ascontiguousarray(np.moveaxis(scores, 2, 1))[..., None, None])  # [N, K, C, 1, 1]
    maps = xp.maximum(xp.sum(weights * acts[:, None], axis=2), 0.0)  # [N, K, h, w]
    return (maps if targets.ndim == 2 else maps[:, 0]), targets, probabilities


class IntermediateLayerInterpreter(Interpreter):
    """Sub-abstract interpreter that reads intermediate layers' outputs, no gradients."""

    def _build_predict_fn(
        self, rebuild: bool = False, target_layer: LayerName | None = None, target_layer_pattern: str | None = None
    ) -> Callable[[Images], tuple[list[np.ndarray], np.ndarray, np.ndarray]]:
        """``predict_fn(data) -> (list of the layers' outputs as ndarrays, probabilities, predicted labels)``.

        ``target_layer`` (an exact name) and ``target_layer_pattern`` (a regex, ``re.match``) exclude each other.
        Built afresh on every call (``rebuild`` is accepted for compatibility): nothing is cached.
        """
        adapter = self.adapter
        layers = adapter.find_layers(target_layer, target_layer_pattern)

        def predict_fn(data: Images) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
            with adapter.evaluation():
                outputs, logits = adapter.capture_activations(data, layers)
            probas = softmax(np, adapter.to_numpy(logits))
            return [adapter.to_numpy(outputs[name]) for name in layers], probas, probas.argmax(axis=1)

        self.predict_fn = predict_fn
        return predict_fn


class _CAMInterpreter(Interpreter):
    """What every CAM interpreter does around its math (inputs, targets, the picture): the base's map handling."""

    _finish = Interpreter._finish_maps


class _GradientCAMInterpreter(_CAMInterpreter):
    channel_weights = staticmethod(grad_cam_weights)
    default_objective = "logit"  # the class score, as the papers and every peer; "probability" is InterpretDL's

    def interpret(
        self,
        inputs: ImageInputs,
        target_layer_name: LayerName,
        label: Labels = None,
        resize_to: int | None = 224,
        crop_to: int | None = None,
        visual: bool = True,
        save_path: SavePath = None,
        labels: Labels = None,
        gradient_of: str | None = None,
        batch_size: int = 16,
    ) -> np.ndarray:
        """Returns the maps at the layer's resolution, ``np.ndarray`` of shape ``[N, h, w]``.

        ``label`` (InterpretDL's name) or ``labels``: one class per image; ``None`` explains the predicted class;
        ``K`` classes per image (``[N, K]``, a list of lists, or one list for all) give ``[N, K, h, w]`` from one
        forward and ``K`` backwards per chunk (nothing drawn).
        Beyond the original: ``gradient_of`` (``logit`` by default, as the Grad-CAM paper, Captum and pytorch-grad-cam;
        ``probability``, the original InterpretDL's default, reproduces its maps; or ``loss``) and ``batch_size``.
        """
        objective = check_objective(gradient_of or self.default_objective)
        batch_size = check_batch_size(batch_size)
        batch = self._load_images(inputs, resize_to, crop_to)
        chosen = self._labels(label, labels)
        target = as_target(chosen)  # a function of the output, or None for classes (one or K per image)
        targets = np.arange(len(batch)) if target is not None else resolve_label_lists(chosen, len(batch))
        maps, used, probabilities = gradient_cam(
            self.adapter, batch.data, targets, target_layer_name, self.channel_weights, target or objective, batch_size
        )
        if target is None and used.ndim == 2:  # K classes per image: [N, K, h, w], no picture
            self._record_predictions(used[:, 0], probabilities, True)
            self.labels, self.explanation = used, None
            return self.adapter.to_numpy(maps)
        probabilities = None if target else probabilities
        return self._finish(batch, maps, used, probabilities, targets is not None, visual, save_path)


class GradCAMInterpreter(_GradientCAMInterpreter):
    """Grad-CAM (InterpretDL's ``GradCAMInterpreter``); CAM when the layer feeds global average pooling and a linear
    head. The class logit is differentiated by default (the paper, Captum, pytorch-grad-cam); the original
    InterpretDL's softmax probability with ``gradient_of="probability"``."""


class GradCAMPlusPlusInterpreter(_GradientCAMInterpreter):
    """Grad-CAM++ (Chattopadhay et al. 2018): positive gradients weighted per position; logit by default."""

    channel_weights = staticmethod(grad_cam_plus_plus_weights)


class LayerCAMInterpreter(_GradientCAMInterpreter):
    """LayerCAM (Jiang et al. 2021): activations weighted element-wise by their positive gradients."""

    channel_weights = staticmethod(layer_cam_weights)


class ScoreCAMInterpreter(IntermediateLayerInterpreter, _CAMInterpreter):
    """Score-CAM, with the masked inputs batched and one forward per distinct masked input.

    After each call ``last_passes`` holds what it cost: ``forwards`` (model inputs sent through, the activation
    pass included), ``channels``, ``zero`` (skipped: they add nothing to the map), ``constant`` (all sharing the
    all-zero input's one forward) and ``distinct`` (the other masked inputs, one forward each).
    """

    last_passes: dict | None = None

    def interpret(
        self,
        inputs: ImageInputs,
        target_layer_name: LayerName,
        labels: Labels = None,
        resize_to: int | None = 224,
        crop_to: int | None = None,
        visual: bool = True,
        save_path: SavePath = None,
        batch_size: int = 32,
        label: Labels = None,
        top_k: int | None = None,
    ) -> np.ndarray:
        """Returns the maps at the layer's resolution, ``np.ndarray`` of shape ``[N, h, w]``.

        ``labels`` as ``K`` classes per image (``[N, K]``, e.g. each image's top 5) gives ``[N, K, h, w]`` at the
        cost of one class: every class is read off the same forwards. ``top_k``: Faster Score-CAM, only the
        ``top_k`` channels of largest spatial variance per image are weighted (an approximation; ``None``: all).
        """
        batch_size = check_batch_size(batch_size)
        if top_k is not None:
            top_k = check_positive_int(top_k, "top_k")
        batch = self._load_images(inputs, resize_to, crop_to)
        chosen = self._labels(label, labels)
        target = as_target(chosen)  # a function of the output, or None for classes (one or K per image)
        targets = np.arange(len(batch)) if target is not None else resolve_label_lists(chosen, len(batch))
        report: dict = {}
        maps, used, probabilities = score_cam(
            self.adapter, batch.data, targets, target_layer_name, batch_size, self.progress,
            output=target or "probability", top_k=top_k, report=report,
        )  # fmt: skip
        self.last_passes = report
        if used.ndim == 2:
            self._record_predictions(used[:, 0], probabilities, True)
            self.labels, self.explanation = used, None
            return self.adapter.to_numpy(maps)
        probabilities = None if target else probabilities
        return self._finish(batch, maps, used, probabilities, targets is not None, visual, save_path)
