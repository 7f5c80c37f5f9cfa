//! The Sluice sidecar proxy: enforces compiled policy bundles on inbound
//! traffic over mTLS with SPIFFE identities.
//!
//! The proxy depends on `sluice-runtime` only: it loads bundle bytes, never
//! policy source. Layout:
//!
//! - [`config`]: the TOML configuration.
//! - [`store`]: the loaded bundle, swapped atomically on reload.
//! - [`state`]: what every listener shares (policy, identity, metrics,
//!   limits, the connection limit, shutdown and draining).
//! - [`identity`]: SVIDs and trust bundles (files or the SPIFFE Workload
//!   API), X.509-SVID verification, the rustls server configuration.
//! - [`inbound`]: listeners, TLS sniffing, the hyper service stack, TCP relay.
//! - [`enforce`]: decisions turned into HTTP and gRPC answers.
//! - [`request_body`]: client request bodies as forwarded (trailers
//!   cleaned, errors marked as the client's).
//! - [`server`]: the one accept loop every listener runs, and hyper's
//!   server builders.
//! - [`admin`]: `/metrics`, `/ready`, `/live`, `/policy`, `POST /reload`.
//! - [`metrics`], [`decision_log`]: what the proxy reports.
//! - [`upgrade`]: HTTP/1.1 `Upgrade` (WebSocket) relayed both ways.
//! - [`assembly`]: starts everything ([`Proxy`]) and owns the shutdown.
//! - [`fuzz`]: entry points for the fuzz targets over the proxy's parsers.

mod activity;
pub mod admin;
pub mod assembly;
pub mod config;
pub mod decision_log;
pub mod enforce;
pub mod framing;
pub mod fuzz;
pub mod identity;
pub mod inbound;
pub mod metrics;
pub mod outbound;
mod poll;
pub mod reload;
pub mod request_body;
pub mod server;
pub mod state;
pub mod store;
pub mod upgrade;

pub use assembly::{Proxy, StartError};
pub use config::Config;
