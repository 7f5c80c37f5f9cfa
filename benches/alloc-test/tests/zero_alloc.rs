//! Zero heap allocations per decision (issue 2, "Performance").
//!
//! A counting global allocator wraps `System`; after 1,000 warm-up
//! decisions, 100,000 decisions of each kind (inbound HTTP, inbound TCP,
//! outbound service, egress HTTP, tunnel, egress TCP) and 100,000 peer
//! classifications with the realistic requests on the 1,000-route policy
//! must not allocate. This binary holds one test function, so no other test
//! thread allocates while it counts.

use sluice_benches::{compile_generated, realistic_peer, Kind};
use sluice_runtime::{AlignedBytes, Bundle};
use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

/// Allocations (including zeroed allocations and reallocations) so far.
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

/// `System`, counting every allocation.
struct Counting;

// SAFETY: every method forwards its arguments unchanged to `System`, which
// upholds the `GlobalAlloc` contract; counting touches only an atomic.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded from our caller, who upholds `alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: `ptr` was allocated by `System` through this wrapper with `layout`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` through this wrapper with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const WARM_UP: usize = 1_000;
const MEASURED: usize = 100_000;

/// Allocations made while running `f` `MEASURED` times, after `WARM_UP` runs.
fn count(mut f: impl FnMut()) -> u64 {
    for _ in 0..WARM_UP {
        f();
    }
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    for _ in 0..MEASURED {
        f();
    }
    ALLOCATIONS.load(Ordering::SeqCst) - before
}

#[test]
fn decisions_do_not_allocate() {
    // The counter works: one allocation is seen.
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    drop(black_box(vec![0u8; 64]));
    assert!(
        ALLOCATIONS.load(Ordering::SeqCst) > before,
        "the counting allocator is not installed"
    );

    let bytes = compile_generated(1_000)
        .unwrap_or_else(|e| panic!("the 1,000-route policy does not compile:\n{e}"));
    let aligned = AlignedBytes::new(&bytes);
    let bundle = Bundle::from_bytes(aligned.as_bytes()).expect("the bundle loads");
    let mut scratch = bundle.create_scratch();
    let mut class = bundle.create_peer_class();
    let peer = realistic_peer();
    bundle.classify(&peer, &mut class);

    let mut counts = Vec::with_capacity(Kind::ALL.len() + 1);
    counts.push((
        "classify",
        count(|| bundle.classify(black_box(&peer), &mut class)),
    ));
    for kind in Kind::ALL {
        let decision = kind.decide(&bundle, &class, &mut scratch);
        if let Err(e) = kind.check(&decision) {
            panic!("{e}");
        }
        let n = count(|| {
            let d = kind.decide(black_box(&bundle), black_box(&class), &mut scratch);
            black_box(&d);
        });
        counts.push((kind.name(), n));
    }
    for (name, n) in &counts {
        println!("{name}: {n} allocations over {MEASURED} calls");
    }
    assert!(
        counts.iter().all(|&(_, n)| n == 0),
        "allocations per kind: {counts:?}"
    );
}
