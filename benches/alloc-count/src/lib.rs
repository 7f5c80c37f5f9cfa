//! A counting global allocator: [`Counting`] wraps `System` and counts
//! every allocation (including zeroed allocations and reallocations) of the
//! calling thread; [`allocations`] reads the count.
//!
//! A binary (a test or a benchmark) installs it with
//!
//! ```ignore
//! #[global_allocator]
//! static GLOBAL: sluice_alloc_count::Counting = sluice_alloc_count::Counting;
//! ```
//!
//! The count is per thread, so test threads that run at the same time do
//! not disturb each other's counts. This is the workspace's one `unsafe`
//! code (see this package's `Cargo.toml`).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

thread_local! {
    /// Allocations made by this thread so far.
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

/// `System`, counting every allocation (including zeroed allocations and
/// reallocations) of the calling thread.
pub struct Counting;

fn count_one() {
    // A const-initialized thread local without a destructor: no allocation,
    // and never "destroyed"; `try_with` only to be safe.
    let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
}

// SAFETY: every method forwards its arguments unchanged to `System`, which
// upholds the `GlobalAlloc` contract; counting touches only a thread-local
// `Cell` that needs no allocation.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: forwarded from our caller, who upholds `alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_one();
        // SAFETY: `ptr` was allocated by `System` through this wrapper with `layout`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` through this wrapper with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// Heap allocations made so far by the calling thread; always 0 in a
/// binary that has not installed [`Counting`] as its global allocator.
pub fn allocations() -> u64 {
    ALLOCATIONS.with(|c| c.get())
}
