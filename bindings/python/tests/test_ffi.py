"""The ctypes declarations match include/rmq.h exactly; library loading and version checks."""

import ctypes
import os
import re
import subprocess
import sys
from ctypes import POINTER, c_bool, c_char_p, c_int32, c_int64, c_size_t, c_uint32, c_uint64, c_void_p

import pytest

import rmq
from rmq import _ffi

from conftest import PYTHON_DIR, REPO

HEADER = (REPO / "include" / "rmq.h").read_text()


def _strip_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    return re.sub(r"^\s*#[^\n]*", "", text, flags=re.M)  # preprocessor lines


def header_prototypes():
    """{name: (return type, [param types])} of every function in rmq.h."""
    code = _strip_comments(HEADER)
    protos = {}
    for m in re.finditer(r"([A-Za-z_][\w\s\*]*?)\b(rmq_\w+)\s*\(([^;{]*?)\)\s*;", code, flags=re.S):
        ret, name, params = m.group(1), m.group(2), m.group(3)
        if "typedef" in ret:
            continue
        ptypes = []
        params = " ".join(params.split())
        if params and params != "void":
            for p in params.split(","):
                # drop the parameter name: the last identifier
                ptypes.append(re.sub(r"\s*\b\w+$", "", p.strip()).replace(" *", "*").strip())
        protos[name] = (" ".join(ret.split()).replace(" *", "*"), ptypes)
    return protos


HANDLE_STRUCTS = {
    "rmq_config_t",
    "rmq_message_t",
    "rmq_producer_t",
    "rmq_send_result_t",
    "rmq_push_consumer_t",
    "rmq_received_message_t",
    "rmq_received_batch_t",
    "rmq_transaction_producer_t",
    "rmq_lite_pull_consumer_t",
    "rmq_message_queue_list_t",
    "rmq_completion_queue_t",
}


def expected_ctype(ctype: str):
    """The ctypes type a C type must be declared as in _ffi.SIGNATURES."""
    # an array of handles (`const T *const *`) is a pointer to handles, like an out-handle
    t = ctype.replace("const ", "").replace("struct ", "").replace("*const*", "**").strip()
    simple = {
        "void": None,
        "rmq_status_t": c_int32,
        "rmq_send_status_t": c_int32,
        "bool": c_bool,
        "uint32_t": c_uint32,
        "int32_t": c_int32,
        "int64_t": c_int64,
        "size_t": c_size_t,
        "void*": c_void_p,
        "char*": c_char_p if "const" in ctype else c_void_p,  # in-strings vs. caller buffers
        "uint8_t*": c_void_p,  # body bytes: bytes or a ctypes buffer
        "char**": POINTER(c_void_p),  # borrowed {pointer, length} views
        "uint8_t**": POINTER(c_void_p),
        "size_t*": POINTER(c_size_t),
        "int32_t*": POINTER(c_int32),
        "int64_t*": POINTER(c_int64),
        "rmq_send_status_t*": POINTER(c_int32),
        "rmq_send_callback_t": _ffi.SEND_CALLBACK,
        "rmq_request_callback_t": _ffi.REQUEST_CALLBACK,
        "rmq_log_callback_t": _ffi.LOG_CALLBACK,
        "rmq_log_level_t": c_int32,
        "uint64_t": c_uint64,
        "uint64_t*": POINTER(c_uint64),
        "rmq_message_listener_t": _ffi.MESSAGE_LISTENER,
        "rmq_transaction_state_t": c_int32,
        "rmq_transaction_state_t*": POINTER(c_int32),
        "rmq_transaction_checker_t": _ffi.TRANSACTION_CHECKER,
        "rmq_local_transaction_t": _ffi.LOCAL_TRANSACTION,
        "rmq_orderly_listener_t": _ffi.ORDERLY_LISTENER,
        "rmq_config_key_t*": POINTER(_ffi.ConfigKeyT),
        "rmq_status_desc_t*": POINTER(_ffi.StatusDescT),
        "rmq_queue_selector_t*": POINTER(_ffi.QueueSelectorT),
        "rmq_message_queue_t*": POINTER(_ffi.MessageQueueT),
        "rmq_message_queue_t**": POINTER(POINTER(_ffi.MessageQueueT)),
        "rmq_send_result_view_t*": POINTER(_ffi.SendResultViewT),
        "rmq_received_view_t**": POINTER(POINTER(_ffi.ReceivedViewT)),
        "rmq_consume_status_t*": POINTER(c_int32),
        "rmq_completion_t*": POINTER(_ffi.CompletionT),
    }
    if t in simple:
        return simple[t]
    base = t.rstrip("*")
    stars = len(t) - len(base)
    if base in HANDLE_STRUCTS and stars == 1:
        return c_void_p
    if base in HANDLE_STRUCTS and stars == 2:
        return POINTER(c_void_p)
    raise AssertionError(f"test does not know C type {ctype!r}")


