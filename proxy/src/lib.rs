//! The Sluice sidecar proxy: enforces compiled policy bundles on inbound
//! traffic over mTLS with SPIFFE identities.
//!
//! The proxy depends on `sluice-runtime` only: it loads bundle bytes, never
//! policy source. Layout:
//!
//! - [`config`]: the TOML configuration.
//! - [`store`]: the loaded bundle, swapped atomically on reload.
//! - [`identity`]: SVIDs and trust bundles (files or the SPIFFE Workload
//!   API), X.509-SVID verification, the rustls server configuration.
//! - [`inbound`]: listeners, TLS sniffing, the hyper service stack, TCP relay.
//! - [`enforce`]: decisions turned into HTTP and gRPC answers.
//! - [`request_body`]: client request bodies as forwarded (trailers
//!   cleaned, errors marked as the client's).
//! - [`admin`]: `/metrics`, `/ready`, `/live`, `/policy`, `POST /reload`.
//! - [`metrics`], [`decision_log`]: what the proxy reports.
//! - [`upgrade`]: HTTP/1.1 `Upgrade` (WebSocket) relayed both ways.
//! - [`proxy`]: starts everything and owns the shutdown.
//! - [`fuzz`]: entry points for the fuzz targets over the proxy's parsers.

pub mod admin;
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
pub mod proxy;
pub mod reload;
pub mod state;
pub mod request_body;
pub mod store;
pub mod upgrade;

pub use config::Config;
pub use proxy::{Proxy, StartError};
