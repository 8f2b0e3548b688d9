"""The gradient family: one gradient (plain or with a modified backward) per input, no sampling.

* Saliency (Simonyan et al. 2014, https://arxiv.org/abs/1312.6034): ``|∇_x f_y(x)|`` (signed with
  ``absolute=False``).
* Input × Gradient (Shrikumar et al. 2016, https://arxiv.org/abs/1605.01713): ``x ⊙ ∇_x f_y(x)``.
* Guided Backpropagation (Springenberg et al. 2015) and DeconvNet (Zeiler & Fergus 2014): the gradient with the
  ReLUs' backward changed (``gradient_rules.py``).
* Guided Grad-CAM (Selvaraju et al. 2017, https://arxiv.org/abs/1610.02391): Guided Backpropagation times the
  Grad-CAM map of a convolutional layer, upsampled to the input (bilinearly, or ``"nearest"`` as Captum's
  default).

The class logit is differentiated by default (``gradient_of="logit"``), as Captum and the papers do. Each chunk
of ``batch_size`` inputs costs one forward and one backward (Guided Grad-CAM: two of each); with no label given,
the predicted class of that same forward is explained. The ReLUs must be layers (``nn.ReLU``), not functional
calls inside ``forward``: a functional ReLU keeps its ordinary gradient.
"""

from __future__ import annotations

import numpy as np

from ..adapters import ModelAdapter, check_batch_size, check_objective, softmax
from ..core.batching import joined, map_batches
from ..core.types import Array, ImageInputs, Images, Labels, LayerName, Objective, SavePath, Targets
from ..data import ImageBatch, as_target, resolve_label_lists
from .base import InputGradientInterpreter
from .cam import grad_cam_weights, gradient_cam
from .gradient_rules import check_rule, modified_gradient

INTERPOLATIONS = ("bilinear", "nearest")


def rule_gradients(
    adapter: ModelAdapter,
    x: Images,
    targets: np.ndarray | None,
    rule: str | None = None,
    objective: Objective = "logit",
    batch_size: int = 16,
) -> tuple[Array, np.ndarray, np.ndarray]:
    """``(gradients like x, targets, probabilities [N, K])``: the gradient of ``objective`` of class
    ``targets[i]`` for each input, with the backward changed by ``rule`` (``None``: the plain gradient;
    ``"guided"``; ``"deconv"``), in chunks of ``batch_size``."""
    check_rule(rule)
    check_objective(objective)
    x = adapter.asarray(x)

    def run(part: slice):
        gradient, _, logits, used, _ = modified_gradient(
            adapter, x[part], None if targets is None else targets[part], rule, objective
        )
        return adapter.asarray(gradient), used, adapter.to_numpy(logits)

    with adapter.evaluation():
        parts, used, logits = zip(*map_batches(int(x.shape[0]), batch_size, run), strict=True)
    return joined(adapter.xp, parts), np.concatenate(used), softmax(np, np.concatenate(logits))


def nearest_matrix(size_out: int, size_in: int) -> np.ndarray:
    """``(size_out, size_in)`` matrix of 1-D nearest-neighbour resizing as PyTorch's ``interpolate(mode="nearest")``
    (source index ``floor(i · in / out)``); a 2-D resize is ``R_h @ M @ R_w.T``."""
    source = np.minimum(np.floor(np.arange(size_out) * (size_in / size_out)).astype(np.int64), size_in - 1)
    matrix = np.zeros((size_out, size_in), dtype=np.float32)
    matrix[np.arange(size_out), source] = 1.0
    return matrix


def nearest_resize(adapter: ModelAdapter, maps: Array, height: int, width: int) -> Array:
    """Nearest-neighbour resize of the last two axes of ``maps``, on the model's device."""
    xp = adapter.xp
    rows = adapter.asarray(nearest_matrix(height, int(maps.shape[-2])))
    cols = adapter.asarray(nearest_matrix(width, int(maps.shape[-1])))
    return xp.matmul(xp.matmul(rows, maps), xp.permute_dims(cols, (1, 0)))


