"""``LowRankRNN``: the scikit-learn / MNE style face over the model and its VSMC fit."""

from __future__ import annotations

import inspect
import json
import logging
import math
import os
import warnings
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.exceptions import NotFittedError as _SklearnNotFitted

from . import _defaults
from ._threads import threads_for
from ._validate import check_array, check_float, check_int, check_option, check_random_state
from .data import BinnedData, _clean_starts
from .inference.proposals import PROPOSALS, check_proposal, encoder_kernels, make_proposal
from .inference.resampling import get_resampler
from .inference.smc import backward_smoothing, particle_filter
from .inference.training import TrainConfig, TrainHistory, train
from .io.records import FitRecord
from .model.nonlinearities import NONLINEARITIES, Nonlinearity, get_nonlinearity
from .model.observation import LINKS, OBSERVATIONS, observation_for
from .model.rnn import LowRankRNNModel, ModelConfig

__all__ = ["LowRankRNN", "NotFittedError"]

_KIND_WORDS = {"counts": "spike counts", "continuous": "continuous data"}

logger = logging.getLogger(__name__)


class NotFittedError(_SklearnNotFitted):
    """The estimator is used before ``fit`` (or ``from_parameters``); scikit-learn's
    ``NotFittedError`` (a ValueError and AttributeError), so its handlers catch it."""


_DIVERGED = ("the generated latents diverged (|z| became infinite {where} of {n}): the model's "
             "dynamics are unstable (an unstable fixed point with no bounded attractor). "
             "Generate fewer steps, refit longer, or use a bounded nonlinearity such as "
             "'clipped_relu' or 'tanh'; find_fixed_points(est) shows the unstable directions.")


MAX_COUNT = float(2 ** 24)
"""Generated counts at or above this are refused: float32 no longer holds them exactly."""
AUTO_WINDOW_ABOVE, AUTO_WINDOW, AUTO_STEPS = 1000, 100, 50
"""Sequences longer than AUTO_WINDOW_ABOVE bins train on random AUTO_WINDOW-bin windows,
AUTO_STEPS optimiser steps an epoch, unless ``window`` is given."""
REF_BINS = 4000
SCALE_FACTOR = 3.0
"""The generation check also fails when the generated data's scale (continuous: the SD of each
channel; counts: each channel's mean count), median over channels, is more than this factor
away from the data's: a failed rank-16 EEG fit kept its latents within 2.4x the data's range
while its observations were off scale (held-out D_stsp 343 against 2.5 for a working fit)."""
SCALE_ELEMENTS = 4_000_000  # generated values the scale check looks at (a strided subsample)
BOUND_FACTOR = 10.0
"""A simulated latent beyond this many times the data's largest posterior |z| counts as
divergence (:meth:`LowRankRNN.check_generation`)."""
_UNSTABLE = ("the fitted model's generated activity is not bounded: simulated for {steps} steps "
             "({n} runs), {what}. Its samples will not look like the data. Try a bounded "
             "nonlinearity (nonlinearity='clipped_relu'; this fit used "
             "{nl!r}), a lower learning_rate, more epochs or validation-based early stopping "
             "(validation_fraction=0.2, patience=20); find_fixed_points(est) shows the "
             "unstable directions.")
_OFF_SCALE = ("the fitted model's generated activity does not look like the data: simulated "
              "for {steps} steps ({n} runs), {what}. Its samples will not look like the data. "
              "Check the training curve (did the bound converge?), try a lower learning_rate, "
              "more epochs, a lower rank or validation-based early stopping "
              "(validation_fraction=0.2).")


def _within_scale(ratio: float, factor: float = SCALE_FACTOR) -> bool:
    """Whether a generated/data scale ratio lies within ``factor`` either way."""
    return 1 / factor <= ratio <= factor


def generation_failure(report: dict | None) -> str | None:
    """Why a generation check (``LowRankRNN.stability_``) failed: None when it passed (or was
    not run); ``'latents'`` (they left the data's range), ``'count'`` (a bin's count reached
    ``MAX_COUNT``) or ``'scale'`` (the generated scale is beyond ``SCALE_FACTOR`` x the data's)."""
    if not report or report.get("stable"):
        return None
    if report.get("first_step_out") is not None:
        return "latents"
    if report.get("max_count") is not None and not report["max_count"] < MAX_COUNT:
        return "count"
    sr = report.get("scale_ratio")
    if sr is not None and not _within_scale(sr, report.get("scale_factor", SCALE_FACTOR)):
        return "scale"
    return "latents"  # non-finite latents: nothing else was drawn


