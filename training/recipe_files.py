"""Where recipes live and which names exist: light enough for the CLI's checks before anything starts
(training.config imports TRL and torch, which take seconds)."""

from __future__ import annotations

from pathlib import Path

RECIPES_DIR = Path(__file__).resolve().parent / "recipes"


def available_recipes() -> list[str]:
    return sorted(path.stem for path in RECIPES_DIR.glob("*.yaml"))


def recipe_path(name_or_path: str | Path) -> Path:
    """`training/recipes/<name>.yaml` for a name, the path itself for a .yaml/.yml path."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = RECIPES_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        raise FileNotFoundError(
            f"recipe {str(name_or_path)!r}: no file {path}. Use one of {available_recipes()} or a path to a YAML file."
        )
    return path
