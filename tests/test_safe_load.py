"""revise.convert.safe_load: legacy checkpoints load as dicts; nothing in a file ever runs."""

import builtins
import io
import os
import pickle
import sys
from collections import OrderedDict

import pytest
import torch

from revise.convert import safe_load
from revise.convert.safe_load import UnsafeCheckpointError, load_checkpoint
from revise.errors import ReviseInputError

SYSTEM = f"{os.system.__module__}.system"        # posix.system on Linux


@pytest.fixture(autouse=True)
def weights_only_always(monkeypatch):
    """Every torch.load the loader makes must be weights_only=True."""
    real_load = torch.load

    def checked_load(*args, **kwargs):
        assert kwargs.get("weights_only") is True, "torch.load called without weights_only=True"
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", checked_load)


def _state() -> dict:
    g = torch.Generator().manual_seed(0)
    return {
        "w": torch.randn(4, 3, generator=g),
        "b": torch.randn(3, generator=g).to(torch.bfloat16),
        "h": torch.randn(2, 2, generator=g).to(torch.float16),
        "i": torch.arange(5),
        "t": torch.randn(3, 4, generator=g).t(),                      # non-contiguous
        "nested": {"inner": OrderedDict(a=torch.ones(2), b=torch.zeros(0)), "meta": [1, 2.5, "x", (3, None)]},
        "od": OrderedDict([("z", torch.full((2,), 7.0)), ("a", torch.tensor(1.5))]),
    }


def _assert_same(expected, actual) -> None:
    if isinstance(expected, torch.Tensor):
        assert isinstance(actual, torch.Tensor)
        assert actual.dtype == expected.dtype and actual.shape == expected.shape
        assert torch.equal(actual, expected)
    elif isinstance(expected, dict):
        assert type(actual) is type(expected)
        assert list(actual) == list(expected)
        for key in expected:
            _assert_same(expected[key], actual[key])
    elif isinstance(expected, (list, tuple)):
        assert type(actual) is type(expected) and len(actual) == len(expected)
        for e, a in zip(expected, actual):
            _assert_same(e, a)
    else:
        assert actual == expected


# ---------------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("mmap", [False, True])
def test_torch_save_zip_round_trip(tmp_path, mmap):
    state = _state()
    path = tmp_path / "model.pth"
    torch.save(state, path)
    _assert_same(state, load_checkpoint(path, mmap=mmap))


@pytest.mark.parametrize("mmap", [False, True])
def test_legacy_torch_save_round_trip(tmp_path, mmap):
    state = _state()
    path = tmp_path / "pytorch_model.bin"
    torch.save(state, path, _use_new_zipfile_serialization=False)
    _assert_same(state, load_checkpoint(path, mmap=mmap))        # mmap is ignored, not an error


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_plain_pickle_round_trip(tmp_path, protocol):
    state = _state()
    state["p"] = torch.nn.Parameter(torch.ones(3))
    state["size"] = torch.Size([2, 3])
    state["dtype"] = torch.bfloat16
    state["raw"] = b"\x00\xffbytes"
    path = tmp_path / "special_tokens.pkl"
    with open(path, "wb") as f:
        pickle.dump(state, f, protocol=protocol)
    loaded = load_checkpoint(path, mmap=True)                      # mmap ignored for plain pickles
    _assert_same(state, loaded)
    assert isinstance(loaded["p"], torch.nn.Parameter) and loaded["p"].requires_grad


def test_plain_pickle_of_float32_and_bfloat16_tensors(tmp_path):
    tokens = {"<img_st>": torch.randn(1, 8), "<img_end>": torch.randn(1, 8).bfloat16()}
    path = tmp_path / "tokens.pkl"
    path.write_bytes(pickle.dumps(tokens))
    loaded = load_checkpoint(str(path))
    assert loaded["<img_st>"].dtype == torch.float32 and loaded["<img_end>"].dtype == torch.bfloat16
    _assert_same(tokens, loaded)


