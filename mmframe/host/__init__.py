"""The host kernel side of validation and the speed benchmarks: workloads on real processes (docs/validation.md)."""
