"""Reading legacy pickle-based checkpoints (``.pth``, ``.pt``, ``.bin``, ``.pkl``) without running code.

Released models ship their weights in three pickle-based forms, and :func:`load_checkpoint` reads
all three into a dict, never executing anything the file asks for:

1. ``torch.save`` zip archives (``PK\\x03\\x04`` at offset 0): ``torch.load(weights_only=True)``,
   memory-mapped on request.
2. pre-1.6 ``torch.save`` files (a pickle of torch's magic number, then more pickles and raw
   storage bytes; or the even older tar layout): ``torch.load(weights_only=True)``.
3. plain ``pickle.dump`` files of tensors: :class:`_RestrictedUnpickler`, whose ``find_class``
   admits only the globals in :data:`ALLOWED_GLOBALS` (each mapped to a checking wrapper or a
   plain constant, nothing is ever imported) and which refuses the ``BUILD`` opcode and
   persistent ids; tensor storages inside go through ``torch.load(weights_only=True)`` again.

The form is recognised from the file's first bytes, never by trial: a file that torch's
weights-only loader refuses is reported, and never retried with ``weights_only=False``.

A file that asks for anything else (``os.system``, ``builtins.eval``, a class from some module,
numpy arrays, a TorchScript archive) raises :class:`UnsafeCheckpointError` naming the file and the
refused global; a missing, empty, truncated or corrupt file raises
:class:`~revise.errors.ReviseInputError` naming the file.

Caveat: ``torch.load(weights_only=True)`` also admits what this process registered through
``torch.serialization.add_safe_globals``; this module registers nothing.
"""

from __future__ import annotations

import _compat_pickle
import io
import os
import pickle
import pickletools
import re
import tarfile
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable

import torch

from ..errors import ReviseInputError

__all__ = ["ALLOWED_GLOBALS", "UnsafeCheckpointError", "load_checkpoint"]

_ZIP_MAGIC = b"PK\x03\x04"
_TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # torch.serialization.MAGIC_NUMBER, the first pickle of a legacy file


class UnsafeCheckpointError(ReviseInputError):
    """A checkpoint asks for code or objects beyond plain tensors and containers; nothing of it ran."""


def load_checkpoint(path: str | os.PathLike, *, mmap: bool = False) -> dict:
    """Load a pickle-based checkpoint file into a dict (of tensors, usually), on the CPU.

    ``mmap=True`` memory-maps the tensors of a ``torch.save`` zip archive instead of reading them;
    it is ignored for the other forms, which cannot be mapped. Nothing is unwrapped: a
    ``{"state_dict": {...}}`` file comes back as that outer dict.

    Raises :class:`UnsafeCheckpointError` when the file asks for anything beyond tensors and plain
    containers, :class:`~revise.errors.ReviseInputError` when it is missing, empty, truncated,
    corrupt or holds something other than a dict.
    """
    path = Path(path)
    kind = _sniff(path)
    if kind == "zip":
        result = _torch_load(path, mmap=mmap)
    elif kind == "torch-legacy":
        result = _torch_load(path, mmap=False)
    else:
        result = _load_plain_pickle(path)
    if not isinstance(result, dict):
        raise ReviseInputError(f"checkpoint '{path}' holds a {type(result).__name__}, not a dict of tensors")
    return result


# --------------------------------------------------------------------------------------------
# Which form is it?


def _sniff(path: Path) -> str:
    """``"zip"``, ``"torch-legacy"`` or ``"pickle"``, from the file's first bytes (nothing is run)."""
    if not path.exists():
        raise ReviseInputError(f"checkpoint '{path}' does not exist")
    if not path.is_file():
        raise ReviseInputError(f"checkpoint '{path}' is not a file")
    try:
        with open(path, "rb") as f:
            head = f.read(len(_ZIP_MAGIC))
            if not head:
                raise ReviseInputError(f"checkpoint '{path}' is empty")
            if head == _ZIP_MAGIC:
                return "zip"
            f.seek(0)
            if _first_pickle_is_torch_magic(f):
                return "torch-legacy"
            f.seek(0)
            if tarfile.is_tarfile(f):        # torch.save's layout before 0.4, also read by torch.load
                return "torch-legacy"
    except OSError as err:
        raise ReviseInputError(f"cannot read checkpoint '{path}': {err.strerror or err}") from None
    return "pickle"


