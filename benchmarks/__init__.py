"""Benchmarks (`make bench`); each sets the offline defaults before litellm or Prefect is imported."""

from training.offline_env import set_offline_defaults

set_offline_defaults()
