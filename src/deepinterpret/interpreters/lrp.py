"""Layer-wise Relevance Propagation (Bach et al. 2015, https://doi.org/10.1371/journal.pone.0130140) on ordinary
PyTorch and Paddle models, with rules attached to layers through composites (as zennit does).

The original InterpretDL's ``LRPCVInterpreter`` needed models rewritten by hand with ``relprop()`` methods. Here
the rules are declarative (``lrp_rules.py``: ε, γ, α-β, z⁺, zᴮ, flat) and run on one generic mechanism: forward
hooks that give each convolution / linear layer the rule's backward, then one forward and one backward of the
explained logit. BatchNorm after a convolution is merged into it for the explanation (the model is not changed);
ReLU, pooling, flatten and residual sums propagate through their ordinary gradients (LRP-0: max pooling is
winner-take-all, average pooling and sums split relevance in proportion to the contributions); other element-wise
activations pass relevance through unchanged. A layer of unknown type is reported by name.
"""

from __future__ import annotations

import numpy as np

from ..adapters import ModelAdapter, softmax
from ..core.batching import joined, map_batches
from ..core.types import Array, ImageInputs, Images, Labels, LayerName, Objective, SavePath
from ..data import as_target, resolve_label_lists
from .base import Interpreter
from .lrp_mechanism import lrp_relevance
from .lrp_rules import RULES, AlphaBeta, Epsilon, Flat, Gamma, Rule, ZBox, ZPlus

LINEAR = ("conv", "linear")

#: A rule as a user names it: a :class:`Rule`, a rule name, or ``(name, *arguments)`` such as ``("epsilon", 0.25)``.
RuleSpec = Rule | str | tuple[str | float, ...]


def _first(kinds: dict[LayerName, str]) -> LayerName | None:
    return next((name for name, kind in kinds.items() if kind in LINEAR), None)


def composite(
    name: str, kinds: dict[LayerName, str], epsilon: float = 1e-6, box: tuple[float, float] = (-3.0, 3.0)
) -> dict[LayerName, Rule]:
    """The rules of a named composite for the model's layers ``{name: kind}``: ``(input layer, convolutions,
    linear layers)``, as zennit's built-ins (``epsilon_plus`` = EpsilonPlus, ``epsilon_gamma_box`` =
    EpsilonGammaBox, …); the input layer is the first convolution / linear layer in definition order."""
    eps = Epsilon(epsilon)
    table: dict[str, tuple[Rule | None, Rule, Rule]] = {
        "alpha1_beta0": (None, AlphaBeta(1.0, 0.0), AlphaBeta(1.0, 0.0)),
        "epsilon": (None, eps, eps),
        "zplus": (None, ZPlus(), ZPlus()),
        "alpha2_beta1": (None, AlphaBeta(2.0, 1.0), eps),
        "epsilon_plus": (None, ZPlus(), eps),
        "epsilon_plus_flat": (Flat(), ZPlus(), eps),
        "epsilon_gamma_box": (ZBox(*box), Gamma(0.25), eps),
        "epsilon_alpha2_beta1_flat": (Flat(), AlphaBeta(2.0, 1.0), eps),
    }
    if name not in table:
        raise ValueError(f"unknown composite {name!r}; choose one of {', '.join(table)}.")
    first_rule, conv_rule, linear_rule = table[name]
    first = _first(kinds)
    rules = {n: conv_rule if k == "conv" else linear_rule for n, k in kinds.items() if k in LINEAR}
    if first_rule is not None and first is not None:
        rules[first] = first_rule
    return rules


COMPOSITES = (
    "alpha1_beta0",
    "epsilon",
    "zplus",
    "alpha2_beta1",
    "epsilon_plus",
    "epsilon_plus_flat",
    "epsilon_gamma_box",
    "epsilon_alpha2_beta1_flat",
)


def as_rule(spec: RuleSpec) -> Rule:
    """A rule from a :class:`Rule`, a name (``"epsilon"``, ``"zplus"``, ``"flat"``, ``"pass"``…) or
    ``(name, *arguments)`` such as ``("epsilon", 0.25)`` or ``("zbox", -1, 1)``."""
    if isinstance(spec, Rule):
        return spec
    name, *arguments = (spec,) if isinstance(spec, str) else tuple(spec)
    if name not in RULES:
        raise ValueError(f"unknown rule {name!r}; rules: {', '.join(RULES)}.")
    return RULES[name](*arguments)


