"""Compile a @triton.jit kernel to PTX for a TensorRT AOT plugin (no GPU needed).

TensorRT's AOT launch (``@trtp.aot_impl`` returning kernel name, PTX, launch params and extra args)
passes the kernel, in this order:

    input tensor pointers..., extra int32 scalars (trtp.SymInt32)..., output tensor pointers...

and nothing else. NVIDIA's quickly_deployable_plugins sample (``circ_pad_kernel``: "extra scalar args
in between input and output tensors for kernel signature to be compatible with AOT plugin impl") and
Torch-TensorRT's ``triton_op`` ("(input_ptrs..., extra_scalars..., output_ptrs...)") both state this;
extra args are int32 only, so floats must be baked into the PTX as constexprs.

Triton appends hidden parameters to every kernel it compiles: ``global_scratch`` (Triton >= 3.3) and
``profile_scratch`` (3.5; 3.6 keeps both), trailing u64 pointers that its own launcher fills. TensorRT
does not know about them. When a kernel needs no scratch (sizes 0: the pointers are never loaded),
:func:`compile_ptx` removes them from the ``.entry`` declaration so the PTX takes exactly the
parameters TensorRT passes, whatever Triton version compiled it. A kernel that does use scratch is
refused with the reason. The result is checked: the runtime parameters left in the entry must match
the signature one for one (count and types).
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass

from tdeploy.errors import BackendUnavailable, TdeployError

# PTX parameter type each Triton signature type compiles to.
_PTX_TYPE = {"i1": "u8", "i8": "u8", "i16": "u16", "i32": "u32", "u32": "u32", "i64": "u64", "fp32": "f32"}

_ENTRY = re.compile(r"\.entry\s+(?P<name>[A-Za-z_$][\w$]*)\s*\((?P<params>[^)]*)\)", re.S)
_PARAM = re.compile(r"\.param\s+\.(?P<type>[busf]\d+)(?P<ptr>\s+\.ptr)?[^,]*?\s(?P<pname>[\w$]+)\s*$")


@dataclass(frozen=True)
class PtxKernel:
    name: str  # the .entry symbol, what TensorRT looks up in the PTX
    ptx: str
    num_warps: int  # block_x = num_warps * 32
    shared: int  # bytes of dynamic shared memory for the launch
    params: tuple[str, ...]  # .entry parameter types after stripping, "ptr" for pointers, e.g. ("ptr", "u32")
    cc: int  # compute capability compiled for, e.g. 90
    hidden_stripped: int  # Triton's hidden scratch params removed from the entry


def entry_params(ptx: str) -> tuple[str, list[tuple[str, str]]]:
    """(entry name, [(param name, "ptr" | PTX type)]) of the single ``.entry`` in ``ptx``."""
    match = _ENTRY.search(ptx)
    if match is None:
        raise TdeployError("no .entry found in the PTX")
    params = []
    for decl in match.group("params").split(","):
        decl = " ".join(decl.split())
        if not decl:
            continue
        p = _PARAM.search(decl)
        if p is None:
            raise TdeployError(f"cannot parse PTX parameter {decl!r}")
        params.append((p.group("pname"), "ptr" if p.group("ptr") else p.group("type")))
    return match.group("name"), params


def expected_params(signature: dict[str, str]) -> tuple[str, ...]:
    """PTX parameter types Triton should emit for ``signature`` (constexprs vanish)."""
    out = []
    for name, ty in signature.items():
        if ty == "constexpr":
            continue
        if ty.startswith("*"):
            out.append("ptr")
        elif ty in _PTX_TYPE:
            out.append(_PTX_TYPE[ty])
        else:
            raise TdeployError(f"parameter {name!r}: unsupported AOT type {ty!r}")
    return tuple(out)


def _strip_hidden(ptx: str, name: str, params: list[tuple[str, str]], n_runtime: int) -> str:
    """Remove the trailing hidden params (never referenced in the body) from the entry declaration."""
    match = _ENTRY.search(ptx)
    body = ptx[match.end():]
    for pname, _ in params[n_runtime:]:
        if re.search(rf"\[{re.escape(pname)}\]", body):
            raise TdeployError(f"kernel {name}: hidden parameter {pname} is used by the kernel body")
    kept = ",\n".join(f"\t{decl.strip()}" for decl in match.group("params").split(",")[:n_runtime])
    return ptx[: match.start()] + f".entry {name}(\n{kept}\n)" + body


def _interpreting() -> bool:
    try:
        import triton

        return bool(triton.knobs.runtime.interpret)
    except (ImportError, AttributeError):
        return os.environ.get("TRITON_INTERPRET") == "1"


def _raw_compile(jobs: list[dict]) -> list[dict]:
    """Run triton.compile for each job {module, kernel, signature, constexprs, cc, options}.

    In a process where TRITON_INTERPRET=1 (the CPU tests), Triton's interpreter has patched
    triton.language in place and @triton.jit returned interpreter wrappers: compiling there fails.
    The jobs then run in one fresh Python process without the variable.
    """
    if _interpreting():
        env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        result = subprocess.run([sys.executable, "-m", "tdeploy.plugins.triton_aot"], input=json.dumps(jobs),
                                capture_output=True, text=True, env=env)
        if result.returncode != 0:
            raise TdeployError(f"Triton PTX compile failed: {result.stderr.strip().splitlines()[-1:]}")
        return json.loads(result.stdout)

    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    out = []
    for job in jobs:
        fn = getattr(importlib.import_module(job["module"]), job["kernel"])
        src = ASTSource(fn=fn, signature=job["signature"], constexprs=job["constexprs"])
        compiled = triton.compile(src, target=GPUTarget("cuda", job["cc"], 32), options=job["options"])
        meta = compiled.metadata
        fields = ("name", "num_warps", "shared", "num_ctas", "launch_cooperative_grid", "launch_pdl", "tmem_size",
                  "global_scratch_size", "profile_scratch_size")
        info = {f: getattr(meta, f) for f in fields if hasattr(meta, f)}
        out.append({"ptx": compiled.asm["ptx"], "meta": info, "triton": triton.__version__})
    return out


def require_triton(what: str) -> None:
    """BackendUnavailable (one line) when Triton, which compiles the PTX, is not installed."""
    if importlib.util.find_spec("triton") is None:
        raise BackendUnavailable(f"{what} needs triton to compile its PTX: pip install 'tdeploy[triton]'")


def compile_ptx_many(fn, configs: list[dict]) -> list[PtxKernel]:
    """:func:`compile_ptx` for several configurations of one kernel (one subprocess when interpreting).

    Each config holds the keyword arguments of :func:`compile_ptx` except ``fn``.
    """
    require_triton("compiling a TensorRT plugin kernel")
    inner = getattr(fn, "fn", fn)  # an interpreter wrapper keeps the Python function in .fn
    arg_names = list(inspect.signature(inner).parameters)
    jobs, wants = [], []
    for cfg in configs:
        signature = cfg["signature"]
        if set(signature) != set(arg_names):
            raise TdeployError(f"signature names {sorted(signature)} differ from {inner.__name__}'s parameters {arg_names}")
        # Triton reads the signature positionally: put it in the kernel's declaration order.
        signature = {name: signature[name] for name in arg_names}
        wants.append(expected_params(signature))
        # sanitize_overflow/debug only add debug-mode checks. Unknown options are ignored by Triton.
        options = {"num_warps": cfg.get("num_warps", 4), "num_stages": cfg.get("num_stages", 2),
                   "sanitize_overflow": False, "debug": False}
        if cfg.get("ptx_version") is not None:
            options["ptx_version"] = cfg["ptx_version"]
        jobs.append({"module": inner.__module__, "kernel": inner.__name__, "signature": signature,
                     "constexprs": cfg["constexprs"], "cc": cfg["cc"], "options": options})
    return [_fit_entry(res, want, job["cc"]) for res, want, job in zip(_raw_compile(jobs), wants, jobs)]


def _fit_entry(res: dict, want: tuple[str, ...], cc: int) -> PtxKernel:
    """Check launch features, strip Triton's unused hidden params, check the entry against ``want``."""
    meta, ptx, version = res["meta"], res["ptx"], res["triton"]
    name, params = entry_params(ptx)
    for field, ok in (("num_ctas", 1), ("launch_cooperative_grid", False), ("launch_pdl", False), ("tmem_size", 0)):
        if meta.get(field, ok) != ok:
            raise TdeployError(f"kernel {name} needs {field}={meta[field]} (triton {version}); "
                               "TensorRT's AOT launch cannot provide it")
    hidden = len(params) - len(want)
    if hidden < 0:
        raise TdeployError(f"kernel {name}: PTX has {len(params)} params, the signature declares {len(want)}")
    if hidden:
        scratch = {f: meta.get(f, 0) for f in ("global_scratch_size", "profile_scratch_size")}
        if any(scratch.values()) or any(t != "ptr" for _, t in params[len(want):]):
            raise TdeployError(
                f"kernel {name} compiled by triton {version} needs hidden scratch memory {scratch}; "
                "TensorRT's AOT launch passes only inputs, extras and outputs: use triton==3.5.1 (pinned)"
            )
        ptx = _strip_hidden(ptx, name, params, len(want))
        name, params = entry_params(ptx)
    got = tuple(t for _, t in params)
    if got != want:
        raise TdeployError(f"kernel {name}: PTX entry params {got} differ from the signature's {want}")
    return PtxKernel(name=name, ptx=ptx, num_warps=meta["num_warps"], shared=meta["shared"], params=got, cc=cc,
                     hidden_stripped=hidden)


