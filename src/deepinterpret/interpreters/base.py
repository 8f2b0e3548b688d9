"""What every interpreter needs once: the adapter, input loading, target choice, the batched gradient loop,
progress, and the visual/save step. Algorithm files hold the math as pure functions over
``(adapter, batch, targets, params)`` and thin public classes with InterpretDL's names and signatures."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..adapters import adapt, check_objective, softmax
from ..core.locks import SerialisedPublic
from ..core.types import Array, ImageInputs, Labels, Model, NormalizationSpec, Objective, SavePath
from ..core.validation import check_batch_size, check_precision
from ..data import ImageBatch, as_normalization, as_target, load_images, resolve_label_lists, resolve_labels
from ..data.preprocessing import UsesModelPreprocessing
from ..viz.explanation import ImageExplanation, map_for_display
from .gradient_sampling import (  # noqa: F401  (the loop and the noise stay importable from here)
    Draw,
    InputNoise,
    MakeBatch,
    accumulate_gradients,
    check_noise_amount,
    per_image_range,
)


class Interpreter(SerialisedPublic, UsesModelPreprocessing):
    """The base of every interpreter.

    After ``interpret()``, image interpreters keep the pictures of the call in ``explanation`` (an
    :class:`~deepinterpret.viz.explanation.ImageExplanation`: ``show()``, ``save(path)``, rendered by notebooks).

    Args:
        model: a ``torch.nn.Module``, a ``paddle.nn.Layer``, or a callable (NumPy batch in, scores out); or a zoo
            entry (``it.zoo.load(...)``, any object with ``model`` and ``normalization`` / ``image_size``), whose
            normalisation and input size are then used unless ``normalization=`` / ``resize_to=`` say otherwise.
        device: ``None`` (where the model is), ``"cpu"``, ``"gpu"``, ``"gpu:N"`` or ``"cuda:N"``. A GPU request on
            a machine without one falls back to the CPU with a warning, as the original did.
        use_cuda: deprecated spelling of ``device``.
        normalization: how images become model input: ``None``/``"imagenet"`` (ImageNet mean/std), ``"unit"``
            (pixels/255), ``(mean, std)`` or a :class:`deepinterpret.data.Normalization`.
        progress: show progress bars (``None``: only on a terminal).
        precision: ``None`` (float32) or ``"bfloat16"`` / ``"float16"``: the forward-only passes (no graph: the masked,
            occluded and perturbed inputs of Score-CAM, Occlusion, RISE, LIME, predictions) run under the
            framework's autocast; off by default (gradients always run in float32). Torch or Paddle models only.
        channels_last: run convolutional networks in the channels-last (NHWC) memory format, often faster for
            convolutions on CPUs and GPUs: image batches go in channels-last, and the model's 4-D weights are laid
            out so for the call only (the same tensors are put back afterwards: the model is left as it was). Same
            values, other summation order (deviations of float32 rounding). Off by default; PyTorch models only.
    """

    # Pictures: True for attributions whose sign means for / against the class (drawn in a diverging colour map
    # centred at 0), False for magnitudes and non-negative maps (a sequential one).
    signed_maps: bool = False

    def __init__(
        self,
        model: Model,
        device: str | None = None,
        use_cuda: bool | None = None,
        normalization: NormalizationSpec = None,
        progress: bool | None = None,
        precision: str | None = None,
        channels_last: bool = False,
        **kwargs: Any,
    ):
        model, normalization = self._take_model(model, normalization)
        self.model = model
        self.adapter = adapt(model, device, use_cuda)
        if check_precision(precision) is not None:
            if not hasattr(self.adapter, "precision"):
                raise ValueError("precision needs a torch.nn.Module or paddle.nn.Layer, not a plain callable.")
            self.adapter.precision = check_precision(precision)
        if channels_last:
            if not getattr(getattr(self.adapter, "ops", None), "has_channels_last", False):
                raise ValueError("channels_last needs a torch.nn.Module (a PyTorch memory format).")
            self.adapter.channels_last = True
        self.device = str(self.adapter.device)
        self.normalization = as_normalization(normalization)
        self.progress = progress
        self.predict_fn = None
        self.predicted_label: np.ndarray | None = None
        self.predicted_proba: np.ndarray | None = None
        self.labels: np.ndarray | None = None
        self.explanation: ImageExplanation | None = None

    # -- InterpretDL's abstract interface --------------------------------------------------------
    def _build_predict_fn(self, **kwargs: Any):
        raise NotImplementedError

    def _env_setup(self) -> None:
        """Kept for InterpretDL's API. Device placement happens in the adapter; nothing global is changed."""

    def interpret(self, **kwargs: Any):
        raise NotImplementedError

    def predict_proba(
        self, inputs: ImageInputs, resize_to: int | None = 224, crop_to: int | None = None, batch_size: int = 64
    ) -> np.ndarray:
        """Class probabilities for ``inputs`` (loaded as ``interpret`` loads them), shape ``[N, classes]``."""
        data = self._load_images(inputs, resize_to, crop_to).data
        with self.adapter.evaluation():
            return self.adapter.to_numpy(self.adapter.predict(data, batch_size, output="probability"))

    # -- shared steps -------------------------------------------------------------------------
    def _load_images(self, inputs: Any, resize_to: int | None, crop_to: int | None) -> ImageBatch:
        resize_to, crop_to = self._input_geometry(resize_to, crop_to)
        batch = load_images(inputs, resize_to, crop_to, self.normalization, self.adapter.expected_input_channels())
        self._check_input_size(self.model, batch.data, resize_to)
        return batch

    def _resolve_targets(self, labels: Any, data: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """Target class per input: the given labels, or (``None``) the predicted class, with its probability
        kept in ``predicted_label`` / ``predicted_proba``. For a target object (see :meth:`_objective_of`) the
        input indices are returned: the adapter hands them to the target with each batch."""
        if as_target(labels) is not None:
            self.predicted_label = self.predicted_proba = None
            self.labels = None
            return np.arange(int(data.shape[0]))
        targets = resolve_label_lists(labels, int(data.shape[0]))  # [N], or [N, K]: K classes per input
        if targets is None:
            with self.adapter.evaluation():
                probas = self.adapter.to_numpy(self.adapter.predict(data, batch_size, output="probability"))
            targets = probas.argmax(axis=1).astype(np.int64)
            self.predicted_label = targets
            self.predicted_proba = probas[np.arange(len(targets)), targets]
        else:
            self.predicted_label = self.predicted_proba = None
        self.labels = targets
        return targets

    def _finish_maps(
        self,
        batch: ImageBatch,
        maps: Any,
        targets: np.ndarray,
        probabilities: np.ndarray,
        labels_given: bool,
        visual: bool,
        save_path: Any,
    ) -> np.ndarray:
        """Record the classes explained and the predictions, draw each 2-D map as a heatmap over its image (shown
        and/or saved), and return the maps as NumPy ``[N, h, w]``. ``probabilities=None``: a target object was
        explained (no class, no prediction recorded)."""
        self._record_predictions(targets, probabilities, labels_given)
        explanation = self.adapter.to_numpy(maps)
        self._draw_maps(batch, explanation, visual, save_path)
        return explanation

    def _record_predictions(self, targets: np.ndarray, probabilities: np.ndarray | None, labels_given: bool) -> None:
        """``labels`` (the classes explained), ``predicted_label`` and ``predicted_proba`` from one call's
        probabilities; ``probabilities=None`` (a target object was explained) records none."""
        if probabilities is None:
            self.labels = self.predicted_label = self.predicted_proba = None
            return
        self.labels = targets
        self.predicted_label = probabilities.argmax(axis=1) if labels_given else targets
        self.predicted_proba = probabilities[np.arange(len(targets)), self.predicted_label]

    @staticmethod
    def _targets_of(labels: Any, n: int) -> tuple[Any, np.ndarray | None]:
        """``(target object or None, targets)``: for a target object (``deepinterpret.data.targets``) the input
        indices, which the adapter hands to it with each batch; else the given classes, or ``None`` (predicted)."""
        target = as_target(labels)
        return target, np.arange(n) if target is not None else resolve_labels(labels, n)

    def _draw_maps(self, batch: ImageBatch, explanation: np.ndarray, visual: bool, save_path: Any) -> None:
        """Each 2-D map over its image, shown and/or saved (see :meth:`_present`)."""
        self._present(batch, explanation, visual, save_path, self.signed_maps)

    @staticmethod
    def _objective_of(labels: Any, default: Any) -> Any:
        """What to explain: a target object passed as ``labels`` (a region of a segmentation output, a regression
        output, any function of the output: ``deepinterpret.data.targets``), else ``default`` (the class score
        named by ``gradient_of`` / ``output``)."""
        target = as_target(labels)
        return default if target is None else target

    @staticmethod
    def _labels(label: Any, labels: Any) -> Any:
        """InterpretDL spells the argument ``label`` in some classes and ``labels`` in others: accept either."""
        if label is not None and labels is not None:
            raise ValueError("give label or labels, not both.")
        return labels if label is None else label

    def _visualize_gradients(self, batch: ImageBatch, explanation: np.ndarray, visual: bool, save_path: Any) -> None:
        """Pixel attributions over their images, shown and/or saved (see :meth:`_present`)."""
        if explanation.ndim > batch.data.ndim:  # K classes per image ([N, K, C, H, W]): no picture
            self.explanation = None
            return
        self._present(batch, explanation, visual, save_path, self.signed_maps)

    def _present(
        self, batch: ImageBatch, explanation: Any, visual: bool, save_path: Any, signed: bool, titles: Any = None
    ) -> None:
        """Keep the pictures of this call in ``self.explanation`` (an :class:`ImageExplanation`: one style for every
        method, see :mod:`deepinterpret.viz.explanation`); show them when ``visual``, write them to ``save_path``."""

        def maps() -> np.ndarray:  # drawn only when a picture is asked for (see ImageExplanation)
            height, width = batch.images.shape[1:3]
            return np.stack([map_for_display(e, height, width, signed) for e in explanation])

        self.explanation = ImageExplanation(
            lambda: batch.images, maps, signed, list(titles or self._titles(len(explanation))), type(self).__name__
        )
        if visual:
            self.explanation.show()
        if save_path is not None:
            self.explanation.save(save_path)

    def _titles(self, n: int) -> list[str]:
        """Per image: the class explained, with the prediction and its probability when known."""
        labels, predicted, proba = self.labels, self.predicted_label, self.predicted_proba
        if labels is None or len(labels) != n:
            return [""] * n
        names = self._class_names(self.model)

        def name(k: Any) -> str:
            k = int(k)
            return names[k] if names is not None and 0 <= k < len(names) else f"class {k}"

        titles = []
        for i in range(n):
            title = name(labels[i])
            if predicted is not None and proba is not None and len(proba) == n:
                if int(predicted[i]) == int(labels[i]):
                    title += f" (p={float(proba[i]):.2f})"
                else:
                    title += f"; predicted {name(predicted[i])} (p={float(proba[i]):.2f})"
            titles.append(title)
        return titles


# (model-ready images, classes, objective, batch_size) -> attributions like the images (an xp array)
GradientMethod = Callable[[Array, np.ndarray, Objective, int], Array]


class InputGradientInterpreter(Interpreter):
    """Sub-abstract interpreter for input-gradient methods."""

    def _explain_gradients(
        self,
        inputs: ImageInputs,
        labels: Labels,
        gradient_of: Objective,
        resize_to: int | None,
        crop_to: int | None,
        batch_size: int,
        visual: bool,
        save_path: SavePath,
        method: GradientMethod,
    ) -> np.ndarray:
        """What SmoothGrad, Integrated Gradients and GradientSHAP do around their function: check the objective and
        ``batch_size``, load the images, choose the classes, run ``method(x, targets, objective, batch_size)``,
        draw the attributions over the images and return them as NumPy ``[N, C, H, W]``."""
        check_objective(gradient_of)
        batch_size = check_batch_size(batch_size)
        batch = self._load_images(inputs, resize_to, crop_to)
        targets = self._resolve_targets(labels, batch.data, batch_size)
        explanation = self.adapter.to_numpy(
            method(batch.data, targets, self._objective_of(labels, gradient_of), batch_size)
        )
        self._visualize_gradients(batch, explanation, visual, save_path)
        return explanation

    def _build_predict_fn(self, rebuild: bool = False, gradient_of: str = "probability"):
        """A ``predict_fn(inputs, labels=None) -> (gradients, labels, probas)`` over one model batch.

        It is built afresh on every call (``rebuild`` is accepted for compatibility): nothing is cached.
        """
        check_objective(gradient_of)
        adapter = self.adapter

        def predict_fn(inputs: ImageInputs, labels: Labels = None):
            data = adapter.asarray(inputs)
            with adapter.evaluation():
                if labels is None:
                    labels = adapter.to_numpy(adapter.predict(data)).argmax(axis=1)
                targets = resolve_labels(labels, int(data.shape[0]))
                result = adapter.input_gradient(data, targets, gradient_of)
            probas = softmax(np, adapter.to_numpy(result.logits))
            return adapter.to_numpy(result.gradients), targets, probas

        self.predict_fn = predict_fn
        return predict_fn


class InputOutputInterpreter(Interpreter):
    """Sub-abstract interpreter for input-output (perturbation) methods."""

    def _build_predict_fn(self, rebuild: bool = False, output: str = "probability"):
        """A ``predict_fn(inputs, batch_size=64) -> np.ndarray`` of probabilities or logits, with no graph built."""
        if output not in ("probability", "logit"):
            raise ValueError(f"output must be 'probability' or 'logit'; got {output!r}.")
        adapter = self.adapter

        def predict_fn(inputs: ImageInputs, batch_size: int = 64) -> np.ndarray:
            with adapter.evaluation():
                return adapter.to_numpy(adapter.predict(inputs, batch_size, output=output))

        self.predict_fn = predict_fn
        return predict_fn
