"""One way to an ASE calculator for any model file: :func:`load_calculator`.

A model file is a distilled student (a frozen DeePMD graph, ``.pb``), a
foundation or fine-tuned checkpoint of a registered backend (SevenNet ``.pth``,
CHGNet ``.pth.tar``, MACE ``.model``, DeePMD-kit PyTorch ``.pt``/``.pth``) or
the name of a checkpoint shipped inside a package (``7net-0``). Which code
reads it comes from ``backend`` when given, else from the run directory the
file lies in (its ``config.json``), else from the file itself.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ase.calculators.calculator import Calculator

from pfd.errors import PFDError

#: What the error messages call a model file.
MODEL_FILE = (
    "a model file is a distilled student (.pb), a foundation or fine-tuned "
    "checkpoint (.pth, .pth.tar, .model, .pt) or a shipped name such as 7net-0"
)


def load_calculator(
    path_or_name: str | Path,
    *,
    threads: int | None = None,
    type_map: list[str] | None = None,
    backend: str | None = None,
    device: str = "cpu",
    head: str | None = None,
) -> Calculator:
    """An ASE calculator for a model file or shipped checkpoint name.

    ``threads``: CPU threads of the model (default 2); ``type_map``: elements
    the model must cover (checked before use); ``backend``: a registered
    backend or student name, or ``module:Class`` (default: found out).
    Raises :class:`pfd.errors.PFDError` in one line when the file is not a
    model (missing, training data, a text file with a model's name).
    """
    from pfd.models import backend_by_name
    from pfd.students import is_student, make_student

    threads = 2 if threads is None else threads
    if threads < 1:
        raise PFDError(f"threads must be at least 1 (got {threads}); use 1 or more")
    name = str(path_or_name)
    kind = backend or _recorded_backend(Path(name)) or guess_kind(name)
    student = is_student(kind)
    if student:  # a student checks its elements as it loads
        model = make_student(kind, type_map=type_map, threads=threads)
    else:
        model = backend_by_name(kind, device, threads, head=head)
    path = model.resolve(name)
    try:
        if type_map is not None and not student:
            model.check_elements(path, set(type_map))
        return model.calculator(path)
    except PFDError:
        raise
    except Exception as err:  # whatever a model loader raises on a wrong file
        raise PFDError(
            f"cannot load '{name}' as a {kind} model ({_reason(err)}); {MODEL_FILE}"
        ) from err


@dataclass(frozen=True)
class ModelCalculator:
    """A picklable, hashable recipe for :func:`load_calculator` (worker processes)."""

    model: str
    backend: str | None = None
    threads: int = 1
    device: str = "cpu"
    head: str | None = None

    def __call__(self) -> Calculator:
        return load_calculator(
            self.model,
            threads=self.threads,
            backend=self.backend,
            device=self.device,
            head=self.head,
        )


def guess_kind(name: str) -> str:
    """The backend or student that reads ``name``, from its suffix and content."""
    from pfd.students import STUDENTS, student_class

    path = Path(name)
    if not path.exists():
        return _shipped_by(name)
    if not path.is_file():
        raise PFDError(f"'{name}' is a directory, not a model file; {MODEL_FILE}")
    for student in STUDENTS:
        if path.suffix in student_class(student).suffixes:
            return student
    if name.endswith(".pth.tar"):
        return "chgnet"
    if path.suffix == ".model":
        return "mace"
    if path.suffix in (".pt", ".pth"):
        return _torch_kind(path)
    raise PFDError(f"'{name}' is not a model file (unknown kind); {MODEL_FILE}")


def _shipped_by(name: str) -> str:
    """The backend that ships a checkpoint called ``name`` (7net-0, chgnet-0.3.0)."""
    from importlib import import_module

    for kind in ("sevennet", "chgnet"):
        module = import_module(f"pfd.models.{kind}")
        names = {*module.SHIPPED, *getattr(module, "ALIASES", {})}
        if name.lower() in names:
            return kind
    raise PFDError(f"model '{name}' not found: no such file; {MODEL_FILE}")


def _torch_kind(path: Path) -> str:
    """SevenNet, CHGNet or DeePMD-kit, from what a torch file holds."""
    if _is_torchscript(path):
        return "dpa"
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:
        raise PFDError(
            f"'{path}' is not a model file ({_reason(err)}); {MODEL_FILE}"
        ) from err
    if isinstance(state, dict):
        if "config" in state and "model_state_dict" in state:
            return "sevennet"
        inner = state.get("model", state)
        if isinstance(inner, dict) and "_extra_state" in inner:
            return "dpa"
        if isinstance(inner, dict) and "model_args" in inner:
            return "chgnet"
    held = type(state).__name__
    raise PFDError(
        f"'{path}' is not a model file: it holds a {held} (training data?), no "
        f"model weights; {MODEL_FILE}"
    )


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    return any(n.endswith("constants.pkl") or "/code/" in n for n in names)


def _recorded_backend(path: Path) -> str | None:
    """The backend of the run directory ``path`` lies in (final or iteration model)."""
    for parent in list(path.resolve().parents)[:2]:
        config = parent / "config.json"
        if config.is_file() and path.suffix != ".pb":
            try:
                return json.loads(config.read_text())["model"]["backend"]
            except (ValueError, KeyError, TypeError):
                return None
    return None


def _reason(err: BaseException) -> str:
    text = (str(err).strip().splitlines() or [""])[0][:200]
    return f"{type(err).__name__}: {text}" if text else type(err).__name__
