"""The C++ runner's .npy reader/writer, compiled with g++ and round-tripped against numpy."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

CPP = Path(__file__).resolve().parents[2] / "cpp"
CXX = shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")


@pytest.fixture(scope="module")
def roundtrip(tmp_path_factory) -> Path:
    if CXX is None:
        pytest.skip("no C++ compiler (g++/c++/clang++) on PATH")
    exe = tmp_path_factory.mktemp("npy") / "npy_roundtrip"
    cmd = [CXX, "-std=c++17", "-O1", "-Wall", "-Wextra", "-Werror", f"-I{CPP / 'npy'}",
           str(CPP / "npy" / "npy.cpp"), str(CPP / "npy" / "npy_roundtrip.cpp"), "-o", str(exe)]
    result = subprocess.run(cmd, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return exe


def _run(exe: Path, src: Path, dst: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(exe), str(src), str(dst)], capture_output=True, text=True, timeout=60)


CASES = {
    "float32": lambda rng: rng.standard_normal((2, 3, 5, 7)).astype(np.float32),
    "float16": lambda rng: rng.standard_normal((4, 9)).astype(np.float16),
    "int32": lambda rng: rng.integers(-2**31, 2**31 - 1, size=(3, 1, 4), dtype=np.int32),
    "int64": lambda rng: rng.integers(-2**62, 2**62, size=(17,), dtype=np.int64),
    "bool": lambda rng: rng.random((2, 2, 3)) > 0.5,
    "scalar": lambda rng: np.array(3.5, dtype=np.float32),
    "empty": lambda rng: np.zeros((0, 4), dtype=np.int64),
    "special": lambda rng: np.array([np.nan, np.inf, -np.inf, -0.0, 6.5e4], dtype=np.float16),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("version", [(1, 0), (2, 0), (3, 0)])
def test_roundtrip_is_exact(roundtrip, tmp_path, case, version):
    array = CASES[case](np.random.default_rng(0))
    src, dst = tmp_path / "in.npy", tmp_path / "out.npy"
    with open(src, "wb") as f:
        np.lib.format.write_array(f, array, version=version)
    result = _run(roundtrip, src, dst)
    assert result.returncode == 0, result.stderr
    dtype, _, shape = result.stdout.strip().partition(" ")
    assert dtype == str(array.dtype)
    assert shape == "x".join(map(str, array.shape))
    back = np.load(dst)
    assert back.dtype == array.dtype and back.shape == array.shape
    assert back.tobytes() == array.tobytes()  # bit-exact, NaNs and -0.0 included
    # What the C++ writer produces is what numpy itself writes (header padded to 64 bytes).
    assert dst.read_bytes()[:6] == b"\x93NUMPY" and (dst.read_bytes().index(b"\n") + 1) % 64 == 0


@pytest.mark.parametrize("make, words", [
    (lambda: np.asfortranarray(np.ones((3, 4), dtype=np.float32)), "Fortran-order"),
    (lambda: np.ones(3, dtype=">f4"), "big-endian"),
    (lambda: np.ones(3, dtype=np.float64), "unsupported npy dtype '<f8'"),
    (lambda: np.ones(3, dtype=np.uint8), "unsupported npy dtype"),
])
def test_unsupported_arrays_are_refused(roundtrip, tmp_path, make, words):
    src = tmp_path / "in.npy"
    np.save(src, make())
    result = _run(roundtrip, src, tmp_path / "out.npy")
    assert result.returncode == 1
    assert words in result.stderr and result.stderr.count("\n") == 1


def test_truncated_and_foreign_files(roundtrip, tmp_path):
    src = tmp_path / "in.npy"
    np.save(src, np.ones((100,), dtype=np.float32))
    src.write_bytes(src.read_bytes()[:-10])
    result = _run(roundtrip, src, tmp_path / "out.npy")
    assert result.returncode == 1 and "truncated" in result.stderr
    src.write_bytes(b"PK\x03\x04 not npy")
    assert "not a .npy file" in _run(roundtrip, src, tmp_path / "out.npy").stderr