def lrp(
    adapter: ModelAdapter,
    x: Images,
    targets: np.ndarray | None,
    rules: dict[LayerName, Rule],
    merge_batchnorm: bool = True,
    batch_size: int = 16,
    objective: Objective = "logit",
) -> tuple[Array, np.ndarray, np.ndarray]:
    """Relevance of each input element, ``(relevance like x, targets, logits)``, in chunks of ``batch_size``, for
    the logit of class ``targets[i]`` or (``objective`` a target object; ``targets``: the input indices) the value of
    a function of the output."""
    x = adapter.asarray(x)

    def run(part: slice):
        relevance, logits, used = lrp_relevance(
            adapter, x[part], None if targets is None else targets[part], rules, merge_batchnorm, objective
        )
        return adapter.asarray(relevance), np.asarray(used), adapter.to_numpy(logits)

    with adapter.evaluation():
        parts, used, logits = zip(*map_batches(int(x.shape[0]), batch_size, run), strict=True)
    return joined(adapter.xp, parts), np.concatenate(used), np.concatenate(logits)


class LRPCVInterpreter(Interpreter):
    """Layer-wise Relevance Propagation for image models, on unmodified models."""

    signed_maps = True  # pictures: a diverging colour map centred at 0

    def interpret(
        self,
        inputs: ImageInputs,
        label: Labels = None,
        resize_to: int | None = 224,
        crop_to: int | None = None,
        visual: bool = True,
        save_path: SavePath = None,
        composite: str = "alpha1_beta0",
        rules: dict[LayerName, RuleSpec] | None = None,
        epsilon: float = 1e-6,
        merge_batchnorm: bool = True,
        batch_size: int = 16,
        labels: Labels = None,
    ) -> np.ndarray:
        """Returns the relevance summed over channels, ``np.ndarray [N, 1, H, W]`` (per channel in
        ``self.relevance``), for the logit of ``label`` (``None``: the predicted class). ``composite`` picks the
        rules by layer type (:data:`COMPOSITES`; α1β0 everywhere by default); ``rules`` overrides them by layer
        name (a :class:`Rule`, a rule name or ``(name, *arguments)``; ``"pass"`` lets relevance through a layer
        LRP does not know). zᴮ bounds come from ``normalization`` (pixels 0 and 255)."""
        batch = self._load_images(inputs, resize_to, crop_to)
        chosen_labels = self._labels(label, labels)
        target = as_target(chosen_labels)  # a function of the output, or None for classes (one or K per image)
        targets = np.arange(len(batch)) if target is not None else resolve_label_lists(chosen_labels, len(batch))
        kinds = self.adapter.lrp_kinds()
        low = float(np.min(self.normalization.apply(np.zeros((1, 1, 1, batch.data.shape[1]), np.uint8))))
        high = float(np.max(self.normalization.apply(np.full((1, 1, 1, batch.data.shape[1]), 255, np.uint8))))
        chosen = _composite(composite, kinds, epsilon, (low, high))
        for name, spec in (rules or {}).items():
            if name not in kinds:
                self.adapter.find_layers(target_layer=name)  # raises with the closest names
            chosen[name] = as_rule(spec)
        relevance, used, logits = lrp(
            self.adapter, batch.data, targets, chosen, merge_batchnorm, batch_size, target or "logit"
        )
        self.relevance = self.adapter.to_numpy(relevance)
        several = used.ndim == 2 and target is None
        self._record_predictions(used[:, 0] if several else used, None if target else softmax(np, logits), True)
        if several:  # K classes per image: [N, K, 1, H, W] (per channel [N, K, C, H, W]), one forward per chunk
            self.labels, self.explanation = used, None
            return self.relevance.sum(axis=2, keepdims=True)
        maps = self.relevance.sum(axis=1, keepdims=True)
        self._present(batch, maps, visual, save_path, True)
        return maps


_composite = composite
