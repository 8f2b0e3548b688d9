"""Layer-wise Relevance Propagation on unmodified models: the rules as small declarative pieces, and the one
generic mechanism that runs them (framework operations come from the adapter).

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
BatchNorm layers that directly follow a convolution or linear layer are merged into it for the explanation and
the model's tensors are put back exactly afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Term:
    """One product in a rule's pre-activation: ``layer(input_mod(a); base·W + scale·mod(W))``.

    ``inputs``: ``identity``, ``positive`` (a⁺) or ``negative`` (a⁻); ``params``: ``identity``, ``positive``
    (W⁺, b⁺) or ``negative`` (W⁻, b⁻); the weight used is ``base·W + scale·params(W)``."""

    inputs: str = "identity"
    params: str = "identity"
    base: float = 0.0
    scale: float = 1.0


@dataclass(frozen=True)
class Rule:
    """An LRP rule: parts ``(coefficient, terms)``; each part's terms are summed into ``z_p`` (the bias, modified
    as the first term's weights, enters once per part); ``epsilon`` stabilises the division. ``box`` (zᴮ) and
    ``flat`` are rules for the input layer."""

    name: str
    parts: tuple[tuple[float, tuple[Term, ...]], ...] = ((1.0, (Term(),)),)
    epsilon: float = 1e-9
    box: tuple[float, float] | None = None
    flat: bool = False
    bias: bool = True


_SIGNED = (Term("positive", "positive"), Term("negative", "negative"))
_OPPOSITE = (Term("positive", "negative"), Term("negative", "positive"))


def Epsilon(epsilon: float = 1e-6) -> Rule:  # noqa: N802 - rule constructors read like classes, as in zennit
    """LRP-ε: ``R_j = Σ_k a_j w_jk / (z_k + ε sign z_k) R_k``; ε → 0 is LRP-0 (gradient × input)."""
    return Rule(f"epsilon({epsilon:g})", epsilon=epsilon)


def Gamma(gamma: float = 0.25) -> Rule:  # noqa: N802
    """LRP-γ: positive contributions boosted, ``w + γ w⁺`` on a⁺ and ``w + γ w⁻`` on a⁻."""
    terms = (Term("positive", "positive", 1.0, gamma), Term("negative", "negative", 1.0, gamma))
    return Rule(f"gamma({gamma:g})", parts=((1.0, terms),))


def AlphaBeta(alpha: float = 1.0, beta: float = 0.0) -> Rule:  # noqa: N802
    """LRP-αβ (α − β = 1): positive and negative contributions normalised separately, weighted α and −β."""
    if abs(alpha - beta - 1.0) > 1e-9:
        raise ValueError(f"the alpha-beta rule needs alpha - beta = 1; got alpha={alpha}, beta={beta}.")
    parts = ((alpha, _SIGNED),) if beta == 0 else ((alpha, _SIGNED), (-beta, _OPPOSITE))
    return Rule(f"alpha{alpha:g}beta{beta:g}", parts=parts)


def ZPlus() -> Rule:  # noqa: N802
    """LRP-z⁺ (= α1β0): only positive contributions."""
    return Rule("zplus", parts=((1.0, _SIGNED),))


def ZBox(low: float, high: float) -> Rule:  # noqa: N802
    """LRP-zᴮ for the input layer, with input bounds ``[low, high]`` (in model-input units):
    ``R_j = Σ_k (a_j w_jk − l_j w⁺_jk − h_j w⁻_jk) / Σ_j' (…) R_k``, without the bias, as in Montavon et al. (2019)
    and zennit's ``ZBox`` (whose modified biases cancel)."""
    return Rule(f"zbox({low:g},{high:g})", box=(float(low), float(high)))


def Flat() -> Rule:  # noqa: N802
    """Flat rule for the input layer: relevance spread evenly over each output's receptive field."""
    return Rule("flat", flat=True, bias=False)


def Pass() -> Rule:  # noqa: N802
    """Relevance passed through unchanged (element-wise layers)."""
    return Rule("pass")


RULES = {
    "epsilon": Epsilon,
    "gamma": Gamma,
    "alpha_beta": AlphaBeta,
    "zplus": ZPlus,
    "zbox": ZBox,
    "flat": Flat,
    "pass": Pass,
}


# -- the one mechanism -----------------------------------------------------------------------------------------

LINEAR_KINDS = ("conv", "linear")
GRADIENT_KINDS = ("relu", "maxpool", "avgpool", "flatten", "identity", "dropout")  # LRP-0 via the gradient
PASS_KINDS = ("activation", "batchnorm")  # relevance passed through unchanged


def batchnorm_pairs(kinds: dict[str, str], channels: dict[str, int]) -> dict[str, str]:
    """``{batchnorm: the convolution or linear layer right before it}`` in definition order (matching channels);
    the pairing is checked during the forward pass (the BatchNorm must read that layer's output)."""
    pairs, previous = {}, None
    for name, kind in kinds.items():
        if kind == "batchnorm" and previous is not None and kinds[previous] in LINEAR_KINDS:
            if channels.get(previous) == channels.get(name):
                pairs[name] = previous
        previous = name
    return pairs


