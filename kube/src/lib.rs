//! Kubernetes objects for Sluice: the annotations that steer injection,
//! the pure injection of the proxy into a pod template ([`inject`]), and
//! multi-document YAML with every pod template injected
//! ([`yaml_documents`]).
//!
//! Everything here is built with the Kubernetes API types of `k8s-openapi`;
//! nothing talks to an API server. `docs/kubernetes.md` describes the
//! result field by field.

pub mod admission;
pub mod annotations;
pub mod inject;
pub mod webhook;
pub mod yaml_documents;
