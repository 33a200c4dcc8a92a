"""Round trips of every ndx-lrnn type through a file, with pynwb and ndx_lrnn only."""

from datetime import datetime, timezone

import ndx_lrnn
import numpy as np
import pytest
from ndx_lrnn.testing import (
    mock_FitMetrics,
    mock_FixedPointTable,
    mock_GeneratedData,
    mock_LowRankRNNModel,
    mock_PosteriorLatents,
)
from pynwb import NWBHDF5IO, NWBFile
from pynwb.file import Subject


def _nwbfile():
    return NWBFile(session_description="ndx-lrnn round trip", identifier="ndx-lrnn-test",
                   session_start_time=datetime(2026, 1, 1, tzinfo=timezone.utc),
                   subject=Subject(subject_id="m1", species="Mus musculus", sex="M",
                                   age="P90D"))


def test_version_is_the_specs():
    assert ndx_lrnn.__version__ == "0.4.0"


def test_every_type_round_trips(tmp_path):
    nwb = _nwbfile()
    mod = nwb.create_processing_module(name="lrnn", description="mock fit")
    objs = [mock_LowRankRNNModel(), mock_PosteriorLatents(), mock_GeneratedData(),
            mock_FixedPointTable(), mock_FitMetrics(bound_per_step=-2.0, d_h=0.1)]
    for obj in objs:
        mod.add(obj)
    path = tmp_path / "mock.nwb"
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    with NWBHDF5IO(str(path), "r") as io:
        back = io.read().processing["lrnn"]
        model = back["model"]
        assert isinstance(model, ndx_lrnn.LowRankRNNModel)
        np.testing.assert_array_equal(model.U[:], objs[0].U)
        assert model.rank == 2 and model.nonlinearity == '{"name": "tanh"}'
        np.testing.assert_array_equal(back["posterior_latents"].spread[:],
                                      objs[1].spread)
        assert back["generated"].kind == "continuous"
        assert len(back["fixed_points"]) == 2
        assert list(back["metrics"]["metric"][:]) == ["bound_per_step", "d_h"]


def test_a_required_field_is_required():
    with pytest.raises((TypeError, ValueError)):
        ndx_lrnn.LowRankRNNModel(name="model", description="no parameters")


def test_every_field_is_documented():
    from pynwb import get_type_map

    spec = get_type_map().namespace_catalog.get_spec(ndx_lrnn.NAMESPACE, "LowRankRNNModel")
    fields = list(spec.attributes) + list(spec.datasets)
    assert fields and all(f.doc and len(f.doc) > 5 for f in fields)


def test_channels_link_rows_of_the_units_table(tmp_path):
    from hdmf.common import DynamicTableRegion

    nwb = _nwbfile()
    for i in range(4):
        nwb.add_unit(spike_times=[0.1 * (i + 1)])
    model = mock_LowRankRNNModel(n_channels=2)
    model.channels = DynamicTableRegion(name="channels", data=[3, 1], table=nwb.units,
                                        description="units observed")
    nwb.create_processing_module(name="lrnn", description="fit").add(model)
    with NWBHDF5IO(str(tmp_path / "f.nwb"), "w") as io:
        io.write(nwb)
    with NWBHDF5IO(str(tmp_path / "f.nwb"), "r") as io:
        back = io.read()
        region = back.processing["lrnn"]["model"].channels
        assert list(region.data[:]) == [3, 1] and region.table is back.units
