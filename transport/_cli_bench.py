"""``blindsum bench``: rerun every reproduction under ``papers/`` (the same runs as ``make papers``).

``papers/`` lives in the source checkout, not in the installed packages, so the command
runs from a checkout (the one this ``transport`` package was installed from, or the
current directory). Each reproduction runs in its own process with this interpreter and
prints its hardware/software banner, progress and tables; a missing optional dependency
(matplotlib, Flower's virtual environment) makes that reproduction fail loudly and the
command exit non-zero after the others have run.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

# name -> (how to run it, whether it takes --quick); in the order of `make papers`.
REPRODUCTIONS: dict[str, tuple[tuple[str, ...], bool]] = {
    "bonawitz2017": (("-m", "papers.bonawitz2017.reproduce"), True),
    "bell2020": (("-m", "papers.bell2020.reproduce"), True),
    "abadi2016": (("papers/abadi2016/reproduce.py",), False),
    "kairouz2021": (("papers/kairouz2021/reproduce.py",), True),
    "flower_baseline": (("-m", "papers.flower_baseline.reproduce"), True),
}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "bench",
        help="rerun every paper reproduction under papers/ (what `make papers` runs)",
        description="Rerun the reproductions under papers/ (Bonawitz 2017, Bell 2020, Abadi 2016, "
        "Kairouz 2021, the Flower baseline), each writing its tables and PNG plots under "
        "papers/<paper>/out/. Needs a source checkout; the Flower baseline needs its own venv "
        "(make flower-venv).",
    )
    p.add_argument("--quick", action="store_true", help="every reproduction at its quick size (minutes)")
    p.add_argument("--only", nargs="+", choices=tuple(REPRODUCTIONS), metavar="PAPER",
                   help=f"run only these ({', '.join(REPRODUCTIONS)})")
    p.add_argument("--skip-flower", action="store_true",
                   help="leave out the Flower baseline (also: PAPERS_SKIP_FLOWER=1)")
    p.add_argument("--repo", type=Path, default=None,
                   help="the source checkout holding papers/ (default: found automatically)")
    p.add_argument("--dry-run", action="store_true", help="print the commands without running them")
    p.set_defaults(handler=_run)


def find_repo(explicit: Path | None = None) -> Path:
    """The checkout with ``papers/``: ``explicit``, this package's parent, or the working directory.

    Raises:
        ValueError: none of them holds ``papers/``.
    """
    candidates = [explicit] if explicit is not None else [Path(__file__).resolve().parents[1], Path.cwd()]
    for root in candidates:
        if (root / "papers" / "_common.py").is_file():
            return root
    raise ValueError("papers/ is not installed with blindsum: run this from a source checkout "
                     f"(looked in {', '.join(str(c) for c in candidates)}), or pass --repo")


def commands(*, quick: bool, only: list[str] | None, skip_flower: bool) -> list[tuple[str, list[str]]]:
    """``(name, argv)`` of every reproduction to run, with this interpreter."""
    out = []
    for name, (how, takes_quick) in REPRODUCTIONS.items():
        if only and name not in only:
            continue
        if name == "flower_baseline" and skip_flower:
            continue
        out.append((name, [sys.executable, *how, *(["--quick"] if quick and takes_quick else [])]))
    return out


def _run(args: argparse.Namespace) -> int:
    repo = find_repo(args.repo)
    skip_flower = args.skip_flower or bool(os.environ.get("PAPERS_SKIP_FLOWER"))
    todo = commands(quick=args.quick, only=args.only, skip_flower=skip_flower)
    failed = []
    for i, (name, argv) in enumerate(todo, 1):
        shown = " ".join(["python", *argv[1:]])
        print(f"[{i}/{len(todo)}] {name}: {shown}", flush=True)
        if args.dry_run:
            continue
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(repo), os.environ.get("PYTHONPATH")])))
        code = subprocess.run(argv, cwd=repo, env=env, check=False).returncode
        if code != 0:
            failed.append(f"{name} (exit {code})")
    if failed:
        print(f"blindsum bench: failed: {', '.join(failed)}", file=sys.stderr)
        return 2
    if not args.dry_run:
        print(f"all {len(todo)} reproductions done; tables and plots under {repo / 'papers'}/*/out/")
    return 0