def lrp_relevance(adapter, x, targets, rules: dict[str, Rule], merge_batchnorm: bool = True):
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
    pairs = batchnorm_pairs(kinds, adapter.lrp_channels()) if merge_batchnorm else {}
    merged_into = {conv: bn for bn, conv in pairs.items()}
    leaves: dict[str, list] = {"box": [], "flat": []}
    stash: dict[str, tuple] = {}
    ops = adapter.lrp_ops

    def ratio(output, z, epsilon):
        return ops.detach(output / ops.stabilize(z, epsilon))

    def keep(new, output):
        # The rule's gradient with the layer's own value: ``z · (out / (z + ε))`` alone would hand the next layers
        # ``out² / (out + ε)`` instead of ``out`` (for ε-LRP), so that every later ratio came out wrong.
        return new + ops.detach(output - new)

    def linear_hook(name: str, rule: Rule, bn: str | None):
        def apply(a, output, weight, bias, layer):
            if rule.flat:
                ones = ops.leaf(a, 1.0)
                leaves["flat"].append(ones)
                z = ops.forward(layer, ones, ops.ones_like(weight), None)
                return keep(z * ratio(output, z, rule.epsilon), output)
            if rule.box is not None:
                low, high = ops.leaf(a, rule.box[0]), ops.leaf(a, rule.box[1])
                leaves["box"].append((low, high))
                z = (  # no bias (Montavon et al. 2019; zennit's modified biases b - b⁺ - b⁻ cancel)
                    ops.forward(layer, a, weight, None)
                    - ops.forward(layer, low, weight.clip(min=0), None)
                    - ops.forward(layer, high, weight.clip(max=0), None)
                )
                return keep(z * ratio(output, z, rule.epsilon), output)
            if _is_epsilon(rule):
                # ε-rule: z is the layer's own output (BatchNorm merged: the BatchNorm's), and the ordinary
                # backward through it is the rule's propagation; no second convolution is needed.
                return keep(output * ratio(output, output, rule.epsilon), output)
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
                    w = _modified(weight, term)
                    b = _modified(bias, term) if bias is not None and rule.bias and index == 0 else None
                    value = ops.forward(layer, part_input, w, b)
                    z = value if z is None else z + value
                if z is None:
                    continue
                piece = z * ratio(output, z, rule.epsilon)
                if coefficient != 1.0:
                    piece = coefficient * piece
                new = piece if new is None else new + piece
            return new if new is None else keep(new, output)

        def hook(layer, inputs, output):
            a = inputs[0]
            weight, bias = ops.params(layer)
            if bn is not None:  # the BatchNorm's hook applies the rule with the merged weights
                stash[name] = (a, output, weight, bias, layer)
                return None
            return apply(a, output, weight, bias, layer)

        hook.apply = apply  # type: ignore[attr-defined]
        hook.rule = rule  # type: ignore[attr-defined]
        return hook

    def batchnorm_hook(name: str, conv: str, rule_hook):
        def hook(layer, inputs, output):
            if conv not in stash or inputs[0] is not stash[conv][1]:
                raise ValueError(
                    f"BatchNorm {name!r} does not read the output of {conv!r}; pass merge_batchnorm=False."
                )
            a, _, weight, bias, conv_layer = stash.pop(conv)
            if _is_epsilon(rule_hook.rule):
                # ε: through conv and BatchNorm
                return keep(output * ratio(output, output, rule_hook.rule.epsilon), output)
            scale, shift = ops.batchnorm_affine(layer)
            shape = (-1,) + (1,) * (len(weight.shape) - 1)
            merged_weight = weight * scale.reshape(shape)
            merged_bias = shift if bias is None else bias * scale + shift
            return rule_hook.apply(a, output, merged_weight, merged_bias, conv_layer)

        return hook

    def pass_hook(layer, inputs, output):
        a = inputs[0]
        return keep(a * ratio(output, a, 1e-9), output)

    handles = []
    try:
        rule_hooks = {}
        for name, kind in kinds.items():
            rule = rules.get(name)
            if rule is not None and rule.name == "pass":
                handles.append(ops.hook(name, pass_hook))
            elif kind in LINEAR_KINDS:
                rule_hooks[name] = linear_hook(name, rule, merged_into.get(name))
                handles.append(ops.hook(name, rule_hooks[name]))
            elif kind == "batchnorm" and name in pairs:
                handles.append(ops.hook(name, batchnorm_hook(name, pairs[name], rule_hooks[pairs[name]])))
            elif kind in PASS_KINDS:
                handles.append(ops.hook(name, pass_hook))
        inputs = ops.leaf_from(x)
        logits = ops.logits(inputs)
        if targets is None:
            targets = adapter.to_numpy(logits).argmax(-1)
        value = ops.target_logits(logits, targets)
        extra = [t for pair in leaves["box"] for t in pair] + leaves["flat"]
        grads = ops.grad(value, [inputs, *extra])
    finally:
        for handle in handles:
            handle.remove()
    boxes = len(leaves["box"])
    relevance = None if grads[0] is None else inputs * grads[0]
    for k, (low, high) in enumerate(leaves["box"]):  # zᴮ: R = x ∇x + l ∇l + h ∇h
        relevance = relevance + low * grads[1 + 2 * k] + high * grads[2 + 2 * k]
    for g in grads[1 + 2 * boxes :]:  # flat: the gradient of the ones
        relevance = g if relevance is None else relevance + g
    return ops.detach(relevance), ops.detach(logits), targets


def _is_epsilon(rule: Rule) -> bool:
    """The plain ε-rule (one identity part with the bias): its denominator is the layer's own output."""
    return rule.parts == ((1.0, (Term(),)),) and rule.bias and not rule.flat and rule.box is None


def _modified(tensor, term: Term):
    if term.params == "identity":
        modified = tensor
    else:
        modified = tensor.clip(min=0) if term.params == "positive" else tensor.clip(max=0)
    if term.base == 0.0:
        return modified if term.scale == 1.0 else term.scale * modified
    return term.base * tensor + term.scale * modified
