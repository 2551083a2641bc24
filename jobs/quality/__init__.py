"""Quality: GX suites from contracts, the validation record, batch holds and releases, scores, the stewards'
report. Rules run inside conform; these modules declare, record, score and report them."""
