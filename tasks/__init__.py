"""Pipeline stages as plain functions (solve, translate, rephrase, filter, ...) plus their Prefect wrappers."""

from training.offline_env import set_offline_defaults

# litellm fetches its model cost map from GitHub on import and retries for seconds when offline;
# its bundled copy is what we want unless the user says otherwise. Must run before litellm is imported.
set_offline_defaults()
