"""Read PyTorch zip checkpoints (``torch.save`` files, e.g. ultralytics ``.pt``) without running their code.

Why not ``torch.load``: with ``weights_only=True`` it refuses the ultralytics classes that released
LeYOLO checkpoints pickle, and with ``weights_only=False`` a malicious file can run anything through
``__reduce__`` (e.g. ``os.system``). Importing ultralytics to unpickle would also pull in a whole
framework (and the *fork*'s classes, which stock ultralytics does not have).

So this module reads the zip itself and unpickles ``data.pkl`` with an ``Unpickler`` whose
``find_class`` is an allow-list:

* tensor rebuilding: ``torch._utils._rebuild_tensor_v2`` / ``_rebuild_parameter`` are mapped to our own
  small functions (bounds-checked ``as_strided`` views over storages read from the zip);
* plain containers and values: ``collections.OrderedDict``, ``set``, ``frozenset``, ``torch.Size``,
  ``torch.device``, torch dtypes, the legacy ``torch.*Storage`` type tags;
* ``torch.nn.modules.*`` classes (restored from their ``__dict__`` like ``torch.load`` does);
* every ``ultralytics.*`` global becomes an inert placeholder class whose instances only store the
  pickled ``__dict__``, so the module tree and its tensors can be read without any ultralytics code.

Any other global (``posix.system``, ``builtins.exec``, ``subprocess.Popen``, ...) raises
``UnsafePickleError`` naming it, *before* it could be called: the unpickler never returns it.
"""
from __future__ import annotations

import collections
import functools
import io
import logging
import os
import pickle
import sys
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from zoo.core.errors import CheckpointError, UnsafePickleError

logger = logging.getLogger(__name__)

# Legacy storage class names that torch.save writes as type tags for each storage.
_STORAGE_DTYPES: dict[str, torch.dtype] = {
    "DoubleStorage": torch.float64, "FloatStorage": torch.float32, "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool, "UntypedStorage": torch.uint8,
}


class _StorageTag:
    """What ``find_class('torch', 'HalfStorage')`` returns: only carries the dtype to ``persistent_load``."""

    def __init__(self, dtype: torch.dtype) -> None:
        self.dtype = dtype


class InertPlaceholder(nn.Module):
    """Stand-in for a pickled ultralytics class: stores the pickled state, has no behaviour.

    ``__init__`` and ``__setstate__`` accept anything and only record data, so unpickling an instance
    runs no ultralytics code. ``origin`` (set per placeholder class) names the class it replaces.
    """

    origin: str = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # REDUCE path: cls(*args); keep nothing
        nn.Module.__init__(self)

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2:  # (dict_state, slots_state)
            state = {**(state[0] or {}), **(state[1] or {})}
        if isinstance(state, dict):
            self.__dict__.update(state)
        else:
            self.__dict__["_pickled_state"] = state

    def __repr__(self) -> str:
        return f"InertPlaceholder({self.origin})"


_PLACEHOLDERS: dict[str, type[InertPlaceholder]] = {}


def _placeholder(module: str, name: str) -> type[InertPlaceholder]:
    origin = f"{module}.{name}"
    if origin not in _PLACEHOLDERS:
        _PLACEHOLDERS[origin] = type(name, (InertPlaceholder,), {"origin": origin, "__module__": __name__})
    return _PLACEHOLDERS[origin]


MAX_MODULE_DEPTH = 64  # real networks nest a few levels (LeYOLO: 4); a crafted tree can nest thousands


class ByteBudget:
    """How many bytes a checkpoint's tensors may occupy once materialised; each tensor is charged as built.

    Why: sizes and strides are whatever the file says, so a 1.7 KB file can describe a stride-0 view of
    10**13 elements that costs nothing to unpickle but 40 TB once made contiguous or converted to fp32. The
    limit is known before reading (what the target model needs, see ``zoo.core.checkpoint``), so such a file
    is refused while it is read, never allocated.
    """

    def __init__(self, limit: int | None, source: str) -> None:
        self.limit = limit
        self.source = source
        self.used = 0

    def charge(self, nbytes: int, what: str) -> None:
        self.used += nbytes
        if self.limit is not None and self.used > self.limit:
            raise CheckpointError(
                f"Refusing {self.source}: its tensors reach {self.used:,} bytes (at {what}), over the limit of "
                f"{self.limit:,} bytes (a few copies of the target model's weights, or of the file's size); it "
                "is not a checkpoint of this model, or was crafted to exhaust memory.")