def guided_grad_cam(
    adapter: ModelAdapter,
    x: Images,
    targets: np.ndarray | None,
    layer: LayerName,
    objective: Objective = "logit",
    interpolation: str = "bilinear",
    batch_size: int = 16,
) -> tuple[Array, Array, np.ndarray, np.ndarray]:
    """``(Guided Grad-CAM like x, Grad-CAM maps [N, h, w], targets, probabilities)``: Guided Backpropagation
    times the Grad-CAM map of ``layer`` upsampled to the input's size."""
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {INTERPOLATIONS}; got {interpolation!r}.")
    x = adapter.asarray(x)
    cams, targets, probabilities = gradient_cam(adapter, x, targets, layer, grad_cam_weights, objective, batch_size)
    guided, _, _ = rule_gradients(adapter, x, targets, "guided", objective, batch_size)
    height, width = int(x.shape[-2]), int(x.shape[-1])
    if interpolation == "bilinear":
        upsampled = adapter.resize(cams, height, width)
    else:
        upsampled = nearest_resize(adapter, cams, height, width)
    axis = upsampled[:, :, None] if np.ndim(targets) == 2 else upsampled[:, None]  # [N, K, H, W]: K classes
    return guided * axis, cams, targets, probabilities


class _GradientFamilyInterpreter(InputGradientInterpreter):
    """What every gradient-family interpreter does around its math: inputs, classes, predictions, the picture."""

    def _what_to_explain(
        self, labels: Labels, n: int, gradient_of: Objective
    ) -> tuple[np.ndarray | None, Objective, bool]:
        """``(targets, objective, target object given)``: for a target object passed as ``labels`` (a region of
        a segmentation output, a regression output, any function of the output) the input indices and the
        object; else the classes (``[N]``, ``[N, K]`` or ``None`` for the predicted ones) and ``gradient_of``."""
        objective = check_objective(gradient_of)
        target = as_target(labels)
        if target is not None:
            return np.arange(n), target, True
        return resolve_label_lists(labels, n), objective, False

    def _record(self, used: np.ndarray, probabilities: np.ndarray, targets: Targets, by_target: bool) -> None:
        if by_target:  # a target object was explained: no class, no prediction recorded
            self._record_predictions(used, None, True)
            return
        self._record_predictions(used if used.ndim == 1 else used[:, 0], probabilities, targets is not None)
        self.labels = used  # [N, K] classes per image give [N, K, C, H, W]: one forward and K backwards per chunk

    def _explain(self, inputs, labels, label, resize_to, crop_to, gradient_of, batch_size, rule):
        batch_size = check_batch_size(batch_size)
        batch = self._load_images(inputs, resize_to, crop_to)
        targets, objective, by_target = self._what_to_explain(self._labels(label, labels), len(batch), gradient_of)
        gradients, used, probabilities = rule_gradients(self.adapter, batch.data, targets, rule, objective, batch_size)
        self._record(used, probabilities, targets, by_target)
        return batch, gradients

    def _show(self, batch: ImageBatch, explanation: Array, visual: bool, save_path: SavePath) -> np.ndarray:
        explanation = self.adapter.to_numpy(explanation)
        self._visualize_gradients(batch, explanation, visual, save_path)
        return explanation


class SaliencyInterpreter(_GradientFamilyInterpreter):
    """Saliency maps (Simonyan et al. 2014): the magnitude of the gradient of the class score, per pixel and
    channel (Captum's ``Saliency``)."""

    def interpret(
        self,
        inputs: ImageInputs,
        labels: Labels = None,
        absolute: bool = True,
        gradient_of: str = "logit",
        resize_to: int | None = 224,
        crop_to: int | None = None,
        visual: bool = True,
        save_path: SavePath = None,
        batch_size: int = 16,
        label: Labels = None,
    ) -> np.ndarray:
        """Returns ``|∇_x f_y(x)|`` (``absolute=False``: the signed gradient), ``np.ndarray [N, C, H, W]``."""
        batch, gradients = self._explain(inputs, labels, label, resize_to, crop_to, gradient_of, batch_size, None)
        return self._show(batch, self.adapter.xp.abs(gradients) if absolute else gradients, visual, save_path)


