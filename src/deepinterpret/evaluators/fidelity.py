"""Infidelity and SensitivityMax (Yeh et al. 2019, https://arxiv.org/abs/1901.09392), LocalFidelity (faithfulness
correlation, Bhatt et al. 2020, https://arxiv.org/abs/2005.00631) and Monotonicity (monotonicity correlation,
Nguyen & Martínez 2020, https://arxiv.org/abs/2007.07584).

* Infidelity: ``mean_I (β·Iᵀφ − (f(x) − f(x − I)))²`` with the optimal scale ``β = E[Iᵀφ·Δf] / E[(Iᵀφ)²]`` (the
  official code's normalisation, as InterpretDL); ``f`` is the target logit. InterpretDL's perturbations are grey
  squares: ``I = x − x_square`` over squares of a few sizes at a stride (skipped where they overrun the border).
  Results are cached by the exact image, explanation-independent part only.
* SensitivityMax: ``max_δ ‖Φ(x + δ) − Φ(x)‖ / ‖Φ(x)‖`` over ``n_perturb_samples`` draws of δ uniform in
  ``[−r, r]`` (Captum's definition and default radius 0.02).
* LocalFidelity: the Pearson correlation, over random subsets S of patches (or superpixels), between the summed
  attribution of S and the drop of the class probability when S is removed (``fill``: grey as InterpretDL's
  evaluators, ``black``, ``mean`` or a pixel value).
* Monotonicity: the Spearman correlation between each patch's attribution and the probability drop when that
  patch alone is greyed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..adapters import check_batch_size, check_positive_int, resolve_seed
from ..core.batching import Chunk, batches, sliced
from ..core.types import Explanations, ImageInputs, Interprets, Model
from ..core.validation import check_label, check_number, check_optional_positive_int
from .base import InterpreterEvaluator, explanation_map
from .perturbation import patch_units


def infidelity_score(attribution_dots: np.ndarray, output_drops: np.ndarray, normalize: bool = True) -> float:
    """``mean((β·a − b)²)`` for ``a = Iᵀφ`` and ``b = f(x) − f(x − I)``; ``β = Σab / Σa²`` when normalising."""
    a, b = np.asarray(attribution_dots, np.float64), np.asarray(output_drops, np.float64)
    beta = 1.0
    if normalize:
        denominator = float(np.sum(a * a))
        beta = float(np.sum(a * b)) / denominator if denominator > 0 else 0.0
    return float(np.mean((beta * a - b) ** 2))


def output_drops(
    evaluator: InterpreterEvaluator,
    x: np.ndarray,
    perturbations: Any,
    target: int | None,
    batch_size: int,
    output: str,
) -> tuple[np.ndarray, int]:
    """``(f(x) − f(x − I) for each perturbation I, the class)``, batched, no graph; ``target=None`` takes the
    prediction for ``x`` from the same forward that gives ``f(x)``. ``perturbations``: an array ``[n, C, H, W]`` or
    anything that gives one chunk of them for a slice (e.g. :class:`Squares`), read a chunk at a time."""
    adapter = evaluator._require_model()
    with adapter.evaluation():
        outputs = adapter.to_numpy(adapter.predict(x, 1, output))[0]
        target = int(outputs.argmax()) if target is None else evaluator._check_label(target, outputs)
        values = [
            adapter.to_numpy(adapter.predict(x - chunk.prepared, batch_size, output))[:, target]
            for chunk in batches(len(perturbations), batch_size, prepare=sliced(perturbations), progress=False)
        ]
    return outputs[target] - np.concatenate(values), target


class Squares:
    """``I = x − x_with_a_grey_square`` for every square of the given sizes at ``stride`` (inside the image), made
    a slice at a time: ``squares[a:b]`` is ``[b − a, C, H, W]``; nothing of the size of all squares is kept."""

    def __init__(self, x: np.ndarray, fill: np.ndarray, sizes: tuple[int, ...], stride: int):
        _, channels, height, width = x.shape
        self.x, self.fill, self.channels = x, fill, channels
        self.boxes = [
            (size, top, left)
            for size in sizes
            for top in range(0, height - size + 1, stride)
            for left in range(0, width - size + 1, stride)
        ]
        if not self.boxes:
            raise ValueError(f"no square of sizes {sizes} fits an image of {height}x{width}.")

    def __len__(self) -> int:
        return len(self.boxes)

    def __getitem__(self, part: slice) -> np.ndarray:
        boxes = self.boxes[part]
        found = np.zeros((len(boxes), *self.x.shape[1:]), np.float32)
        for row, (size, top, left) in enumerate(boxes):
            region = (slice(None), slice(top, top + size), slice(left, left + size))
            found[(row, *region)] = self.x[0][region] - np.broadcast_to(self.fill, (self.channels, size, size))
        return found


def square_perturbations(x: np.ndarray, fill: np.ndarray, sizes: tuple[int, ...], stride: int) -> np.ndarray:
    """All of :class:`Squares` as one array ``[n, C, H, W]``."""
    return Squares(x, fill, sizes, stride)[:]


def _attribution_volume(explanation: Any, x: np.ndarray) -> np.ndarray:
    """The explanation broadcast over the input's channels ``[C, H, W]`` (pixel attributions kept per channel)."""
    array = np.asarray(explanation, np.float64) if not isinstance(explanation, dict) else None
    if array is not None:
        while array.ndim > 3 and array.shape[0] == 1:
            array = array[0]
        if array.shape == x.shape[1:]:
            return array
    return np.broadcast_to(explanation_map(explanation, x.shape[2], x.shape[3]) / x.shape[1], x.shape[1:])