def _channel_scale(values: np.ndarray, kind: str) -> np.ndarray:
    """Each channel's SD (continuous) or mean count (counts) over trials and time; NaN-aware."""
    v = np.asarray(values, dtype=np.float64).reshape(-1, values.shape[-1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a channel of NaN only
        return np.nanmean(v, 0) if kind == "counts" else np.nanstd(v, 0)


def _resolve_device(device: str | torch.device) -> torch.device:
    if isinstance(device, torch.device):
        return device
    if not isinstance(device, str):
        raise TypeError(f"device must be a str or torch.device, got {type(device).__name__}.")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as err:
        raise ValueError(f"Invalid value for the 'device' parameter: {device!r} ({err}). "
                         "Use 'auto', 'cpu' or 'cuda[:N]'.") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was requested but CUDA is not available here; "
                         "use device='cpu' or 'auto'.")
    return dev


def _generator(seed: int, device: torch.device) -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(int(seed))
    return g


def _seed_from(random_state: Any) -> int:
    """An int seed from None / int / numpy Generator."""
    if isinstance(random_state, (int, np.integer)) and not isinstance(random_state, bool):
        return int(random_state)
    return int(check_random_state(random_state).integers(2**62))


def _is_mne(obj: Any) -> bool:
    return hasattr(obj, "info") and hasattr(obj, "get_data")


def _clean_window_pool(data: BinnedData, window: int) -> np.ndarray:
    """The (trial, start) pairs of the windows of ``window`` bins that hold no NaN.

    Parameters
    ----------
    data : BinnedData, values of shape (trials, time, channels)
    window : int

    Returns
    -------
    ndarray of int64, shape (n_windows, 2)
        Columns: trial index, start bin. Empty (0, 2) when no window is clean.

    Examples
    --------
    >>> v = np.zeros((1, 6, 1)); v[0, 2] = np.nan
    >>> d = BinnedData(v, 1.0, "continuous", nan_policy="allow")
    >>> _clean_window_pool(d, 2).tolist()
    [[0, 0], [0, 3], [0, 4]]
    """
    trial, start = _clean_starts(data.values, window)
    return np.stack([trial, start], axis=1)


def _longest_clean_segment(data: BinnedData) -> tuple[int, int, int]:
    """(trial, start, length) of the longest stretch of bins without NaN."""
    best = (0, 0, 0)
    for tr, row in enumerate(np.isfinite(data.values).all(axis=2)):
        run = 0
        for t, ok in enumerate(row):
            run = run + 1 if ok else 0
            if run > best[2]:
                best = (tr, t - run + 1, run)
    return best


def _longest_clean_run(data: BinnedData) -> int:
    """Longest stretch of bins without NaN in any trial."""
    return _longest_clean_segment(data)[2]


def _apply_zscore(data: BinnedData, zscore: dict) -> BinnedData:
    """Z-score ``data`` (in the channels' units) with given per-channel means and SDs."""
    mean = np.asarray(zscore["mean"], dtype=np.float64)
    std = np.asarray(zscore["std"], dtype=np.float64)
    if mean.shape != (data.n_channels,):
        raise ValueError(f"the fit z-scored {mean.size} channels but the data have "
                         f"{data.n_channels}.")
    prov = dict(data.provenance)
    prov["zscore"] = {"mean": mean.tolist(), "std": std.tolist()}
    return data.replace(values=(data.values - mean) / std, provenance=prov)


# Peak memory: the growth of ru_maxrss over a 1-epoch fit (CPU, 1 thread, after imports)
# against these estimates, for six settings (K 64-256, B 16, N 64-2048, C 8-512, T 200-800,
# Gaussian and Poisson): the estimate was 0.67-1.51x the measured growth (2026-12-01, load
# ~1). A fixed ~100 MiB (torch's own buffers) is included. The AR/VAR noise's extra term,
# from one optimiser step's growth over the same white-noise step (K 32, B 16, T 100, N 64,
# 1 thread, 2026-12-03, load ~0.6): 42 MiB at C 64 / R 3, 58 MiB at C 256 / R 3, 67 MiB at
# C 64 / R 8 (the step's arrays are (K·B, 2R)-(K·B, 4R) float64 since its Gram form).
# Found there and left: the white step itself grew 99 / 243 / 239 MiB against estimates of
# 114 / 125 / 114 MiB, so the estimate is ~0.5x at R 8 or C 256 (not yet recalibrated).
_BASE_BYTES = 100 << 20


def _fit_bytes(tcfg, mcfg, n_trials: int, n_time: int) -> int:
    """Estimated peak bytes of training: the particle filter keeps ~50 + C/4 floats per
    particle, sequence and time step for the backward pass (AR or VAR(1) observation noise:
    + 20 R + 150 + C/4, its step's float64 (K·B, 2R)-(K·B, 4R) arrays), plus a few
    (K, B, max(N, C)) arrays per step and the parameters with Adam's moments (and the AR
    noise's C×C matrices)."""
    t = tcfg.window if tcfg.window is not None else n_time
    b = tcfg.batch_size if tcfg.window is not None else min(tcfg.batch_size, n_trials)
    k, n, c, r = tcfg.n_particles, mcfg.n_units, mcfg.n_channels, mcfg.rank
    ar = mcfg.observation in ("gaussian_ar1", "gaussian_var1")
    n_cc = {"gaussian_ar1": 1, "gaussian_var1": 2}.get(mcfg.observation, 0)  # C×C parameters
    floats = (k * b * t * (50 + c / 4 + (20 * r + 150 + c / 4 if ar else 0))
              + 6 * k * b * max(n, c)
              + 12 * (n * r + c * r + n + c + n_cc * c * c))
    return int(4 * floats) + _BASE_BYTES


def _sample_bytes(n_trials: int, n_time: int, n_channels: int, rank: int, n_units: int) -> int:
    """Estimated peak bytes of ``sample``: outputs and latents in torch and NumPy, and the
    per-step (trials, units) arrays. Measured (ru_maxrss growth of sample(200, 2000) with
    C=64, N=64; (50, 20000), C=16, N=512; (2000, 500), C=128, N=256): this estimate was 1.4-2.0x
    the growth, so it errs on the side of refusing."""
    return int(4 * (2 * n_trials * n_time * (n_channels + rank) * 2
                    + 4 * n_trials * max(n_units, n_channels))) + _BASE_BYTES


def _check_memory(need: int, what: str, advice: str) -> None:
    """MemoryError (one clear line) when ``need`` bytes exceed the memory available now."""
    from .io._hdf5 import memory_available

    avail = memory_available()
    if avail is not None and need > avail:
        raise MemoryError(f"{what} would need about {need / 2**30:.1f} GiB, more than the "
                          f"{avail / 2**30:.1f} GiB of memory available; use {advice}.")


def _as_xarray(values: np.ndarray, data: BinnedData) -> Any:
    """(trials, time, rank) latents as a labelled xarray.DataArray."""
    try:
        import xarray as xr
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("as_xarray=True needs xarray: pip install xarray") from err
    n, t = values.shape[:2]
    coords: dict[str, Any] = {
        "trial": np.arange(n), "time": np.arange(t) * float(data.bin_size),
        "latent": [f"latent_{i}" for i in range(values.shape[2])],
        "start_time": ("trial", np.asarray(data.start_times, dtype=float))}
    for k, v in (data.trials or {}).items():
        arr = np.asarray(v)
        if arr.ndim == 1 and len(arr) == n and k not in coords:
            coords[k] = ("trial", arr)
    return xr.DataArray(values, dims=("trial", "time", "latent"), coords=coords,
                        name="latents", attrs={"bin_size": float(data.bin_size),
                                               "units": "a.u."})


def _digest(data: BinnedData | None, extra: Any = None) -> str | None:
    """sha256 of a dataset's values, inputs, bin size and kind (and ``extra``), for checkpoints."""
    import hashlib

    if data is None:
        return None
    h = hashlib.sha256()
    for arr in (data.values, data.inputs, extra):
        if arr is None:
            h.update(b"-")
            continue
        a = np.ascontiguousarray(arr)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(memoryview(a).cast("B"))
    h.update(f"{float(data.bin_size)!r} {data.kind}".encode())
    return h.hexdigest()


def _fingerprint(train_data, val_data, pool, seed, mcfg, prop_name, params) -> dict:
    """What a checkpoint belongs to: the data (digests), the seed and every setting."""
    settings = {k: v for k, v in params.items()
                if k not in ("verbose", "device") and isinstance(v, (int, float, str, bool,
                                                                      type(None)))}
    return {"training_data": _digest(train_data, pool), "validation_data": _digest(val_data),
            # a random seed (random_state=None) is not part of what the user asked for
            "seed": None if params.get("random_state") is None else int(seed),
            "model": json.loads(mcfg.to_json()), "proposal": prop_name,
            "settings": settings}


class LowRankRNN(TransformerMixin, BaseEstimator):
    """Stochastic low-rank RNN fitted with variational sequential Monte Carlo.

    The model (Pals et al., NeurIPS 2024) has R-dimensional latents z_t,

        z_{t+1} = a ⊙ z_t + V φ(U z_t + B u_t − h) + ε_t,  ε_t ~ N(0, Σ_z),

    with U (N × R), V (R × N), and Gaussian (continuous data) or Poisson (spike counts)
    observations. All parameters are fitted by maximising the VSMC bound with K particles.

    Parameters
    ----------
    rank : int
        Latent dimension R (1 <= R <= n_units).
    n_units : int
        Number of RNN units N.
    observation : {'auto', 'gaussian', 'gaussian_ar1', 'gaussian_var1', 'gaussian_sqrt', 'poisson'}
        'auto' picks 'gaussian_sqrt' for counts ('poisson' when a Poisson-only setting is
        given: ``readout='units'``, ``link='exp'``, ``proposal='encoder'`` or an
        ``encoder_*`` setting other than the default) and 'gaussian' for continuous data.
        'gaussian_sqrt' (counts): Gaussian noise with its own variance per neuron on the
        stabilised counts 2 √(y + 3/8), as factor analysis and GPFA model them, started from
        a factor analysis of them; filtered exactly by the optimal proposal (2-6x faster to
        fit than 'poisson'). Its latents weigh each neuron by how reliable it is rather than
        by its rate alone: on macaque M1 (132 neurons) and S1 (52 neurons) they decoded hand
        velocity better than the Poisson model's at ranks 3 to 5 and as well at rank 2 (rank
        4: R² 0.32 against 0.22 on M1, 0.52 against 0.49 on S1). Its log-likelihood is a
        density of the transformed counts and does not compare with a Poisson model's; its
        samples are rounded from the Gaussian (less over-dispersed than the data's: Fano
        factors 0.77-0.9 of the held-out data's on those recordings). 'poisson': counts ~
        Poisson(Δ f(C z + d)), a probability of the integer counts.
        'gaussian_ar1' gives each channel's noise an AR(1) coefficient: for continuous signals
        whose part beyond the latents is smooth in time (EEG); it is filtered with the optimal
        proposal (a slower, step-by-step loop than 'gaussian'). 'gaussian_var1' makes that
        noise a VAR(1) across channels (a full map A), so that its stationary covariance can
        be the data's: for channels whose noise couples (EEG against a common reference).
    nonlinearity : {'clipped_relu', 'relu', 'tanh', 'identity'} | dict | Nonlinearity
        φ. The default, a clipped ReLU (φ(x) = min(max(x, 0), 1)), bounds the latent map, so
        generated data cannot diverge; with a plain ReLU a teacher–student fit with the same
        bound per step (14.73 against 14.73 after 30 epochs) generated latents 4·10⁵ times
        larger than the data's within 1000 steps (:meth:`check_generation`).
    n_particles : int
        K, particles per sequence.
    proposal : {'auto', 'optimal', 'encoder', 'bootstrap'}
        'auto': 'optimal' for Gaussian observations (including 'gaussian_sqrt'), 'encoder'
        for Poisson.
    max_epochs : int
    learning_rate, lr_final : float
        The optimiser's initial learning rate, decayed exponentially to ``lr_final``
        (None: constant).
    optimizer : {'adam', 'radam'}
        Adam, or rectified Adam (Adam with a warm-up of the adaptive step; the paper's
        reference code uses it).
    batch_size : int
    steps_per_epoch : int | None
        Optimiser steps per epoch (None: one pass over the trials; with automatic windows,
        ``AUTO_STEPS`` = 50).
    window : int | None
        Train on random windows of this many bins (for long recordings such as EEG). None:
        sequences longer than ``AUTO_WINDOW_ABOVE`` = 1000 bins are cut into random windows of
        ``AUTO_WINDOW`` = 100 bins (logged); a particle filter over a whole 50 000-bin
        recording per optimiser step trains slowly and diverged in the first epoch.
    validation_fraction : float
        Fraction of trials held out to track the validation bound (0: none); for one long
        recording, its last part. When training on windows, held-out sequences of two windows
        or more are cut into consecutive windows for the validation bound, so that it is the
        same quantity as the training bound (``history_``); ``score`` takes whole sequences.
    patience : int | None
        Early stopping patience in epochs.
    restore_best : bool
        With validation data (``validation_fraction`` or ``validation_data``), keep the
        parameters of the epoch with the best validation bound (``history_.best_epoch``)
        rather than the last epoch's; logged when they differ.
    grad_clip : float | None
    resampling : {'systematic', 'multinomial'}
    ess_threshold : float | None
        Resample only when ESS < threshold · K (None: every step).
    noise_cov : {'diag', 'full'}
        Parametrisation of the latent noise covariance Σ_z.
    decay_per_dim : bool
        One decay per latent dimension instead of one shared.
    link : {'softplus', 'exp'}
        Poisson link.
    readout : {'affine', 'units'}
        Poisson readout: from the latents, or one-to-one from the first units.
    encoder_kernel : int | sequence of int
        Kernel sizes of the CNN encoder's convolutions (proposal='encoder'): an int ``k`` means
        two convolutions of size ``k``; ``(21, 11, 1)`` three.
    encoder_hidden : int
        Channels of the encoder's hidden convolutions.
    encoder_causal : bool
        Causal (filtering) encoder instead of a centred (smoothing) one.
    encoder_padding : {'zeros', 'circular'}
        What the encoder sees beyond the ends of a window (``'circular'``: the window wrapped
        around, as the reference implementation's examples do).
    device : str
        'auto' (CUDA when present), 'cpu' or 'cuda[:N]'.
    random_state : int | numpy.random.Generator | None
    stability_check : float
        At the end of ``fit``, simulate the fitted model for this many times the training
        length (default 10; 0 skips it) and record whether its latents stay in the range the
        data occupy (``stable_``, ``stability_``); a diverging model gives a warning that says
        what to change. See :meth:`check_generation`.
    verbose : bool
        Progress bar during ``fit`` (only on a terminal).

    Attributes
    ----------
    model_ : LowRankRNNModel
        The fitted generative model.
    proposal_ : Proposal
    history_ : TrainHistory
        Bounds per epoch.
    kept_epoch_ : int or None
        The epoch (from 0) whose parameters the fit holds: the best validation epoch when it
        restored it, else the last (None before any epoch).
    stable_ : bool or None
        Whether a long simulation of the fitted model stayed bounded (None: not checked).
    stability_ : dict or None
        The figures behind ``stable_`` (see :meth:`check_generation`).
    parameters_ : dict of numpy arrays
        See :meth:`from_parameters`.

    Examples
    --------
    >>> import numpy as np
    >>> from nwb_lrnn import LowRankRNN
    >>> teacher = LowRankRNN.from_parameters(
    ...     U=np.random.default_rng(0).normal(size=(20, 2)),
    ...     V=np.random.default_rng(1).normal(size=(2, 20)) / 20, h=np.zeros(20), decay=0.9,
    ...     nonlinearity="tanh", noise_z=0.1, random_state=0)
    >>> data = teacher.sample(8, 100, random_state=1)
    >>> student = LowRankRNN(rank=2, n_units=20, max_epochs=3, random_state=0, verbose=False)
    >>> student.fit(data).transform(data).shape
    (8, 100, 2)
    """

    def __init__(self, rank: int = _defaults.RANK, n_units: int = _defaults.N_UNITS, *,
                 observation: str = "auto",
                 nonlinearity: str | dict | Nonlinearity = _defaults.NONLINEARITY,
                 n_particles: int = _defaults.N_PARTICLES,
                 proposal: str = "auto", max_epochs: int = _defaults.MAX_EPOCHS,
                 learning_rate: float = _defaults.LEARNING_RATE,
                 lr_final: float | None = _defaults.LR_FINAL, optimizer: str = "adam",
                 batch_size: int = _defaults.BATCH_SIZE,
                 steps_per_epoch: int | None = None, window: int | None = None,
                 validation_fraction: float = _defaults.VALIDATION_FRACTION,
                 patience: int | None = None, restore_best: bool = True,
                 grad_clip: float | None = _defaults.GRAD_CLIP, resampling: str = "systematic",
                 ess_threshold: float | None = None, noise_cov: str = "diag",
                 decay_per_dim: bool = False, link: str = "softplus", readout: str = "affine",
                 encoder_kernel: int | tuple[int, ...] = _defaults.ENCODER_KERNEL,
                 encoder_hidden: int = _defaults.ENCODER_HIDDEN,
                 encoder_causal: bool = False, encoder_padding: str = "zeros",
                 device: str = "auto",
                 random_state: int | np.random.Generator | None = None,
                 stability_check: float = 10.0, verbose: bool = True):
        self.rank = rank
        self.n_units = n_units
        self.observation = observation
        self.nonlinearity = nonlinearity
        self.n_particles = n_particles
        self.proposal = proposal
        self.max_epochs = max_epochs
        self.learning_rate = learning_rate
        self.lr_final = lr_final
        self.optimizer = optimizer
        self.batch_size = batch_size
        self.steps_per_epoch = steps_per_epoch
        self.window = window
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.restore_best = restore_best
        self.grad_clip = grad_clip
        self.resampling = resampling
        self.ess_threshold = ess_threshold
        self.noise_cov = noise_cov
        self.decay_per_dim = decay_per_dim
        self.link = link
        self.readout = readout
        self.encoder_kernel = encoder_kernel
        self.encoder_hidden = encoder_hidden
        self.encoder_causal = encoder_causal
        self.encoder_padding = encoder_padding
        self.device = device
        self.random_state = random_state
        self.stability_check = stability_check
        self.verbose = verbose

    # ------------------------------------------------------------------ sklearn protocol
    # get_params, set_params, clone and fit_transform come from BaseEstimator and
    # TransformerMixin. A sample is a trial: X is (trials, time, channels) and scikit-learn's
    # splitters (cross_val_score, GridSearchCV) split along trials.
    def __sklearn_is_fitted__(self) -> bool:
        return self._is_fitted()

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = True  # one trial (time, channels)
        tags.input_tags.three_d_array = True  # (trials, time, channels)
        # NaN bins (BAD_ segments) are allowed only with window=..., so not in general
        tags.target_tags.required = False
        tags.transformer_tags.preserves_dtype = []
        tags.non_deterministic = self.random_state is None
        return tags

    def __repr__(self) -> str:
        defaults = {p.name: p.default for p in
                    inspect.signature(type(self).__init__).parameters.values()}
        changed = [f"{k}={v!r}" for k, v in self.get_params().items()
                   if not (isinstance(v, type(defaults.get(k))) and v == defaults.get(k))]
        state = "fitted" if self._is_fitted() else "unfitted"
        return f"<LowRankRNN | {state} | {', '.join(changed)}>"

    def _is_fitted(self) -> bool:
        return hasattr(self, "model_")

    def _dtype(self) -> torch.dtype:
        """The fitted model's floating dtype (float32, or float64 from ``from_parameters``)."""
        return next(self.model_.parameters()).dtype

    def _check_fitted(self, what: str) -> None:
        if not self._is_fitted():
            raise NotFittedError(f"This LowRankRNN is not fitted yet; call fit(data) or "
                                 f"LowRankRNN.from_parameters(...) before {what}().")

    # ------------------------------------------------------------------ validation
    def _validated_settings(self, data: BinnedData) -> tuple[ModelConfig, TrainConfig, str]:
        n_units = check_int("n_units", self.n_units, min_value=1)
        rank = check_int("rank", self.rank, min_value=1)
        if rank > n_units:
            raise ValueError(f"rank must be between 1 and n_units ({n_units}), got {rank}: a "
                             "rank-R network needs at least R units.")
        obs = check_option("observation", self.observation, ("auto", *OBSERVATIONS))
        if obs == "auto":
            # encoder settings of one's own mean the encoder proposal, which needs Poisson
            default = {n: p.default for n, p in
                       inspect.signature(LowRankRNN.__init__).parameters.items()}
            encoder_set = (encoder_kernels(self.encoder_kernel)
                           != encoder_kernels(default["encoder_kernel"])
                           or any(getattr(self, n) != default[n] for n in
                                  ("encoder_hidden", "encoder_causal", "encoder_padding")))
            obs = observation_for(data.kind, readout=self.readout, link=self.link,
                                  proposal="encoder" if encoder_set else self.proposal)
        obs_cls = OBSERVATIONS[obs]
        if not obs_cls.accepts(data.kind):
            raise ValueError(f"observation={obs!r} needs {_KIND_WORDS[obs_cls.kind]} "
                             f"(BinnedData.kind == {obs_cls.kind!r}), but the data are "
                             f"{data.kind!r}; use "
                             f"observation={observation_for(data.kind)!r}.")
        prop = check_option("proposal", self.proposal, ("auto", *PROPOSALS))
        if prop == "auto":
            prop = obs_cls.default_proposal
        check_proposal(prop, obs)
        nl = get_nonlinearity(self.nonlinearity) if not isinstance(self.nonlinearity, str) \
            else get_nonlinearity(check_option("nonlinearity", self.nonlinearity, NONLINEARITIES))
        check_option("link", self.link, LINKS)
        readout = check_option("readout", self.readout, ("affine", "units"))
        check_float("validation_fraction", self.validation_fraction, min_value=0.0,
                    max_value=1.0, strict_max=True)
        mcfg = ModelConfig(rank=rank, n_units=n_units, n_channels=data.n_channels,
                           n_inputs=data.n_inputs, observation=obs,
                           nonlinearity=nl.to_config(), noise_cov=self.noise_cov,
                           decay_per_dim=bool(self.decay_per_dim), link=self.link,
                           readout=readout, bin_size=float(data.bin_size))
        window, steps = self.window, self.steps_per_epoch
        if window is None and data.n_time > AUTO_WINDOW_ABOVE:
            window = AUTO_WINDOW
            steps = AUTO_STEPS if steps is None else steps
            logger.info("sequences of %d bins: training on random windows of %d bins, %d "
                        "steps an epoch (set window= to choose)", data.n_time, window, steps)
        tcfg = TrainConfig(n_particles=self.n_particles, resampling=self.resampling,
                           ess_threshold=self.ess_threshold, learning_rate=self.learning_rate,
                           lr_final=self.lr_final, grad_clip=self.grad_clip,
                           batch_size=self.batch_size, max_epochs=self.max_epochs,
                           steps_per_epoch=steps, window=window,
                           patience=self.patience, optimizer=self.optimizer,
                           restore_best=self.restore_best)
        encoder_kernels(self.encoder_kernel)
        check_int("encoder_hidden", self.encoder_hidden, min_value=1)
        check_option("encoder_padding", self.encoder_padding, ("zeros", "circular"))
        return mcfg, tcfg, prop

    def _as_data(self, data: Any, name: str = "data", *, picks: Any = None,
                 verbose: Any = None, fitting: bool = False) -> BinnedData:
        if picks is not None and not _is_mne(data):
            raise ValueError(f"picks={picks!r} applies to MNE Raw/Epochs input only, but {name} "
                             f"is a {type(data).__name__}; select the channels before "
                             "(e.g. an array's last axis).")
        if isinstance(data, BinnedData):
            return data
        if isinstance(data, (str, os.PathLike)):  # a file: the one reader of the package
            from .io.sources import read

            got = read(data)
            if isinstance(got, list):
                raise ValueError(f"{name} {os.fspath(data)!r} holds {len(got)} sessions; fit "
                                 "them one by one (read them with nwb_lrnn.io.read).")
            return got
        if _is_mne(data):
            try:
                from .io import from_mne  # available once the MNE reader lands
            except ImportError:
                raise TypeError(f"{name} is an MNE object, but the MNE reader is not "
                                "available in this version; convert it with "
                                "BinnedData.from_array(inst.get_data().T, 1/sfreq).") from None
            kw: dict[str, Any] = {} if verbose is None else {"verbose": verbose}
            fitted_mne = (not fitting and self._is_fitted()
                          and getattr(self, "info_", None) is not None)
            if fitted_mne and picks is None:
                picks = list(self.channel_names_)  # the channels the model was fitted on
            if picks is not None:
                kw["picks"] = picks
            zs = getattr(self, "zscore_", None) if fitted_mne else None
            if zs is not None:
                # the fit's z-scoring, not the new recording's own
                return _apply_zscore(from_mne(data, zscore=False, **kw), zs)
            return from_mne(data, **kw)
        if isinstance(data, (np.ndarray, torch.Tensor, list)) or hasattr(data, "__array__") \
                or (hasattr(data, "toarray") and hasattr(data, "nnz")):
            arr = check_array(name, data, ndim=(2, 3))
            if self._is_fitted():
                kind = self.kind_
                return BinnedData(arr, self.bin_size_, kind)
            return BinnedData.from_array(arr)
        raise TypeError(f"{name} must be a BinnedData, an MNE Raw/Epochs or an array shaped "
                        f"(trials, time, channels); got {type(data).__name__}.")

    def check_data(self, data: Any, *, picks: Any = None, name: str = "data") -> BinnedData:
        """``data`` as the :class:`~nwb_lrnn.BinnedData` this fitted estimator works on.

        An array, an MNE Raw/Epochs (read and z-scored as :meth:`fit` does) or a BinnedData,
        checked against the fit: the channel count, the inputs and the data kind its
        observation model needs.

        Raises
        ------
        ValueError
            The data do not match the fit (the message says how).
        """
        self._check_fitted("check_data")
        data = self._as_data(data, name, picks=picks)
        self._check_compatible(data, name)
        return data

    def _check_compatible(self, data: BinnedData, name: str = "data") -> None:
        if data.n_channels != self.model_config_.n_channels:
            # the second sentence in scikit-learn's own words, for code that looks for it
            raise ValueError(f"{name} has {data.n_channels} channels but the model was fitted "
                             f"on {self.model_config_.n_channels}: X has {data.n_channels} "
                             f"features, but LowRankRNN is expecting "
                             f"{self.model_config_.n_channels} features as input.")
        if data.n_inputs != self.model_config_.n_inputs:
            raise ValueError(f"{name} has {data.n_inputs} inputs but the model expects "
                             f"{self.model_config_.n_inputs}.")
        obs_cls = OBSERVATIONS[self.model_config_.observation]
        if not obs_cls.accepts(data.kind):
            raise ValueError(f"{name} is {data.kind!r} but the model has {obs_cls.name} "
                             f"observations and needs {_KIND_WORDS[obs_cls.kind]}.")
        if data.nan_mask is not None:
            raise ValueError(f"{name} contains NaN values; the particle filter needs complete "
                             "data (drop or interpolate the bad segments first).")

    # ------------------------------------------------------------------ fit
    def fit(self, data: BinnedData | np.ndarray, y: None = None, *, picks: Any = None,
            validation_data: BinnedData | None = None,
            checkpoint: str | os.PathLike | None = None, checkpoint_every: int = 1,
            resume: bool | str = False, until_epoch: int | None = None,
            verbose: bool | None = None) -> LowRankRNN:
        """Fit the model by maximising the VSMC bound.

        Parameters
        ----------
        data : BinnedData | ndarray, shape (trials, time, channels) | mne.io.Raw | mne.Epochs
            Training data. A plain array is taken as continuous unless it holds only
            non-negative integers (then counts), with a bin size of 1. An MNE object is
            read with :func:`nwb_lrnn.io.from_mne` (z-scored per channel; samples inside
            ``BAD_`` annotations become NaN). NaN bins are allowed only with ``window``:
            training windows that overlap them are skipped.
        y : None
            Ignored (unsupervised); there for scikit-learn's pipelines and model selection,
            which split ``data`` along its first axis (trials).
        picks : str | list | slice | None
            MNE input only: the channels, with MNE's meaning (default: the data channels —
            MEG, EEG, sEEG, ECoG, DBS, fNIRS, CSD — without bad channels).
        validation_data : BinnedData, optional
            Held-out sequences whose bound is tracked per epoch (overrides
            ``validation_fraction``).
        checkpoint : path, optional
            A ``.npz`` file that the training state is written to (atomically, no pickle)
            every ``checkpoint_every`` epochs.
        checkpoint_every : int
            Epochs between checkpoints (default 1).
        resume : bool | 'adopt'
            Continue from ``checkpoint`` when it exists — after a crash or a killed job, run the
            same call again with ``resume=True``. On CPU the fitted parameters are bitwise those
            of an uninterrupted fit with the same ``random_state``. ``'adopt'`` continues
            another fit's checkpoint of the same data and model whose ``learning_rate``,
            ``lr_final`` or ``random_state`` differ from this estimator's (its parameters,
            optimiser state and history are taken; the learning rate follows this estimator's
            schedule from the checkpoint's epoch on): the exploit step of population-based
            training.
        until_epoch : int, optional
            With ``checkpoint``: stop once this many epochs (of ``max_epochs``, counted across
            resumes) are done, with the checkpoint written; the same call with ``resume=True``
            and a larger ``until_epoch`` (or none) continues it, with the learning-rate
            schedule and Adam's state of one uninterrupted fit. The estimator holds what a
            finished fit would hold at that point (the best epoch so far, with
            ``restore_best``); the generation check runs only when training is complete.
            Sweeps train their trials in chunks this way.
        verbose : bool, optional
            Overrides the ``verbose`` given at construction (and sets MNE's log level while
            reading MNE input).

        Returns
        -------
        self : LowRankRNN
            With, besides the model, ``info_`` (a copy of the MNE ``Info`` restricted to the
            picked channels; None for non-MNE input), ``sfreq_`` (1 / bin size), ``zscore_``
            (the per-channel means and SDs used to z-score, or None) and ``window_starts_``
            ((n, 2) array of the (trial, start) pairs training windows were drawn from when
            the data hold NaN, else None).

        Raises
        ------
        ValueError, TypeError
            Invalid settings or data (the message names the parameter): ``picks`` with
            non-MNE input or selecting no channel, NaN without ``window``, no window of
            ``window`` bins free of NaN.
        FitDivergedError
            The bound became non-finite (the last good parameters are kept in ``model_``).

        Examples
        --------
        >>> raw = mne.io.read_raw_edf("S001R01.edf", preload=True)  # doctest: +SKIP
        >>> est = LowRankRNN(rank=3, n_units=512, window=50).fit(raw, picks="eeg")  # doctest: +SKIP
        >>> est.info_.ch_names[:2], est.sfreq_  # doctest: +SKIP
        (['Fc5.', 'Fc3.'], 160.0)
        """
        if not (resume is True or resume is False or resume == "adopt"):
            raise ValueError(f"resume must be True, False or 'adopt', got {resume!r:.40}.")
        if until_epoch is not None:
            until_epoch = check_int("until_epoch", until_epoch, min_value=1)
            if checkpoint is None:
                raise ValueError("until_epoch needs checkpoint=...: without one, the stopped "
                                 "training could not be continued.")
        source = data
        data = self._as_data(data, picks=picks, verbose=verbose, fitting=True)
        mcfg, tcfg, prop_name = self._validated_settings(data)
        if data.nan_mask is not None and tcfg.window is None:
            raise ValueError("data contains NaN values (e.g. segments inside BAD_ "
                             "annotations); set window=... so that training uses only the "
                             "windows that avoid them, or drop/interpolate the bad segments.")
        verbose = self.verbose if verbose is None else bool(verbose)
        device = _resolve_device(self.device)
        seed = _seed_from(self.random_state)
        gen = _generator(seed, device)
        init_gen = torch.Generator().manual_seed(seed)

        train_data, val_data = data, validation_data
        if val_data is None:
            train_data, val_data = self.split(data)
        if val_data is not None:
            val_data = self._as_data(val_data, "validation_data")
        if tcfg.window is not None and tcfg.window > train_data.n_time:
            raise ValueError(f"window ({tcfg.window}) must be <= the number of time bins of the "
                             f"training data ({train_data.n_time}).")
        _check_memory(_fit_bytes(tcfg, mcfg, train_data.n_trials, train_data.n_time),
                      "fitting", "fewer n_particles, a smaller batch_size or window, or "
                      "fewer n_units")
        if val_data is not None and val_data.nan_mask is not None:
            raise ValueError("validation data contain NaN values (e.g. BAD_ annotated "
                             "segments); the bound of a validation sequence needs complete "
                             "data. Pass clean validation_data or validation_fraction=0.")
        pool = None
        init_data = train_data
        if train_data.nan_mask is not None:
            pool = _clean_window_pool(train_data, tcfg.window)
            if len(pool) == 0:
                raise ValueError(
                    f"no window of {tcfg.window} bins is free of NaN (BAD_ annotated) "
                    f"samples: the longest clean stretch has {_longest_clean_run(train_data)} "
                    f"bins. Use a shorter window or fewer bad segments.")
            n_starts = train_data.n_trials * (train_data.n_time - tcfg.window + 1)
            logger.info("data hold NaN: training on the %d of %d windows of %d bins that "
                        "avoid them", len(pool), n_starts, tcfg.window)
            good = np.isfinite(train_data.values).all(axis=2)
            init_data = BinnedData(train_data.values[good][None], train_data.bin_size,
                                   train_data.kind)

        model = LowRankRNNModel(mcfg, generator=init_gen)
        self._init_from_data(model, init_data)
        proposal = make_proposal(prop_name, model, generator=init_gen,
                                 **self._proposal_options(data.kind))
        model.to(device)
        proposal.to(device)
        y, u = train_data.astensor(device=device)
        if pool is not None:
            y = torch.nan_to_num(y)  # never inside a training window; keeps tensors finite
        y_val = u_val = None
        if val_data is not None:
            y_val, u_val = val_data.astensor(device=device)
            if tcfg.window is not None and y_val.shape[1] >= 2 * tcfg.window:
                # consecutive windows, filtered side by side like the training windows: the
                # two bounds compare, and one pass costs window steps instead of the whole
                # held-out length (the paper's EEG recipe, N=512, K=10: one held-out pass took
                # 4.46 s whole and 0.17 s in windows, load 2.9)
                n_win = y_val.shape[1] // tcfg.window
                y_val, u_val = (None if x is None else
                                x[:, :n_win * tcfg.window].reshape(
                                    x.shape[0] * n_win, tcfg.window, x.shape[-1])
                                for x in (y_val, u_val))
                logger.info("validation bound on %d consecutive windows of %d bins",
                            y_val.shape[0], tcfg.window)

        # fitted state is set before training so that a diverged fit keeps its last good model
        self._set_fitted(model=model, proposal=proposal, proposal_name=prop_name,
                         model_config=mcfg, train_config=tcfg, kind=data.kind,
                         channel_names=list(data.channel_names),
                         random_seed=seed, device=device, history=TrainHistory())
        self.info_ = self._picked_info(source, self.channel_names_)
        zs = data.provenance.get("zscore") if isinstance(data.provenance, dict) else None
        self.zscore_ = None if zs is None else {"mean": list(zs["mean"]),
                                                "std": list(zs["std"])}
        self.window_starts_ = pool
        logger.info("fitting %s on %s", self, data)
        # elements of the largest per-time-step arrays (particles x batch x units or channels)
        batch = (tcfg.batch_size if tcfg.window is not None
                 else min(tcfg.batch_size, train_data.n_trials))
        work = tcfg.n_particles * batch * max(mcfg.n_units, mcfg.n_channels)
        with threads_for(work) as recheck:
            self.history_ = train(model, proposal, y, u, tcfg, generator=gen, y_val=y_val,
                                  inputs_val=u_val, verbose=bool(verbose),
                                  window_pool=None if pool is None else torch.as_tensor(pool),
                                  checkpoint=checkpoint, checkpoint_every=checkpoint_every,
                                  resume=resume, on_epoch=recheck, until_epoch=until_epoch,
                                  fingerprint=None if checkpoint is None else _fingerprint(
                                      train_data, val_data, pool, seed, mcfg, prop_name,
                                      self.get_params()))
        factor = check_float("stability_check", self.stability_check, min_value=0.0)
        self.stable_, self.stability_ = None, None
        done = (len(self.history_.train_bound) >= tcfg.max_epochs
                or self.history_.stopped_early)
        if factor > 0 and done:
            rep = self.check_generation(train_data, factor=factor, random_state=seed,
                                        warn=False)
            if not rep["stable"]:
                warnings.warn(self._unstable_message(), UserWarning, stacklevel=2)
        return self

    def _set_fitted(self, *, model: LowRankRNNModel, proposal, proposal_name: str,
                    model_config: ModelConfig, train_config: TrainConfig, kind: str,
                    channel_names: list[str], random_seed: int,
                    device: torch.device, history: TrainHistory,
                    stability: dict | None = None) -> None:
        """The one place the fitted state is set (fit, from_parameters, import_fit)."""
        self.model_ = model
        self.proposal_ = proposal
        self.proposal_name_ = proposal_name
        self.model_config_ = model_config
        self.train_config_ = train_config
        self.kind_ = kind
        self.channel_names_ = list(channel_names)
        self.n_features_in_ = len(self.channel_names_)
        self.random_seed_ = int(random_seed)
        self.device_ = device
        self.history_ = history
        self.stability_ = stability
        self.stable_ = (bool(stability["stable"]) if stability and "stable" in stability
                        else None)

    def _proposal_options(self, kind: str) -> dict[str, Any]:
        """The options a proposal may take from this estimator (the encoder's)."""
        return {"kernel_size": self.encoder_kernel, "hidden": self.encoder_hidden,
                "causal": bool(self.encoder_causal), "padding": self.encoder_padding,
                "transform": "log1p" if kind == "counts" else "identity"}

    def split(self, data: BinnedData) -> tuple[BinnedData, BinnedData | None]:
        """The (training, validation) split ``fit`` makes of ``data``.

        ``validation_fraction`` of the trials (drawn with ``random_state``), or for one long
        recording its last ``validation_fraction`` of the time; (data, None) when it is 0. Use it
        to score baselines on the same held-out part (:mod:`nwb_lrnn.baselines`).
        """
        frac = check_float("validation_fraction", self.validation_fraction, min_value=0.0,
                           max_value=1.0, strict_max=True)
        if frac == 0:
            return data, None
        if data.n_trials >= 2:
            return data.split_trials(frac, random_state=_seed_from(self.random_state))
        return data.split_time(1.0 - frac)

    # ------------------------------------------------------------------ generation check
    def check_generation(self, data: BinnedData | np.ndarray | None = None, *,
                         factor: float = 10.0, n_trials: int = 2, max_steps: int = 200_000,
                         n_time: int | None = None, random_state: Any = None,
                         warn: bool = True, return_trace: bool = False) -> dict[str, Any]:
        """Simulate the model for ``factor`` x the data's length and check it stays bounded.

        The data's latent range is the largest |z| of the posterior (filtering) means on
        ``data`` (its first ``REF_BINS`` = 4000 bins; without data: the range of the last
        check, else 1); the simulation (from the initial-state distribution, with noise) is
        bounded when every latent stays finite and within ``BOUND_FACTOR`` x that range, and every
        generated count is finite and below 2**24 (where float32 counts stop being exact). With
        ``data``, the generated data's scale is also compared with the data's (continuous: each
        channel's SD; counts: each channel's mean count; after the run's first tenth): the check
        fails when the median ratio over channels is beyond ``SCALE_FACTOR`` = 3 either way.
        Sets ``stable_`` and ``stability_`` and returns the latter.

        Parameters
        ----------
        data : BinnedData | ndarray (trials, time, channels), optional
            The training data (default: the range stored by the last check, else |z| <= 1).
        factor : float
            Simulated length in units of ``data``'s length (its number of time bins).
        n_trials : int
            Independent simulations.
        max_steps : int
            Cap on ``n_trials`` x simulated steps (the length shrinks to fit).
        n_time : int, optional
            Simulated steps per trial, instead of ``factor`` x the data's length.
        random_state : int | Generator | None
        warn : bool
            Warn (``UserWarning``) when the simulation is not bounded.
        return_trace : bool
            Also return ``trace`` (n_time,): the largest |z| over runs at each step (the
            report draws it; not kept in ``stability_``).

        Returns
        -------
        dict with ``stable`` (bool), ``n_trials``, ``n_time`` (steps simulated per trial),
        ``data_max_abs_z`` (the data's latent range), ``max_abs_z`` (largest |z| simulated; inf
        when it diverged), ``ratio`` (the two divided), ``first_step_out`` (first step beyond the
        bound, or None), ``max_count`` (counts models: the largest count drawn), ``scale_ratio``
        (generated over data scale, median over channels; None without data) and
        ``scale_ratio_range`` (its smallest and largest value over channels).

        Examples
        --------
        >>> import numpy as np
        >>> est = LowRankRNN.from_parameters(U=np.ones((4, 1)), V=np.ones((1, 4)) / 8,
        ...                                  decay=0.5)
        >>> est.check_generation(n_time=500)["stable"]
        True
        """
        self._check_fitted("check_generation")
        factor = check_float("factor", factor, min_value=0.0, strict_min=True)
        n_trials = check_int("n_trials", n_trials, min_value=1)
        max_steps = check_int("max_steps", max_steps, min_value=1)
        n_time = check_int("n_time", n_time, min_value=1, allow_none=True)
        ref = data_scale = None
        reference = "the largest |z| of the data's posterior"
        length = 1000
        if data is not None:
            data = self._as_data(data)
            length = data.n_time
            # the reference range from at most REF_BINS bins (a filter pass costs ~0.1 ms a bin;
            # against a 10x tolerance a few thousand bins are plenty)
            tr0, n_tr = 0, max(1, min(data.n_trials, REF_BINS // data.n_time))
            t0, n_t = 0, min(data.n_time, REF_BINS)
            if data.nan_mask is not None:  # bins inside BAD_ segments: the longest clean stretch
                tr0, t0, run = _longest_clean_segment(data)
                n_tr, n_t = 1, min(run, REF_BINS)
            sub = data
            if n_t == 0:
                sub = None
            elif (n_tr, n_t) != (data.n_trials, data.n_time):
                trials, times = slice(tr0, tr0 + n_tr), slice(t0, t0 + n_t)
                sub = BinnedData(data.values[trials, times], data.bin_size, data.kind,
                                 inputs=None if data.inputs is None
                                 else data.inputs[trials, times])
            if sub is not None:
                with torch.no_grad():
                    means = [r.filtering_mean().cpu().numpy() for r in
                             self._filter(sub, None, random_state, return_particles=True,
                                          batch_size=4)]
                ref = float(max(np.abs(m).max() for m in means))
                data_scale = _channel_scale(sub.values, self.kind_)
        if ref is None:
            prev = getattr(self, "stability_", None) or {}
            ref = float(prev.get("data_max_abs_z", 1.0))
            reference = prev.get("reference", "|z| = 1 (no data given)")
        ref = max(ref, 1e-6)
        steps = n_time or max(1, round(factor * length))
        steps = max(1, min(steps, max_steps // n_trials))
        gen = _generator(_seed_from(random_state if random_state is not None
                                    else self.random_seed_), self.device_)
        u = None
        if self.model_config_.n_inputs:  # no input: the autonomous dynamics
            u = torch.zeros((n_trials, steps, self.model_config_.n_inputs),
                            device=self.device_, dtype=self._dtype())
        with torch.no_grad(), threads_for(n_trials * max(self.model_config_.n_units,
                                                         self.model_config_.n_channels)):
            z = self.model_.transition.sample(n_trials, steps, inputs=u, generator=gen)
            absz = z.abs().amax(-1)  # (trials, time)
            absz = torch.nan_to_num(absz, nan=math.inf)
            max_count = None
            counts_ok = finite = bool(torch.isfinite(absz).all())
            if self.kind_ == "counts" and finite:
                y = self.model_.observation.sample(z, generator=gen)
                max_count = float(y.max()) if y.numel() else 0.0
                counts_ok = math.isfinite(max_count) and max_count < MAX_COUNT
            scale = None
            if data_scale is not None and counts_ok:
                scale = self._generated_scale(z, data_scale, gen)
        scale_ok = scale is None or _within_scale(scale[0])
        limit = BOUND_FACTOR * ref
        out_t = (absz > limit).any(0).nonzero()
        first = int(out_t[0]) if len(out_t) else None
        max_abs = float(absz.max())
        stable = first is None and counts_ok and scale_ok
        report = {"stable": bool(stable), "n_trials": n_trials, "n_time": steps,
                  "data_max_abs_z": ref, "max_abs_z": max_abs, "ratio": max_abs / ref,
                  "first_step_out": first, "bound_factor": BOUND_FACTOR,
                  "reference": reference,
                  "max_count": max_count,
                  "scale_ratio": None if scale is None else scale[0],
                  "scale_ratio_range": None if scale is None else [scale[1], scale[2]],
                  "scale_factor": SCALE_FACTOR}
        self.stable_, self.stability_ = bool(stable), dict(report)
        if return_trace:
            report["trace"] = absz.amax(0).cpu().numpy()
        if not stable and warn:
            warnings.warn(self._unstable_message(), UserWarning, stacklevel=2)
        return report

    def _generated_scale(self, z: torch.Tensor, data_scale: np.ndarray,
                         gen: torch.Generator) -> tuple[float, float, float] | None:
        """(median, min, max) over channels of the generated over the data's scale."""
        n_t = z.shape[1]
        z = z[:, n_t // 10:]  # past the initial transient
        c = self.model_config_.n_channels
        stride = max(1, -(-z.shape[0] * z.shape[1] * c // SCALE_ELEMENTS))
        z = z[:, ::stride]
        if self.kind_ == "counts":
            g = self.model_.observation.mean(z).reshape(-1, c).mean(0)
        else:
            g = self.model_.observation.sample(z, generator=gen).reshape(-1, c).std(0)
        g = g.double().cpu().numpy()
        keep = np.isfinite(data_scale) & (data_scale > 1e-12)
        if not keep.any() or not np.isfinite(g[keep]).all():
            return None
        ratio = g[keep] / data_scale[keep]
        return float(np.median(ratio)), float(ratio.min()), float(ratio.max())

    def _unstable_message(self) -> str:
        r = self.stability_
        why = generation_failure(r)
        if why == "latents":
            what = (f"its latents reached {r['ratio']:.3g}x "
                    f"{r.get('reference', 'the data range')} (first beyond step "
                    f"{r['first_step_out']})")
        elif why == "count":
            what = f"it drew a count of {r['max_count']:.3g} in one bin"
        else:
            unit = "mean count" if self.kind_ == "counts" else "standard deviation"
            what = (f"its latents stayed bounded but the generated data's {unit} is "
                    f"{r['scale_ratio']:.3g}x the data's (median over channels; allowed "
                    f"1/{SCALE_FACTOR:g} to {SCALE_FACTOR:g}x)")
            return _OFF_SCALE.format(steps=r["n_time"], n=r["n_trials"], what=what)
        return _UNSTABLE.format(steps=r["n_time"], n=r["n_trials"], what=what,
                                nl=self.model_config_.nonlinearity.get("name"))

    @staticmethod
    def _picked_info(source: Any, ch_names: list[str]) -> Any:
        """A copy of an MNE object's Info restricted to ``ch_names`` (None for other input)."""
        if not _is_mne(source):
            return None
        import mne

        idx = [source.info.ch_names.index(n) for n in ch_names]
        return mne.pick_info(source.info, idx, copy=True, verbose=False)

    @property
    def kept_epoch_(self) -> int | None:
        """The epoch (from 0) whose parameters the fit holds (see ``history_``)."""
        self._check_fitted("kept_epoch_")
        from .inference.training import kept_epoch

        return kept_epoch(self.history_, self.train_config_)

    @property
    def bin_size_(self) -> float:
        """Bin width of the fitted data in seconds (the model's ``model_config_.bin_size``)."""
        self._check_fitted("bin_size_")
        return float(self.model_config_.bin_size)

    @property
    def sfreq_(self) -> float:
        """Sampling rate of the fitted data in Hz (1 / bin size)."""
        self._check_fitted("sfreq_")
        return 1.0 / self.bin_size_

    @torch.no_grad()
    def _init_from_data(self, model: LowRankRNNModel, data: BinnedData) -> None:
        """Data-dependent initialisation: the observation model's own (PCA, factor analysis
        or mean rates), then a latent noise that makes the initial stationary variance
        about 1."""
        model.observation.init_from_data(torch.as_tensor(data.values, dtype=torch.float32),
                                         float(data.bin_size), model.rank)
        a = float(model.transition.decay.detach().mean())
        model.transition.noise.set_cov(torch.full((model.rank,), 1.0 - a * a))

    # ------------------------------------------------------------------ inference
    def _filter(self, data: BinnedData, n_particles: int | None, random_state: Any,
                return_particles: bool, batch_size: int = 256):
        K = check_int("n_particles", n_particles, min_value=1, allow_none=True) \
            or self.train_config_.n_particles
        gen = _generator(_seed_from(random_state if random_state is not None
                                    else self.random_seed_), self.device_)
        y, u = data.astensor(device=self.device_, dtype=self._dtype())
        cfg = self.train_config_
        out = []
        work = K * min(batch_size, y.shape[0]) * max(self.model_config_.n_units, y.shape[-1])
        with threads_for(work):
            for s in range(0, y.shape[0], batch_size):
                out.append(particle_filter(
                    self.model_, self.proposal_, y[s:s + batch_size],
                    inputs=None if u is None else u[s:s + batch_size], n_particles=K,
                    resampler=get_resampler(cfg.resampling), ess_threshold=cfg.ess_threshold,
                    generator=gen, return_particles=return_particles))
        return out

    @torch.no_grad()
    def transform(self, data: BinnedData | np.ndarray, *, picks: Any = None,
                  return_std: bool = False, smoothed: bool = True, smoother: str = "auto",
                  n_particles: int | None = None, random_state: Any = None,
                  n_runs: int = 1, return_raw: bool = False, as_pynapple: bool = False,
                  as_xarray: bool = False, verbose: Any = None) -> Any:
        """Posterior latents of ``data``.

        Parameters
        ----------
        data : BinnedData | ndarray, shape (trials, time, channels) | mne.io.Raw | mne.Epochs
            MNE input is read with the fit's channels (unless ``picks`` is given) and, when the
            model was fitted on MNE data, z-scored with the fit's means and SDs.
        picks : str | list | slice | None
            MNE input only: the channels (default: those of the fit).
        return_std : bool
            Also return the posterior SD over particles.
        smoothed : bool
            True: the smoothing posterior p(z_t | y_{0:T}). False: the filtering posterior
            p(z_t | y_{0:t}).
        smoother : {'auto', 'backward', 'paths'}
            How the smoothing posterior is formed. 'backward': forward filtering, backward
            smoothing (:func:`~nwb_lrnn.inference.backward_smoothing`; every step keeps all
            its particles, O(K²) per step). 'paths': the ancestral paths of the last step's
            particles (the filter-smoother), which far from a sequence's end share one or a
            few ancestors. 'auto': 'backward', or 'paths' for noise with memory
            (``gaussian_ar1``, ``gaussian_var1``), which 'backward' does not handle. On
            macaque M1 (``gaussian_sqrt``, rank 4, one run, K = 32) 'backward' latents
            decoded hand velocity with R² 0.32 where the paths gave 0.29.
        n_particles : int, optional
            Particles for this call (default: as in training).
        random_state : int, optional
            Seed of the filter (default: the fit's seed, so repeated calls agree).
        n_runs : int
            Independent filter runs to combine (mean of the means; SD from the within-run
            variance plus the variance between runs). With one run the smoothed SD collapses
            towards 0 far from the end of a sequence, because resampling leaves few distinct
            ancestral paths (path degeneracy); several runs, or ``smoothed=False``, give an
            honest spread.
        return_raw : bool
            Return the latents as MNE objects of ``rank`` 'misc' channels named ``latent_0``,
            ``latent_1``... at the data's sampling rate: an ``mne.io.RawArray`` for one trial
            (with its ``meas_date`` and ``first_samp``), an ``mne.EpochsArray`` for several
            (events at the trials' start times; ``tmin`` 0).
        as_pynapple : bool
            Return a ``pynapple.TsdFrame`` (bin centres as times, trials concatenated, one
            interval per trial in its ``time_support``; columns ``latent_0``...).
        as_xarray : bool
            Return an ``xarray.DataArray`` with dims (trial, time, latent): ``time`` in seconds
            from each trial's start, the trial's ``start_time`` and the trials table's scalar
            columns as coordinates along ``trial`` (so ``z.sel(trial=z.condition == "left")``).
        verbose : bool | str | int | None
            MNE verbosity while reading MNE input.

        Returns
        -------
        mean : ndarray, shape (trials, time, rank) | mne.io.RawArray (rank channels) |
            pynapple.TsdFrame | xarray.DataArray
        std : same type as ``mean``, only if ``return_std``

        Examples
        --------
        >>> est.transform(raw, return_raw=True).ch_names  # doctest: +SKIP
        ['latent_0', 'latent_1', 'latent_2']
        """
        self._check_fitted("transform")
        if sum(map(bool, (return_raw, as_pynapple, as_xarray))) > 1:
            raise ValueError("give at most one of return_raw, as_pynapple and as_xarray.")
        data = self._as_data(data, picks=picks, verbose=verbose)
        self._check_compatible(data)
        n_runs = check_int("n_runs", n_runs, min_value=1)
        smoother = check_option("smoother", smoother, ("auto", "backward", "paths"))
        memory = self.model_.observation.noise_memory
        if smoother == "backward" and memory and smoothed:
            raise ValueError(f"smoother='backward' needs observations that depend on z_t alone; "
                             f"observation={self.model_config_.observation!r} has noise with "
                             f"memory: use smoother='paths' (or 'auto').")
        backward = smoother == "backward" or (smoother == "auto" and not memory)
        base_seed = _seed_from(random_state if random_state is not None else self.random_seed_)
        run_means, run_vars = [], []
        inputs = None if data.inputs is None else torch.as_tensor(
            data.inputs, device=self.device_, dtype=self._dtype())
        for r in range(n_runs):
            means, stds = [], []
            start = 0  # the batch's first trial
            for res in self._filter(data, n_particles, base_seed + r, return_particles=True):
                n_b = res.particles.shape[2]
                if smoothed and backward:
                    u = None if inputs is None else inputs[start:start + n_b]
                    mu, sd = backward_smoothing(res, self.model_.transition, u)
                elif smoothed:
                    mu, sd = res.smoothed_mean_std()
                else:
                    mu, sd = res.filtering_mean(), res.filtering_std()
                means.append(mu.cpu().numpy())
                stds.append(sd.cpu().numpy())
                start += n_b
            run_means.append(np.concatenate(means))
            run_vars.append(np.concatenate(stds) ** 2)
        mean = np.mean(run_means, axis=0)
        var = np.mean(run_vars, axis=0) + (np.var(run_means, axis=0) if n_runs > 1 else 0.0)
        std = np.sqrt(var)
        if return_raw:
            if data.n_trials == 1:
                mean_raw = self._latents_raw(mean[0], data)
                return (mean_raw, self._latents_raw(std[0], data)) \
                    if return_std else mean_raw
            mean_ep = self._latents_epochs(mean, data)
            return (mean_ep, self._latents_epochs(std, data)) \
                if return_std else mean_ep
        if as_pynapple or as_xarray:
            from .io.pynap import to_pynapple

            def conv(a):
                return to_pynapple(a, data) if as_pynapple else _as_xarray(a, data)

            return (conv(mean), conv(std)) if return_std else conv(mean)
        return (mean, std) if return_std else mean

    @staticmethod
    def _latents_epochs(latents: np.ndarray, data: BinnedData) -> Any:
        """(trials, time, rank) latents as an mne EpochsArray of 'misc' channels, with the
        events, ``tmin``, ``event_id`` and metadata of the Epochs the data came from."""
        from .io.mne import epochs_like

        _, info = LowRankRNN._latent_info(latents.shape[2], data)
        return epochs_like(data, latents, info)  # the same events, tmin, event_id, metadata

    @staticmethod
    def _latent_info(rank: int, data: BinnedData) -> tuple[Any, Any]:
        """mne and an Info of 'misc' channels latent_0 … latent_{rank-1} at the data's rate."""
        from .io.mne import _import_mne

        mne = _import_mne()
        names = [f"latent_{r}" for r in range(rank)]
        return mne, mne.create_info(names, 1.0 / data.bin_size, "misc")

    @staticmethod
    def _latents_raw(latents: np.ndarray, data: BinnedData) -> Any:
        """(time, rank) latents as an mne RawArray of 'misc' channels latent_0, ..."""
        import datetime

        mne, info = LowRankRNN._latent_info(latents.shape[1], data)
        sfreq = info["sfreq"]
        first_samp = round(float(data.start_times[0]) * sfreq)
        raw = mne.io.RawArray(latents.T.astype(np.float64), info, first_samp=first_samp,
                              verbose=False)
        date = data.provenance.get("meas_date") if isinstance(data.provenance, dict) else None
        if date:
            raw.set_meas_date(datetime.datetime.fromisoformat(date))
        return raw

    @torch.no_grad()
    def score(self, data: BinnedData | np.ndarray, y: None = None, *, picks: Any = None,
              n_particles: int | None = None, random_state: Any = None,
              verbose: Any = None) -> float:
        """The SMC bound log p̂(y) per time step, averaged over trials (higher is better).

        Parameters
        ----------
        data : BinnedData | ndarray, shape (trials, time, channels) | mne.io.Raw | mne.Epochs
        y : None
            Ignored (scikit-learn's ``score(X, y)``): ``cross_val_score`` and
            ``GridSearchCV`` rank fits by this held-out bound.
        picks : str | list | slice | None
            MNE input only: the channels (default: those of the fit).
        n_particles : int, optional
        random_state : int, optional
        verbose : bool | str | int | None
            MNE verbosity while reading MNE input.

        Returns
        -------
        float
        """
        self._check_fitted("score")
        data = self._as_data(data, picks=picks, verbose=verbose)
        self._check_compatible(data)
        res = self._filter(data, n_particles, random_state, return_particles=False)
        total = sum(float(r.log_marginal.sum()) for r in res)
        return total / (data.n_trials * data.n_time)

    def log_likelihood(self, data: BinnedData | np.ndarray, **kwargs: Any) -> np.ndarray:
        """log p̂(y) per trial, shape (trials,)."""
        self._check_fitted("log_likelihood")
        data = self._as_data(data)
        self._check_compatible(data)
        with torch.no_grad():
            res = self._filter(data, kwargs.get("n_particles"), kwargs.get("random_state"),
                               return_particles=False)
        return np.concatenate([r.log_marginal.cpu().numpy() for r in res])

    @torch.no_grad()
    def predict_ahead(self, data: BinnedData | np.ndarray, *, k: int = 1,
                      n_particles: int | None = None,
                      random_state: Any = None) -> np.ndarray:
        """k-step-ahead prediction of the observations from the past: E[y_{t+k} | y_{0:t}].

        The filtering particles at t are run k steps through the model (with its noise) and
        their observation means (Gaussian: C z + d; Poisson: expected counts) averaged with the
        filtering weights; with AR(1) observation noise (``observation='gaussian_ar1'``) the
        noise's own prediction a^k e_t is added. A measure of dynamics: an iid model predicts
        only the mean.

        Parameters
        ----------
        data : BinnedData | ndarray, shape (trials, time, channels)
        k : int
            Horizon in bins (>= 1).
        n_particles : int, optional
        random_state : int | Generator | None

        Returns
        -------
        ndarray, shape (trials, time, channels)
            The prediction for bin t + k stored at index t + k; the first k bins are NaN. For
            data with inputs, the inputs of the predicted bins are used.

        Examples
        --------
        >>> est = LowRankRNN.from_parameters(U=np.ones((4, 1)), V=np.ones((1, 4)) / 8,
        ...                                  decay=0.5)
        >>> y = est.sample(2, 50, random_state=0)
        >>> est.predict_ahead(y, k=3).shape
        (2, 50, 4)
        """
        self._check_fitted("predict_ahead")
        k = check_int("k", k, min_value=1)
        data = self._as_data(data)
        self._check_compatible(data)
        out = np.full(data.values.shape, np.nan)
        if data.n_time <= k:
            return out
        gen = _generator(_seed_from(random_state if random_state is not None
                                    else self.random_seed_), self.device_)
        tr, ob = self.model_.transition, self.model_.observation
        L = tr.noise.chol()
        u = None
        if data.inputs is not None:
            u = torch.as_tensor(data.inputs, dtype=self._dtype(), device=self.device_)
        start = 0
        for res in self._filter(data, n_particles, random_state, return_particles=True,
                                batch_size=16):
            z = res.particles[:-k]  # (T-k, K, B, R): filtering particles at t
            w = torch.softmax(res.log_weights[:-k], dim=1).unsqueeze(-1)  # (T-k, K, B, 1)
            B = z.shape[2]
            for j in range(1, k + 1):
                drive = None
                if u is not None and tr.B is not None:  # input of step t+j: (T-k, 1, B, I)
                    ub = u[start:start + B, j:data.n_time - k + j].transpose(0, 1)
                    drive = (ub @ tr.B.T - tr.h).unsqueeze(1)
                eps = torch.randn(z.shape, generator=gen, device=z.device, dtype=z.dtype)
                z = tr.mean(z, drive) + eps @ L.T
            pred = (w * ob.mean(z)).sum(1)  # (T-k, B, C)
            if ob.noise_memory:  # noise correlated in time: add its own k-step prediction
                yb = torch.as_tensor(data.values[start:start + B, :data.n_time - k],
                                     dtype=z.dtype, device=z.device).transpose(0, 1)
                e_t = (w * (yb.unsqueeze(1) - ob.mean(res.particles[:-k]))).sum(1)
                pred = pred + ob.predict_noise(e_t, k)
            out[start:start + B, k:] = pred.transpose(0, 1).cpu().numpy()
            start += B
        return out

    @torch.no_grad()
    def sample(self, n_trials: int = 1, n_time: int = 1000, *,
               inputs: np.ndarray | None = None, burn_in: int = 0,
               random_state: Any = None,
               return_latents: bool = False) -> BinnedData | tuple[BinnedData, np.ndarray]:
        """Generate surrogate data from the fitted model.

        Parameters
        ----------
        n_trials, n_time : int
        inputs : ndarray, shape (n_trials, burn_in + n_time, n_inputs), optional
            Required when the model was fitted with inputs.
        burn_in : int
            Steps simulated first and dropped, to sample the stationary process.
        random_state : int | Generator | None
            Same value, same output.
        return_latents : bool
            Also return the latent trajectories (n_trials, n_time, rank).

        Returns
        -------
        BinnedData
            values (n_trials, n_time, channels), of the fitted kind and bin size.
        """
        self._check_fitted("sample")
        n_trials = check_int("n_trials", n_trials, min_value=1)
        n_time = check_int("n_time", n_time, min_value=1)
        burn_in = check_int("burn_in", burn_in, min_value=0)
        n_in = self.model_config_.n_inputs
        u = None
        if n_in:
            if inputs is None:
                raise ValueError(f"the model was fitted with {n_in} inputs; pass inputs "
                                 f"shaped ({n_trials}, {burn_in + n_time}, {n_in}).")
            arr = check_array("inputs", inputs, shape=(n_trials, burn_in + n_time, n_in))
            u = torch.as_tensor(arr, dtype=self._dtype(), device=self.device_)
        elif inputs is not None:
            raise ValueError("inputs were given but the model was fitted without inputs.")
        mc = self.model_config_
        _check_memory(_sample_bytes(n_trials, burn_in + n_time, mc.n_channels, mc.rank,
                                    mc.n_units), "sampling", "fewer trials or time steps "
                      "per call (sample in pieces)")
        gen = _generator(_seed_from(random_state), self.device_)
        try:
            with threads_for(n_trials * max(self.model_config_.n_units,
                                            self.model_config_.n_channels)):
                z, y = self.model_.sample(n_trials, n_time, inputs=u, generator=gen,
                                          burn_in=burn_in)
        except RuntimeError as err:  # e.g. Poisson counts drawn from infinite rates
            if "rate" not in str(err):
                raise
            raise ValueError(_DIVERGED.format(where="before the last step", n=n_time)) from None
        bad = ~torch.isfinite(z).all(-1)
        if bool(bad.any()):
            t = int(bad.any(0).nonzero()[0])
            raise ValueError(_DIVERGED.format(where=f"at step {t}", n=n_time))
        if self.kind_ == "counts":
            over = ~torch.isfinite(y) | (y >= MAX_COUNT)
            if bool(over.any()):
                t = int(over.any(-1).any(0).nonzero()[0])
                raise ValueError(
                    f"the generated spike counts diverged: at step {t} of {n_time} a bin drew "
                    f"{float(y[over].max()):.3g} spikes (>= {MAX_COUNT:.3g}, where counts stop "
                    f"being exact in float32): the model's dynamics are unstable. Refit with "
                    f"nonlinearity='clipped_relu' (bounded), a lower learning_rate or early "
                    f"stopping; est.check_generation() and find_fixed_points(est) show why.")
        ref = (getattr(self, "stability_", None) or {}).get("data_max_abs_z")
        if ref:
            peak = float(z.abs().max())
            if peak > BOUND_FACTOR * ref:
                warnings.warn(f"the generated latents reached |z| = {peak:.3g}, "
                              f"{peak / ref:.3g}x the largest value the data's posterior takes: "
                              f"the samples leave the range of the data (unstable dynamics; "
                              f"see est.check_generation()).", UserWarning, stacklevel=2)
        out = BinnedData(y.cpu().numpy(), self.bin_size_, self.kind_,
                         inputs=None if u is None else arr[:, burn_in:],
                         channel_names=self.channel_names_,
                         provenance={"generated_by": "nwb_lrnn.LowRankRNN.sample",
                                     "burn_in": burn_in})
        return (out, z.cpu().numpy()) if return_latents else out

    def sample_raw(self, n_times: int = 1000, *, sfreq: float | None = None,
                   random_state: Any = None, burn_in: int = 0, info: Any = None,
                   scale: bool | None = None, verbose: Any = None) -> Any:
        """Generate one continuous recording as an ``mne.io.RawArray``.

        Parameters
        ----------
        n_times : int
            Samples to generate.
        sfreq : float, optional
            Requested sampling rate; it must equal the fit's (one latent step is one sample),
            so it only guards against mixing up rates. Default: the fit's ``sfreq_``.
        random_state : int | Generator | None
            Same value, same output.
        burn_in : int
            Steps simulated first and dropped (stationary samples).
        info : mne.Info, optional
            Measurement info of the result (copied). Default: ``info_`` of a fit on MNE data
            (channel names, types, montage, meas_date), else a new Info with the fit's
            channel names ('eeg' channels when the fit data were z-scored by the MNE reader,
            else 'misc').
        scale : bool | None
            Undo the fit's z-scoring (back to volts); None: when the fit recorded it
            (see :func:`nwb_lrnn.io.to_mne`).
        verbose : bool | str | int | None
            MNE verbosity.

        Returns
        -------
        raw : mne.io.RawArray
            Data of shape (n_channels, n_times) at the fit's sampling rate.

        Raises
        ------
        ValueError
            ``sfreq`` (or ``info['sfreq']``) differs from the fit's sampling rate.

        Examples
        --------
        >>> gen = est.sample_raw(9640, random_state=0)  # doctest: +SKIP
        >>> gen.ch_names == est.info_.ch_names, gen.info["sfreq"] == est.sfreq_  # doctest: +SKIP
        (True, True)
        """
        from .io.mne import _import_mne, to_mne

        self._check_fitted("sample_raw")
        mne = _import_mne()
        fit_sfreq = self.sfreq_
        if sfreq is not None:
            sfreq = check_float("sfreq", sfreq, min_value=0.0, strict_min=True)
            if not np.isclose(sfreq, fit_sfreq, rtol=1e-6, atol=0.0):
                raise ValueError(
                    f"sfreq={sfreq:g} Hz differs from the sampling rate the model was fitted "
                    f"at ({fit_sfreq:g} Hz): one latent step is one sample at {fit_sfreq:g} "
                    f"Hz. Generate at {fit_sfreq:g} Hz and resample the result "
                    f"(raw.resample({sfreq:g})).")
        zs = getattr(self, "zscore_", None)
        if info is None:
            info = getattr(self, "info_", None)
            if info is None:
                info = mne.create_info(list(self.channel_names_), fit_sfreq,
                                       "eeg" if zs is not None else "misc")
        elif not isinstance(info, mne.Info):
            raise TypeError(f"info must be an mne.Info, got {type(info).__name__}.")
        elif not np.isclose(float(info["sfreq"]), fit_sfreq, rtol=1e-6, atol=0.0):
            raise ValueError(f"info['sfreq'] = {float(info['sfreq']):g} Hz differs from the "
                             f"sampling rate the model was fitted at ({fit_sfreq:g} Hz).")
        data = self.sample(1, n_times, burn_in=burn_in, random_state=random_state)
        if zs is not None:
            data = data.replace(provenance={**data.provenance, "zscore": zs})
        return to_mne(data, info, scale=scale, verbose=verbose)

    # ------------------------------------------------------------------ parameters
    @property
    def parameters_(self) -> dict[str, Any]:
        """Parameters as numpy arrays, named as in :meth:`from_parameters`
        (:meth:`~nwb_lrnn.model.rnn.LowRankRNNModel.to_arrays`)."""
        self._check_fitted("parameters_")
        return self.model_.to_arrays()

    @classmethod
    def from_parameters(cls, *, U: np.ndarray, V: np.ndarray, h: np.ndarray | None = None,
                        decay: float | np.ndarray = 0.9,
                        nonlinearity: str | dict | Nonlinearity = "relu",
                        B: np.ndarray | None = None, noise_z: float | np.ndarray = 0.1,
                        C: np.ndarray | None = None, d: np.ndarray | None = None,
                        noise_x: float | np.ndarray | None = None,
                        noise_ar: float | np.ndarray | None = None,
                        noise_x_cov: np.ndarray | None = None,
                        noise_ar_matrix: np.ndarray | None = None,
                        observation: str = "gaussian", bin_size: float = 1.0,
                        init_mean: np.ndarray | None = None,
                        init_sd: float | np.ndarray = 1.0, link: str = "softplus",
                        readout: str | None = None, gain: np.ndarray | None = None,
                        bias: np.ndarray | None = None,
                        n_particles: int = _defaults.N_PARTICLES,
                        proposal: str = "auto", random_state: Any = None,
                        device: str = "auto", dtype: str | None = None) -> LowRankRNN:
        """A ready-to-use (fitted) estimator built from known arrays (teacher networks, theory).

        Parameters
        ----------
        U : ndarray, shape (N, R)
        V : ndarray, shape (R, N)
        h : ndarray, shape (N,), optional (default zeros)
        decay : float or ndarray (R,)
            a in (0, 1).
        nonlinearity : str | dict | Nonlinearity
        B : ndarray, shape (N, n_inputs), optional
        noise_z : float, ndarray (R,) or ndarray (R, R)
            Latent noise: a scalar or per-dimension SD, or a full covariance matrix.
        C : ndarray, shape (n_channels, R), optional
            Observation matrix. Gaussian default: C = U (observe the unit activity x = U z).
            Poisson default: one-to-one readout of the units (``readout='units'``).
        d : ndarray, shape (n_channels,), optional
        noise_x : float or ndarray (n_channels,), optional
            Gaussian observation SD (default 0.1); with ``observation='gaussian_ar1'`` or
            ``'gaussian_var1'`` the SD of the noise's innovations.
        noise_ar : float or ndarray (n_channels,), optional
            ``observation='gaussian_ar1'`` only: the AR(1) coefficient of each channel's noise,
            in (-0.999, 0.999) (default 0).
        noise_x_cov : ndarray (n_channels, n_channels), optional
            ``observation='gaussian_ar1'`` or ``'gaussian_var1'``: the covariance of the
            noise's innovations (instead of ``noise_x``; default diag(noise_x²)).
        noise_ar_matrix : ndarray (n_channels, n_channels), optional
            ``observation='gaussian_var1'`` only: the noise's map A in e_t = A e_{t-1} + η_t,
            spectral radius < 0.999 (default 0).
        observation : {'gaussian', 'gaussian_ar1', 'gaussian_var1', 'poisson'}
        bin_size : float
        init_mean, init_sd : initial-state mean (R,) and SD (scalar or (R,))
        link, readout, gain, bias : Poisson observation settings (see the class docstring)
        n_particles, proposal : inference settings for ``transform``/``score``
        random_state : seed used by ``transform``/``score`` by default
        dtype : {'float64', 'float32'}, optional
            Precision of the model (default: float64 when ``U`` is a float64 array or plain
            numbers, float32 for float32 input). A float64 model keeps the given parameters
            exactly, so its fixed points satisfy their equation to ~1e-12 instead of ~1e-4.

        Returns
        -------
        LowRankRNN, fitted

        Examples
        --------
        >>> import numpy as np
        >>> est = LowRankRNN.from_parameters(U=np.ones((4, 1)), V=np.ones((1, 4)) / 8,
        ...                                  h=np.zeros(4), decay=0.5)
        >>> est.sample(2, 10, random_state=0).values.shape
        (2, 10, 4)
        """
        if dtype is None:  # the precision of the given U (float32 parameters_ stay float32)
            dtype = "float32" if getattr(U, "dtype", None) == np.float32 else "float64"
        U = check_array("U", U, ndim=2)
        N, R = U.shape
        V = check_array("V", V, shape=(R, N))
        h = np.zeros(N) if h is None else check_array("h", h, shape=(N,))
        decay_arr = np.atleast_1d(check_array("decay", decay, ndim=(0, 1)))
        if decay_arr.size not in (1, R) or np.any((decay_arr <= 0) | (decay_arr >= 1)):
            raise ValueError(f"decay must be a scalar or an array of {R} values in (0, 1), got "
                             f"{decay!r}.")
        n_in = 0
        if B is not None:
            B = check_array("B", B, ndim=2)
            if B.shape[0] != N:
                raise ValueError(f"B must have shape ({N}, n_inputs), got {B.shape}.")
            n_in = B.shape[1]
        nz = check_array("noise_z", noise_z, ndim=(0, 1, 2))
        noise_cov = "full" if nz.ndim == 2 else "diag"
        if nz.ndim == 2 and nz.shape != (R, R):
            raise ValueError(f"noise_z as a covariance must have shape ({R}, {R}), got "
                             f"{nz.shape}.")
        if nz.ndim == 1 and nz.size != R:
            raise ValueError(f"noise_z as SDs must have {R} values, got {nz.size}.")
        if nz.ndim < 2 and np.any(nz <= 0):
            raise ValueError(f"noise_z must be positive, got {noise_z!r}.")
        if nz.ndim == 2 and np.any(np.linalg.eigvalsh((nz + nz.T) / 2) <= 0):
            raise ValueError("noise_z as a covariance must be symmetric positive definite.")
        obs = check_option("observation", observation, tuple(OBSERVATIONS))
        obs_cls = OBSERVATIONS[obs]
        nl = get_nonlinearity(nonlinearity)
        for name, val in (("noise_ar", noise_ar), ("noise_x_cov", noise_x_cov),
                          ("noise_ar_matrix", noise_ar_matrix)):
            if val is not None and not obs_cls.noise_memory:
                raise ValueError(f"{name} belongs to the AR noise of observation="
                                 f"'gaussian_ar1' or 'gaussian_var1'; got observation={obs!r}.")
        if noise_x_cov is not None and noise_x is not None:
            # both, as est.parameters_ holds them: the SDs must be the covariance's
            sds = np.sqrt(np.clip(np.diag(np.asarray(noise_x_cov, dtype=float)), 0, None))
            if np.shape(noise_x) not in ((), sds.shape) or not np.allclose(
                    noise_x, sds, rtol=1e-5, atol=1e-8):
                raise ValueError("noise_x (SDs) and noise_x_cov (a covariance) disagree: give "
                                 "one of them, or noise_x = sqrt(diag(noise_x_cov)).")
            noise_x = None
        n_ch, obs_arrays = obs_cls.check_arrays(U, {"C": C, "d": d, "noise_x": noise_x,
                                                    "noise_ar": noise_ar,
                                                    "noise_x_cov": noise_x_cov,
                                                    "noise_ar_matrix": noise_ar_matrix,
                                                    "readout": readout, "gain": gain,
                                                    "bias": bias})
        readout = obs_arrays.get("readout", "affine")
        mcfg = ModelConfig(rank=R, n_units=N, n_channels=n_ch, n_inputs=n_in, observation=obs,
                           nonlinearity=nl.to_config(), noise_cov=noise_cov,
                           decay_per_dim=decay_arr.size > 1, link=link, readout=readout,
                           bin_size=bin_size)
        if not isinstance(dtype, str):  # np.float32, np.dtype("float64"), torch.float64
            dtype = str(dtype).removeprefix("torch.") if isinstance(dtype, torch.dtype) \
                else np.dtype(dtype).name
        tdtype = {"float32": torch.float32, "float64": torch.float64}[
            check_option("dtype", dtype, ("float32", "float64"))]
        model = LowRankRNNModel(mcfg, generator=torch.Generator().manual_seed(0)).to(tdtype)
        model.load_arrays({
            "U": U, "V": V, "h": h, "decay": decay_arr, "B": B, "noise_z": nz,
            "init_mean": np.zeros(R) if init_mean is None else check_array(
                "init_mean", init_mean, shape=(R,)),
            "init_sd": np.broadcast_to(check_array("init_sd", init_sd, ndim=(0, 1)), (R,)),
            **obs_arrays})
        est = cls(rank=R, n_units=N, observation=obs, nonlinearity=nl.to_config(),
                  n_particles=n_particles, proposal=proposal, noise_cov=noise_cov,
                  decay_per_dim=decay_arr.size > 1, link=link, readout=readout,
                  random_state=random_state, device=device, verbose=False)
        # 'auto' is the estimator's rule unless that proposal is trained: an encoder given no
        # data would be untrained, so a network given by its parameters filters with
        # 'bootstrap' then
        prop = proposal
        if prop == "auto":
            prop = obs_cls.default_proposal
            if PROPOSALS[prop].trained:
                prop = "bootstrap"
        dummy = BinnedData(np.zeros((1, 2, n_ch)), bin_size, obs_cls.kind,
                           inputs=np.zeros((1, 2, n_in)) if n_in else None)
        _, tcfg, _ = est._validated_settings(dummy)
        dev = _resolve_device(device)
        est._set_fitted(model=model.to(dev), proposal=make_proposal(prop, model).to(dev, tdtype),
                        proposal_name=prop, model_config=mcfg, train_config=tcfg,
                        kind=obs_cls.kind,
                        channel_names=[f"ch{i}" for i in range(n_ch)],
                        random_seed=_seed_from(random_state), device=dev,
                        history=TrainHistory())
        return est


# ---------------------------------------------------------------------------- serialisation
def export_fit(est: LowRankRNN) -> FitRecord:
    """Everything needed to rebuild a fitted estimator, as a :class:`~nwb_lrnn.io.FitRecord`
    of numpy arrays and JSON values (what the NWB writer, which knows no torch, stores).

    No pickle: tensors become arrays, settings become JSON objects.
    """
    est._check_fitted("export_fit")
    state = {f"model.{k}": v.detach().cpu().numpy() for k, v in est.model_.state_dict().items()}
    state.update({f"proposal.{k}": v.detach().cpu().numpy()
                  for k, v in est.proposal_.state_dict().items()})
    params = est.get_params()
    nl = params["nonlinearity"]
    params["nonlinearity"] = nl.to_config() if isinstance(nl, Nonlinearity) else nl
    params["random_state"] = est.random_seed_
    params["device"] = "auto"
    zs = getattr(est, "zscore_", None)
    return FitRecord(
        state=state,
        model_config=json.loads(est.model_config_.to_json()),
        train_config=json.loads(est.train_config_.to_json()),
        estimator_params=json.loads(json.dumps(params, sort_keys=True)),
        meta={"kind": est.kind_, "bin_size": est.bin_size_,
              "channel_names": list(est.channel_names_), "proposal": est.proposal_name_,
              "random_seed": int(est.random_seed_), "history": est.history_.to_dict(),
              "stability": _json_safe(getattr(est, "stability_", None)),
              "dtype": str(est._dtype()).replace("torch.", "")},
        parameters=est.parameters_,
        zscore=None if zs is None else {"mean": list(zs["mean"]), "std": list(zs["std"])})


def _later_buffers(module: torch.nn.Module) -> set[str]:
    """State keys of buffers added after fits were first written (a submodule's
    ``later_buffers``): a file without them keeps the buffer's default, which is how that
    file's fit behaved."""
    return {f"{name}.{b}" if name else b for name, sub in module.named_modules()
            for b in getattr(sub, "later_buffers", ())}


def import_fit(record: FitRecord, *, device: str = "auto") -> LowRankRNN:
    """Inverse of :func:`export_fit`: a fitted :class:`LowRankRNN`.

    Raises
    ------
    ValueError
        A tensor is missing or has the wrong shape (the message names it).
    """
    mcfg = ModelConfig.from_json(json.dumps(record.model_config))
    tc = dict(record.train_config)
    params = dict(record.estimator_params)
    # fits written before restore_best existed kept the last epoch (unless patience was set)
    tc.setdefault("restore_best", False)
    params.setdefault("restore_best", False)
    tcfg = TrainConfig(**tc)
    params["device"] = device
    meta = record.meta
    est = LowRankRNN(**params)
    dev = _resolve_device(device)
    model = LowRankRNNModel(mcfg)
    if meta.get("dtype") == "float64":  # built with from_parameters from float64 arrays
        model = model.to(torch.float64)
    kind = meta["kind"]
    prop_name = meta["proposal"]
    proposal = make_proposal(prop_name, model, **est._proposal_options(kind))
    proposal = proposal.to(next(model.parameters()).dtype)
    state = record.state
    for prefix, module in (("model.", model), ("proposal.", proposal)):
        own = module.state_dict()
        new = {}
        later = _later_buffers(module)
        for key, ref in own.items():
            full = prefix + key
            if full not in state and key in later:  # written before this buffer existed
                new[key] = ref
                continue
            if full not in state:
                raise ValueError(f"the fit has no tensor {full!r} (expected shape "
                                 f"{tuple(ref.shape)}); the file is incomplete.")
            arr = np.asarray(state[full])
            if tuple(arr.shape) != tuple(ref.shape):
                raise ValueError(f"tensor {full!r} has shape {arr.shape}, expected "
                                 f"{tuple(ref.shape)} for this model configuration.")
            new[key] = torch.as_tensor(arr.copy(), dtype=ref.dtype)
        module.load_state_dict(new)
    hist = TrainHistory()
    for k, v in (meta.get("history") or {}).items():
        if hasattr(hist, k):
            setattr(hist, k, v)
    stab = meta.get("stability")
    est._set_fitted(model=model.to(dev), proposal=proposal.to(dev), proposal_name=prop_name,
                    model_config=mcfg, train_config=tcfg, kind=kind,
                    channel_names=list(meta["channel_names"]),
                    random_seed=int(meta["random_seed"]), device=dev, history=hist,
                    stability={k: (float(v) if v in ("inf", "-inf", "nan") else v)
                               for k, v in stab.items()} if isinstance(stab, dict) else None)
    zs = record.zscore
    if isinstance(zs, dict) and {"mean", "std"} <= set(zs):
        mean, std = np.asarray(zs["mean"], float), np.asarray(zs["std"], float)
        if mean.shape == std.shape == (mcfg.n_channels,):
            est.zscore_ = {"mean": mean.tolist(), "std": std.tolist()}
    return est


def _json_safe(report: dict | None) -> dict | None:
    """A stability report with non-finite floats as strings (JSON has no inf)."""
    if report is None:
        return None
    return {k: (repr(v) if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in report.items()}