def _first_pickle_is_torch_magic(f: io.BufferedIOBase) -> bool:
    """Whether the stream starts with a pickle of torch's legacy magic number (parsed, not loaded)."""
    try:
        for opcode, arg, _ in pickletools.genops(f):
            if opcode.name in ("PROTO", "FRAME"):
                continue
            return opcode.name in ("LONG1", "LONG4", "LONG", "INT") and arg == _TORCH_LEGACY_MAGIC
    except Exception:  # not a pickle at all: the plain-pickle reader reports it
        return False
    return False


# --------------------------------------------------------------------------------------------
# torch.save files: torch.load(weights_only=True), and torch's refusals translated


_BLOCKED_GLOBAL = re.compile(r"unsupported GLOBAL (\S+) whose module")
_UNALLOWED_GLOBAL = re.compile(r"GLOBAL (\S+) was not an allowed global")
_WEIGHTS_UNPICKLER_DETAIL = re.compile(r"WeightsUnpickler error:\s*(.*?)\s*(?:Check the documentation|$)", re.S)


def _torch_load(path: Path, *, mmap: bool) -> Any:
    try:
        with warnings.catch_warnings():
            # torch warns about every pickle protocol other than 2; harmless, and not the user's concern
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            warnings.filterwarnings("ignore", message=".*looks like a TorchScript archive")   # refused below
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except ReviseInputError:
        raise
    except Exception as err:
        raise _translate_torch_error(path, err) from None


def _translate_torch_error(path: Path, err: Exception) -> ReviseInputError:
    """The ReviseInputError to raise for an exception of ``torch.load(weights_only=True)``."""
    message = str(err)
    if isinstance(err, pickle.UnpicklingError):
        name = _refused_global(message)
        if name is not None:
            return UnsafeCheckpointError(
                f"checkpoint '{path}' refused: it asks for the global {name}, which is not admitted "
                "(only tensors and plain containers are), so nothing was loaded from it")
        if "Weights only load failed" in message:
            detail = _WEIGHTS_UNPICKLER_DETAIL.search(message)
            reason = " ".join(detail.group(1).split()) if detail and detail.group(1).strip() else message.split(".")[0]
            opcode = re.fullmatch(r"Unsupported operand (\d+)", reason)
            if opcode and chr(int(opcode.group(1))) in pickletools.code2op:
                reason = f"pickle opcode {pickletools.code2op[chr(int(opcode.group(1)))].name} is not supported"
            return UnsafeCheckpointError(
                f"checkpoint '{path}' refused by torch's weights-only loader ({reason}), "
                "so nothing was loaded from it")
    if isinstance(err, RuntimeError) and "TorchScript" in message:
        return UnsafeCheckpointError(
            f"checkpoint '{path}' refused: it is a TorchScript archive, which holds code, not only weights")
    return ReviseInputError(f"checkpoint '{path}' is truncated or corrupt ({_reason(err)})")


def _refused_global(message: str) -> str | None:
    """The ``module.name`` of the global torch's weights-only unpickler refused, if it says one."""
    match = _BLOCKED_GLOBAL.search(message) or _UNALLOWED_GLOBAL.search(message)
    if match is None:
        return None
    name = match.group(1)
    if "." not in name:          # torch drops "builtins." from the name it reports
        name = f"builtins.{name}"
    return name


# --------------------------------------------------------------------------------------------
# Plain pickles: a restricted unpickler


def _check(ok: bool, what: str) -> None:
    if not ok:
        raise _BadArguments(what)


class _BadArguments(Exception):
    """An admitted global was called with arguments no torch or pickle writer produces."""


def _no_hooks(backward_hooks: Any) -> None:
    _check(isinstance(backward_hooks, dict) and not backward_hooks, "backward hooks must be an empty dict")


