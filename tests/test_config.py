from __future__ import annotations

from pathlib import Path

import pytest

from pfd.config import DistillConfig, load_config, load_distill_settings
from pfd.errors import ConfigError


def test_valid_config_resolves_paths(make_config, tmp_path: Path):
    cfg = load_config(make_config())
    assert cfg.structures[0].path == (tmp_path / "cu.extxyz").resolve()
    assert cfg.run_dir == (tmp_path / "run").resolve()
    assert cfg.explore.pressures_bar == [None, 1000.0]
    assert cfg.finetune.refit_e0 is True  # default written in one place


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"explore": {"temprature_K": [300]}}, "unknown key 'explore.temprature_K'"),
        ({"bogus": 1}, "unknown key 'bogus'"),
        ({"explore": {"steps": "many"}}, "invalid value for 'explore.steps'"),
        ({"explore": {"temperatures_K": [-5]}}, "must be > 0 K"),
        ({"labeler": {"code": "vasp2"}}, "invalid value for 'labeler.code'"),
        ({"labeler": {"code": "ase", "calculator": None}}, "needs labeler.calculator"),
        ({"select": {"max_per_iteration": 0}}, "select.max_per_iteration"),
        ({"structures": []}, "invalid value for 'structures'"),
        (
            {"model": {"backend": "sevennet"}, "finetune": {"replay_data": "r.xyz"}},
            "finetune.replay_data (multi-head replay) is for model.backend 'mace'",
        ),
        (
            {
                "model": {"backend": "mace", "checkpoint": "mace-mp.model"},
                "finetune": {"replay_data": "mptrj_subset.extxyz"},
            },
            "finetune.replay_data '",
        ),
    ],
)
def test_config_errors_name_the_key(make_config, overrides, expected):
    with pytest.raises(ConfigError) as err:
        load_config(make_config(overrides))
    assert expected in str(err.value)
    if "replay_data '" in expected:
        assert "mptrj_subset.extxyz' not found" in str(err.value)
    assert "\n" not in str(err.value)


def test_malformed_yaml(tmp_path: Path):
    path = tmp_path / "bad.yaml"
    path.write_text("structures:\n  - path: [unclosed\n")
    with pytest.raises(ConfigError, match="malformed YAML at line"):
        load_config(path)