def _rebuild_tensor(storage: Any, offset: int, size: Any, stride: Any, requires_grad: bool = False,
                    backward_hooks: Any = None, metadata: Any = None, *, budget: ByteBudget | None = None) -> Tensor:
    """Replacement for ``torch._utils._rebuild_tensor_v2``: a view into a storage read from the zip."""
    if not isinstance(storage, Tensor) or storage.ndim != 1:
        raise pickle.UnpicklingError("tensor rebuild without a storage")
    if budget is not None:  # the view's own size: what .contiguous()/.float() would allocate
        numel = 1
        for dim in tuple(size):
            numel *= max(int(dim), 0)
        budget.charge(numel * storage.element_size(), f"tensor of shape {tuple(int(d) for d in size)}")
    try:
        tensor = storage.as_strided(tuple(size), tuple(stride), int(offset))  # bounds-checked by torch
    except RuntimeError as err:
        raise pickle.UnpicklingError(f"tensor view out of bounds of its storage: {err}") from err
    if requires_grad and tensor.is_floating_point():
        tensor.requires_grad_(True)
    return tensor


def _rebuild_parameter(data: Any, requires_grad: bool = True, backward_hooks: Any = None,
                       state: Any = None) -> nn.Parameter:
    """Replacement for ``torch._utils._rebuild_parameter(_with_state)``; hooks and extra state are dropped."""
    if not isinstance(data, Tensor):
        raise pickle.UnpicklingError("parameter rebuild without a tensor")
    return nn.Parameter(data, requires_grad=bool(requires_grad) and data.is_floating_point())


_PY2_MODULES = {"__builtin__": "builtins", "copy_reg": "copyreg"}

