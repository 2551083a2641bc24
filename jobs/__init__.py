"""Pipeline jobs (ingest, conform, integrate, generate, bench): runnable without Airflow.

Each job receives its settings, registry and engine; none builds its own session.
"""
