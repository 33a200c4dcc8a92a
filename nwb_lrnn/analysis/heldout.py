"""Held-out neurons the Neural Latents Benchmark way.

The model is fitted to the *held-in* neurons only. Its posterior latents on the training trials
are regressed onto the *held-out* neurons' counts (one Poisson GLM per neuron, log λ = w·z + b),
and those readouts predict the held-out neurons on trials the fit has not seen, from the latents
of their held-in neurons alone. co-bps is the bits per spike of that prediction
(:func:`nwb_lrnn.metrics.co_bps`): it rewards latents that carry the population's shared
dynamics, and an in-sample reconstruction of the neurons the model was fitted to cannot fake it.

    rates = predict_heldout(est, heldin_train, heldout_train, heldin_eval)
    co_bps(rates, heldout_eval.values)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._validate import check_float

__all__ = ["HeldoutReadout", "fit_heldout_readout", "nlb_scores", "predict_heldout"]


def _counts(x: Any, name: str) -> np.ndarray:
    arr = np.asarray(getattr(x, "values", x), dtype=float)
    if arr.ndim != 3:
        raise ValueError(f"{name} must be shaped (trials, time, neurons), got {arr.shape}.")
    return arr


class HeldoutReadout:
    """Poisson GLMs from (standardised) latents to held-out neurons' counts.

    Built by :func:`fit_heldout_readout`; ``predict(latents)`` gives expected counts per bin,
    shape (..., heldout neurons), for latents shaped (..., R).
    """

    def __init__(self, mean: np.ndarray, sd: np.ndarray, coef: np.ndarray,
                 intercept: np.ndarray):
        self.mean, self.sd, self.coef, self.intercept = mean, sd, coef, intercept

    def predict(self, latents: np.ndarray) -> np.ndarray:
        x = (np.asarray(latents, dtype=float) - self.mean) / self.sd
        return np.exp(np.clip(x @ self.coef + self.intercept, -50, 50))


def fit_heldout_readout(estimator: Any, heldin_train: Any, heldout_train: Any, *,
                        alpha: float = 1e-3, random_state: Any = None) -> HeldoutReadout:
    """Fit one Poisson GLM per held-out neuron on the posterior latents of held-in neurons.

    Parameters
    ----------
    estimator : LowRankRNN
        Fitted to held-in neurons (the channels of ``heldin_train``).
    heldin_train, heldout_train : BinnedData, shape (trials, time, heldin / heldout neurons)
        The same training trials and bins.
    alpha : float
        L2 penalty (scikit-learn's ``PoissonRegressor``).
    random_state : int | Generator | None
        Of the particle filter.
    """
    from sklearn.linear_model import PoissonRegressor

    alpha = check_float("alpha", alpha, min_value=0.0)
    y_tr = _counts(heldout_train, "heldout_train")
    z_tr = np.asarray(estimator.transform(heldin_train, random_state=random_state))
    if z_tr.shape[:2] != y_tr.shape[:2]:
        raise ValueError(f"heldin_train and heldout_train must have the same trials and bins, "
                         f"got {z_tr.shape[:2]} and {y_tr.shape[:2]}.")
    flat = z_tr.reshape(-1, z_tr.shape[-1])
    mu, sd = flat.mean(0), flat.std(0)
    sd = np.where(sd > 0, sd, 1.0)
    X = (flat - mu) / sd
    coef = np.zeros((X.shape[1], y_tr.shape[-1]))
    icpt = np.full(y_tr.shape[-1], np.log(1e-9))
    for n in range(y_tr.shape[-1]):
        target = y_tr[..., n].ravel()
        if target.sum() == 0:  # a silent neuron keeps a (near) zero rate
            continue
        m = PoissonRegressor(alpha=alpha, max_iter=500).fit(X, target)
        coef[:, n], icpt[n] = m.coef_, m.intercept_
    return HeldoutReadout(mu, sd, coef, icpt)


def predict_heldout(estimator: Any, heldin_train: Any, heldout_train: Any, heldin_eval: Any, *,
                    alpha: float = 1e-3, random_state: Any = None) -> np.ndarray:
    """Expected held-out counts on ``heldin_eval``'s trials, from held-in latents only.

    Parameters
    ----------
    estimator, heldin_train, heldout_train, alpha, random_state
        See :func:`fit_heldout_readout`.
    heldin_eval : BinnedData, shape (trials', time', heldin neurons)
        Evaluation trials (held-in neurons).

    Returns
    -------
    ndarray, shape (trials', time', heldout neurons)
        Expected counts per bin.

    Examples
    --------
    >>> rates = predict_heldout(est, heldin_tr, heldout_tr, heldin_ev)   # doctest: +SKIP
    >>> co_bps(rates, heldout_ev.values)                                   # doctest: +SKIP
    """
    readout = fit_heldout_readout(estimator, heldin_train, heldout_train, alpha=alpha,
                                  random_state=random_state)
    return readout.predict(np.asarray(estimator.transform(heldin_eval,
                                                          random_state=random_state)))


def nlb_scores(estimator: Any, heldin_train: Any, heldout_train: Any, heldin_eval: Any,
               heldout_eval: Any, *, velocity_eval: np.ndarray | None = None,
               conditions_eval: np.ndarray | None = None, forward_eval: Any = None,
               random_state: Any = None) -> dict[str, float]:
    """co-bps, and where given vel R², PSTH R² and fp-bps, on evaluation trials.

    Parameters
    ----------
    estimator, heldin_train, heldout_train, heldin_eval : see :func:`predict_heldout`
    heldout_eval : BinnedData, shape (trials', time', heldout neurons)
    velocity_eval : ndarray, shape (trials', time', D), optional
        Behaviour decoded (cross-validated ridge over the evaluation trials) from the rates of
        all neurons (held-in reconstructed, held-out predicted), as nlb_tools.
    conditions_eval : ndarray, shape (trials',), optional
        Condition labels: PSTH R² of those rates against the trial-averaged data.
    forward_eval : BinnedData or ndarray, shape (trials', T_fwd, heldin + heldout neurons)
        The bins after each evaluation trial: fp-bps of the forward prediction (the model run
        on from each trial's last bin; held-out neurons through their readout applied to the
        forward latent mean, E f(z) ≈ f(E z)).

    Returns
    -------
    dict with ``co_bps`` and, when the inputs allow, ``vel_r2``, ``psth_r2``, ``fp_bps``.
    """
    import torch

    from .. import metrics

    readout = fit_heldout_readout(estimator, heldin_train, heldout_train,
                                  random_state=random_state)
    z_ev = np.asarray(estimator.transform(heldin_eval, random_state=random_state))
    rates_out = readout.predict(z_ev)
    y_out = _counts(heldout_eval, "heldout_eval")
    out = {"co_bps": metrics.co_bps(rates_out, y_out)}
    if velocity_eval is not None or conditions_eval is not None:
        with torch.no_grad():
            rates_in = estimator.model_.observation.mean(
                torch.as_tensor(z_ev, dtype=estimator._dtype(), device=estimator.device_))
        rates = np.concatenate([rates_in.cpu().numpy(), rates_out], axis=-1)
        if velocity_eval is not None:
            out["vel_r2"] = metrics.velocity_r2(rates, velocity_eval)
        if conditions_eval is not None:
            spikes = np.concatenate([_counts(heldin_eval, "heldin_eval"), y_out], axis=-1)
            out["psth_r2"] = metrics.psth_r2(rates, spikes, conditions_eval)
    if forward_eval is not None:
        fwd = _counts(forward_eval, "forward_eval")
        counts_in, z_fwd = _forward(estimator, heldin_eval, fwd.shape[1], random_state)
        pred = np.concatenate([counts_in, readout.predict(z_fwd)], axis=-1)
        if pred.shape != fwd.shape:
            raise ValueError(f"forward_eval must have shape {pred.shape} (trials, forward bins, "
                             f"held-in then held-out neurons), got {fwd.shape}.")
        out["fp_bps"] = metrics.fp_bps(pred, fwd)
    return out


def _forward(est, data, n_fwd: int, random_state) -> tuple[np.ndarray, np.ndarray]:
    """Expected held-in counts and latent means for ``n_fwd`` bins after each trial's end
    (filter to the trial's last bin, then run the model on with its noise)."""
    import torch

    from ..estimator import _generator, _seed_from

    res = est._filter(est.check_data(data), None, random_state, return_particles=True)
    gen = _generator(_seed_from(random_state if random_state is not None
                                else est.random_seed_), est.device_)
    tr, ob = est.model_.transition, est.model_.observation
    L = tr.noise.chol()
    preds, means = [], []
    with torch.no_grad():
        for r in res:
            z = r.particles[-1]  # (K, B, R)
            w = torch.softmax(r.log_weights[-1], dim=0).unsqueeze(-1)
            steps, zs = [], []
            for _ in range(n_fwd):
                eps = torch.randn(z.shape, generator=gen, device=z.device, dtype=z.dtype)
                z = tr.mean(z) + eps @ L.T
                steps.append((w * ob.mean(z)).sum(0))  # (B, C)
                zs.append((w * z).sum(0))  # (B, R)
            preds.append(torch.stack(steps, 1).cpu().numpy())
            means.append(torch.stack(zs, 1).cpu().numpy())
    return np.concatenate(preds, axis=0), np.concatenate(means, axis=0)