_ALLOWED: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch", "Size"): torch.Size,
    ("torch", "device"): torch.device,
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler for ``data.pkl`` of a torch zip: allow-listed globals only, storages read from the zip."""

    def __init__(self, data: bytes, archive: zipfile.ZipFile, prefix: str, source: str,
                 budget: ByteBudget, file_size: int) -> None:
        super().__init__(io.BytesIO(data))
        self._archive = archive
        self._prefix = prefix
        self._source = source
        self._storages: dict[str, Tensor] = {}
        self._budget = budget
        self._file_size = file_size

    def find_class(self, module: str, name: str) -> Any:
        module = _PY2_MODULES.get(module, module)  # protocol <= 2 pickles spell builtins '__builtin__'
        if module == "ultralytics" or module.startswith("ultralytics."):
            return _placeholder(module, name)
        if (module, name) in _ALLOWED:
            found = _ALLOWED[(module, name)]
            return functools.partial(_rebuild_tensor, budget=self._budget) if found is _rebuild_tensor else found
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageTag(_STORAGE_DTYPES[name])
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        if module.startswith("torch.nn.modules.") and module in sys.modules:
            cls = getattr(sys.modules[module], name, None)
            if isinstance(cls, type) and issubclass(cls, nn.Module):
                return cls
        raise UnsafePickleError(
            f"Refusing to load {self._source}: its pickle references the global '{module}.{name}', which is "
            "not on effzoo's allow-list (tensors, containers, torch.nn modules, ultralytics placeholders); "
            "nothing in the file was executed. Only load checkpoints from a source you trust."
        )

    def persistent_load(self, pid: Any) -> Tensor:
        if not isinstance(pid, tuple) or len(pid) != 5 or pid[0] not in ("storage", b"storage"):
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r:.80}")
        _, tag, key, _location, numel = pid
        if not isinstance(tag, _StorageTag):
            raise pickle.UnpicklingError("storage without a known storage type")
        key = key.decode() if isinstance(key, bytes) else str(key)
        if key not in self._storages:
            self._storages[key] = self._read_storage(key, tag.dtype, int(numel))
        return self._storages[key]

    def _read_storage(self, key: str, dtype: torch.dtype, numel: int) -> Tensor:
        """One storage as a flat CPU tensor (the ``location`` is ignored: everything loads to the CPU)."""
        name = f"{self._prefix}data/{key}"
        try:
            info = self._archive.getinfo(name)
        except KeyError:
            raise CheckpointError(f"{self._source}: storage {key} is missing from the archive; the file is "
                                  "corrupt or truncated.") from None
        itemsize = torch.empty((), dtype=dtype).element_size()
        if numel < 0 or info.file_size != numel * itemsize:
            raise CheckpointError(f"{self._source}: storage {key} has {info.file_size} bytes, expected "
                                  f"{numel * itemsize}; the file is corrupt or truncated.")
        if info.file_size > self._file_size:  # only a compressed entry can: a zip bomb, refused unread
            raise CheckpointError(f"{self._source}: storage {key} claims {info.file_size:,} bytes, more than the "
                                  f"whole file ({self._file_size:,} bytes); refusing to decompress it.")
        self._budget.charge(info.file_size, f"storage {key}")
        data = self._archive.read(name)
        if numel == 0:
            return torch.empty(0, dtype=dtype)
        return torch.frombuffer(bytearray(data), dtype=dtype)


def load_torch_zip(path: str | os.PathLike[str], max_bytes: int | None = None) -> Any:
    """Unpickle a PyTorch zip checkpoint with the restricted unpickler; tensors land on the CPU.

    Args:
        path: the ``.pt`` file.
        max_bytes: most bytes its storages and tensors may take (``None``: no limit); see :class:`ByteBudget`.

    Raises:
        UnsafePickleError: the pickle references a global outside the allow-list (nothing ran).
        CheckpointError: not a PyTorch zip file, truncated, or corrupt.
        FileNotFoundError: ``path`` does not exist.
    """
    path = Path(path)
    source = str(path)
    if not path.is_file():
        raise FileNotFoundError(f"Checkpoint not found: {source}")
    if not zipfile.is_zipfile(path):
        with open(path, "rb") as fh:
            head = fh.read(2)
        if head[:1] == b"\x80":  # a bare pickle: torch.save(..., _use_new_zipfile_serialization=False)
            raise CheckpointError(f"{source} uses PyTorch's legacy (pre-1.6, non-zip) format, which effzoo does not "
                                  "read; re-save it with torch.save in a recent PyTorch (or zoo convert a .safetensors).")
    budget = ByteBudget(max_bytes, source)
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            pickles = [n for n in names if n == "data.pkl" or n.endswith("/data.pkl")]
            if len(pickles) != 1:
                raise CheckpointError(f"{source} is a zip file but not a PyTorch checkpoint "
                                      f"(expected one data.pkl, found {len(pickles)}).")
            prefix = pickles[0][: -len("data.pkl")]
            if f"{prefix}byteorder" in names and archive.read(f"{prefix}byteorder").strip() not in (b"", b"little"):
                raise CheckpointError(f"{source} was saved on a big-endian machine; re-save it on a little-endian one.")
            unpickler = _RestrictedUnpickler(archive.read(pickles[0]), archive, prefix, source, budget,
                                             path.stat().st_size)
            return unpickler.load()
    except CheckpointError:
        raise
    except zipfile.BadZipFile as err:
        raise CheckpointError(f"{source} is not a readable PyTorch zip checkpoint ({err}); the file is "
                              "truncated or corrupt, or it is not a .pt file: re-download or re-export it.") from err
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            RuntimeError, OverflowError, MemoryError, RecursionError) as err:
        raise CheckpointError(f"{source}: cannot unpickle the checkpoint ({type(err).__name__}: {err}); "
                              "the file is corrupt or not a PyTorch checkpoint.") from err


def module_state_dict(module: Any) -> dict[str, Tensor]:
    """The state_dict of an unpickled module tree, read from ``__dict__`` only (no module code runs).

    Mirrors ``nn.Module.state_dict``: parameters, then persistent buffers, then children, with dotted
    names. Works on ``InertPlaceholder`` trees and on real ``torch.nn`` modules alike.
    """
    out: dict[str, Tensor] = {}

    def visit(obj: Any, prefix: str, ancestors: frozenset[int]) -> None:
        if id(obj) in ancestors:  # a crafted file could make the module tree cyclic
            raise CheckpointError(f"the module tree of the checkpoint is cyclic at {prefix.rstrip('.')!r}")
        if len(ancestors) > MAX_MODULE_DEPTH:  # ... or deep enough to exhaust Python's stack
            raise CheckpointError(f"the module tree of the checkpoint is more than {MAX_MODULE_DEPTH} levels deep "
                                  f"(at {prefix[:80]}...); no real network nests so deep.")
        ancestors = ancestors | {id(obj)}
        attrs = getattr(obj, "__dict__", {})
        for key, value in (attrs.get("_parameters") or {}).items():
            if isinstance(value, Tensor):
                out[prefix + key] = value.detach()
        skip = attrs.get("_non_persistent_buffers_set") or set()
        for key, value in (attrs.get("_buffers") or {}).items():
            if isinstance(value, Tensor) and key not in skip:
                out[prefix + key] = value.detach()
        for key, child in (attrs.get("_modules") or {}).items():
            if child is not None:
                visit(child, f"{prefix}{key}.", ancestors)

    visit(module, "", frozenset())
    return out
