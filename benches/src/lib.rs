//! Policy generators for benchmarks.
