"""More class activation maps on the CAM machinery of ``cam.py``: HiResCAM, XGrad-CAM, Eigen-CAM and Ablation-CAM.

Each is ``ReLU(Σ_k w_k ⊙ A_k)`` over the channels ``A_k`` of a layer (a convolutional feature map, or the patch
tokens of a vision transformer laid out on their grid), with its own weights:

* HiResCAM (Draelos & Carin 2020, https://arxiv.org/abs/2011.08891): ``w = g``, the gradient itself, element-wise
  (Grad-CAM averages it over space first, which can mark places the model did not use).
* XGrad-CAM (Fu et al. 2020, https://arxiv.org/abs/2008.02312): ``w_k = Σ_ij (A_kij / Σ_ab A_kab) g_kij``, the
  gradient averaged with the activations as weights (``Σ_ab A_kab + 1e-7`` in the denominator, as
  pytorch-grad-cam).
* Eigen-CAM (Muhammad & Yeasin 2020, https://arxiv.org/abs/2008.00299): class-agnostic and gradient-free, the
  projection of each position's activation vector on the first right singular vector of the ``(h·w) × C``
  activation matrix: ``ReLU(A V₁)``. The paper factorises ``A`` as it is (``center=False``, default);
  pytorch-grad-cam subtracts each channel's mean first (``center=True``). A singular vector's sign is arbitrary
  (it differs between LAPACK builds and frameworks); here it is chosen so that the projection has a non-negative
  inner product with the channel sum ``Σ_k A_k``, so the map is the same everywhere.
* Ablation-CAM (Desai & Ramaswamy 2020, https://openaccess.thecvf.com/content_WACV_2020/papers/
  Desai_Ablation-CAM_Visual_Explanations_for_Deep_Convolutional_Network_via_Gradient-free_Localization_WACV_2020_
  paper.pdf): ``w_k = (y − y_k) / y``, the relative drop of the class score ``y`` (the logit by default) when
  channel ``k`` of the layer is set to zero. No gradient: one forward per (input, channel) pair, in batches of
  ``batch_size`` with no graph built, so memory depends on ``batch_size`` and not on the number of channels.

The gradient methods differentiate the class logit by default, as the papers do. Like every CAM here, the maps
are returned at the layer's resolution, ``[N, h, w]``, and a target object passed as ``labels`` (a region of a
segmentation output, a regression output, any function of the output) is explained instead of a class score
(Eigen-CAM excepted: it uses no score).
"""

from __future__ import annotations

import numpy as np

from ..adapters import ModelAdapter, check_batch_size, softmax
from ..core.batching import Chunk, batches, joined, map_batches
from ..core.types import Array, ArrayNamespace, ImageInputs, Images, Labels, LayerName, Objective, SavePath
from .cam import (
    IntermediateLayerInterpreter,
    _CAMInterpreter,
    _feature_map,
    _GradientCAMInterpreter,
    combine,
    layer_activations,
)
from .feature_grid import channel_axis

_EPS = 1e-7


def hires_cam_weights(xp: ArrayNamespace, activations: Array, gradients: Array) -> Array:
    """HiResCAM: the gradients themselves, element-wise."""
    return gradients


def xgrad_cam_weights(xp: ArrayNamespace, activations: Array, gradients: Array) -> Array:
    """XGrad-CAM: ``Σ_ij A_kij g_kij / (Σ_ab A_kab + ε)``, one weight per channel."""
    total = xp.sum(activations, axis=(2, 3), keepdims=True)
    return xp.sum(activations * gradients, axis=(2, 3), keepdims=True) / (total + _EPS)


def principal_projection(xp: ArrayNamespace, activations: Array, center: bool = False) -> Array:
    """Eigen-CAM of ``[N, C, h, w]`` activations: ``ReLU`` of the projection on the first right singular vector of
    each ``(h·w) × C`` matrix (channel means removed first with ``center``), signed to agree with ``Σ_k A_k``."""
    n, c, h, w = (int(d) for d in activations.shape)
    flat = xp.permute_dims(xp.reshape(activations, (n, c, h * w)), (0, 2, 1))  # [N, hw, C]
    if center:
        flat = flat - xp.mean(flat, axis=1, keepdims=True)
    vt = xp.linalg.svd(flat, full_matrices=False)[2]  # [N, min(hw, C), C]
    projection = xp.sum(flat * vt[:, :1, :], axis=2)  # [N, hw]
    agreement = xp.sum(projection * xp.sum(flat, axis=2), axis=1, keepdims=True)
    projection = xp.where(agreement < 0, -projection, projection)
    return xp.maximum(xp.reshape(projection, (n, h, w)), 0.0)


