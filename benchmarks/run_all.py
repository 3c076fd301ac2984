"""Run every `benchmarks/*_bench.py` in its own process and collect the JSON line each prints last.

    python -m benchmarks.run_all            # full runs
    python -m benchmarks.run_all --quick    # each under a minute
Each benchmark also runs alone: `python -m benchmarks.sandbox_bench --quick`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH_DIR = Path(__file__).parent


def last_json_line(output: str) -> dict | None:
    for line in reversed(output.strip().splitlines()):
        try:
            value = json.loads(line)
        except json.JSONDecodeError:
            continue
        return value if isinstance(value, dict) else None
    return None


def main(argv: list[str]) -> int:
    failed = 0
    results = []
    for script in sorted(BENCH_DIR.glob("*_bench.py")):
        print(f"== {script.stem} {' '.join(argv)}", flush=True)
        proc = subprocess.run([sys.executable, "-m", f"benchmarks.{script.stem}", *argv], text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        print(proc.stdout[-3000:], flush=True)
        figures = last_json_line(proc.stdout)
        if proc.returncode != 0 or figures is None:
            failed += 1
            figures = {"bench": script.stem, "error": f"exit {proc.returncode}, no JSON line" if figures is None else f"exit {proc.returncode}"}
        results.append(figures)
    print("\n== summary")
    for figures in results:
        print(json.dumps(figures))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
