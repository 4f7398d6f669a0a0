"""Where the isolated MPC environment lives (``.venv-mpc``, made by ``make mpc``) and where its worker is.

SPU 0.9.5 needs numpy<2 and jax<=0.4.34, which cannot share an interpreter with the zoo's numpy 2 /
torch stack; so the engine runs in its own virtual environment, and the zoo talks to it through files
and one subprocess. Nothing here imports jax or spu.
"""
from __future__ import annotations

import os
from pathlib import Path

from zoo.core.errors import ZooError

ENV_VAR = "EFFZOO_MPC_PYTHON"  # an explicit interpreter wins over the search below
VENV_NAME = ".venv-mpc"
WORKER = Path(__file__).with_name("spu_worker.py")  # a script run by the MPC env's python, not imported
_REPO = Path(__file__).resolve().parents[2]  # the checkout, for an editable install (make mpc puts it there)


class MpcEnvironmentError(ZooError):
    """The MPC environment is missing or broken; the message says how to create it."""


def candidate_pythons() -> list[Path]:
    """Interpreters tried in order: $EFFZOO_MPC_PYTHON, <checkout>/.venv-mpc, ./.venv-mpc."""
    out = []
    if os.environ.get(ENV_VAR):
        out.append(Path(os.environ[ENV_VAR]))
    for root in (_REPO, Path.cwd()):
        path = root / VENV_NAME / "bin" / "python"
        if path not in out:
            out.append(path)
    return out


def find_mpc_python(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The python of the MPC environment.

    Raises:
        MpcEnvironmentError: none found; one line that says to run ``make mpc``.
    """
    if explicit is not None:
        path = Path(explicit)
        if not path.is_file():
            raise MpcEnvironmentError(f"MPC python {os.fspath(path)!r} does not exist; create the environment "
                                      "with `make mpc` or pass the python of a venv that has spu 0.9.5.")
        return path
    tried = candidate_pythons()
    for path in tried:
        if path.is_file():
            return path
    raise MpcEnvironmentError(f"the MPC environment {VENV_NAME} was not found (looked for "
                              f"{', '.join(map(os.fspath, tried))}); create it with `make mpc` (spu 0.9.5, "
                              f"jax<=0.4.34, numpy<2) or set {ENV_VAR} to its python.")
