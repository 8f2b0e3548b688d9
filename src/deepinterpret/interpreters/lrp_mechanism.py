"""The one mechanism of Layer-wise Relevance Propagation on unmodified models, over the adapter's primitives.

The mechanism is the "gradient × input" form of LRP (Montavon et al. 2019, sec. 10.2). Write every layer's
relevance as ``R = a ⊙ g``; a rule for a linear layer (convolution, dense) with output ``out`` and rule-specific
pre-activations ``z_p`` (one per part ``p``, with coefficient ``c_p``) propagates
``R_in = a ⊙ Σ_p c_p J_{z_p}ᵀ (R_out / z_p)``. A forward hook replaces the layer's output by

    new = Σ_p c_p · z_p(a) ⊙ stop_gradient(out / stab(z_p(a))),    out' = new + stop_gradient(out − new)

whose value is exactly ``out`` (so every later layer reads the model's own activations and computes its own
ratio from them, whatever ``ε``) and whose gradient is exactly that propagation; ReLU, max pooling,
average pooling and residual sums already propagate LRP-0 through their ordinary gradients, and other
element-wise layers (activations, an unmerged BatchNorm) pass relevance through unchanged
(``new = a ⊙ stop_gradient(out / stab(a))``, the value kept the same way). One forward and one backward of the
target logit then give ``R_input = x ⊙ ∇x``; the first-layer rules zᴮ and flat read extra leaves (the bounds, a
tensor of ones).

Two pieces, as zennit's: :class:`BatchNormMerge` (its own step: BatchNorm layers that directly follow a convolution
or linear layer are merged into it for the explanation; the model's tensors are never changed) and
:class:`RuleHooks` (the hook object: one forward hook per layer, placed and removed through the adapter's one hook
context, and the extra leaves the input-layer rules read).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..adapters import ModelAdapter
from ..core.types import FrameworkOps, Images, Layer, LayerName, Objective, Tensor
from .lrp_rules import LINEAR_KINDS, PASS_KINDS, Rule, is_epsilon, modified


def batchnorm_pairs(kinds: dict[LayerName, str], channels: dict[LayerName, int]) -> dict[LayerName, LayerName]:
    """``{batchnorm: the convolution or linear layer right before it}`` in definition order (matching channels);
    the pairing is checked during the forward pass (the BatchNorm must read that layer's output)."""
    pairs, previous = {}, None
    for name, kind in kinds.items():
        if kind == "batchnorm" and previous is not None and kinds[previous] in LINEAR_KINDS:
            if channels.get(previous) == channels.get(name):
                pairs[name] = previous
        previous = name
    return pairs


def batchnorm_affine(
    mean: Tensor, variance: Tensor, epsilon: float, weight: Tensor | None, bias: Tensor | None
) -> tuple[Tensor, Tensor]:
    """``(scale, shift)`` of an eval-mode BatchNorm: ``bn(x) = scale · x + shift`` per channel."""
    scale = (variance + epsilon) ** -0.5
    if weight is not None:
        scale = scale * weight
    return scale, -mean * scale + (bias if bias is not None else 0.0)


class BatchNormMerge:
    """BatchNorm merged into the convolution / linear layer before it, for the explanation only: the layer's hook
    hands its input and parameters over (:meth:`defer`), the BatchNorm's hook applies the layer's rule with the
    merged parameters ``W·s``, ``b·s + t`` (``bn(x) = s·x + t``) (:meth:`merged`)."""

    def __init__(self, ops: FrameworkOps, pairs: dict[LayerName, LayerName]):
        self.ops, self.pairs = ops, pairs
        self.merged_into = {conv: bn for bn, conv in pairs.items()}
        self.stash: dict[str, tuple] = {}

    def defer(
        self, name: LayerName, a: Tensor, output: Tensor, weight: Tensor, bias: Tensor | None, layer: Layer
    ) -> None:
        self.stash[name] = (a, output, weight, bias, layer)

    def merged(self, name: LayerName, bn_layer: Layer, bn_input: Tensor) -> tuple[Tensor, Tensor, Tensor, Layer]:
        """``(a, weight, bias, layer)`` of the convolution before BatchNorm ``name``, with the merged parameters."""
        conv = self.pairs[name]
        if conv not in self.stash or bn_input is not self.stash[conv][1]:
            raise ValueError(f"BatchNorm {name!r} does not read the output of {conv!r}; pass merge_batchnorm=False.")
        a, _, weight, bias, conv_layer = self.stash.pop(conv)
        scale, shift = batchnorm_affine(*self.ops.batchnorm_stats(bn_layer))
        shape = (-1,) + (1,) * (len(weight.shape) - 1)
        merged_weight = weight * scale.reshape(shape)
        merged_bias = shift if bias is None else bias * scale + shift
        return a, merged_weight, merged_bias, conv_layer


class RuleHooks:
    """The hook object: the rule of each layer as a forward hook (``hooks()``, for the adapter's hook context), and
    the extra leaves that the input-layer rules zᴮ and flat add (``leaves()``, :meth:`relevance`)."""

    def __init__(
        self, ops: FrameworkOps, kinds: dict[LayerName, str], rules: dict[LayerName, Rule], merge: BatchNormMerge
    ):
        self.ops, self.kinds, self.rules, self.merge = ops, kinds, rules, merge
        self.boxes: list[tuple[Tensor, Tensor]] = []
        self.flats: list[Tensor] = []

    # -- rules --------------------------------------------------------------------------------------------
    def _ratio(self, output, z, epsilon):
        return self.ops.detach(output / self.ops.stabilize(z, epsilon))

    def _keep(self, new, output):
        # The rule's gradient with the layer's own value: ``z · (out / (z + ε))`` alone would hand the next layers
        # ``out² / (out + ε)`` instead of ``out`` (for ε-LRP), so that every later ratio came out wrong.
        return new + self.ops.detach(output - new)

    def apply(self, rule: Rule, a: Tensor, output: Tensor, weight: Tensor, bias: Tensor | None, layer: Layer) -> Tensor:
        """The replaced output of a linear layer under ``rule`` (its value is ``output``)."""
        ops = self.ops
        if rule.flat:
            ones = ops.constant_leaf(a, 1.0)
            self.flats.append(ones)
            z = ops.forward(layer, ones, ops.ones_like(weight), None)
            return self._keep(z * self._ratio(output, z, rule.epsilon), output)
        if rule.box is not None:
            low, high = ops.constant_leaf(a, rule.box[0]), ops.constant_leaf(a, rule.box[1])
            self.boxes.append((low, high))
            z = (  # no bias (Montavon et al. 2019; zennit's modified biases b - b⁺ - b⁻ cancel)
                ops.forward(layer, a, weight, None)
                - ops.forward(layer, low, weight.clip(min=0), None)
                - ops.forward(layer, high, weight.clip(max=0), None)
            )
            return self._keep(z * self._ratio(output, z, rule.epsilon), output)
        if is_epsilon(rule):
            # ε-rule: z is the layer's own output (BatchNorm merged: the BatchNorm's), and the ordinary
            # backward through it is the rule's propagation; no second convolution is needed.
            return self._keep(output * self._ratio(output, output, rule.epsilon), output)
        signed = bool((a < 0).any())
        new = None
        for coefficient, terms in rule.parts:
            z = None
            for index, term in enumerate(terms):
                if term.inputs == "negative" and not signed:
                    continue  # a⁻ = 0 (e.g. after a ReLU): the term adds nothing
                if term.inputs == "identity" or (term.inputs == "positive" and not signed):
                    part_input = a  # a⁺ = a for non-negative inputs
                else:
                    part_input = a.clip(min=0) if term.inputs == "positive" else a.clip(max=0)
                b = modified(bias, term) if bias is not None and rule.bias and index == 0 else None
                value = ops.forward(layer, part_input, modified(weight, term), b)
                z = value if z is None else z + value
            if z is None:
                continue
            piece = z * self._ratio(output, z, rule.epsilon)
            if coefficient != 1.0:
                piece = coefficient * piece
            new = piece if new is None else new + piece
        return new if new is None else self._keep(new, output)

    # -- hooks --------------------------------------------------------------------------------------------
    def _linear_hook(self, name: str, rule: Rule):
        def hook(layer, inputs, output):
            weight, bias = self.ops.params(layer)
            if name in self.merge.merged_into:  # the BatchNorm's hook applies the rule with the merged weights
                self.merge.defer(name, inputs[0], output, weight, bias, layer)
                return None
            return self.apply(rule, inputs[0], output, weight, bias, layer)

        return hook

    def _batchnorm_hook(self, name: str, rule: Rule):
        def hook(layer, inputs, output):
            a, weight, bias, conv_layer = self.merge.merged(name, layer, inputs[0])
            if is_epsilon(rule):  # ε: through convolution and BatchNorm
                return self._keep(output * self._ratio(output, output, rule.epsilon), output)
            return self.apply(rule, a, output, weight, bias, conv_layer)

        return hook

    def _pass_hook(self, layer, inputs, output):
        a = inputs[0]
        return self._keep(a * self._ratio(output, a, 1e-9), output)

    def hooks(self) -> list[tuple[LayerName, Callable[..., Any], bool]]:
        """``(layer, forward hook, False)`` for every layer with a rule, for ``adapter._hooks``."""
        placed = []
        for name, kind in self.kinds.items():
            rule = self.rules.get(name)
            if rule is not None and rule.name == "pass":
                placed.append((name, self._pass_hook, False))
            elif kind in LINEAR_KINDS:
                placed.append((name, self._linear_hook(name, rule), False))
            elif kind == "batchnorm" and name in self.merge.pairs:
                placed.append((name, self._batchnorm_hook(name, self.rules[self.merge.pairs[name]]), False))
            elif kind in PASS_KINDS:
                placed.append((name, self._pass_hook, False))
        return placed

    def leaves(self) -> list[Tensor]:
        return [t for pair in self.boxes for t in pair] + self.flats

    def relevance(self, inputs: Tensor, grads: list[Tensor | None], several: bool = False) -> Tensor:
        """``x ∇x`` plus the zᴮ bounds' ``l ∇l + h ∇h`` plus the flat rule's gradient of the ones. ``several``: the
        gradients have a class axis after the row axis (``[B, K, ...]``), and so has the relevance."""

        def lift(t: Tensor) -> Tensor:
            return t[:, None] if several else t

        relevance = None if grads[0] is None else lift(inputs) * grads[0]
        for k, (low, high) in enumerate(self.boxes):
            relevance = relevance + lift(low) * grads[1 + 2 * k] + lift(high) * grads[2 + 2 * k]
        for g in grads[1 + 2 * len(self.boxes) :]:
            relevance = g if relevance is None else relevance + g
        return relevance


def lrp_relevance(
    adapter: ModelAdapter,
    x: Images,
    targets: np.ndarray | None,
    rules: dict[LayerName, Rule],
    merge_batchnorm: bool = True,
    objective: Objective = "logit",
) -> tuple[Tensor, Tensor, np.ndarray]:
    """Relevance of every input element for the logit of ``targets[i]`` (one model batch): ``(relevance like x,
    logits, targets)``. ``rules`` maps each convolution / linear layer to its rule (``Pass`` allowed for any
    layer). Layers of unknown kind raise a ``ValueError`` naming them."""
    kinds = adapter.lrp_kinds()
    unknown = [f"{n} ({adapter.lrp_type(n)})" for n, k in kinds.items() if k == "unknown" and n not in rules]
    if unknown:
        raise ValueError(
            f"LRP has no rule for these layers: {', '.join(unknown[:5])}. Supported: convolutions, linear, BatchNorm, "
            "element-wise activations, pooling, flatten, dropout, identity; give others a rule by name "
            "(rules={'name': 'pass'})."
        )
    missing = [n for n, k in kinds.items() if k in LINEAR_KINDS and n not in rules]
    if missing:
        raise ValueError(f"no LRP rule for layers {missing[:5]}.")
    ops = adapter.ops
    pairs = batchnorm_pairs(kinds, adapter.lrp_channels()) if merge_batchnorm else {}
    composite = RuleHooks(ops, kinds, rules, BatchNormMerge(ops, pairs))
    with adapter._hooks(composite.hooks()):
        inputs = ops.leaf(ops.tensor(x))
        logits = adapter.logits_with_graph(inputs)
        if targets is None:
            targets = adapter.to_numpy(logits).argmax(-1)
        with ops.enable_grad():  # the logit, or a target object's value; targets [B, K]: one backward per class
            _, grads = adapter.objective_gradients(
                logits, targets, objective, [inputs, *composite.leaves()], allow_unused=True
            )
    several = np.asarray(targets).ndim == 2 and not callable(objective)
    return ops.detach(composite.relevance(inputs, grads, several)), ops.detach(logits), targets
