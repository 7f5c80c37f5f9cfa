//! The Sluice sidecar proxy: enforces compiled policy bundles on inbound
//! traffic over mTLS with SPIFFE identities.
//!
//! The proxy depends on `sluice-runtime`, `sluice-identity` (SVIDs,
//! trust bundles, the rustls configurations) and `sluice-fleet` (fetching
//! and verifying signed artifacts from a registry or an HTTP layout): it
//! loads bundle bytes, never compiles policy source itself. Its users (the `sluice` binary, the integration tests,
//! the fuzz targets) need:
//!
//! - [`Proxy`]: starts every listener from a [`Config`] and owns the
//!   shutdown.
//! - [`config`]: the TOML configuration.
//! - [`reload`]: how the configured policy file becomes bundle bytes.
//! - [`remote`]: a policy pulled from a registry or an HTTP layout, and
//!   the compile hook for an artifact of another bundle format.
//! - [`store`]: a validated bundle as the proxy holds it.
//! - [`outbound`]: name resolution and the transparent listener's
//!   original destination and sniffing.
//! - [`fuzz`]: entry points for the fuzz targets over the proxy's parsers.
//!
//! The rest is internal: what every listener shares (`state`), the one
//! accept loop and hyper's builders (`server`), the inbound listeners and
//! service stack (`inbound`), decisions turned into HTTP and gRPC answers
//! (`enforce`), request bodies as forwarded (`request_body`), `Upgrade`
//! relays (`upgrade`), the worker threads inbound connections are served on
//! (`workers`), the admin endpoints (`admin`), what a decision leaves
//! behind (`report`), Envoy's external
//! authorization service (`authz`, when `[authz]` is configured), what the proxy
//! reports (`metrics`, `decision_log`), the candidate bundle decided
//! beside the live one (`candidate`) and the assembly of all of it
//! (`assembly`).

#![warn(unreachable_pub)]

mod activity;
mod admin;
mod assembly;
mod authz;
mod candidate;
pub mod config;
mod decision_log;
mod enforce;
mod framing;
pub mod fuzz;
mod inbound;
mod metrics;
pub mod outbound;
mod poll;
pub mod reload;
pub mod remote;
mod report;
mod request_body;
mod server;
mod state;
pub mod store;
mod upgrade;
mod workers;

pub use assembly::{Proxy, StartError};
pub use candidate::{Comparison, Decided};
pub use config::Config;
