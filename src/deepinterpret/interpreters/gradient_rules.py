"""Modified backward passes on unmodified models: the gradient family's rules as small declarative pieces, and the
one generic mechanism that runs them (framework operations come from the adapter's primitive table ``adapter.ops``).

The methods differ from the plain gradient only in how the gradient ``g`` arriving at a nonlinearity's output
is passed to its input ``a`` (convolutions, linear layers, BatchNorm, average pooling keep their gradient):

* ``guided`` — Guided Backpropagation (Springenberg et al. 2015, https://arxiv.org/abs/1412.6806), at every ReLU:
  ``1[a > 0] · max(g, 0)``.
* ``deconv`` — DeconvNet (Zeiler & Fergus 2014, https://arxiv.org/abs/1311.2901), at every ReLU: ``max(g, 0)``,
  whatever the sign of ``a``.
* ``rescale`` — DeepLIFT's rescale rule (Shrikumar et al. 2017, https://arxiv.org/abs/1704.02685) against a
  reference input ``r`` (its activations ``a_r``, ``out_r`` come from a first pass without a graph). At every
  element-wise activation: ``g · Δout / Δa`` with ``Δ = value − reference value`` (the ordinary gradient where
  ``|Δa| < eps``). At max pooling, Captum's rule: with ``M = max(out, out_r)``, the output difference is
  split into ``M − out_r``, sent back through the input's own winners, and ``out − M``, sent back through the
  reference's winners, both divided by ``Δa`` (the ordinary gradient where ``|Δa| < eps``).

As in the LRP mechanism, a forward hook on each such layer replaces its output by an expression whose value is
the output and whose gradient is the rule's: ``stop(out) + (a − stop(a)) · m`` has the gradient ``m · g`` for a
fixed multiplier ``m``. Guided Backpropagation and DeconvNet rectify the gradient itself, which no fixed
multiplier expresses: their hook adds a gradient hook that clips ``g`` at 0. One forward and one backward of the
objective then give the modified gradient with respect to the input.
"""

from __future__ import annotations

import warnings

import numpy as np

from ..adapters import ModelAdapter
from ..adapters.results import logits_of
from ..core.types import Images, LayerName, Objective, Tensor

# the layer kinds (adapter.lrp_kinds()) whose backward each rule changes
RULE_KINDS: dict[str | None, tuple[str, ...]] = {
    None: (),
    "guided": ("relu",),
    "deconv": ("relu",),
    "rescale": ("relu", "activation", "maxpool"),
}


def check_rule(rule: str | None) -> str | None:
    if rule not in RULE_KINDS:
        raise ValueError(f"rule must be one of {', '.join(repr(r) for r in RULE_KINDS)}; got {rule!r}.")
    return rule


# -- the rules: each maps (layer, a, out, reference, ops) to the replaced output --------------------------------


def guided(layer, a, out, reference, ops):
    """``1[a > 0] · max(g, 0)``: the ReLU's own backward, fed the rectified gradient."""
    return ops.positive_gradient(out)


def deconv(layer, a, out, reference, ops):
    """``max(g, 0)``: the ReLU's backward replaced by a ReLU of the gradient."""
    return ops.positive_gradient(ops.detach(out) + (a - ops.detach(a)))


def rescale_activation(layer, a, out, reference, ops, eps: float):
    """``g · Δout / Δa`` (the ordinary gradient ``g · f'(a)`` where ``|Δa| < eps``)."""
    a_ref, out_ref = reference
    delta_in, delta_out = ops.detach(a) - a_ref, ops.detach(out) - out_ref
    fallback = ops.mask(delta_in.abs() < eps)
    multiplier = delta_out / (delta_in + fallback) * (1.0 - fallback)
    return out * fallback + ops.detach(out * (1.0 - fallback)) + (a - ops.detach(a)) * multiplier


def rescale_maxpool(layer, a, out, reference, ops, eps: float):
    """Captum's DeepLIFT rule for max pooling (``deep_lift.maxpool``), written with the layer's own gradient."""
    a_ref, out_ref = reference
    stop_a, d = ops.detach(a), a - ops.detach(a)
    delta_in = stop_a - a_ref
    fallback = ops.mask(delta_in.abs() < eps)
    inverse = (1.0 - fallback) / (delta_in + fallback)
    stop_out = ops.detach(out)
    high = out_ref + (stop_out - out_ref).clip(min=0)  # max(out, out_ref)
    own = (high - out_ref) * layer(stop_a + d * inverse)  # through the input's winners
    other = (stop_out - high) * layer(a_ref + d * inverse)  # through the reference's winners
    plain = layer(stop_a + d * fallback)  # the ordinary gradient where Δa ≈ 0
    return stop_out + _zero_valued(own, ops) + _zero_valued(other, ops) + _zero_valued(plain, ops)


def _zero_valued(t, ops):
    return t - ops.detach(t)


