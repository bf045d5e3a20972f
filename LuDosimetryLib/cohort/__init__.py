"""Cohorts: many patients through the pipeline, locally or on a Dask cluster, resumable."""
