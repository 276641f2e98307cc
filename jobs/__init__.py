"""Entry points: CLI, the Spark job, run and backfill orchestration."""