class Infidelity(InterpreterEvaluator):
    """Infidelity. ``evaluate`` returns the score (lower is better); ``results`` keeps the details."""

    def __init__(self, model: Model, device: str | None = None, **kwargs: Any):
        super().__init__(model, device, **kwargs)
        self.results: dict[str, Any] = {}
        self._cache: dict[bytes, tuple[np.ndarray, np.ndarray, int]] = {}

    def _build_predict_fn(self, rebuild: bool = False, output: str = "logit"):
        """Logits, as the official implementation."""
        return super()._build_predict_fn(rebuild, output)

    def evaluate(
        self,
        img_path: ImageInputs,
        explanation: Explanations,
        recompute: bool = False,
        batch_size: int = 50,
        resize_to: int | None = 224,
        crop_to: int | None = None,
        square_sizes: tuple[int, ...] | None = None,
        stride: int | None = None,
        label: int | None = None,
        return_images: bool = True,
    ) -> float:
        """Grey squares of ``square_sizes`` (default ≈ side/7, /3.5, /1.75: 32, 64, 128 at 224) every ``stride``
        pixels (default side/28: 8 at 224). The model's part is cached per exact image and settings. The squares
        are made a chunk of ``batch_size`` at a time; ``return_images=False`` leaves them out of ``results``
        (``Is``), so that memory does not grow with their number."""
        batch_size = check_batch_size(batch_size)
        batch = self._load(img_path, resize_to, crop_to)
        x = batch.data
        self._check_explanation(explanation, x)
        label = check_label(label)
        stride = check_optional_positive_int(stride, "stride")
        if square_sizes is not None:
            square_sizes = tuple(check_positive_int(s, "square_sizes") for s in np.atleast_1d(square_sizes).tolist())
        side = min(x.shape[2:])
        sizes = tuple(square_sizes or (max(1, round(side / 7)), max(1, round(side / 3.5)), max(1, round(side / 1.75))))
        stride = stride or max(1, round(side / 28))
        # Everything the cached drops depend on: the model input (after normalisation), the settings, the weights.
        digest = self.adapter.weights_digest()
        key = x.tobytes() + repr((sizes, stride, label, digest, self._fill_value())).encode()
        if digest is None:  # a plain callable: nothing tells whether it changed, so nothing is cached
            recompute = True
        if recompute or key not in self._cache:
            squares = Squares(x, self._fill_value(), sizes, stride)
            drops, label = output_drops(self, x, squares, label, batch_size, "logit")
            self._cache = {key: (squares, drops, label)}  # the last image only: memory stays bounded
        squares, drops, label = self._cache[key]
        phi = _attribution_volume(explanation, x)
        dots = np.concatenate(
            [
                np.einsum("nchw,chw->n", chunk.prepared, phi)
                for chunk in batches(len(squares), batch_size, prepare=sliced(squares), progress=False)
            ]
        )
        score = infidelity_score(dots, drops)
        self.results = dict(proba_diff=drops, predict={"label": label}, explanation=phi, infid=score)
        if return_images:
            self.results["Is"] = squares[:]
        return score


class SensitivityMax(InterpreterEvaluator):
    """Max-sensitivity of an explanation method to small input perturbations (lower is better)."""

    def evaluate(
        self,
        img_path: ImageInputs,
        interpreter: Interprets | Callable[[np.ndarray], Explanations],
        interpret_kwargs: dict | None = None,
        perturb_radius: float = 0.02,
        n_perturb_samples: int = 10,
        random_seed: int | None = None,
        resize_to: int | None = 224,
        crop_to: int | None = None,
        perturbations: np.ndarray | None = None,
    ) -> float:
        """``interpreter``: an interpreter instance (its ``interpret`` is called with ``interpret_kwargs``, the
        label fixed to the one explained at ``x``) or a function ``inputs -> explanations``. ``perturbations``
        (``[n, C, H, W]``) replace the uniform draws when given."""
        batch = self._load(img_path, resize_to, crop_to)
        x = batch.data
        kwargs = dict(interpret_kwargs or {})

        def explain(inputs: np.ndarray) -> np.ndarray:
            if callable(interpreter) and not hasattr(interpreter, "interpret"):
                return np.asarray(interpreter(inputs), np.float64)
            return np.asarray(interpreter.interpret(inputs, visual=False, **kwargs), np.float64)

        reference = explain(x)
        if hasattr(interpreter, "labels") and interpreter.labels is not None and "labels" not in kwargs:
            kwargs["labels"] = int(np.asarray(interpreter.labels)[0])
        if perturbations is None:
            n = check_positive_int(n_perturb_samples, "n_perturb_samples")
            rng = np.random.default_rng(resolve_seed(random_seed))
            perturb_radius = check_number(perturb_radius, "perturb_radius", 0.0)
            perturbations = rng.uniform(-perturb_radius, perturb_radius, size=(n, *x.shape[1:])).astype(np.float32)
        norm = np.linalg.norm(reference.ravel()) or 1.0
        worst = 0.0
        for delta in perturbations:
            changed = explain(x + delta[None])
            worst = max(worst, float(np.linalg.norm((changed - reference).ravel()) / norm))
        return worst


