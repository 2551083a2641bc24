"""The pipeline (``govlake.jobs``), in flow order: ``ingest`` -> ``conform`` -> ``gold`` -> ``quality`` ->
``governance``; ``plan``/``pipeline`` walk the stages and ``tasks`` are the Airflow callables over them.

Each job receives its context (settings, registries, lake) and engine; none builds its own session.
"""
