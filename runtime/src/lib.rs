//! The Sluice runtime: loads a compiled policy bundle from borrowed bytes,
//! validating every byte, and decides requests without allocating.
//!
//! The caller owns the scratch space ([`Scratch`]) and the per-connection
//! peer classification ([`PeerClass`]); decisions borrow names from the
//! [`Bundle`].

pub mod bundle;
pub mod decision;
pub mod normalize;
pub mod request;
pub mod trace;

pub use bundle::{AlignedBytes, Bundle, LoadError, PeerClass, Scratch, Summary};
pub use decision::{Decision, Reason, RequestError, WeightedBackend};
pub use request::{Headers, Http, Inbound, NoHeaders, Outbound, Peer};
pub use trace::{Event, NoTrace, Trace};
