//! Explanations: what a decision considered, reported event by event.
//!
//! The fast path uses [`NoTrace`], which the compiler removes entirely;
//! `sluice eval --explain` passes a collector.

use std::net::IpAddr;

/// One step of a decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// The server covering the destination port, or none.
    Server {
        /// Destination port.
        port: u16,
        /// The server, if any.
        name: Option<&'a str>,
    },
    /// The path after normalization, or why it was rejected.
    Path {
        /// The normalized path (empty when rejected).
        normalized: &'a [u8],
        /// Why it was rejected.
        error: Option<crate::normalize::BadPath>,
    },
    /// A route whose path condition matched, checked in precedence order.
    RouteCandidate {
        /// Route name.
        name: &'a str,
        /// Whether its other conditions held too.
        taken: bool,
        /// Which condition failed, or `matched`.
        why: &'static str,
    },
    /// A rule that applies to the server or route taken.
    Rule {
        /// Rule name.
        name: &'a str,
        /// `true` for deny rules.
        deny: bool,
        /// Whether the peer satisfies every `from` clause.
        matched: bool,
    },
    /// The default that decided.
    Default {
        /// `allow`, `deny`, `audit` or `authenticated`.
        default: &'static str,
        /// Where it comes from: `server`, `mesh` or `egress`.
        of: &'static str,
    },
    /// The outbound authority as compared: host and port.
    Authority {
        /// Lowercase host without trailing dot.
        host: &'a str,
        /// Port (80 when unwritten).
        port: u16,
        /// The IP the request will go to, if known.
        ip: Option<IpAddr>,
    },
    /// The service whose authority matched.
    Service {
        /// Service name.
        name: &'a str,
    },
    /// An egress rule whose host or network matched (or that has
    /// neither), with whether its ports matched too.
    EgressRule {
        /// Rule name.
        name: &'a str,
        /// `true` for deny rules.
        deny: bool,
        /// Whether its ports match as well.
        matched: bool,
    },
}

/// Receives the events of a decision.
pub trait Trace {
    /// Called for each event, in order.
    fn event(&mut self, event: Event<'_>);
}

/// Ignores every event (the fast path).
pub struct NoTrace;

impl Trace for NoTrace {
    #[inline(always)]
    fn event(&mut self, _event: Event<'_>) {}
}
