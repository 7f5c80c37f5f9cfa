//! The Sluice runtime: loads a compiled policy bundle from borrowed bytes,
//! validating every byte, and decides requests without allocating.
//!
//! Stages, as in regex-automata: the compiler writes bundle bytes;
//! [`Bundle::from_bytes`] validates and borrows them (automata are not
//! copied); [`Bundle::classify`] computes, once per connection, which
//! principals a peer satisfies ([`PeerClass`]); [`Bundle::decide_inbound`]
//! and [`Bundle::decide_outbound`] decide requests using caller-owned
//! [`Scratch`] space. Decisions borrow names from the bundle.

pub mod addr;
mod authority;
#[cfg(feature = "bench")]
#[doc(hidden)]
pub mod bench;
pub mod bundle;
mod decide;
pub mod decision;
mod denial;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzz;
mod literals;
mod matching;
pub mod normalize;
pub mod peer;
pub mod request;
pub mod trace;
#[cfg(feature = "serde")]
pub mod wire;

pub use addr::canonical_ip;
pub use authority::{Authority, HostPort};
pub use bundle::{
    AlignedBytes, Backend, Bundle, CircuitBreaker, Endpoint, LoadError, PeerClass, Protocol, Retry,
    RetryCond, RouteSettings, Scratch, ServerSummary, ServiceSettings, ServiceSummary, Summary,
};
pub use decision::{
    BackendId, Decision, Reason, RequestError, RouteId, ServiceId, WeightedBackend,
};
pub use denial::Denial;
pub use matching::is_grpc_content_type;
pub use peer::{SpiffeId, SpiffeIdError};
pub use request::{passes_for_header, Headers, Http, Inbound, NoHeaders, Outbound, Peer};
pub use trace::{Event, NoTrace, Trace};