def test_wrapped_state_dict_is_not_unwrapped(tmp_path):
    wrapped = {"model_state_dict": OrderedDict([("module.w", torch.ones(2))])}
    path = tmp_path / "ckpt.pt"
    torch.save(wrapped, path)
    _assert_same(wrapped, load_checkpoint(path))


# ------------------------------------------------------------------------------- hostile files


class SystemPayload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class ExecPayload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return builtins.exec, (f"open({self.marker!r}, 'w').close()",)


class EvalPayload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return builtins.eval, (f"open({self.marker!r}, 'w').close()",)


class Custom:
    """A harmless user class: still not a tensor, so refused."""

    def __init__(self):
        self.value = 3


PAYLOADS = [(SystemPayload, SYSTEM), (ExecPayload, "builtins.exec"), (EvalPayload, "builtins.eval")]


def _write(path, obj, form: str, protocol: int = 2) -> None:
    if form == "pickle":
        path.write_bytes(pickle.dumps(obj, protocol=protocol))
    elif form == "zip":
        torch.save(obj, path)
    else:
        torch.save(obj, path, _use_new_zipfile_serialization=False)


def _assert_refused(path, global_name) -> None:
    with pytest.raises(UnsafeCheckpointError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert path.name in message and global_name in message, message


def test_payloads_really_run_when_unpickled_unsafely(tmp_path):
    """Control: the payloads are live, so the refusals below are meaningful."""
    for payload, _ in PAYLOADS:
        marker = tmp_path / f"{payload.__name__}.marker"
        pickle.loads(pickle.dumps(payload(marker)))
        assert marker.exists()


@pytest.mark.parametrize("form", ["pickle", "zip", "legacy"])
@pytest.mark.parametrize("payload,global_name", PAYLOADS, ids=["os.system", "exec", "eval"])
def test_code_payloads_are_refused(tmp_path, form, payload, global_name):
    marker = tmp_path / "pwned"
    path = tmp_path / f"evil_{form}.pth"
    _write(path, {"w": torch.ones(2), "x": payload(marker)}, form)
    _assert_refused(path, global_name)
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_payload_refused_in_every_pickle_protocol(tmp_path, protocol):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    _write(path, {"x": ExecPayload(marker)}, "pickle", protocol)
    _assert_refused(path, "builtins.exec")
    assert not marker.exists()


def test_payload_hidden_in_tensor_storage_bytes_is_refused(tmp_path):
    """torch.storage._load_from_bytes is admitted, but its bytes are read weights-only too."""
    marker = tmp_path / "pwned"
    inner = io.BytesIO()
    torch.save(SystemPayload(marker), inner, _use_new_zipfile_serialization=False)

    class Smuggler:
        def __reduce__(self):
            return torch.storage._load_from_bytes, (inner.getvalue(),)

    path = tmp_path / "smuggle.pkl"
    _write(path, {"x": Smuggler()}, "pickle")
    _assert_refused(path, SYSTEM)
    assert not marker.exists()


@pytest.mark.parametrize("form", ["pickle", "zip", "legacy"])
def test_custom_class_is_refused(tmp_path, form):
    path = tmp_path / f"custom_{form}.pt"
    _write(path, {"obj": Custom()}, form)
    _assert_refused(path, f"{Custom.__module__}.Custom")


def test_refused_module_is_never_imported(tmp_path, monkeypatch):
    marker = tmp_path / "imported"
    (tmp_path / "sideeffect_mod_x7.py").write_text(f"open({str(marker)!r}, 'w').close()\ndef f(): pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    path = tmp_path / "import.pkl"
    path.write_bytes(b"csideeffect_mod_x7\nf\n(tR.")                   # protocol 0: GLOBAL, call f()
    _assert_refused(path, "sideeffect_mod_x7.f")
    assert not marker.exists() and "sideeffect_mod_x7" not in sys.modules


def test_torchscript_archive_is_refused(tmp_path):
    path = tmp_path / "scripted.pt"
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(path))
    with pytest.raises(UnsafeCheckpointError, match="scripted.pt.*TorchScript"):
        load_checkpoint(path)


def test_numpy_arrays_are_refused(tmp_path):
    np = pytest.importorskip("numpy")
    path = tmp_path / "arrays.pkl"
    _write(path, {"a": np.zeros(3)}, "pickle")
    _assert_refused(path, "numpy")


def test_object_state_and_persistent_ids_are_refused(tmp_path):
    with_state = OrderedDict(a=torch.ones(1))
    with_state.extra = "set through BUILD"
    path = tmp_path / "build.pkl"
    _write(path, with_state, "pickle")
    _assert_refused(path, "BUILD")

    class PidPickler(pickle.Pickler):
        def persistent_id(self, obj):
            return "ext" if obj == "outside" else None

    buffer = io.BytesIO()
    PidPickler(buffer, protocol=2).dump({"a": "outside"})
    path = tmp_path / "persid.pkl"
    path.write_bytes(buffer.getvalue())
    _assert_refused(path, "persistent id")


def test_tensor_rebuild_with_hooks_is_refused(tmp_path):
    storage = torch.ones(2).untyped_storage()
    typed = torch.storage.TypedStorage(wrap_storage=storage, dtype=torch.float32, _internal=True)

    class HookedTensor:
        def __reduce__(self):
            return torch._utils._rebuild_tensor_v2, (typed, 0, (2,), (1,), False, OrderedDict(h=print))

    path = tmp_path / "hooks.pkl"
    _write(path, {"t": HookedTensor()}, "pickle")
    _assert_refused(path, "builtins.print")               # the hook's global is refused first


def test_tensor_rebuild_out_of_bounds_is_an_input_error(tmp_path):
    typed = torch.storage.TypedStorage(wrap_storage=torch.ones(2).untyped_storage(), dtype=torch.float32,
                                       _internal=True)

    class Oversized:
        def __reduce__(self):
            return torch._utils._rebuild_tensor_v2, (typed, 0, (1000,), (1,), False, OrderedDict())

    path = tmp_path / "oob.pkl"
    _write(path, {"t": Oversized()}, "pickle")
    with pytest.raises(UnsafeCheckpointError, match="oob.pkl.*past the end of its storage"):
        load_checkpoint(path)


# ---------------------------------------------------------------------------------- bad input


def test_missing_file(tmp_path):
    with pytest.raises(ReviseInputError, match="nothere.pth.*does not exist"):
        load_checkpoint(tmp_path / "nothere.pth")


def test_directory(tmp_path):
    with pytest.raises(ReviseInputError, match="is not a file"):
        load_checkpoint(tmp_path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.pth"
    path.write_bytes(b"")
    with pytest.raises(ReviseInputError, match="empty.pth.*is empty"):
        load_checkpoint(path)


@pytest.mark.parametrize("form", ["pickle", "zip", "legacy"])
def test_truncated_file(tmp_path, form):
    path = tmp_path / f"full_{form}.pth"
    _write(path, _state(), form)
    cut = tmp_path / f"cut_{form}.pth"
    data = path.read_bytes()
    cut.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(ReviseInputError, match=f"cut_{form}.pth") as info:
        load_checkpoint(cut)
    assert not isinstance(info.value, UnsafeCheckpointError)


def test_garbage_file(tmp_path):
    path = tmp_path / "garbage.bin"
    path.write_bytes(bytes(range(7, 256)) * 4)
    with pytest.raises(ReviseInputError, match="garbage.bin"):
        load_checkpoint(path)


@pytest.mark.parametrize("form", ["pickle", "zip"])
def test_not_a_dict(tmp_path, form):
    path = tmp_path / f"list_{form}.pt"
    _write(path, [torch.ones(1)], form)
    with pytest.raises(ReviseInputError, match=f"list_{form}.pt' holds a list, not a dict of tensors"):
        load_checkpoint(path)


def test_allowlist_is_documented():
    assert "torch.storage._load_from_bytes" in safe_load.ALLOWED_GLOBALS
    assert not any(name.startswith(("builtins.", "numpy", "os.")) for name in safe_load.ALLOWED_GLOBALS)
