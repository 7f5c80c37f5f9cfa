//! Nothing but a test: `tests/zero_alloc.rs` counts the heap allocations
//! of Sluice decisions with a counting global allocator. It lives in its own
//! package because the allocator needs `unsafe impl GlobalAlloc`, which the
//! workspace lints forbid; see this package's `Cargo.toml`.
