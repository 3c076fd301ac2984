"""Flow run names shown in the Prefect UI: `<flow>-<dataset>-<model>`, read from the run's own parameters."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol


class _Sluggable(Protocol):
    def run_slug(self) -> str: ...


def named_after_params(prefix: str, params_type: type) -> Callable[[], str]:
    """A `flow_run_name` callable: the run's `params` argument, validated as `params_type`, gives the tail."""

    def flow_run_name() -> str:
        from prefect.runtime import flow_run

        params: _Sluggable = params_type.model_validate(flow_run.parameters.get("params") or {})
        return f"{prefix}-{params.run_slug()}"

    return flow_run_name
