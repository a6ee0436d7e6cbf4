"""Shared helpers of the benchmarks: machine line, repeats, markdown tables, results files."""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> str:
    import torch

    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor() or platform.machine()
    return (f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, "
            f"torch {torch.__version__} ({torch.get_num_threads()} threads)")


def command() -> str:
    return "python " + " ".join([Path(sys.argv[0]).as_posix().split("/work/main/")[-1], *sys.argv[1:]])


def repeat(fn: Callable[[], Any], n: int) -> tuple[list[float], list[Any]]:
    """Run ``fn`` n times; (wall seconds of each, results)."""
    times, outs = [], []
    for _ in range(n):
        t0 = time.perf_counter()
        outs.append(fn())
        times.append(time.perf_counter() - t0)
    return times, outs


def mmm(xs: Sequence[float], fmt: str = "{:.3f}") -> str:
    """'min / median / max' of xs."""
    if not xs:
        return "n/a"
    return " / ".join(fmt.format(v) for v in (min(xs), statistics.median(xs), max(xs)))


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def report(name: str, title: str, body: str) -> str:
    """Print a titled table with its command and machine, and write it to results/."""
    text = f"## {title}\n\n`{command()}`\n\nMachine: {machine()}\n\n{body}\n"
    print(text, flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.md").write_text(text)
    return text
