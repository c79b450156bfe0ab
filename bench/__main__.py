"""Run the benchmarks in bench/ and print each figure next to its same-run reference.

python -m bench                 # every bench/bench_*.py
python -m bench --only upsert   # the modules whose name contains "upsert"
python -m bench --strict        # exit 1 when a ratio is below its goal
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from bench.harness import BenchError, Result, prepare_database

PREFIX = "bench_"


def discover(only: Sequence[str]) -> list[str]:
    """Module names of bench/bench_*.py, filtered by the --only substrings if any were given."""
    names = sorted(
        info.name for info in pkgutil.iter_modules([str(Path(__file__).parent)]) if info.name.startswith(PREFIX)
    )
    if only:
        names = [name for name in names if any(word in name for word in only)]
    return names


def format_rate(value: float) -> str:
    return f"{value:,.0f}"


def print_table(results: Sequence[Result]) -> None:
    headers = ["benchmark", "measured", "reference (same run)", "ratio", "goal"]
    rows = [
        [
            result.name,
            f"{format_rate(result.measured)} {result.unit}",
            f"{format_rate(result.reference)} {result.unit} ({result.reference_name})",
            f"{result.ratio:.3f}",
            "(scale)" if result.goal is None else f">= {result.goal:g} {'PASS' if result.passed else 'BELOW'}",
        ]
        for result in results
    ]
    widths = [max(len(row[i]) for row in [headers, *rows]) for i in range(len(headers))]
    rule = "  ".join("-" * width for width in widths)
    print(rule)
    print("  ".join(cell.ljust(width) for cell, width in zip(headers, widths, strict=True)))
    print(rule)
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    print(rule)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only", action="append", default=[], metavar="WORD", help="run the modules whose name contains WORD"
    )
    parser.add_argument("--strict", action="store_true", help="exit with status 1 when a ratio is below its goal")
    parser.add_argument("--fresh", action="store_true", help="drop and recreate the benchmark database first")
    args = parser.parse_args(argv)

    names = discover(args.only)
    if not names:
        print(f"No benchmark matches {args.only}.", file=sys.stderr)
        return 2
    try:
        url = prepare_database(fresh=args.fresh)
    except BenchError as error:
        print(f"bench: {error}", file=sys.stderr)
        return 2
    print(f"Database: {url}")

    results: list[Result] = []
    for name in names:
        module = importlib.import_module(f"bench.{name}")
        print(f"Running {name} ...", flush=True)
        started = time.perf_counter()
        results.extend(module.run())
        print(f"  done in {time.perf_counter() - started:.1f}s", flush=True)
    print_table(results)
    below = [result.name for result in results if not result.passed]
    if below:
        print(f"Below goal: {', '.join(below)}")
    return 1 if below and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