def _int_tuple(value: Any) -> bool:
    return isinstance(value, (tuple, list)) and all(type(v) is int for v in value)


def _tensor_args(storage, storage_offset, size, stride, requires_grad, backward_hooks, metadata) -> None:
    _check(type(storage_offset) is int and storage_offset >= 0, "storage offset must be a non-negative int")
    _check(_int_tuple(size) and _int_tuple(stride) and len(size) == len(stride), "size and stride must be int tuples")
    _check(type(requires_grad) is bool, "requires_grad must be a bool")
    _no_hooks(backward_hooks)
    _check(metadata is None or (isinstance(metadata, dict) and all(type(v) is bool for v in metadata.values())),
           "tensor metadata must be a dict of flags")


def _safe_rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks, metadata=None):
    """``torch._utils._rebuild_tensor_v2`` with its arguments checked and hooks dropped."""
    _check(isinstance(storage, torch.storage.TypedStorage), "_rebuild_tensor_v2 needs a typed storage")
    _tensor_args(storage, storage_offset, size, stride, requires_grad, backward_hooks, metadata)
    # Tensor.set_ would silently grow the storage (with uninitialised memory) to fit the view.
    _check(all(n >= 0 for n in size) and all(st >= 0 for st in stride), "size and stride must be non-negative")
    if all(n > 0 for n in size):
        last = storage_offset + sum((n - 1) * st for n, st in zip(size, stride))
        available = storage._untyped_storage.nbytes() // torch._utils._element_size(storage.dtype)
        _check(last < available, "its size and stride reach past the end of its storage")
    return torch._utils._rebuild_tensor_v2(storage, storage_offset, tuple(size), tuple(stride),
                                           requires_grad, OrderedDict(), metadata)


def _safe_rebuild_parameter(data, requires_grad, backward_hooks):
    """``torch._utils._rebuild_parameter`` with its arguments checked and hooks dropped."""
    _check(type(data) is torch.Tensor, "a parameter's data must be a tensor")
    _check(type(requires_grad) is bool, "requires_grad must be a bool")
    _no_hooks(backward_hooks)
    return torch.nn.Parameter(data, requires_grad)


def _safe_codecs_encode(text, encoding="utf-8", errors="strict"):
    """``_codecs.encode`` as pickle protocols 0-2 use it for ``bytes``: latin-1 text only."""
    _check(type(text) is str and encoding in ("latin1", "latin-1") and errors == "strict",
           "_codecs.encode is admitted only for latin-1 bytes")
    return text.encode("latin-1")


def _ordered_dict(*args):
    """``collections.OrderedDict`` as pickles call it: empty, or from a list of pairs."""
    _check(len(args) == 0 or (len(args) == 1 and isinstance(args[0], (list, tuple, dict))),
           "OrderedDict takes no arguments or one list of pairs")
    return OrderedDict(*args)


def _size(*args):
    _check(len(args) == 1 and _int_tuple(args[0]), "torch.Size takes one tuple of ints")
    return torch.Size(args[0])


#: Not admitted: ``torch._utils._rebuild_tensor_v3`` (float8 / uint16 / ... tensors): their storages
#: pickle as ``UntypedStorage``, which torch 2.x itself cannot read back from a pickle or legacy file.
#: The globals a plain pickle may name, as ``"module.name"``, and why each is admitted. Everything
#: maps to a checking wrapper or a dtype constant, never to an unchecked callable.
ALLOWED_GLOBALS: dict[str, str] = {
    "collections.OrderedDict": "containers of a state dict; also the (empty) backward-hook dict of every tensor",
    "torch.storage._load_from_bytes": "the storage of every pickled tensor; read with torch.load(weights_only=True)",
    "torch._utils._rebuild_tensor_v2": "rebuilds a tensor of a classic dtype from its storage",
    "torch._utils._rebuild_parameter": "rebuilds an nn.Parameter around a rebuilt tensor",
    "_codecs.encode": "how pickle protocols 0-2 spell bytes (latin-1 text only)",
    "torch.Size": "a tuple of ints, as stored shapes are",
    "torch.<dtype>": "dtype constants such as torch.bfloat16 (only attributes of torch that are torch.dtype)",
}


