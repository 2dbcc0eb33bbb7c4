"""Benchmark output: medians, fixed-width numbers, Markdown tables, result files."""

from __future__ import annotations

import json
import os
import statistics
import sys
from pathlib import Path

import psutil
import vanilla_venv


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x, unit="", nd=2):
    if x is None:
        return "-"
    return f"{x:.{nd}f}{unit}"


def table(rows: list[list], header: list[str]) -> str:
    cells = [header] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |" for r in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def write_json(out: Path, name: str, data) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / name
    path.write_text(json.dumps(data, indent=2))
    return path


def machine() -> dict:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import jupyterhub

    return {
        "nproc": os.cpu_count(),
        "physical_cores": psutil.cpu_count(logical=False),
        "cpu_model": model,
        "mem_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "jupyterhub": jupyterhub.__version__,
        "python": sys.version.split()[0],
        "vanilla": {"venv": str(vanilla_venv.venv_dir()), "pins": vanilla_venv.PINS},
    }
