"""Unit nonlinearities φ of the low-rank RNN.

Each nonlinearity is a small object with the same interface, so the transition, the fixed-point
finder and the writers never switch on strings. Strings are mapped to classes only at the
user-facing edge, through :data:`NONLINEARITIES` and :func:`get_nonlinearity`.

Piecewise-linear nonlinearities also expose their ``breakpoints`` and the ``slopes`` and
``offsets`` of each linear piece: that is what makes exact fixed points tractable.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from .._validate import check_float, check_option

__all__ = [
    "NONLINEARITIES",
    "ClippedReLU",
    "Identity",
    "Nonlinearity",
    "ReLU",
    "Tanh",
    "get_nonlinearity",
]


class Nonlinearity:
    """Interface of a unit nonlinearity φ (applied elementwise).

    Attributes
    ----------
    name : str
        Registry name (used in configs and files).
    piecewise_linear : bool
        True when φ is piecewise linear with finitely many ``breakpoints``.
    """

    name: ClassVar[str] = ""
    piecewise_linear: ClassVar[bool] = False

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def derivative(self, x: torch.Tensor) -> torch.Tensor:
        """Elementwise φ'(x), same shape as ``x``."""
        raise NotImplementedError

    def backward(self, grad: torch.Tensor, x: torch.Tensor, *,
                 out: torch.Tensor | None = None) -> torch.Tensor:
        """grad ⊙ φ'(x) (a fused kernel where torch has one), written into ``out`` if given
        (``out`` may be ``grad`` itself)."""
        return torch.mul(grad, self.derivative(x), out=out)

    def apply_(self, x: torch.Tensor) -> torch.Tensor:
        """φ(x) written into ``x`` where possible (for fresh intermediates: autograd then keeps
        one tensor per step instead of two)."""
        return self(x)

    @property
    def breakpoints(self) -> tuple[float, ...]:
        """Sorted breakpoints of a piecewise-linear φ (empty for smooth φ)."""
        return ()

    @property
    def pieces(self) -> tuple[tuple[float, float], ...]:
        """(slope, offset) of each linear piece, left to right: φ(x) = slope·x + offset."""
        raise NotImplementedError(f"{self.name} is not piecewise linear")

    def to_config(self) -> dict:
        """JSON-serialisable description; inverse of :func:`get_nonlinearity`."""
        return {"name": self.name}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.to_config().items() if k != "name")
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Nonlinearity) and self.to_config() == other.to_config()

    def __hash__(self) -> int:
        return hash(tuple(sorted(self.to_config().items())))


class ReLU(Nonlinearity):
    """φ(x) = max(x, 0). One breakpoint at 0."""

    name = "relu"
    piecewise_linear = True

    def __call__(self, x):
        return torch.relu(x)

    def derivative(self, x):
        return (x > 0).to(x.dtype)

    def backward(self, grad, x, *, out=None):
        if out is None:
            return torch.ops.aten.threshold_backward(grad, x, 0.0)
        return torch.ops.aten.threshold_backward.grad_input(grad, x, 0.0, grad_input=out)

    def apply_(self, x):
        return torch.relu_(x)

    @property
    def breakpoints(self):
        return (0.0,)

    @property
    def pieces(self):
        return ((0.0, 0.0), (1.0, 0.0))


class ClippedReLU(Nonlinearity):
    """φ(x) = min(max(x, 0), clip) = relu(x) − relu(x − clip). Breakpoints at 0 and ``clip``.

    Parameters
    ----------
    clip : float
        Saturation level (> 0), default 1.
    """

    name = "clipped_relu"
    piecewise_linear = True

    def __init__(self, clip: float = 1.0):
        self.clip = check_float("clip", clip, min_value=0.0, strict_min=True)

    def __call__(self, x):
        # hardtanh has a much faster backward on CPU than clamp (no scalar `where`)
        return torch.nn.functional.hardtanh(x, 0.0, self.clip)

    def derivative(self, x):
        return ((x > 0) & (x < self.clip)).to(x.dtype)

    def backward(self, grad, x, *, out=None):
        if out is None:
            return torch.ops.aten.hardtanh_backward(grad, x, 0.0, self.clip)
        return torch.ops.aten.hardtanh_backward.grad_input(grad, x, 0.0, self.clip,
                                                           grad_input=out)

    def apply_(self, x):
        return torch.nn.functional.hardtanh_(x, 0.0, self.clip)

    @property
    def breakpoints(self):
        return (0.0, self.clip)

    @property
    def pieces(self):
        return ((0.0, 0.0), (1.0, 0.0), (0.0, self.clip))

    def to_config(self):
        return {"name": self.name, "clip": self.clip}


class Tanh(Nonlinearity):
    """φ(x) = tanh(x). Smooth: fixed points are found approximately."""

    name = "tanh"

    def __call__(self, x):
        return torch.tanh(x)

    def derivative(self, x):
        return 1.0 - torch.tanh(x) ** 2

    def apply_(self, x):
        return torch.tanh_(x)


class Identity(Nonlinearity):
    """φ(x) = x: a linear network (the linear-Gaussian state-space model)."""

    name = "identity"
    piecewise_linear = True

    def __call__(self, x):
        return x

    def derivative(self, x):
        return torch.ones_like(x)

    def backward(self, grad, x, *, out=None):
        return grad if out is None or out is grad else out.copy_(grad)

    @property
    def pieces(self):
        return ((1.0, 0.0),)


NONLINEARITIES: dict[str, type[Nonlinearity]] = {
    cls.name: cls for cls in (ReLU, ClippedReLU, Tanh, Identity)
}


def get_nonlinearity(spec: str | dict | Nonlinearity) -> Nonlinearity:
    """Map a name, a config dict or an instance to a :class:`Nonlinearity`.

    Examples
    --------
    >>> get_nonlinearity("clipped_relu")
    ClippedReLU(clip=1.0)
    >>> get_nonlinearity({"name": "clipped_relu", "clip": 2.0}).breakpoints
    (0.0, 2.0)
    """
    if isinstance(spec, Nonlinearity):
        return spec
    if isinstance(spec, dict):
        spec = dict(spec)
        name = check_option("nonlinearity", spec.pop("name", None), NONLINEARITIES)
        return NONLINEARITIES[name](**spec)
    if not isinstance(spec, str):
        raise TypeError(f"nonlinearity must be a str, dict or Nonlinearity, "
                        f"got {type(spec).__name__} ({spec!r}).")
    return NONLINEARITIES[check_option("nonlinearity", spec, NONLINEARITIES)]()

