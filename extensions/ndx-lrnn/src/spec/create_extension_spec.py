"""Generate the ndx-lrnn NWB extension spec (the one place the schema is written).

Run from extensions/ndx-lrnn:  python src/spec/create_extension_spec.py
It writes spec/ndx-lrnn.namespace.yaml and spec/ndx-lrnn.extensions.yaml (packaged into the
ndx_lrnn wheel, loaded by ``import ndx_lrnn``, cached into every file written). VERSION is the
package's version too (``ndx_lrnn.__version__`` is read from the namespace). A test checks that
the committed YAML equals what this script generates.
"""

from __future__ import annotations

import sys
from pathlib import Path

from pynwb.spec import (
    NWBAttributeSpec,
    NWBDatasetSpec,
    NWBGroupSpec,
    NWBNamespaceBuilder,
    export_spec,
)

NAME = "ndx-lrnn"
VERSION = "0.4.0"
OUT = Path(__file__).resolve().parents[2] / "spec"


def _attr(name, doc, dtype="text", required=True, **kw):
    return NWBAttributeSpec(name=name, doc=doc, dtype=dtype, required=required, **kw)


def _ds(name, doc, dims, dtype="float", required=True, **kw):
    return NWBDatasetSpec(name=name, doc=doc, dtype=dtype, dims=dims,
                          shape=[None] * len(dims), quantity=1 if required else "?", **kw)


def _col(name, doc, dims, dtype="float", required=True):
    return NWBDatasetSpec(name=name, doc=doc, dtype=dtype, dims=dims,
                          shape=[None] * len(dims), neurodata_type_inc="VectorData",
                          quantity=1 if required else "?")


