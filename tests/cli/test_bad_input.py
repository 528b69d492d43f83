"""The bad-input catalogue: each mistake gives one line naming the problem and the
fix, a non-zero exit code, no traceback, and leaves an existing run untouched."""

from __future__ import annotations

import errno
import hashlib
import importlib.util
import shutil
from pathlib import Path

import pytest
import yaml
from ase import Atoms
from ase.build import bulk
from ase.io import write
from typer.testing import CliRunner

from pfd.cli.main import app
from tests.conftest import BASE_CONFIG, merge

EMT_MODEL = {"backend": "pfd.testing:EMTBackend", "checkpoint": "foundation.json"}
VALID = merge(BASE_CONFIG, {"model": EMT_MODEL, "explore": {"workers": 1}})


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """A directory holding a finished run (run/) and input files for the cases."""
    root = tmp_path_factory.mktemp("badinput")
    write(root / "cu.extxyz", bulk("Cu", "fcc", 3.6, cubic=True))
    write(root / "si.extxyz", bulk("Si", "diamond", 5.43))
    write(
        root / "overlap.extxyz",
        Atoms("Cu2", [[0, 0, 0], [0.1, 0, 0]], cell=[6] * 3, pbc=True),
    )
    write(root / "dimer.xyz", Atoms("Cu2", [[0, 0, 0], [2.5, 0, 0]]))
    (root / "empty.xyz").write_text("")
    (root / "junk.cif").write_text("data_junk\n_cell_length_a what\n")
    (root / "afile").write_text("")
    (root / "valid.yaml").write_text(yaml.safe_dump(VALID))
    result = CliRunner().invoke(app, ["run", str(root / "valid.yaml"), "-q"])
    assert result.exit_code == 0, result.output
    return root