class _UnsafePickle(Exception):
    """Raised inside the unpickler; turned into UnsafeCheckpointError with the file name."""


class _RestrictedUnpickler(pickle._Unpickler):
    """An unpickler that resolves only :data:`ALLOWED_GLOBALS`, each to a checking wrapper.

    It is pickle's pure-Python unpickler, so that single opcodes can be refused as they come:
    ``BUILD`` (which would set object state through ``__setstate__`` or ``setattr``; no pickle of
    tensors and containers uses it) and persistent ids (objects from outside the pickle).
    """

    dispatch = dict(pickle._Unpickler.dispatch)

    def _refuse_build(self) -> None:
        raise _UnsafePickle("object state (the BUILD opcode)")

    dispatch[pickle.BUILD[0]] = _refuse_build

    def __init__(self, file, path: Path):
        super().__init__(file, encoding="latin1")
        self._path = path

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _compat_pickle.NAME_MAPPING:       # Python 2 names, as pickle's own find_class maps them
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        elif module in _compat_pickle.IMPORT_MAPPING:
            module = _compat_pickle.IMPORT_MAPPING[module]
        safe = self._allowed(module, name)
        if safe is None:
            raise _UnsafePickle(f"the global {module}.{name}")
        return safe

    def _allowed(self, module: str, name: str) -> Any:
        key = f"{module}.{name}"
        if key == "torch.storage._load_from_bytes":
            return self._load_storage_from_bytes
        fixed: dict[str, Callable] = {
            "collections.OrderedDict": _ordered_dict,
            "torch._utils._rebuild_tensor_v2": _safe_rebuild_tensor_v2,
            "torch._utils._rebuild_parameter": _safe_rebuild_parameter,
            "_codecs.encode": _safe_codecs_encode,
            "torch.Size": _size,
        }
        if key in fixed:
            return fixed[key]
        if module == "torch":
            # vars(), not getattr(): torch's module __getattr__ would import submodules on demand
            value = vars(torch).get(name)
            if isinstance(value, torch.dtype):
                return value
        return None

    def _load_storage_from_bytes(self, data):
        """``torch.storage._load_from_bytes``, but through ``torch.load(weights_only=True)``."""
        _check(type(data) is bytes, "_load_from_bytes needs bytes")
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Detected pickle protocol")
                storage = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        except Exception as err:
            raise _translate_torch_error(self._path, err) from None
        _check(isinstance(storage, (torch.storage.TypedStorage, torch.storage.UntypedStorage)),
               "_load_from_bytes must give a storage")
        return storage

    def persistent_load(self, pid: Any) -> Any:
        raise _UnsafePickle(f"the persistent id {pid!r:.60}")


def _load_plain_pickle(path: Path) -> Any:
    try:
        with open(path, "rb") as f:
            try:
                return _RestrictedUnpickler(f, path).load()
            except (ReviseInputError, _UnsafePickle):
                raise
            except _BadArguments as err:
                raise UnsafeCheckpointError(
                    f"checkpoint '{path}' refused: it calls an admitted global with arguments "
                    f"no torch pickler writes ({err})") from None
            except Exception as err:
                raise ReviseInputError(
                    f"checkpoint '{path}' is neither a torch.save file nor an intact pickle ({_reason(err)})"
                ) from None
    except _UnsafePickle as err:
        raise UnsafeCheckpointError(
            f"checkpoint '{path}' refused: it asks for {err}, which is not admitted "
            "(only tensors and plain containers are), so nothing was loaded from it") from None
    except OSError as err:
        raise ReviseInputError(f"cannot read checkpoint '{path}': {err.strerror or err}") from None


def _reason(err: Exception) -> str:
    """``Type: first sentence of the message``, short enough for a one-line error."""
    text = " ".join(str(err).split())
    text = re.split(r"(?<=[^.])\. ", text, maxsplit=1)[0].rstrip(".")
    if len(text) > 160:
        text = text[:160] + "..."
    return f"{type(err).__name__}: {text}" if text else type(err).__name__