class InputXGradientInterpreter(_GradientFamilyInterpreter):
    """Input × Gradient (Shrikumar et al. 2016): each input element times the gradient of the class score."""

    signed_maps = True  # pictures: a diverging colour map centred at 0

    def interpret(
        self,
        inputs: ImageInputs,
        labels: Labels = None,
        gradient_of: str = "logit",
        resize_to: int | None = 224,
        crop_to: int | None = None,
        visual: bool = True,
        save_path: SavePath = None,
        batch_size: int = 16,
        label: Labels = None,
    ) -> np.ndarray:
        """Returns ``x ⊙ ∇_x f_y(x)`` in model-input space, ``np.ndarray [N, C, H, W]``."""
        batch, gradients = self._explain(inputs, labels, label, resize_to, crop_to, gradient_of, batch_size, None)
        data = self.adapter.asarray(batch.data)
        data = data if gradients.ndim == data.ndim else data[:, None]  # [N, K, C, H, W] for K classes per image
        return self._show(batch, data * gradients, visual, save_path)


class GuidedBackpropInterpreter(_GradientFamilyInterpreter):
    """Guided Backpropagation (Springenberg et al. 2015): only positive gradients pass the ReLUs, and only where
    the ReLU's input was positive."""

    rule = "guided"

    def interpret(
        self,
        inputs: ImageInputs,
        labels: Labels = None,
        gradient_of: str = "logit",
        resize_to: int | None = 224,
        crop_to: int | None = None,
        visual: bool = True,
        save_path: SavePath = None,
        batch_size: int = 16,
        label: Labels = None,
    ) -> np.ndarray:
        """Returns the modified gradient, ``np.ndarray [N, C, H, W]``."""
        batch, gradients = self._explain(inputs, labels, label, resize_to, crop_to, gradient_of, batch_size, self.rule)
        return self._show(batch, gradients, visual, save_path)


class DeconvNetInterpreter(GuidedBackpropInterpreter):
    """DeconvNet (Zeiler & Fergus 2014): the ReLUs pass the positive part of the gradient, whatever their input."""

    rule = "deconv"


class GuidedGradCAMInterpreter(_GradientFamilyInterpreter):
    """Guided Grad-CAM (Selvaraju et al. 2017): Guided Backpropagation times the upsampled Grad-CAM map of a
    convolutional layer (Captum's ``GuidedGradCam``)."""

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
        gradient_of: str = "logit",
        batch_size: int = 16,
        interpolation: str = "bilinear",
    ) -> np.ndarray:
        """Returns ``np.ndarray [N, C, H, W]`` (``[N, K, C, H, W]`` for ``K`` classes per image: two forwards and
        ``2K`` backwards per chunk); the Grad-CAM maps at the layer's resolution are kept in ``self.cam_maps``.
        ``interpolation``: ``"bilinear"`` (the paper) or ``"nearest"`` (Captum's default)."""
        batch_size = check_batch_size(batch_size)
        batch = self._load_images(inputs, resize_to, crop_to)
        targets, objective, by_target = self._what_to_explain(self._labels(label, labels), len(batch), gradient_of)
        result, cams, used, probabilities = guided_grad_cam(
            self.adapter, batch.data, targets, target_layer_name, objective, interpolation, batch_size
        )
        self.cam_maps = self.adapter.to_numpy(cams)
        self._record(used, probabilities, targets, by_target)
        return self._show(batch, result, visual, save_path)