def compile_configs(fn, configs: list[dict]) -> list[PtxKernel]:
    """:func:`compile_ptx_many` for the plugins' kernel configurations (which also carry their tiling
    under ``"blocks"``, for the launch)."""
    return compile_ptx_many(fn, [{k: v for k, v in c.items() if k != "blocks"} for c in configs])


def compile_ptx(
    fn,
    signature: dict[str, str],
    constexprs: dict,
    cc: int,
    *,
    num_warps: int = 4,
    num_stages: int = 2,
    ptx_version: int | None = None,
) -> PtxKernel:
    """Compile ``fn`` for ``sm_<cc>`` with Triton, no GPU needed, and fit its entry to TensorRT's launch.

    Args:
        fn: the @triton.jit kernel (an interpreter-wrapped one is fine), defined at module level.
        signature: every parameter of ``fn``, ``"constexpr"`` for those in ``constexprs``,
            e.g. ``{"X": "*fp16", "n": "i32", "Y": "*fp16", "BLOCK": "constexpr"}``. Runtime parameters
            must follow TensorRT's order: input pointers, int32 extras, output pointers.
        constexprs: values of the constexpr parameters (JSON-serialisable).
        cc: compute capability, e.g. 80, 86, 87, 89, 90.
        ptx_version: PTX ISA to emit (e.g. 84), for drivers older than Triton's bundled ptxas.
    """
    config = {"signature": signature, "constexprs": constexprs, "cc": cc, "num_warps": num_warps,
              "num_stages": num_stages, "ptx_version": ptx_version}
    return compile_ptx_many(fn, [config])[0]


if __name__ == "__main__":  # the subprocess of _raw_compile: jobs as JSON on stdin, results on stdout
    json.dump(_raw_compile(json.load(sys.stdin)), sys.stdout)
