"""What only the local engine does: its default capacity table follows the GPUs it sees."""

from __future__ import annotations

import pytest

from openesd.execution.local import LocalEngine
from tests.conftest import IsolatedSettings
from tests.execution.conftest import RecordingEvents


@pytest.mark.parametrize("gpus, expected", [(0, 8), (2, 2)])
def test_local_capacity_follows_the_gpus(tmp_path, gpus, expected):
    engine = LocalEngine(IsolatedSettings(data_dir=tmp_path), RecordingEvents().consumers, gpus=gpus)
    try:
        quotas = engine.capacity()
    finally:
        engine.close()
    assert quotas["cpu"] == 8
    assert {quotas[t] for t in ("gpu", "ml.g5.2xlarge", "ml.g4dn.xlarge", "ml.g6.48xlarge")} == {expected}
