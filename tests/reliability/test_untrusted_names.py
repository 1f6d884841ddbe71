"""Names that become folders never lead outside the data folder: run names, recipe and preset names
(region slugs: tests/test_regions.py; STAC item ids: test_stac_input.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from msc_france.config import load_recipe
from msc_france.errors import UserError
from msc_france.eval.run import EvalRequest, run_eval
from msc_france.names import is_safe_name
from msc_france.pretrain.config import load_pretrain_config
from msc_france.pretrain.trainer import PretrainRequest, run_pretrain
from tests.pretrain_fixtures import write_preset

ESCAPES = ["../escape", "../../etc/passwd", "/tmp/escape", "..", ".", "a/b", "", "-rf", "run\nname"]


@pytest.mark.parametrize("name", ESCAPES)
def test_unsafe_names_are_refused(name: str) -> None:
    assert not is_safe_name(name)


def test_safe_names_are_kept() -> None:
    assert all(is_safe_name(n) for n in ("pretrain-demo", "pretrain-demo-dino", "msc-france", "run_2.v3",
                                         "S2B_MSIL2A_20230716T105031_R051_T31TCJ_20230716T170000"))


@pytest.mark.parametrize("name", ["../escape", "/tmp/escape"])
def test_run_names_never_escape_the_runs_folder(tmp_path: Path, name: str) -> None:
    data = tmp_path / "data"
    preset = write_preset(tmp_path)
    with pytest.raises(UserError, match=r"run name .* is not a safe name"):
        run_pretrain(PretrainRequest(config=preset, data=data, run=name, store=str(tmp_path / "none.zarr"), quiet=True))
    with pytest.raises(UserError, match=r"run name .* is not a safe name"):
        run_eval(EvalRequest(run=name, data=data))
    assert not data.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["tiny.yaml"]


def test_recipe_and_preset_names_are_checked(tmp_path: Path) -> None:
    recipe = yaml.safe_load((Path(__file__).parents[2] / "pipelines" / "demo.yaml").read_text())
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump({**recipe, "name": "../../outside"}))
    with pytest.raises(UserError, match=r"recipe\.yaml: name: '../../outside' is not a safe folder name"):
        load_recipe(str(tmp_path / "recipe.yaml"))
    preset = write_preset(tmp_path)
    preset.write_text(preset.read_text().replace("name: pretrain-tiny", "name: ../outside"))
    with pytest.raises(UserError, match=r"name: '\.\./outside' is not a safe folder name"):
        load_pretrain_config(preset)
