"""Shared helpers for the reproductions under ``papers/``.

A hardware/software banner (every reproduction prints it), a text progress bar, the
machine's AES-CTR keystream speed, markdown/JSON table writers and a log-log plot
writer that fails loudly when matplotlib (the ``plot`` extra) is missing.

This module imports only the standard library at import time (NumPy and
``cryptography`` inside the functions that need them), so the Flower runner, which
runs in Flower's own virtual environment, can use it too.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "PAPERS",
    "MissingDependency",
    "Progress",
    "aes_ctr_speed",
    "banner",
    "banner_text",
    "clock",
    "markdown_table",
    "out_dir",
    "plot_loglog",
    "require",
    "write_outputs",
]

PAPERS = Path(__file__).resolve().parent
REPO = PAPERS.parent

SHARED_NOTE = ("shared machine: about 7 engineers' jobs on 2 cores; wall-clock timings are "
               "upper bounds, see load_average")


class MissingDependency(RuntimeError):
    """An optional dependency a reproduction needs is not installed."""


def run_main(main: Callable[[], int]) -> None:
    """Exit with ``main()``'s code; a missing dependency is a loud error (exit code 2)."""
    try:
        sys.exit(main())
    except MissingDependency as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)


def require(module: str, *, extra: str | None = None, hint: str | None = None) -> Any:
    """Import ``module`` or raise :class:`MissingDependency` saying how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        how = hint or (f"pip install -e '.[{extra}]'" if extra else f"pip install {module}")
        raise MissingDependency(f"{module} is required here but not installed ({exc}); "
                                f"install it with: {how}") from None


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _cpu_model() -> tuple[str, bool]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown", False
    model = next((line.split(":", 1)[1].strip() for line in text.splitlines()
                  if line.startswith("model name")), platform.processor() or "unknown")
    flags = next((line for line in text.splitlines() if line.startswith("flags")), "")
    return model, " aes " in f" {flags} "


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=5, check=False)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def banner(extra_packages: Sequence[str] = ()) -> dict[str, Any]:
    """Hardware and software this run used, as a JSON-ready dict."""
    model, aesni = _cpu_model()
    packages = ("numpy", "cryptography", "blindsum", *extra_packages)
    return {
        "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
        "cpu": model,
        "aes_ni": aesni,
        "cores": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "packages": {p: _version(p) for p in packages},
        "git_commit": _git_commit(),
        "note": SHARED_NOTE,
    }


def banner_text(info: dict[str, Any]) -> str:
    pkgs = ", ".join(f"{k} {v}" for k, v in info["packages"].items())
    return "\n".join([
        f"# {info['date_utc']} UTC, commit {info['git_commit']}",
        f"# CPU: {info['cpu']} x{info['cores']} (AES-NI: {'yes' if info['aes_ni'] else 'no'}), "
        f"{info['memory_gib']} GiB, load average {info['load_average']}",
        f"# {info['os']}, Python {info['python']}; {pkgs}",
        f"# {info['note']}",
    ])


class Progress:
    """A one-line text progress bar on stderr; also the ``progress`` callback of ``simulate``.

    ``Progress(label)(stage, done, total)`` redraws the bar; :meth:`close` ends the line.
    Silent when ``enabled`` is false.
    """

    def __init__(self, label: str, *, enabled: bool = True, width: int = 30) -> None:
        self.label = label
        self.enabled = enabled
        self.width = width
        self._start = time.perf_counter()
        self._last = 0.0

    def __call__(self, stage: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if done < total and now - self._last < 0.2:
            return
        self._last = now
        filled = self.width * done // max(total, 1)
        bar = "#" * filled + "-" * (self.width - filled)
        sys.stderr.write(f"\r{self.label} [{bar}] {stage} {done}/{total} {now - self._start:6.1f}s ")
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")
            sys.stderr.flush()


def aes_ctr_speed(*, key_bytes: int = 32, nbytes: int = 40_000_000, repeats: int = 20,
                  clock: Callable[[], float] = time.thread_time) -> float:
    """This machine's AES-CTR keystream speed (bytes/s), best of ``repeats``.

    The keystream is written into a preallocated buffer, the way blindsum expands masks;
    a fresh key per repeat, as every mask has its own seed. Timed with ``clock``
    (this thread's CPU time by default, so other jobs on a shared machine do not count).
    """
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    zeros = bytes(nbytes)
    out = bytearray(nbytes + 16)
    best = float("inf")
    for _ in range(repeats):
        enc = Cipher(algorithms.AES(os.urandom(key_bytes)), modes.CTR(bytes(16))).encryptor()
        t0 = clock()
        enc.update_into(zeros, out)
        best = min(best, clock() - t0)
    return nbytes / best


class _CpuClock:
    """A stand-in for the ``time`` module whose ``perf_counter`` is this process's CPU time."""

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)

    @staticmethod
    def perf_counter() -> float:
        return time.process_time()


