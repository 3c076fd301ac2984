"""Deployment entrypoint of the distill flow, on the task runner its environment names.

`flows/distill.py` fixes local threads in its decorator; the deployment loads this module instead,
where the runner comes from `TOOL_DISTILL_TASK_RUNNER` & co. (see flows/runners.py), read when the
worker's flow-run process imports it. A work pool or deployment switches to Dask or Ray with one
job variable: `env: {TOOL_DISTILL_TASK_RUNNER: dask, TOOL_DISTILL_TASK_RUNNER_ADDRESS: ...}`.
"""

from __future__ import annotations

from flows.runners import distill_on

distill = distill_on()