class _UnitEvaluator(InterpreterEvaluator):
    """Evaluators over units (patches, or the superpixels of a LIME explanation) greyed as wholes."""

    def _units(self, explanation: Any, height: int, width: int, patch: int | None) -> np.ndarray:
        if isinstance(explanation, dict):
            return np.asarray(explanation["segmentation"])
        return patch_units(height, width, patch or max(1, round(min(height, width) / 8)))

    def _drops(
        self, img_path, explanation, resize_to, crop_to, patch, label, subsets_for, batch_size: int, fill: str | float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """``(subsets [n, U], unit attributions [U], probability drops [n], class)``.

        ``subsets_for(U)`` gives the boolean rows of units to remove. The unperturbed image rides as row 0 of
        the same batched pass, which gives the class (when not given) and the reference probability.
        """
        x = self._load(img_path, resize_to, crop_to).data
        self._check_explanation(explanation, x)
        label, patch = check_label(label), check_optional_positive_int(patch, "patch")
        height, width = x.shape[2:]
        if label is None and isinstance(explanation, dict):
            label = int(next(iter(explanation["lime_weights"])))  # the class LIME explained
        units = self._units(explanation, height, width, patch)
        values = explanation_map(explanation, height, width, label)
        unit_values = np.bincount(units.ravel(), values.ravel(), minlength=int(units.max()) + 1)
        subsets = subsets_for(len(unit_values))
        rows = np.vstack([np.zeros((1, len(unit_values)), dtype=bool), subsets])
        adapter = self._require_model()
        fill_value = self._fill_value(fill, x)

        def removed(chunk: Chunk) -> np.ndarray:  # host work, on the helper thread
            masks = rows[chunk.part][:, units][:, None]  # [b, 1, H, W]
            return np.where(masks, fill_value[None], x).astype(np.float32)

        with adapter.evaluation():
            probabilities = [
                adapter.to_numpy(adapter.predict(chunk.prepared, batch_size, "probability"))
                for chunk in batches(len(rows), batch_size, prepare=removed, progress=False)
            ]
        probabilities = np.concatenate(probabilities)
        label = int(probabilities[0].argmax()) if label is None else self._check_label(label, probabilities)
        return subsets, unit_values, probabilities[0, label] - probabilities[1:, label], label


class LocalFidelity(_UnitEvaluator):
    """Faithfulness correlation (higher is better): ``{'local_fidelity', 'attribution_sums', 'drops'}``."""

    def evaluate(
        self,
        img_path: ImageInputs,
        explanation: Explanations,
        n_samples: int = 100,
        subset_fraction: float = 0.25,
        patch: int | None = None,
        batch_size: int = 50,
        random_seed: int | None = 0,
        resize_to: int | None = 224,
        crop_to: int | None = None,
        label: int | None = None,
        fill: str | float = "grey",
    ) -> dict:
        rng = np.random.default_rng(resolve_seed(random_seed))
        n = check_positive_int(n_samples, "n_samples")
        subset_fraction = check_number(subset_fraction, "subset_fraction", 0.0, 1.0, open_low=True)
        subsets, unit_values, drops, label = self._drops(
            img_path,
            explanation,
            resize_to,
            crop_to,
            patch,
            label,
            lambda count: rng.random((n, count)) < subset_fraction,
            batch_size,
            fill,
        )
        sums = subsets.astype(np.float64) @ unit_values
        rho = float(np.corrcoef(sums, drops)[0, 1]) if np.std(sums) > 0 and np.std(drops) > 0 else 0.0
        return dict(local_fidelity=rho, attribution_sums=sums, drops=drops, label=label)


class Monotonicity(_UnitEvaluator):
    """Monotonicity correlation (higher is better): ``{'monotonicity', 'attributions', 'drops'}``."""

    def evaluate(
        self,
        img_path: ImageInputs,
        explanation: Explanations,
        patch: int | None = None,
        batch_size: int = 50,
        resize_to: int | None = 224,
        crop_to: int | None = None,
        label: int | None = None,
        fill: str | float = "grey",
    ) -> dict:
        from scipy.stats import spearmanr

        _, unit_values, drops, label = self._drops(
            img_path,
            explanation,
            resize_to,
            crop_to,
            patch,
            label,
            lambda count: np.eye(count, dtype=bool),
            batch_size,
            fill,
        )
        rho = spearmanr(unit_values, drops).statistic if np.std(unit_values) > 0 and np.std(drops) > 0 else 0.0
        return dict(monotonicity=float(rho), attributions=unit_values, drops=drops, label=label)