def _rule_for(rule: str, kind: str, eps: float):
    if rule == "guided":
        return guided
    if rule == "deconv":
        return deconv
    step = rescale_maxpool if kind == "maxpool" else rescale_activation
    return lambda layer, a, out, reference, ops: step(layer, a, out, reference, ops, eps)


# -- the one mechanism ----------------------------------------------------------------------------------------


def _reference_values(
    adapter: ModelAdapter, reference: Images, layers: list[LayerName]
) -> tuple[dict[str, list[tuple[Tensor, Tensor]]], Tensor]:
    """``({layer: [(input, output) per call]}, logits)`` for the reference batch, without a graph."""
    values: dict[str, list[tuple[Tensor, Tensor]]] = {name: [] for name in layers}

    def keep(name: str):
        def hook(layer, inputs, output):
            values[name].append((inputs[0], output))

        return hook

    with adapter._hooks([(name, keep(name), False) for name in layers]), adapter._no_graph():
        logits = logits_of(adapter._call(reference))
    return values, logits


def modified_gradient(
    adapter: ModelAdapter,
    x: Images,
    targets: np.ndarray | None,
    rule: str | None = None,
    objective: Objective = "logit",
    reference: Images | None = None,
    eps: float = 1e-10,
) -> tuple[Tensor, Tensor, Tensor, np.ndarray, Tensor | None]:
    """The gradient of ``objective`` of class ``targets[i]`` (``None``: the predicted class) with respect to one
    model batch ``x``, with the backward of the layers of :data:`RULE_KINDS` ``[rule]`` changed by ``rule``.

    ``reference`` (``rescale`` only): the reference inputs, one per row of ``x`` or one row for all. Returns
    ``(gradient like x, objective values, logits, targets, reference logits or None)``; no parameter receives a
    gradient and every hook is removed afterwards.
    """
    check_rule(rule)
    if not adapter.differentiable:
        raise TypeError(
            f"{type(adapter.model).__name__} is a plain callable and cannot give gradients; gradient methods need "
            "a torch.nn.Module or paddle.nn.Layer. Use a perturbation method (LIME, Occlusion) for black boxes."
        )
    kinds = adapter.lrp_kinds() if rule is not None else {}
    # ReLU6 (MobileNet, EfficientNet-Lite) is a rectifier too: Guided Backprop and DeconvNet rectify the gradient
    # there as well (its own backward also zeroes the gradient above 6). Captum hooks nn.ReLU only.
    layers = [
        name
        for name, kind in kinds.items()
        if kind in RULE_KINDS[rule] or (rule in ("guided", "deconv") and adapter.lrp_type(name) == "ReLU6")
    ]
    if rule in ("guided", "deconv") and not layers:
        warnings.warn(
            f"{type(adapter.model).__name__} has no ReLU layer (ReLU, ReLU6): the {rule} rule changes nothing and the "
            "result is the plain gradient (a functional ReLU inside forward() cannot be hooked).",
            RuntimeWarning,
            stacklevel=3,
        )
    if rule == "rescale":
        unknown = [f"{n} ({adapter.lrp_type(n)})" for n, k in kinds.items() if k == "unknown"]
        if unknown:
            warnings.warn(
                f"DeepLIFT keeps the ordinary gradient of these layers of unknown type: {', '.join(unknown[:5])}; "
                "the result is exact only if they are linear.",
                RuntimeWarning,
                stacklevel=3,
            )
    ops = adapter.ops
    references, reference_logits = _reference_values(adapter, reference, layers) if rule == "rescale" else ({}, None)
    calls = dict.fromkeys(layers, 0)
    busy: set[str] = set()

    def hook_for(name: str):
        step = _rule_for(rule, kinds[name], eps)

        def hook(layer, inputs, output):
            if name in busy:  # the rule's own calls of the layer
                return None
            if getattr(layer, "inplace", False):
                raise ValueError(f"layer {name!r} works in place; build it with inplace=False for this method.")
            call = calls[name]
            calls[name] += 1
            reference_pair = None
            if rule == "rescale":
                if call >= len(references[name]):
                    raise ValueError(f"layer {name!r} ran more often on the input than on the reference.")
                reference_pair = references[name][call]
            busy.add(name)
            try:
                return step(layer, inputs[0], output, reference_pair, ops)
            finally:
                busy.discard(name)

        return hook

    with adapter._hooks([(name, hook_for(name), False) for name in layers]):
        inputs = ops.leaf(ops.tensor(x))
        logits = adapter.logits_with_graph(inputs)
        if targets is None:
            targets = adapter.to_numpy(logits).argmax(-1)
        # K classes per row (targets [B, K]): one forward, K backwards, gradient [B, K, ...]
        value, (gradient,) = adapter.objective_gradients(logits, targets, objective, [inputs], allow_unused=True)
    return ops.detach(gradient), ops.detach(value), ops.detach(logits), np.asarray(targets), reference_logits