def eigen_cam(
    adapter: ModelAdapter, x: Images, layer: LayerName, batch_size: int = 16, center: bool = False
) -> tuple[Array, np.ndarray, np.ndarray]:
    """Eigen-CAM of ``layer`` for each input: ``(maps [N, h, w], predicted classes, probabilities [N, K])``. One
    forward per chunk of ``batch_size`` inputs, no graph."""
    adapter.find_layers(layer)
    xp, x = adapter.xp, adapter.asarray(x)

    def run(part: slice):
        captured, logits = adapter.capture_activations(x[part], [layer])
        return principal_projection(xp, _feature_map(xp, captured[layer], layer, x), center), adapter.to_numpy(logits)

    with adapter.evaluation():
        maps, logits = zip(*map_batches(int(x.shape[0]), batch_size, run), strict=True)
    probabilities = softmax(np, np.concatenate(logits))
    return joined(xp, maps), probabilities.argmax(axis=-1), probabilities


def ablation_cam(
    adapter: ModelAdapter,
    x: Images,
    targets: np.ndarray | None,
    layer: LayerName,
    output: Objective = "logit",
    batch_size: int = 32,
    progress: bool | None = None,
) -> tuple[Array, np.ndarray, np.ndarray]:
    """Ablation-CAM of ``layer`` for each input: ``(maps [N, h, w], targets, probabilities [N, K])``. ``output``:
    the score, ``"logit"`` or ``"probability"`` of class ``targets[i]``, or a target object."""
    adapter.find_layers(layer)
    xp, x = adapter.xp, adapter.asarray(x)
    n, height, width = int(x.shape[0]), int(x.shape[-2]), int(x.shape[-1])
    with adapter.evaluation():
        raw, logits = layer_activations(adapter, x, layer, batch_size)
        probabilities = softmax(np, adapter.to_numpy(logits))
        if targets is None:
            targets = probabilities.argmax(axis=-1)
        original = adapter.scores_of(logits, targets, output)  # [N]
        shape = tuple(int(d) for d in raw.shape)
        axis = channel_axis(shape, height, width)
        channels = shape[axis]
        factor_shape = [1] * len(shape)
        factor_shape[axis] = channels
        ablated = np.empty((n, channels), dtype=np.float32)

        def zero_one_channel(chunk: Chunk) -> np.ndarray:  # host work, on the helper thread
            factors = np.ones((len(chunk), channels), dtype=np.float32)
            factors[np.arange(len(chunk)), chunk.members] = 0.0
            return factors.reshape([len(chunk), *factor_shape[1:]])

        for chunk in batches(n, batch_size, channels, zero_one_channel, progress, "Ablation-CAM"):
            images = chunk.owners
            scores = adapter.scaled_layer_scores(x[images], layer, chunk.prepared, targets[images], output)
            ablated[images, chunk.members] = scores
    weights = (original[:, None] - ablated) / original[:, None]
    acts = _feature_map(xp, raw, layer, x)
    maps = combine(xp, acts, xp.reshape(adapter.asarray(weights), (n, channels, 1, 1)))
    return maps, np.asarray(targets), probabilities


class HiResCAMInterpreter(_GradientCAMInterpreter):
    """HiResCAM (Draelos & Carin 2020): activations times gradients, element-wise, summed over channels."""

    channel_weights = staticmethod(hires_cam_weights)


class XGradCAMInterpreter(_GradientCAMInterpreter):
    """XGrad-CAM (Fu et al. 2020): the gradient averaged over space with the activations as weights."""

    channel_weights = staticmethod(xgrad_cam_weights)


class EigenCAMInterpreter(IntermediateLayerInterpreter, _CAMInterpreter):
    """Eigen-CAM (Muhammad & Yeasin 2020): the first principal component of the activations; class-agnostic."""

    def interpret(
        self,
        inputs: ImageInputs,
        target_layer_name: LayerName,
        resize_to: int | None = 224,
        crop_to: int | None = None,
        visual: bool = True,
        save_path: SavePath = None,
        batch_size: int = 16,
        center: bool = False,
    ) -> np.ndarray:
        """Returns the maps at the layer's resolution, ``np.ndarray`` of shape ``[N, h, w]``."""
        batch_size = check_batch_size(batch_size)
        batch = self._load_images(inputs, resize_to, crop_to)
        maps, predicted, probabilities = eigen_cam(self.adapter, batch.data, target_layer_name, batch_size, center)
        return self._finish(batch, maps, predicted, probabilities, False, visual, save_path)


class AblationCAMInterpreter(IntermediateLayerInterpreter, _CAMInterpreter):
    """Ablation-CAM (Desai & Ramaswamy 2020): channels weighted by the score drop when each is switched off."""

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
        output: str = "logit",
        label: Labels = None,
    ) -> np.ndarray:
        """Returns the maps at the layer's resolution, ``np.ndarray`` of shape ``[N, h, w]``. ``output``: the score
        whose drop weighs a channel, ``"logit"`` (the paper's class score) or ``"probability"``."""
        batch_size = check_batch_size(batch_size)
        batch = self._load_images(inputs, resize_to, crop_to)
        target, targets = self._targets_of(self._labels(label, labels), len(batch))  # target: a function of the output
        maps, used, probabilities = ablation_cam(
            self.adapter, batch.data, targets, target_layer_name, target or output, batch_size, self.progress
        )
        probabilities = None if target else probabilities
        return self._finish(batch, maps, used, probabilities, targets is not None, visual, save_path)