@contextlib.contextmanager
def clock(module: Any, kind: str) -> Iterator[None]:
    """Within the block, ``module``'s ``time.perf_counter`` reads ``kind`` time.

    ``kind`` is ``"cpu"`` (this process's CPU time, worker threads included: the
    simulation runs one party at a time, so each party's time is the CPU it used,
    whatever else runs on a shared machine) or
    ``"wall"`` (unchanged). Used on ``secagg._simulate``, which times every party with
    ``time.perf_counter``.
    """
    if kind not in ("cpu", "wall"):
        raise ValueError(f"clock must be 'cpu' or 'wall', got {kind!r}")
    saved = module.time
    if kind == "cpu":
        module.time = _CpuClock()
    try:
        yield
    finally:
        module.time = saved


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]]) -> str:
    """A markdown table of ``rows``; ``columns`` are ``(key, header)`` pairs."""
    def cell(v: Any) -> str:
        if v is None:
            return "-"
        if isinstance(v, float):
            return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"
        return str(v)

    lines = ["| " + " | ".join(h for _, h in columns) + " |",
             "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(cell(r.get(k)) for k, _ in columns) + " |" for r in rows]
    return "\n".join(lines)


def out_dir(paper: str, override: str | Path | None = None) -> Path:
    """``papers/<paper>/out`` (or ``override``), created."""
    path = Path(override) if override is not None else PAPERS / paper / "out"
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_outputs(directory: Path, stem: str, *, info: dict[str, Any], command: str,
                  table: str, rows: Sequence[dict[str, Any]], extra: dict[str, Any] | None = None) -> None:
    """Write ``<stem>.md`` (banner, command, table) and ``<stem>.json`` (everything)."""
    text = f"{banner_text(info)}\n# command: {command}\n\n{table}\n"
    (directory / f"{stem}.md").write_text(text)
    payload = {"hardware_software": info, "command": command, "rows": list(rows), **(extra or {})}
    (directory / f"{stem}.json").write_text(json.dumps(payload, indent=2, default=str) + "\n")


def plot_loglog(path: Path, series: Sequence[tuple[str, Sequence[float], Sequence[float]]], *,
                xlabel: str, ylabel: str, title: str,
                guides: Sequence[tuple[str, Callable[[float], float]]] = ()) -> None:
    """A log-log PNG of ``(label, xs, ys)`` series plus dashed reference ``guides``.

    Raises:
        MissingDependency: matplotlib (the ``plot`` extra) is not installed.
    """
    require("matplotlib", extra="plot")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    xs_all: list[float] = []
    for label, xs, ys in series:
        ax.plot(xs, ys, marker="o", label=label)
        xs_all += list(xs)
    if xs_all:
        lo, hi = min(xs_all), max(xs_all)
        grid = [lo * (hi / lo) ** (i / 50) for i in range(51)] if hi > lo else [lo]
        for label, fn in guides:
            ax.plot(grid, [fn(x) for x in grid], linestyle="--", linewidth=1, label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
