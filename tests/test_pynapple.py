"""pynapple in and out: counts identical to pynapple's own, latents back as TsdFrame, and a
labelled xarray output."""

import numpy as np
import pytest

nap = pytest.importorskip("pynapple")

from nwb_lrnn import LowRankRNN  # noqa: E402
from nwb_lrnn.io import from_pynapple, to_pynapple  # noqa: E402


@pytest.fixture(scope="module")
def units():
    rng = np.random.default_rng(0)
    return nap.TsGroup({i: nap.Ts(np.sort(rng.uniform(0, 40, 300 + 50 * i)))
                        for i in (3, 7, 11)}, time_support=nap.IntervalSet(0, 40))


def test_counts_are_pynapples_own(units):
    ep = nap.IntervalSet([0.0, 20.0], [10.0, 30.0])
    data = from_pynapple(units, bin_size=0.1, ep=ep)
    assert data.shape == (2, 100, 3) and data.kind == "counts"
    for k, (s, e) in enumerate(zip(ep.start, ep.end, strict=True)):
        ref = units.count(0.1, ep=nap.IntervalSet(s, e)).values
        np.testing.assert_array_equal(data.values[k], ref)
    np.testing.assert_array_equal(data.channel_ids, [3, 7, 11])
    np.testing.assert_allclose(data.start_times, [0.0, 20.0])
    assert "rate" in data.provenance["unit_metadata"]


def test_unequal_intervals_are_refused(units):
    with pytest.raises(ValueError, match="different numbers of bins"):
        from_pynapple(units, bin_size=0.1, ep=nap.IntervalSet([0.0, 20.0], [10.0, 25.0]))
    with pytest.raises(TypeError, match="TsGroup"):
        from_pynapple({"a": 1}, bin_size=0.1)


def test_latents_come_back_as_tsdframe_and_xarray(units):
    data = from_pynapple(units, bin_size=0.2, ep=nap.IntervalSet([0.0, 20.0], [10.0, 30.0]))
    est = LowRankRNN(rank=2, n_units=6, max_epochs=1, n_particles=4, verbose=False,
                     random_state=0, stability_check=0).fit(data)
    z = est.transform(data)
    tsd = est.transform(data, as_pynapple=True)
    assert isinstance(tsd, nap.TsdFrame) and tsd.shape == (100, 2)
    assert list(tsd.columns) == ["latent_0", "latent_1"]
    np.testing.assert_allclose(tsd.t[:2], [0.1, 0.3])
    np.testing.assert_allclose(tsd.values, z.reshape(-1, 2))
    assert len(tsd.time_support) == 2
    # restricting to a trial's interval gives that trial
    second = tsd.restrict(nap.IntervalSet(20.0, 30.0))
    np.testing.assert_allclose(second.values, z[1])
    xa = est.transform(data, as_xarray=True)
    assert xa.dims == ("trial", "time", "latent") and xa.shape == (2, 50, 2)
    np.testing.assert_allclose(xa.coords["start_time"], [0.0, 20.0])
    np.testing.assert_allclose(xa.sel(trial=1).values, z[1])
    rates = to_pynapple(est.predict_ahead(data), data, columns=["u3", "u7", "u11"])
    assert list(rates.columns) == ["u3", "u7", "u11"]
    with pytest.raises(ValueError, match="at most one"):
        est.transform(data, as_pynapple=True, as_xarray=True)
