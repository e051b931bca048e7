"""The kernels of the C++ plugin library, as they travel: in each ONNX node's ``kernels`` attribute.

``libtdeploy_plugins.so`` holds no kernel of its own: the kernels are the Triton kernels of
``plugins/<op>/triton.py``, compiled to PTX on CPU when an engine is built (``deploy build-engine
--plugins cpp``), for exactly the configuration of each node (dtype, window size or kernel size and
dilation, heads, head dim, mask) and for each target GPU architecture. They reach the plugin as one
STRING attribute of its ONNX node (TensorRT's parser passes it as a kCHAR field), and the plugin
serializes it into the engine: the engine then runs wherever the library loads, with no Python and
no Triton. A node without kernels, or without one for the dtype TensorRT asks, is refused by the
plugin with the reason in TensorRT's log.

The attribute is text the C++ side parses without a JSON library::

    tdeploy-kernels 1
    kernel op=WindowAttention dtype=fp16 arch=89 name=window_attention_kernel threads=128 shared=12288 ... ptx=51234
    <51234 bytes of PTX>
    kernel ...

Each ``kernel`` line holds ``key=value`` pairs (no spaces inside values), ``ptx=<bytes>`` last; the PTX
follows on the next line, then a newline.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from tdeploy.errors import TdeployError

MAGIC = "tdeploy-kernels 1"
ATTRIBUTE = "kernels"  # the ONNX attribute / plugin field that carries them
# The dtypes the library has kernels for -> their name in a record's ``dtype`` (cpp/plugins/kernels.cpp).
DTYPE_NAMES = {"float32": "fp32", "float16": "fp16"}

# PTX ISA to emit per architecture: 8.0 (CUDA 12.0 drivers, JetPack 6 loads it) unless the architecture
# is newer than that ISA (Blackwell: 12.0 needs ISA 8.7, 12.1 needs 8.8; 10.x needs 8.6).
_MIN_ISA = {100: 86, 101: 86, 103: 88, 110: 90, 120: 87, 121: 88}


def ptx_isa_for_arch(cc: int) -> int:
    """The PTX ISA the C++ library's kernels for ``sm_<cc>`` are emitted in (e.g. 80)."""
    return _MIN_ISA.get(cc, 80)


@dataclass
class KernelRecord:
    """One compiled kernel: the launch facts the plugin needs (``fields``) and its PTX."""

    fields: dict[str, int | str] = field(default_factory=dict)  # op, dtype, arch, name, threads, shared, ...
    ptx: str = ""

    def header(self) -> str:
        for key, value in self.fields.items():
            if " " in str(key) or " " in str(value) or "=" in str(key):
                raise TdeployError(f"kernel record field {key}={value!r}: no spaces or '=' allowed")
        pairs = " ".join(f"{k}={v}" for k, v in self.fields.items())
        return f"kernel {pairs} ptx={len(self.ptx.encode())}"


def record(op: str, dtype: str, kernel, **launch) -> KernelRecord:
    """The record of a compiled kernel (a :class:`tdeploy.plugins.triton_aot.PtxKernel`) of ``op`` for
    ``dtype`` ("fp32"/"fp16"), with the op's launch facts (block sizes, configuration) in ``launch``."""
    target = re.search(r"\.target\s+(sm_\w+)", kernel.ptx)
    return KernelRecord({"op": op, "dtype": dtype, "arch": kernel.cc, "target": target.group(1) if target else "",
                         "name": kernel.name, "threads": kernel.num_warps * 32, "shared": kernel.shared, **launch},
                        kernel.ptx)


def serialize(records: list[KernelRecord]) -> str:
    """The ``kernels`` attribute for ``records``."""
    parts = [MAGIC + "\n"]
    for record in records:
        parts.append(record.header() + "\n" + record.ptx + "\n")
    return "".join(parts)


def parse(text: str | bytes) -> list[KernelRecord]:
    """Inverse of :func:`serialize` (the C++ library parses the same format, in cpp/plugins/kernels.cpp)."""
    data = text.encode() if isinstance(text, str) else bytes(text)
    if not data.startswith(MAGIC.encode() + b"\n"):
        raise TdeployError(f"not a tdeploy kernels attribute (it must start with {MAGIC!r})")
    pos, records = len(MAGIC) + 1, []
    while pos < len(data):
        end = data.index(b"\n", pos)
        words = data[pos:end].decode().split(" ")
        if words[0] != "kernel":
            raise TdeployError(f"bad kernel record line {data[pos:end][:80]!r}")
        fields = dict(w.split("=", 1) for w in words[1:])
        size = int(fields.pop("ptx"))
        ptx = data[end + 1 : end + 1 + size].decode()
        records.append(KernelRecord({k: int(v) if v.lstrip("-").isdigit() else v for k, v in fields.items()}, ptx))
        pos = end + 1 + size + 1
    return records
