//! Sluice as Envoy's external authorizer (`ext_authz`), without I/O.
//!
//! Envoy (or Istio's `CUSTOM` action) sends a `CheckRequest` per request
//! or connection. This crate turns one into the runtime's request and
//! the runtime's decision into a `CheckResponse`; the gRPC service that
//! carries them lives in the proxy (`sluice authz`). The stages:
//!
//! - [`check_to_inbound`]: a decoded `CheckRequest` viewed as an
//!   [`Inbound`](sluice_runtime::Inbound) request and its
//!   [`Peer`](sluice_runtime::Peer), borrowing, never allocating;
//! - [`decision_to_response`]: a decision, an undecidable request or a
//!   check that cannot be mapped turned into the `CheckResponse` Envoy
//!   enforces.
//!
//! The mapping is written down in `docs/ext-authz.md`.

pub mod check_to_inbound;
pub mod decision_to_response;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzz;

pub use check_to_inbound::{header_value, CheckHeaders, CheckView, MapConfig, MapError};
pub use decision_to_response::AddHeaders;

/// The Envoy protobuf types this crate reads and writes.
pub mod pb {
    pub use envoy_types::pb::envoy::config::core::v3::{
        address::Address, socket_address::PortSpecifier, Address as EnvoyAddress, HeaderMap,
        HeaderValue, HeaderValueOption, SocketAddress,
    };
    pub use envoy_types::pb::envoy::r#type::v3::HttpStatus;
    pub use envoy_types::pb::envoy::service::auth::v3::{
        attribute_context, authorization_client, authorization_server, check_response,
        AttributeContext, CheckRequest, CheckResponse, DeniedHttpResponse, OkHttpResponse,
    };
    pub use envoy_types::pb::google::rpc::Status as RpcStatus;
}
