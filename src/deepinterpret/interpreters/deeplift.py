"""DeepLIFT with the rescale rule (Shrikumar et al. 2017, https://arxiv.org/abs/1704.02685).

    DeepLIFT(x) = (x − r) ⊙ m(x, r),   m: the gradient with every nonlinearity's backward replaced by Δout / Δin

against a reference ``r`` (default zeros in model-input space, as Captum). Summation to delta:
``Σ DeepLIFT(x) = f_y(x) − f_y(r)`` for networks of linear layers, element-wise activations and max pooling with
non-overlapping windows when the class logit is explained (the default); ``self.convergence_delta`` holds the
gap per input.

Settings, as Captum's ``DeepLift`` (``multiply_by_inputs=True``, ``eps=1e-10``): the rescale rule at every
element-wise activation layer, and Captum's rule at max pooling (``gradient_rules.py``); the ordinary
gradient through convolutions, linear layers, BatchNorm and average pooling. Equal to Captum (relative 1e-5 in
the tests) where no two such layers touch. Where they do (a ReLU feeding a max pooling), Captum 0.9's hooks hand
the upstream layer the downstream one's unmodified gradient (Captum issue #1104, fixed after 0.9); here every
layer receives the modified gradient, which is what the rule means and what makes the attributions sum to the
output difference. Other differences from Captum: where a max pooling falls back to its ordinary gradient
(``|Δin| < eps``) each input gets its own (Captum 0.9 reads the first example's, Captum issue #1276); each
input's reference share at a max pooling is sent back with the input's own upstream gradient (Captum uses the
reference's, which is the same except where a later layer falls back to its ordinary gradient); overlapping
pooling windows add their shares (Captum's unpooling keeps one); adaptive max pooling and the
activations Captum does not list (GELU, SiLU, ...) get the rescale rule (Captum: their ordinary gradient); a
layer called several times per forward is handled call by call (Captum refuses it). Captum's ``Softmax`` layer
rule is not provided: explain the logits. Each chunk of ``batch_size`` inputs costs one forward of the
references without a graph and one forward and backward of the inputs.
"""

from __future__ import annotations

import numpy as np

from ..adapters import ModelAdapter, check_batch_size, check_objective, softmax
from ..core.batching import joined, map_batches
from ..core.types import Array, Baselines, ImageInputs, Images, Labels, Objective, SavePath
from .gradient_rules import modified_gradient
from .gradients import _GradientFamilyInterpreter
from .integrated_gradients import baseline_array


def _baselines(adapter: ModelAdapter, x: Array, baselines: Baselines) -> Array:
    """The references, ``[1 or N, C, H, W]``: zeros for ``None``, else the given array (one for all or one per
    input)."""
    return adapter.xp.zeros_like(x[:1]) if baselines is None else baseline_array(adapter, x, baselines)


def _objective_value(logits: np.ndarray, targets: np.ndarray, objective: Objective) -> np.ndarray:
    """The objective of class ``targets[i]`` (``[N]``, or ``[N, K]`` classes per input) from logits
    ``[1 or N, classes]`` (NumPy); for a target object (``objective`` callable, ``targets`` the input of each row)
    its value on the outputs ``[1 or N, ...]``."""
    logits = np.broadcast_to(logits.astype(np.float64), (len(targets), *logits.shape[1:]))
    if callable(objective):
        return np.asarray(objective(logits, np.asarray(targets), np.asarray), dtype=np.float64)
    if objective == "logit":
        chosen = logits
    else:
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_probabilities = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        chosen = np.exp(log_probabilities) if objective == "probability" else -log_probabilities
    rows = np.arange(len(targets))
    return chosen[rows[:, None] if np.ndim(targets) == 2 else rows, targets]


def deeplift(
    adapter: ModelAdapter,
    x: Images,
    targets: np.ndarray | None,
    baselines: Baselines = None,
    objective: Objective = "logit",
    batch_size: int = 16,
    eps: float = 1e-10,
) -> tuple[Array, np.ndarray, np.ndarray, np.ndarray]:
    """``(attributions like x, targets, probabilities [N, K], convergence delta [N])``: DeepLIFT (rescale) of
    ``objective`` of class ``targets[i]`` (``None``: the predicted class) against ``baselines``."""
    check_objective(objective)
    x = adapter.asarray(x)
    base = _baselines(adapter, x, baselines)
    shared = int(base.shape[0]) == 1

    def run(part: slice):
        reference = base if shared else base[part]
        gradient, value, logits, used, reference_logits = modified_gradient(
            adapter, x[part], None if targets is None else targets[part], "rescale", objective, reference, eps
        )
        difference = x[part] - reference
        several = np.ndim(used) == 2  # K classes per input: gradient [B, K, ...], one forward and K backwards
        attribution = (difference[:, None] if several else difference) * adapter.asarray(gradient)
        reference_value = _objective_value(adapter.to_numpy(reference_logits), used, objective)
        flat = adapter.xp.reshape(attribution, (*np.shape(used), -1))
        total = adapter.to_numpy(adapter.xp.sum(flat, axis=-1))
        return attribution, used, adapter.to_numpy(logits), total - (adapter.to_numpy(value) - reference_value)

    with adapter.evaluation():
        parts, used, logits, deltas = zip(*map_batches(int(x.shape[0]), batch_size, run), strict=True)
    probabilities = softmax(np, np.concatenate(logits))
    return joined(adapter.xp, parts), np.concatenate(used), probabilities, np.concatenate(deltas)


class DeepLIFTInterpreter(_GradientFamilyInterpreter):
    """DeepLIFT with the rescale rule (Shrikumar et al. 2017), as Captum's ``DeepLift``."""

    signed_maps = True  # pictures: a diverging colour map centred at 0

    def interpret(
        self,
        inputs: ImageInputs,
        labels: Labels = None,
        baselines: Baselines = None,
        gradient_of: str = "logit",
        resize_to: int | None = 224,
        crop_to: int | None = None,
        visual: bool = True,
        save_path: SavePath = None,
        batch_size: int = 16,
        label: Labels = None,
        eps: float = 1e-10,
    ) -> np.ndarray:
        """Returns ``(x − r) ⊙ m``, ``np.ndarray [N, C, H, W]`` (``[N, K, C, H, W]`` for ``K`` classes per image:
        one forward and ``K`` backwards per chunk). ``baselines``: ``None`` (zeros of the model
        input), ``"black"`` (pixels 0, normalised as the inputs are), or a model-ready array, one for all inputs
        or one per input. After a call, ``convergence_delta`` holds ``Σ attributions − (f(x) − f(r))`` per input."""
        batch_size = check_batch_size(batch_size)
        batch = self._load_images(inputs, resize_to, crop_to)
        targets, objective, by_target = self._what_to_explain(self._labels(label, labels), len(batch), gradient_of)
        if isinstance(baselines, str):
            if baselines != "black":
                raise ValueError(f"baselines must be None, 'black' or an array; got {baselines!r}.")
            c, h, w = batch.data.shape[1:]
            baselines = self.normalization.apply(np.zeros((1, h, w, c), np.float32))
        result, used, probabilities, self.convergence_delta = deeplift(
            self.adapter, batch.data, targets, baselines, objective, batch_size, eps
        )
        self._record(used, probabilities, targets, by_target)
        return self._show(batch, result, visual, save_path)
