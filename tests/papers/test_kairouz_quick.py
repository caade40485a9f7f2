"""The KLS 2021 reproduction runs end to end at a tiny size and writes the expected table."""

import importlib.util
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "papers" / "kairouz2021" / "reproduce.py"


def _load():
    spec = importlib.util.spec_from_file_location("kairouz2021_reproduce", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_quick_mode_writes_every_row_and_the_end_to_end_check(tmp_path, capsys):
    repro = _load()
    assert repro.main(["--quick", "--no-plot", "--out", str(tmp_path), "--clients", "20",
                       "--e2e-clients", "10"]) == 0
    table = (tmp_path / "table.md").read_text()
    for mech in ("dgauss", "skellam"):
        for growth in ("linear", "sqrt"):
            assert f"| 20 | {mech} | {growth} | " in table
    assert "| 12 bits | 16 bits |" in table
    assert "epsilon = 3, delta = 1e-05" in table
    assert "less than 16 bits" in table  # the paper's claim beside the numbers
    assert "identical to the direct path's: True" in table
    assert "max |protocol aggregate - direct aggregate| = 0 " in table
    assert not (tmp_path / "mse_vs_bits.png").exists()
    assert "blindsum" in capsys.readouterr().out  # the version banner


def test_calibrated_multipliers_meet_epsilon_and_never_beat_the_central_gaussian():
    repro = _load()
    z_central = repro.central_multiplier(3.0)
    assert 1.3 < z_central < 1.7

    def make(z):
        return repro.make_config(clients=20, bits=16, z=z, mechanism="dgauss", growth="linear",
                                 setup=repro.QUICK)

    z = repro.calibrate(3.0, make)
    assert repro.dp.distributed_epsilon(make(z), delta=repro.DELTA)[0] <= 3.0
    assert z >= z_central  # rounding only inflates the sensitivity
    assert repro.calibrate(3.0, lambda z: repro.make_config(
        clients=1000, bits=4, z=z, mechanism="dgauss", growth="linear", setup=repro.QUICK)) is None
