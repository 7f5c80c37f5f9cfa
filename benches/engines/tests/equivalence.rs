//! Sluice, Cedar (one policy per route, and routes as entities) and Rego
//! (walking the routes, and indexed by path) give the same allow/deny
//! answers on the sample of 1,000 requests, at 10, 100 and 1,000 routes;
//! a Sluice decision
//! (classify and decide) does not allocate.

use sluice_engines::{
    allocations_per_call, check_equivalence, compile_sluice, timed_request, SluiceEngine, Workload,
};
use std::hint::black_box;

#[test]
fn every_engine_and_encoding_agrees() {
    for n in sluice_engines::SIZES {
        match check_equivalence(n) {
            Ok(agreement) => println!("{agreement}"),
            Err(e) => panic!("{e}"),
        }
    }
}

#[test]
fn a_sluice_decision_does_not_allocate() {
    let workload = Workload::generate(1_000);
    let bytes = compile_sluice(&workload).unwrap_or_else(|e| panic!("{e}"));
    let mut sluice = SluiceEngine::new(&bytes).unwrap_or_else(|e| panic!("{e}"));
    let req = timed_request(&workload);
    let r = sluice.request(&req);
    assert!(sluice.decide(&r));
    // The counter is per thread: other tests running meanwhile do not count.
    let per_call = allocations_per_call(100, 10_000, || {
        black_box(sluice.decide(black_box(&r)));
    });
    assert_eq!(per_call, 0.0);
}
