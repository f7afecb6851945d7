"""Datasets for training: tables built from stored telemetry or imported from CSV or Parquet files, kept as
Parquet in the artifact store (the ``datasets`` table, its service and its REST routes)."""
