//! Nothing but a test and an example: `tests/zero_alloc.rs` counts the heap
//! allocations of Sluice decisions with the counting global allocator of
//! `sluice-alloc-count`; `examples/candidate_cost.rs` times a live decision
//! against a live and a candidate decision and their comparison, as the
//! proxy makes them (issue 14).