def test_missing_config_file(tmp_path: Path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")


def test_resume_checks_physics_not_how_jobs_run(make_config, tmp_path):
    import json

    from pfd.config import load_config
    from pfd.errors import PFDError
    from pfd.state import CONFIG, prepare_run_dir

    config = load_config(make_config())
    assert prepare_run_dir(config) is False
    run_dir = config.run_dir
    # a run directory written before newer keys existed still resumes
    recorded = json.loads((run_dir / CONFIG).read_text())
    del recorded["labeler"]["launcher"], recorded["distill"]
    (run_dir / CONFIG).write_text(json.dumps(recorded))
    labeler = config.labeler.model_copy(update={"workers": 7, "timeout_s": 60.0})
    prepare_run_dir(config.model_copy(update={"labeler": labeler}), n_labelled=3)
    physics = config.labeler.model_copy(update={"parameters": {"asap_cutoff": True}})
    with pytest.raises(PFDError, match=r"'labeler.parameters' cannot change"):
        prepare_run_dir(config.model_copy(update={"labeler": physics}), n_labelled=3)
    # no frame labelled yet: the labeller may still be fixed
    assert prepare_run_dir(config.model_copy(update={"labeler": physics})) is True


def test_each_backend_has_its_default_checkpoint():
    from pfd.config import ModelConfig

    assert ModelConfig().checkpoint == "7net-0"
    assert ModelConfig(backend="chgnet").checkpoint == "chgnet-0.3.0"
    assert ModelConfig(backend="chgnet", checkpoint="m.pth").checkpoint == "m.pth"
    with pytest.raises(ValueError, match=r"model\.checkpoint is required"):
        ModelConfig(backend="my.module:Backend")


@pytest.mark.parametrize("name", ["chgnet-0.3.0", "7net-l3i5"])
def test_shipped_checkpoint_names_are_not_paths(make_config, name):
    # 'chgnet-0.3.0' looks like a file with suffix '.0': it must reach the backend
    cfg = load_config(make_config({"model": {"backend": "chgnet", "checkpoint": name}}))
    assert cfg.model.checkpoint == name


def test_checkpoint_files_resolve_next_to_the_yaml(make_config, tmp_path: Path):
    (tmp_path / "mine-1.0").write_bytes(b"x")
    cfg = load_config(make_config({"model": {"checkpoint": "mine-1.0"}}))
    assert cfg.model.checkpoint == str((tmp_path / "mine-1.0").resolve())
    for name in ("models/m.pth", "missing.pth"):  # not found: named in full later
        cfg = load_config(make_config({"model": {"checkpoint": name}}))
        assert cfg.model.checkpoint == str((tmp_path / name).resolve())


def test_distill_settings_from_a_partial_or_whole_yaml(make_config, tmp_path: Path):
    base = DistillConfig(student={"steps": 14000, "fitting": [32, 32]})
    part = tmp_path / "longer.yaml"
    part.write_text("distill:\n  student: {steps: 80000}\n")
    merged = load_distill_settings(part, base)
    assert merged.student.steps == 80000
    assert merged.student.fitting == [32, 32]  # the rest stays the run's
    part.write_text("distill:\n  student: {stepz: 80000}\n")
    with pytest.raises(ConfigError, match=r"unknown key 'distill\.student\.stepz'"):
        load_distill_settings(part, base)
    whole = make_config({"distill": {"enabled": True, "student": {"steps": 7}}})
    assert load_distill_settings(whole, base).student.steps == 7
    assert load_distill_settings(whole, base).student.fitting != [32, 32]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("explore: {temperatures_K: [.nan]}", "'explore.temperatures_K.0'"),
        ("explore: {temperatures_K: [1e400]}", "'explore.temperatures_K.0'"),
        ("explore: {temperatures_K: [1.0e+6]}", "< 100000 K"),
        ("explore: {steps: 100000000000000000000000000000}", "'explore.steps'"),
        ("explore: {timestep_fs: 50}", "'explore.timestep_fs'"),
        ("explore: {pressures_bar: [.inf]}", "'explore.pressures_bar.0'"),
        ("explore: {guards: {max_energy_jump_eV_atom: .inf}}", "max_energy_jump"),
        ("convergence: {force_rmse_eV_A: .nan}", "'convergence.force_rmse_eV_A'"),
        ("distill: {temperatures_K: [-3]}", "distill.temperatures_K must be > 0 K"),
        ("distill: {supercells: [[2, 0, 2]]}", "'distill.supercells.0.1'"),
        ("report: {diffusion: {timestep_fs: .nan}}", "'report.diffusion.timestep_fs'"),
    ],
)
def test_non_finite_and_unphysical_values_are_refused_at_load(
    make_config, text, expected
):
    """NaN, inf and absurd sizes are one-line errors, never a hang in MD."""
    import yaml

    with pytest.raises(ConfigError) as err:
        load_config(make_config(yaml.safe_load(text)))
    assert expected in str(err.value)
    assert "\n" not in str(err.value)


def test_report_test_data_is_one_file_or_a_list(make_config, tmp_path: Path):
    one = load_config(make_config({"report": {"test_data": "a.extxyz"}}))
    assert one.report.test_data == [(tmp_path / "a.extxyz").resolve()]
    two = load_config(make_config({"report": {"test_data": ["a.extxyz", "b.xyz"]}}))
    assert two.report.test_data == [
        (tmp_path / n).resolve() for n in ("a.extxyz", "b.xyz")
    ]
    assert load_config(make_config()).report.test_data == []


def test_distill_variants_default_to_the_loops(make_config):
    assert load_config(make_config()).distill.variants is None
    cfg = load_config(make_config({"distill": {"variants": {"vacancies": True}}}))
    assert cfg.distill.variants.vacancies
    assert not cfg.distill.variants.melt
    with pytest.raises(ConfigError, match=r"distill\.variants\.surfaces"):
        load_config(make_config({"distill": {"variants": {"surfaces": [[1, 0]]}}}))