def test_every_header_function_is_declared_with_matching_types():
    protos = header_prototypes()
    assert len(protos) >= 50, "header parse failed"
    assert set(protos) == set(_ffi.SIGNATURES), "rmq.h and _ffi.SIGNATURES list different functions"
    for name, (ret, params) in protos.items():
        fn = getattr(_ffi.lib, name)
        assert fn.restype is expected_ctype(ret), f"{name}: restype for {ret!r}"
        assert fn.argtypes is not None, f"{name}: argtypes not set"
        assert len(fn.argtypes) == len(params), f"{name}: {len(params)} parameters in rmq.h"
        for i, (decl, c) in enumerate(zip(fn.argtypes, params)):
            assert decl is expected_ctype(c), f"{name}: parameter {i} ({c!r})"


def _header_struct_fields(name):
    m = re.search(r"typedef struct %s \{(.*?)\} %s;" % (name, name), _strip_comments(HEADER), flags=re.S)
    assert m, name
    return [re.search(r"\*?(\w+);", line).group(1) for line in m.group(1).split("\n") if line.strip()]


@pytest.mark.parametrize(
    "cname, pytype",
    [
        ("rmq_config_key_t", _ffi.ConfigKeyT),
        ("rmq_status_desc_t", _ffi.StatusDescT),
        ("rmq_send_callback_params_t", _ffi.SendCallbackParamsT),
        ("rmq_message_queue_t", _ffi.MessageQueueT),
        ("rmq_queue_selector_t", _ffi.QueueSelectorT),
        ("rmq_send_result_view_t", _ffi.SendResultViewT),
        ("rmq_consume_context_t", _ffi.ConsumeContextT),
        ("rmq_property_view_t", _ffi.PropertyViewT),
        ("rmq_received_view_t", _ffi.ReceivedViewT),
        ("rmq_request_callback_params_t", _ffi.RequestCallbackParamsT),
    ],
)
def test_struct_layouts_match_header(cname, pytype):
    assert [f[0] for f in pytype._fields_] == _header_struct_fields(cname)


def test_library_version_matches_header_and_package():
    m = re.search(r"#define RMQ_VERSION_NUMBER \((\d+) \* 1000000 \+ (\d+) \* 1000 \+ (\d+)\)", HEADER)
    header_number = int(m.group(1)) * 1_000_000 + int(m.group(2)) * 1000 + int(m.group(3))
    assert _ffi.EXPECTED_VERSION_NUMBER == header_number
    assert rmq.library_version_number == header_number
    version_string = re.search(r'#define RMQ_VERSION_STRING "([^"]+)"', HEADER).group(1)
    assert rmq.library_version == version_string


def _run_python(code, **env):
    full_env = dict(os.environ, **env)
    return subprocess.run(
        [sys.executable, "-c", code], cwd=str(PYTHON_DIR), env=full_env, capture_output=True, text=True, timeout=60
    )


def test_rmq_library_env_selects_the_library():
    ok = _run_python("import rmq; print(rmq.library_path)", RMQ_LIBRARY=str(_ffi.library_path))
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == str(_ffi.library_path)

    bad = _run_python("import rmq", RMQ_LIBRARY="/nonexistent/dir/librmq.so")
    assert bad.returncode != 0
    assert "ImportError" in bad.stderr
    assert "/nonexistent/dir/librmq.so" in bad.stderr
    assert "RMQ_LIBRARY" in bad.stderr


def test_default_search_lists_the_paths_tried():
    # A copy of the package in a temporary tree has no target/ next to it.
    code = r"""
import shutil, sys, tempfile, pathlib
root = pathlib.Path(tempfile.mkdtemp())
dst = root / "a" / "b" / "c"
shutil.copytree("rmq", dst / "rmq")
sys.path.insert(0, str(dst))
try:
    import rmq
except ImportError as e:
    print("IMPORT-ERROR", e)
finally:
    shutil.rmtree(root)
"""
    env = {k: v for k, v in os.environ.items() if k != "RMQ_LIBRARY"}
    r = subprocess.run([sys.executable, "-c", code], cwd=str(PYTHON_DIR), env=env, capture_output=True, text=True, timeout=60)
    assert "IMPORT-ERROR" in r.stdout, r.stdout + r.stderr
    assert "target/release/librmq.so" in r.stdout and "target/debug/librmq.so" in r.stdout


def test_version_mismatch_is_refused():
    code = f"""
import pathlib, types
src = pathlib.Path("rmq/_ffi.py").read_text()
assert "EXPECTED_VERSION_NUMBER = {_ffi.EXPECTED_VERSION_NUMBER:_}" in src
src = src.replace("EXPECTED_VERSION_NUMBER = {_ffi.EXPECTED_VERSION_NUMBER:_}", "EXPECTED_VERSION_NUMBER = 999_999_999")
mod = types.ModuleType("rmq_ffi_copy")
mod.__file__ = str(pathlib.Path("rmq/_ffi.py").resolve())
try:
    exec(compile(src, mod.__file__, "exec"), mod.__dict__)
except ImportError as e:
    print("IMPORT-ERROR", e)
"""
    r = _run_python(code)
    assert "IMPORT-ERROR" in r.stdout, r.stdout + r.stderr
    assert "expects 999999999" in r.stdout


def test_cdll_not_pydll():
    assert type(_ffi.lib) is ctypes.CDLL
