"""Solver-loop throughput: N multi-turn solver episodes against the mock server, vs ideal and vs distilabel.

    python -m benchmarks.solve_throughput_bench [--quick] [--problems 500] [--calls-per-problem 5] ...

The same machinery and options as `benchmarks/llm_throughput_bench.py`, on the solve stage instead
of the translate stage: problem p asks for 1 + p % K tool calls, one per term ("Compute one term
per step"), so an episode is a plan turn, 1 to K tool turns each waiting on the sandbox's output of
the one before, and an answer turn: 3 to K + 2 sequential calls, 2,500 in all for 500 problems and
K = 5. The tool code runs in our sandbox on our side and in distilabel's own process (`exec`, no
isolation: cheaper) on its side.

distilabel has no tool loop, so its side is a custom `Task` whose `process` runs the loop for its
input batch: every turn sends the batch's unfinished episodes at once and waits for all of them,
the one way a distilabel step can serve multi-turn rows. A batch therefore lasts as long as its
longest episode; our solver threads start the next problem as soon as one finishes.
"""

from __future__ import annotations

import sys

from benchmarks.llm_throughput_bench import main

if __name__ == "__main__":
    sys.exit(main(["--workload", "solve", *sys.argv[1:]]))
