"""Virtual schools for demos, tests and benchmarks: plan, sample generation, publishing."""
