"""Owner-only file modes for everything govlake creates.

Bronze Parquet files and Delta logs (whose column statistics may carry delivered text) are as sensitive as
the deliveries themselves, so nothing govlake writes may be readable by other local users. Setting the
process umask once, before the first file is written, covers every writer at once: delta-rs's object store,
DuckDB's COPY, pyarrow, openpyxl, the report templates and the landing folder of ``govlake generate``. An
explicit ``chmod`` after each write would miss the writers we do not call directly (DuckDB's temp files,
delta-rs's checkpoints) and leave a window in which the file is world-readable.

The lake's secret key keeps its own explicit modes (700/600, govlake/security.py) so it stays private even
when a process with another umask creates it.
"""

from __future__ import annotations

import os

OWNER_ONLY_UMASK = 0o077  # new files 600, new directories 700


def restrict_new_files() -> None:
    """Make every file and directory this process creates from now on owner-only (idempotent)."""
    os.umask(OWNER_ONLY_UMASK)
