"""govlake: a lakehouse governance pipeline for a city's "1+11+N" public data.

The package holds the library (contracts, registries, engines, lake storage, SQL access);
the pipeline jobs live in ``govlake.jobs`` (the repository's ``jobs/`` directory).
"""

__version__ = "0.1.0"