def build_types() -> list:
    model = NWBGroupSpec(
        neurodata_type_def="LowRankRNNModel", neurodata_type_inc="NWBDataInterface",
        default_name="model",
        doc=("A stochastic low-rank RNN fitted with variational sequential Monte Carlo "
             "(Pals et al., NeurIPS 2024): z_{t+1} = a*z_t + V phi(U z_t + B u_t - h) + eps, "
             "eps ~ N(0, noise_cov), in latent coordinates z (rank R), with N units; "
             "observations y_t = C z_t + d + noise (gaussian) or Poisson counts with rate "
             "f(C z_t + d) (affine readout) or f(gain*phi(u_i z_t - h_i) + bias) (units)."),
        attributes=[
            _attr("description", "What was fitted, on which data."),
            _attr("rank", "Latent dimension R.", "int"),
            _attr("n_units", "Number of RNN units N.", "int"),
            _attr("n_channels", "Number of observed channels.", "int"),
            _attr("n_inputs", "Number of external inputs (0 for none).", "int"),
            _attr("nonlinearity", "Unit nonlinearity phi as JSON, e.g. "
                  '{"name": "clipped_relu", "clip": 1.0}.'),
            _attr("observation", "Observation model: 'gaussian' or 'poisson'."),
            _attr("proposal", "SMC proposal used to fit: 'optimal', 'encoder' or "
                  "'bootstrap'."),
            _attr("bin_size", "Time step of the model in seconds.", "float"),
            _attr("model_config", "Full model configuration as JSON."),
            _attr("train_config", "Training settings as JSON (particles, learning rate, "
                  "epochs, ...)."),
            _attr("package_version", "Version of nwb_lrnn that wrote the fit."),
            _attr("random_seed", "Seed of the fit.", "int"),
            _attr("source", "Provenance of the data the model was fitted on, as JSON (file and "
                  "checksum, or DANDI id, version and asset).", required=False),
        ],
        datasets=[
            _ds("U", "Left connectivity factor (units x rank); unit activity x = U z.",
                ["n_units", "rank"]),
            _ds("V", "Right connectivity factor (rank x units); J = U V.", ["rank", "n_units"]),
            _ds("h", "Unit thresholds.", ["n_units"]),
            _ds("decay", "Decay a = 1 - dt/tau, one shared value or one per latent dim.",
                ["n_decay"]),
            _ds("B", "Input weights (units x inputs).", ["n_units", "n_inputs"],
                required=False),
            _ds("noise_cov", "Latent noise covariance Sigma_z.", ["rank", "rank"]),
            _ds("init_mean", "Mean of the initial latent state.", ["rank"]),
            _ds("init_cov", "Covariance of the initial latent state.", ["rank", "rank"]),
            _ds("C", "Observation matrix (channels x rank), affine readouts.",
                ["n_channels", "rank"], required=False),
            _ds("d", "Observation offset (channels), affine readouts.", ["n_channels"],
                required=False),
            _ds("noise_x", "Gaussian observation noise SD per channel (with AR(1) noise: the "
                "SD of its innovations).", ["n_channels"], required=False),
            _ds("noise_x_cov", "Covariance of the innovations of the AR(1) observation noise "
                "(observation 'gaussian_ar1').", ["n_channels", "n_channels"], required=False),
            _ds("noise_ar", "AR(1) coefficient of each channel's Gaussian observation noise, "
                "e_t = a e_{t-1} + innovation (observation 'gaussian_ar1').", ["n_channels"],
                required=False),
            _ds("noise_ar_matrix", "Map A of the VAR(1) observation noise, e_t = A e_{t-1} + "
                "innovation (observation 'gaussian_var1'); spectral radius < 1.",
                ["n_channels", "n_channels_prev"], required=False),
            _ds("gain", "Per-neuron gain of the one-to-one Poisson readout.", ["n_channels"],
                required=False),
            _ds("bias", "Per-neuron bias of the one-to-one Poisson readout.", ["n_channels"],
                required=False),
            _ds("training_bound", "VSMC bound per time step after each epoch (training).",
                ["n_epochs"]),
            _ds("validation_bound", "VSMC bound per time step after each epoch "
                "(validation data).", ["n_epochs"], required=False),
            _ds("state_values", "All trainable tensors of the model and of the proposal "
                "(raw parametrisation), flattened and concatenated; with state_keys and "
                "state_shapes they restore the fit exactly.", ["n_values"]),
            _ds("state_keys", "Names of the tensors in state_values ('model.' or "
                "'proposal.' + parameter name).", ["n_tensors"], dtype="text"),
            _ds("state_shapes", "Shape of each tensor in state_values, as JSON lists.",
                ["n_tensors"], dtype="text"),
            NWBDatasetSpec(
                name="channels", neurodata_type_inc="DynamicTableRegion", dtype="int",
                dims=["n_channels"], shape=[None], quantity="?",
                doc=("The recorded channels the model observes, in the order of its "
                     "observation channels: rows of the file's Units table (spike fits) or "
                     "electrodes table (continuous fits), present when the fit was written "
                     "into the file that holds the recording.")),
        ],
    )
    latents = NWBGroupSpec(
        neurodata_type_def="PosteriorLatents", neurodata_type_inc="TimeSeries",
        doc=("Posterior mean of the latent state z_t given the data (particle filter), "
             "trials concatenated in time; data is (time, rank)."),
        attributes=[_attr("method", "'smoothed' (given all data) or 'filtering' (given data "
                          "up to t)."),
                    _attr("n_particles", "Particles used.", "int")],
        datasets=[
            _ds("spread", "Posterior SD of z_t across particles, same shape as data.",
                ["num_times", "rank"], required=False),
            _ds("trial_index", "Trial of each time bin (0-based).", ["num_times"], "int"),
        ],
    )
    generated = NWBGroupSpec(
        neurodata_type_def="GeneratedData", neurodata_type_inc="TimeSeries",
        doc=("Surrogate data generated by the fitted model, trials concatenated in time; "
             "data is (time, channels): spike counts per bin or continuous values."),
        attributes=[_attr("kind", "'counts' or 'continuous'."),
                    _attr("burn_in", "Steps simulated and dropped before recording.", "int"),
                    _attr("random_seed", "Seed of the generator.", "int")],
        datasets=[_ds("trial_index", "Trial of each time bin (0-based).", ["num_times"],
                      "int")],
    )
    fixed = NWBGroupSpec(
        neurodata_type_def="FixedPointTable", neurodata_type_inc="DynamicTable",
        doc="Fixed points of the fitted network's latent map, one row per fixed point.",
        attributes=[_attr("method", "'exact' (piecewise-linear, all found) or "
                          "'approximate' (Newton from many starts).")],
        datasets=[
            _col("location", "Fixed point z* in latent coordinates.", ["n_fp", "rank"]),
            _col("unit_activity", "Pre-activation U z* + B u - h of every unit.",
                 ["n_fp", "n_units"]),
            _col("eigenvalues_real", "Real parts of the Jacobian's eigenvalues.",
                 ["n_fp", "rank"]),
            _col("eigenvalues_imag", "Imaginary parts of the Jacobian's eigenvalues.",
                 ["n_fp", "rank"]),
            _col("stability", "'stable', 'saddle', 'unstable' or 'marginal'.", ["n_fp"],
                 "text"),
        ],
    )
    metrics = NWBGroupSpec(
        neurodata_type_def="FitMetrics", neurodata_type_inc="DynamicTable",
        doc="Measures of the fit, one row per measure.",
        datasets=[
            _col("metric", "Name of the measure (e.g. 'bound_per_step', 'dstsp').", ["n"],
                 "text"),
            _col("value", "Value of the measure.", ["n"]),
            _col("split", "Data it was computed on ('train', 'validation', 'test', "
                 "'generated').", ["n"], "text"),
        ],
    )
    return [model, latents, generated, fixed, metrics]


def main(out: Path = OUT) -> None:
    out.mkdir(parents=True, exist_ok=True)
    ns = NWBNamespaceBuilder(
        doc="Stochastic low-rank RNN fits (model, posterior latents, fixed points, surrogate "
            "data, metrics) written by nwb_lrnn.",
        name=NAME, version=VERSION, author=["nwb_lrnn developers"],
        contact=["https://pypi.org/project/nwb-lrnn/"])
    for t in ("NWBDataInterface", "TimeSeries", "DynamicTable", "VectorData",
              "DynamicTableRegion"):
        ns.include_type(t, namespace="core")
    export_spec(ns, build_types(), str(out))
    print(f"wrote {out}/{NAME}.namespace.yaml and {NAME}.extensions.yaml")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT)
