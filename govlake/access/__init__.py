"""Consumers of the lake: role-scoped SQL, the CDO dashboard and the spreadsheet-safe export helpers.
They read what the pipeline wrote; the pipeline never imports them."""
