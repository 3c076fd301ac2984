"""Publish run results to the Prefect UI as artifacts (only inside a flow or task run)."""

from __future__ import annotations

from typing import Any

from prefect.context import FlowRunContext, TaskRunContext


def _in_run() -> bool:
    return FlowRunContext.get() is not None or TaskRunContext.get() is not None


def publish_table(key: str, rows: list[dict[str, Any]], description: str) -> None:
    """A table artifact; values are stringified so nested fields render. A no-op outside a run."""
    if not _in_run():
        return
    from prefect.artifacts import create_table_artifact

    table = [{k: v if isinstance(v, (int, float, str, bool)) or v is None else str(v) for k, v in row.items()} for row in rows]
    create_table_artifact(table=table, key=key, description=description)


def publish_markdown(key: str, markdown: str, description: str) -> None:
    if not _in_run():
        return
    from prefect.artifacts import create_markdown_artifact

    create_markdown_artifact(markdown=markdown, key=key, description=description)
