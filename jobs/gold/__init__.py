"""Stage 3, integrate: silver -> gold models, and 多源校核 (the cross-source check of shared data items)."""
