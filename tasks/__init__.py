"""Pipeline stages as plain functions (solve, translate, rephrase, filter, ...) plus their Prefect wrappers."""

import os

# litellm fetches its model cost map from GitHub on import and retries for seconds when offline;
# its bundled copy is what we want unless the user says otherwise. Must run before litellm is imported.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
