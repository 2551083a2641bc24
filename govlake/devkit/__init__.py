"""Developer tooling outside the runtime pipeline: the seeded test-data generator, the demo and the
benchmarks. Nothing in ``govlake.jobs`` or the library imports this package."""
