//! Nothing but a test: `tests/zero_alloc.rs` counts the heap allocations
//! of Sluice decisions with the counting global allocator of
//! `sluice-alloc-count`.
