"""Governance outputs: the lineage graph, the 1+11+N catalog, the duties-data list and the indicators."""
