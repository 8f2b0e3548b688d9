"""What every interpreter needs once: the adapter, input loading, target choice, the batched gradient loop,
progress, and the visual/save step. Algorithm files hold the math as pure functions over
``(adapter, batch, targets, params)`` and thin public classes with InterpretDL's names and signatures."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from ..adapters import ModelAdapter, adapt, check_objective, softmax
from ..core.batching import PerInputSum, batches
from ..core.locks import serialise_public
from ..core.validation import check_precision
from ..data import ImageBatch, as_normalization, as_target, load_images, resolve_label_lists, resolve_labels
from ..data.preprocessing import UsesModelPreprocessing
from ..viz.explanation import ImageExplanation, map_for_display

# (image indices, sample indices) of one chunk -> host (NumPy) randomness for it; runs on a helper thread
Draw = Callable[[np.ndarray, np.ndarray], Any]
# (image indices, sample indices, what draw gave) -> (model-ready points, factors that multiply their gradients)
MakeBatch = Callable[[np.ndarray, np.ndarray, Any], tuple[Any, Any]]


def accumulate_gradients(
    adapter: ModelAdapter,
    targets: np.ndarray,
    n_images: int,
    per_image: int,
    make_batch: MakeBatch,
    objective: str,
    batch_size: int,
    progress: bool | None = None,
    desc: str = "gradients",
    draw: Draw | None = None,
) -> tuple[Any, np.ndarray]:
    """The batched gradient loop shared by SmoothGrad, Integrated Gradients and GradientSHAP.

    For every image ``i`` it returns ``Σ_s factor(i, s) · ∇ objective_i(point(i, s))`` over ``per_image`` samples
    ``s``, walking the ``n_images · per_image`` pairs in chunks of ``batch_size``; each chunk is built by
    ``make_batch`` just before its model pass, so peak memory depends on ``batch_size`` only. Also returns the
    objective value at every point, shape ``(n_images, per_image)``. ``targets`` ``[n_images, K]`` (``K`` classes
    per image): the sums are ``[n_images, K, ...]`` and the values ``(n_images, per_image, K)``; each chunk's points
    go through the model once and are differentiated once per class.

    ``draw`` gives a chunk's host randomness (NumPy only); chunk k+1's is drawn on a helper thread while the
    model runs chunk k. Framework operations stay on the calling thread: a second thread running them would
    start a second OpenMP team that competes with the model pass for the cores.
    """
    several = np.asarray(targets).ndim == 2  # K classes per image: one forward per chunk, one backward per class
    values = np.empty((n_images, per_image, *np.shape(targets)[1:]), dtype=np.float32)
    total = PerInputSum(adapter.xp, n_images)
    prepare = None if draw is None else (lambda chunk: draw(chunk.owners, chunk.members))
    with adapter.evaluation():
        for chunk in batches(n_images, batch_size, per_image, prepare, progress, desc):
            points, factors = make_batch(chunk.owners, chunk.members, chunk.prepared)
            result = adapter.input_gradient(points, targets[chunk.owners], objective)
            if several and getattr(factors, "ndim", 0):
                factors = factors[:, None]  # the same factor for every class of a row
            total.add(chunk, result.gradients * factors)
            values[chunk.owners, chunk.members] = adapter.to_numpy(result.objective)
    return total.total, values


def check_noise_amount(noise_amount: Any) -> float:
    try:
        noise = float(noise_amount)
    except (TypeError, ValueError):
        noise = float("nan")
    if not math.isfinite(noise) or noise < 0:
        raise ValueError(f"noise_amount must be a finite number >= 0; got {noise_amount!r}.")
    return noise


def per_image_range(xp: Any, x: Any) -> Any:
    """``max(x_i) - min(x_i)`` over all of C×H×W for each sample, shaped to broadcast against ``x``."""
    flat = xp.reshape(x, (x.shape[0], -1))
    spread = xp.max(flat, axis=1) - xp.min(flat, axis=1)
    return xp.reshape(spread, (x.shape[0],) + (1,) * (x.ndim - 1))


class Interpreter(UsesModelPreprocessing):
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

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        serialise_public(cls)  # calls on one model run one at a time (thread safety)

    # Pictures: True for attributions whose sign means for / against the class (drawn in a diverging colour map
    # centred at 0), False for magnitudes and non-negative maps (a sequential one).
    signed_maps: bool = False

    def __init__(
        self,
        model: Any,
        device: str | None = None,
        use_cuda: bool | None = None,
        normalization: Any = None,
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
        self, inputs: Any, resize_to: int | None = 224, crop_to: int | None = None, batch_size: int = 64
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


class InputGradientInterpreter(Interpreter):
    """Sub-abstract interpreter for input-gradient methods."""

    def _build_predict_fn(self, rebuild: bool = False, gradient_of: str = "probability"):
        """A ``predict_fn(inputs, labels=None) -> (gradients, labels, probas)`` over one model batch.

        It is built afresh on every call (``rebuild`` is accepted for compatibility): nothing is cached.
        """
        check_objective(gradient_of)
        adapter = self.adapter

        def predict_fn(inputs: Any, labels: Any = None):
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

        def predict_fn(inputs: Any, batch_size: int = 64) -> np.ndarray:
            with adapter.evaluation():
                return adapter.to_numpy(adapter.predict(inputs, batch_size, output=output))

        self.predict_fn = predict_fn
        return predict_fn


serialise_public(Interpreter)
