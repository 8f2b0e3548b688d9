"""The rules of Layer-wise Relevance Propagation as small declarative pieces (as zennit's): a :class:`Rule` is
its parts, each a sum of :class:`Term` products with modified inputs (a⁺, a⁻) and weights (W⁺, W⁻), and an ε.
The one mechanism that runs them on unmodified models is ``lrp_mechanism.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..core.types import Tensor


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


LINEAR_KINDS = ("conv", "linear")
GRADIENT_KINDS = ("relu", "maxpool", "avgpool", "flatten", "identity", "dropout")  # LRP-0 via the gradient
PASS_KINDS = ("activation", "batchnorm")  # relevance passed through unchanged


def is_epsilon(rule: Rule) -> bool:
    """The plain ε-rule (one identity part with the bias): its denominator is the layer's own output."""
    return rule.parts == ((1.0, (Term(),)),) and rule.bias and not rule.flat and rule.box is None


def modified(tensor: Tensor, term: Term) -> Tensor:
    """``base·W + scale·mod(W)`` for one term (``mod``: identity, W⁺ or W⁻)."""
    if term.params == "identity":
        changed = tensor
    else:
        changed = tensor.clip(min=0) if term.params == "positive" else tensor.clip(max=0)
    if term.base == 0.0:
        return changed if term.scale == 1.0 else term.scale * changed
    return term.base * tensor + term.scale * changed
