"""Stage 1, ingest: delivered files -> bronze (readers per format, whole file or nothing, exactly once)."""
