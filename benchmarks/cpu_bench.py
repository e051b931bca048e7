"""`make bench`: CPU latency of every family's benchmark module, written to docs/benchmarks.md.

Each ``benchmarks/bench_<name>.py`` exposes ``run(threads: int) -> str`` returning a Markdown
section. All sections are measured in this one run, on this machine, and replace the CPU part of
docs/benchmarks.md (between the ``cpu-bench`` markers); the GPU part is left as it is.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import pkgutil
import sys
from pathlib import Path

import benchmarks
from benchmarks.report_sections import write_section
from tdeploy.deploy.evaluate.bench import machine_description

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def bench_modules(only: list[str] | None) -> list[str]:
    names = sorted(m.name for m in pkgutil.iter_modules(benchmarks.__path__) if m.name.startswith("bench_"))
    return [n for n in names if not only or n.removeprefix("bench_") in only]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", nargs="*", help="bench module suffixes, e.g. vit swin")
    parser.add_argument("--no-write", action="store_true", help="print, do not update docs/benchmarks.md")
    args = parser.parse_args(argv)
    sections = []
    for name in bench_modules(args.only):
        print(f"== {name}", file=sys.stderr)
        module = importlib.import_module(f"benchmarks.{name}")
        sections.append(module.run(threads=args.threads))
    stamp = datetime.date.today().isoformat()
    body = (f"## CPU ({stamp})\n\n{machine_description()}, {args.threads} threads. Ratios are PyTorch eager "
            "median latency / backend median latency, both measured in the same run, interleaved.\n\n"
            + "\n".join(sections))
    print(body)
    if not args.no_write and not args.only:
        write_section(DOC, "cpu-bench", body, title="Benchmarks")
        print(f"updated {DOC}", file=sys.stderr)


if __name__ == "__main__":
    main()
