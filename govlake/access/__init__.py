"""Consumers of the lake: role-scoped SQL and the CDO dashboard (their spreadsheet-safe
output goes through the library's ``govlake.exports``).
They read what the pipeline wrote; the pipeline never imports them."""
