"""Prefect plumbing, generic over stages: map a pure stage function over rows in chunked, retried,
cached Prefect tasks (`stage_map`), with every finished row kept on disk (`item_store`)."""

from tasks.runtime.stage_map import StageFunction, map_stage, row_threads

__all__ = ["StageFunction", "map_stage", "row_threads"]