def _digest(run: Path) -> dict[str, str]:
    return {
        str(p.relative_to(run)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(run.rglob("*"))
        if p.is_file()
    }


def _yaml(update: dict) -> str:
    return yaml.safe_dump(merge(VALID, update))


def _variants(variants: dict, path: str = "cu.extxyz") -> str:
    return _yaml({"structures": [{"path": path, "variants": variants}]})


VARIANT_CASES = {
    "Miller index of two numbers": (
        _variants({"surfaces": [[1, 1]]}),
        "'structures.0.variants.surfaces': bad Miller index [1, 1]: give three "
        "integers, not all zero, e.g. [1, 1, 1]",
    ),
    "Miller index as a string": (
        _variants({"surfaces": "111"}),
        "give a list of Miller indices, e.g. [[1, 1, 1]], not '111'",
    ),
    "unknown variant": (
        _variants({"vacancy": True}),
        "unknown key 'structures.0.variants.vacancy'",
    ),
    "variant of a molecule": (
        _variants({"vacancies": True}, "dimer.xyz"),
        "structure 'dimer' is not periodic (pbc=[False, False, False]): a variant "
        "needs a crystal",
    ),
}

CASES = {
    "malformed yaml": ("structures: [\n", "malformed YAML at line"),
    "not a mapping": ("- just\n- a list\n", "expected a mapping"),
    "unknown key": (_yaml({"explor": {}}), "unknown key 'explor'"),
    "unknown nested key": (_yaml({"explore": {"temp_K": [3]}}), "'explore.temp_K'"),
    "wrong type": (_yaml({"explore": {"steps": "many"}}), "'explore.steps'"),
    "negative temperature": (_yaml({"explore": {"temperatures_K": [-1]}}), "> 0 K"),
    "no pressures": (_yaml({"explore": {"pressures_bar": []}}), "use [null] for NVT"),
    "zero iterations": (
        _yaml({"convergence": {"max_iterations": 0}}),
        "'convergence.max_iterations'",
    ),
    "no structures": (_yaml({"structures": []}), "'structures'"),
    "missing structure": (_yaml({"structures": [{"path": "nope.cif"}]}), "not found"),
    "empty structure file": (
        _yaml({"structures": [{"path": "empty.xyz"}]}),
        "empty.xyz",
    ),
    "unreadable structure": (
        _yaml({"structures": [{"path": "junk.cif"}]}),
        "cannot read structure file",
    ),
    "overlapping atoms": (
        _yaml({"structures": [{"path": "overlap.extxyz"}]}),
        "(overlapping)",
    ),
    "element not in model": (
        _yaml({"structures": [{"path": "si.extxyz"}]}),
        "does not cover element(s) Si",
    ),
    "missing model file": (
        _yaml({"model": {"backend": "sevennet", "checkpoint": "missing.pth"}}),
        "nothing is downloaded",
    ),
    "unknown backend": (
        _yaml({"model": {"backend": "mace9"}}),
        "unknown backend 'mace9'",
    ),
    "unknown DFT code": (_yaml({"labeler": {"code": "vasp9"}}), "'labeler.code'"),
    "DFT binary not installed": (
        _yaml(
            {"labeler": {"code": "abacus", "calculator": None, "command": "abacus9"}}
        ),
        "ABACUS binary 'abacus9' (from labeler.command 'abacus9') is not on PATH",
    ),
    "replay data for a backend without replay": (
        _yaml({"model": {"backend": "sevennet"}, "finetune": {"replay_data": "x"}}),
        "finetune.replay_data (multi-head replay) is for model.backend 'mace'",
    ),
    "calculator missing": (
        _yaml({"labeler": {"calculator": None}}),
        "needs labeler.calculator",
    ),
    "calculator not importable": (
        _yaml({"labeler": {"calculator": "nowhere.calc:X"}}),
        "cannot import module 'nowhere.calc'",
    ),
    "calculator path malformed": (
        _yaml({"labeler": {"calculator": "ase.calculators.emt"}}),
        "must look like 'module:Class'",
    ),
    "calculator bad parameter": (
        _yaml({"labeler": {"calculator": "pfd.testing:CountingEMT"}}),  # needs log=
        "labeler.parameters do not fit",
    ),
    "run dir is a file": (
        _yaml({"run_dir": "afile/run"}),
        "cannot write to run directory",
    ),
    "incompatible run dir": (
        _yaml({"initial": {"frames_per_structure": 9}}),
        "'initial' cannot change mid-run",
    ),
    "changed seed": (_yaml({"seed": 99}), "'seed' cannot change mid-run"),
    **{f"variants: {name}": case for name, case in VARIANT_CASES.items()},
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input(workdir: Path, case: str):
    text, expected = CASES[case]
    config = workdir / f"{case.replace(' ', '_')}.yaml"
    config.write_text(text)
    before = _digest(workdir / "run")
    result = CliRunner().invoke(app, ["run", str(config)])
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("Error: ")
    assert expected in lines[0]
    assert "Traceback" not in result.output
    assert _digest(workdir / "run") == before


@pytest.mark.parametrize("case", list(VARIANT_CASES))
def test_bad_variants_in_dry_run(workdir: Path, case: str):
    text, expected = VARIANT_CASES[case]
    config = workdir / f"dry_{case.replace(' ', '_')}.yaml"
    config.write_text(text)
    result = CliRunner().invoke(app, ["run", "--dry-run", str(config)])
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert expected in lines[0]
    assert not (workdir / "run" / ".dryrun").exists()  # stopped before timing


def test_dft_code_not_installed(workdir: Path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "gpaw" else real(n, *a)
    )
    config = workdir / "gpaw.yaml"
    config.write_text(_yaml({"labeler": {"code": "gpaw", "calculator": None}}))
    result = CliRunner().invoke(app, ["run", str(config)])
    assert result.exit_code == 1
    assert "GPAW is not installed" in result.output


def test_deepmd_not_installed_is_said_before_fine_tuning(workdir: Path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda n, *a: None if n == "deepmd" else real(n, *a),
    )
    config = workdir / "distill.yaml"
    config.write_text(_yaml({"run_dir": "run-distill", "distill": {"enabled": True}}))
    result = CliRunner().invoke(app, ["run", str(config)])
    assert result.exit_code == 1
    assert "distillation needs DeePMD-kit" in result.output
    assert "distill.enabled: false" in result.output
    assert not (workdir / "run-distill").exists()  # nothing started


def test_disk_full_while_writing_a_model(workdir: Path, monkeypatch):
    import pfd.loop

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pfd.loop.shutil, "copyfile", no_space)
    before = _digest(workdir / "run")
    result = CliRunner().invoke(app, ["run", str(workdir / "valid.yaml"), "-q"])
    assert result.exit_code == 1
    assert "No space left on device" in result.output
    assert "free some space" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert _digest(workdir / "run") == before


def test_missing_config_file(workdir: Path):
    result = CliRunner().invoke(app, ["run", str(workdir / "absent.yaml")])
    assert result.exit_code == 1
    assert "config file" in result.output
    assert "not found" in result.output


def test_other_commands_name_their_bad_input(workdir: Path):
    status = CliRunner().invoke(app, ["status", str(workdir)])
    assert status.exit_code == 1
    assert "not a pfd run directory" in status.output
    test = CliRunner().invoke(app, ["test", "7net-0", str(workdir / "none.extxyz")])
    assert test.exit_code == 1
    assert "data file" in test.output


def test_copy_of_finished_run_still_resumes(workdir: Path, tmp_path: Path):
    shutil.copytree(workdir / "run", tmp_path / "run")
    result = CliRunner().invoke(
        app,
        ["run", str(workdir / "valid.yaml"), "--run-dir", str(tmp_path / "run"), "-q"],
    )
    assert result.exit_code == 0, result.output


def _pfd_test_error(*args: str) -> str:
    """``pfd test ARGS``: exit 1 and a one-line message (returned)."""
    result = CliRunner().invoke(app, ["test", *args])
    assert result.exit_code == 1, result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert "unexpected" not in result.output
    return result.output


def test_pfd_test_names_bad_models_and_data(workdir: Path, tmp_path: Path):
    from ase.calculators.singlepoint import SinglePointCalculator

    data = str(workdir / "run" / "dft.extxyz")
    energy_only = bulk("Cu", "fcc", 3.6)
    energy_only.calc = SinglePointCalculator(energy_only, energy=-3.5)
    write(tmp_path / "energies.extxyz", energy_only)
    out = _pfd_test_error("7net-0", str(tmp_path / "energies.extxyz"))
    assert "no forces" in out
    assert "give frames labelled with forces" in out
    out = _pfd_test_error("7net-0", data, "--threads", "0")
    assert "--threads 0" in out
    assert "1 or more" in out
    torch = pytest.importorskip("torch")
    torch.save([{"pos": torch.zeros(2, 3)}], tmp_path / "graphs.pt")
    out = _pfd_test_error(str(tmp_path / "graphs.pt"), data)
    assert "graphs.pt" in out
    assert "not a model file" in out
    assert "a model file is" in out
    if importlib.util.find_spec("deepmd") is not None:
        (tmp_path / "graph.pb").write_text("not a graph\n")
        out = _pfd_test_error(str(tmp_path / "graph.pb"), data)
        assert "graph.pb" in out
        assert "not a frozen DeePMD-kit graph" in out


# --- checked before any DFT runs; corrupt run files (issue 18) ---------------------

BEFORE_DFT = {
    "calculator keyword typo": (
        {"labeler": {"parameters": {"asap_cutof": True}}},
        "EMT has no keyword 'asap_cutof'",
    ),
    "GPAW keyword typo": (
        {"labeler": {"code": "gpaw", "calculator": None, "parameters": {"ecutt": 3}}},
        "GPAW has no keyword 'ecutt'",
    ),
    "CHGNet checkpoint that is no model": (
        {"model": {"backend": "chgnet", "checkpoint": "afile"}},
        "cannot load CHGNet model",
    ),
    "lone atom in vacuum": (
        {"structures": [{"path": "atom.xyz"}]},
        "single atom without a periodic cell",
    ),
    "zero supercell": (
        {"distill": {"supercells": [[0, 1, 1]]}},
        "'distill.supercells.0.0'",
    ),
    "NaN temperature": (
        {"explore": {"temperatures_K": [float("nan")]}},
        "'explore.temperatures_K.0': Input should be a finite number",
    ),
    "absurd MD steps": ({"explore": {"steps": 10**29}}, "'explore.steps'"),
}


@pytest.mark.parametrize("case", list(BEFORE_DFT))
def test_refused_before_any_dft(workdir: Path, case: str):
    update, expected = BEFORE_DFT[case]
    write(workdir / "atom.xyz", Atoms("Cu", [[0, 0, 0]]))
    config = workdir / f"{case.replace(' ', '_')}.yaml"
    config.write_text(_yaml({**update, "run_dir": f"run-{case.replace(' ', '_')}"}))
    result = CliRunner().invoke(app, ["run", str(config)])
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert expected in lines[0]
    assert not (workdir / f"run-{case.replace(' ', '_')}" / "label").exists()


@pytest.mark.parametrize(
    ("name", "way_out"),
    [
        ("state.json", "delete it"),
        ("config.json", "delete it"),
        ("pfd.db", "pfd recover"),
    ],
)
def test_corrupt_run_file_is_named_with_the_way_out(
    workdir: Path, tmp_path: Path, name: str, way_out: str
):
    run = tmp_path / "run"
    shutil.copytree(workdir / "run", run)
    path = run / name
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    before = _digest(run)
    commands = [["run", str(workdir / "valid.yaml"), "--run-dir", str(run)]]
    if name != "config.json":
        commands.append(["status", str(run)])
    for args in commands:
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 1, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1, result.output
        assert str(path) in lines[0]
        assert way_out in lines[0]
        assert "unexpected" not in lines[0]
        assert _digest(run) == before  # config.json not rewritten, nothing else
    if name == "pfd.db":  # the way out works
        assert CliRunner().invoke(app, ["recover", str(run)]).exit_code == 0
        again = CliRunner().invoke(app, commands[0] + ["-q"])
        assert again.exit_code == 0, again.output


# --- several materials (issue 20): names, explore.per_structure --------------------

MATERIAL_CASES = {
    "per_structure names no structure": (
        _yaml({"explore": {"per_structure": {"Au": {"steps": 5}}}}),
        "explore.per_structure names 'Au', which is no structure; the structures "
        "are: cu",
    ),
    "NPT for a structure without a cell": (
        _yaml(
            {
                "structures": [{"path": "cu.extxyz"}, {"path": "dimer.xyz"}],
                "explore": {"per_structure": {"dimer": {"pressures_bar": [1000]}}},
            }
        ),
        "structure 'dimer' is not periodic: NPT needs a cell; use pressures_bar: "
        "[null] in explore.per_structure.dimer",
    ),
    "NPT in a run without a crystal": (
        _yaml({"structures": [{"path": "dimer.xyz"}]}),  # explore: [null, 1000]
        "structure 'dimer' is not periodic: NPT needs a cell; use pressures_bar: "
        "[null] in explore",
    ),
    "two structures of one name": (
        _yaml(
            {"structures": [{"path": "cu.extxyz"}, {"path": "si.extxyz", "name": "cu"}]}
        ),
        "two structures are named 'cu' (cu.extxyz, si.extxyz); give each a distinct "
        "structures[].name",
    ),
    "empty name": (
        _yaml({"structures": [{"path": "cu.extxyz", "name": ""}]}),
        "'structures.0.name'",
    ),
}


@pytest.mark.parametrize("dry", [False, True])
@pytest.mark.parametrize("case", list(MATERIAL_CASES))
def test_bad_materials(workdir: Path, case: str, dry: bool):
    text, expected = MATERIAL_CASES[case]
    config = workdir / f"mat_{case.replace(' ', '_')}.yaml"
    config.write_text(text)
    before = _digest(workdir / "run")
    args = ["run", "--dry-run", str(config)] if dry else ["run", str(config)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("Error: ")
    assert expected in lines[0]
    assert _digest(workdir / "run") == before  # checked before any work
    assert not (workdir / "run" / ".dryrun").exists()
