//! AdmissionReview v1 (`admission.k8s.io/v1`) request bytes → response
//! bytes: the mutating webhook's decision, pure (no I/O).
//!
//! The API server sends an `AdmissionReview` whose `request` holds the object
//! being created; the webhook answers with the same `apiVersion` and `kind`,
//! a `response` with the request's `uid`, `allowed`, and for a mutation a
//! JSON Patch (RFC 6902, `patchType: JSONPatch`, base64 in `patch`).
//!
//! What [`review`] does:
//!
//! - Only a Pod (`kind` `/v1, Kind=Pod`, no subresource) on `CREATE` can be
//!   changed. Every other request the webhook is sent is allowed unchanged.
//! - A pod is injected when its `sluice.io/inject` annotation says
//!   `enabled`, or when it has none and its namespace opted in
//!   (`namespace_opted_in`, from the webhook path). `disabled` and an
//!   already injected pod (`sluice.io/injected`) are allowed unchanged.
//! - The patch is `json_patch::diff(pod, injected pod)`, both as JSON from
//!   the API types: applied to the object that was sent, it gives exactly
//!   what `sluice inject` writes for that pod.
//! - A pod that asked for the proxy but cannot have it (a `hostNetwork` pod,
//!   an annotation that does not parse) is refused: `allowed: false` with a
//!   status naming the reason (code 400). Admitting it without the proxy
//!   would start a workload that its namespace or its owner meant to be
//!   behind the policy; `sluice.io/inject: disabled` admits it on purpose.
//! - A review that cannot be answered (not JSON, over [`MAX_REVIEW_BYTES`],
//!   another `apiVersion` or `kind`, no `request`, a `uid` missing, an
//!   object that is not a Pod) is a [`ReviewError`]: the webhook answers HTTP
//!   400 with its message, which the API server treats as a failed call, so
//!   the webhook's `failurePolicy` decides. An `AdmissionReview` answer needs
//!   the request's `uid`, which a malformed review may not have; and what the
//!   webhook could not read it must not pretend to have checked.

use crate::inject::{self, InjectConfig, InjectError, Injection};
use base64::Engine as _;
use k8s_openapi::api::authentication::v1::UserInfo;
use k8s_openapi::api::core::v1::Pod;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// The `apiVersion` of the reviews this webhook reads and writes.
pub const API_VERSION: &str = "admission.k8s.io/v1";
/// The `kind` of a review.
pub const KIND: &str = "AdmissionReview";
/// The largest review read: 3 MiB, the API server's own limit on a request
/// body, so any review of an object the API server accepted fits.
pub const MAX_REVIEW_BYTES: usize = 3 * 1024 * 1024;
/// `patchType` of a mutation: the one type the API server supports.
pub const PATCH_TYPE: &str = "JSONPatch";

/// An `AdmissionReview`: a `request` from the API server, or the webhook's
/// `response`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionReview {
    /// `admission.k8s.io/v1`.
    pub api_version: String,
    /// `AdmissionReview`.
    pub kind: String,
    /// What the API server asks about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<AdmissionRequest>,
    /// The webhook's answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<AdmissionResponse>,
}

/// A group, version and kind, as `{"group": "", "version": "v1", "kind": "Pod"}`
/// (`group` is empty for the core API).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupVersionKind {
    /// The API group, empty for the core group.
    #[serde(default)]
    pub group: String,
    /// The API version, such as `v1`.
    pub version: String,
    /// The kind, such as `Pod`.
    pub kind: String,
}

/// A group, version and resource, as `{"group": "", "version": "v1", "resource": "pods"}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupVersionResource {
    /// The API group, empty for the core group.
    #[serde(default)]
    pub group: String,
    /// The API version, such as `v1`.
    pub version: String,
    /// The resource, such as `pods`.
    pub resource: String,
}

/// The operation under review.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Operation {
    /// An object is created.
    Create,
    /// An object is changed.
    Update,
    /// An object is deleted.
    Delete,
    /// A connection to a subresource (`pods/exec`, `pods/portforward`, …).
    Connect,
}

/// `request`: what the API server asks about (the fields of
/// `admission.k8s.io/v1` `AdmissionRequest`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionRequest {
    /// Identifies this round trip; the response carries it back.
    pub uid: String,
    /// The type of `object`, such as `/v1, Kind=Pod`.
    pub kind: GroupVersionKind,
    /// The resource requested, such as `/v1, Resource=pods`.
    pub resource: GroupVersionResource,
    /// The subresource requested, if any (`status`, `ephemeralcontainers`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_resource: Option<String>,
    /// The kind of the original request, when `matchPolicy: Equivalent` converted it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_kind: Option<GroupVersionKind>,
    /// The resource of the original request, when converted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_resource: Option<GroupVersionResource>,
    /// The subresource of the original request, when converted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_sub_resource: Option<String>,
    /// The object's name; empty on a CREATE that uses `generateName`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The object's namespace; absent for cluster-scoped objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// `CREATE`, `UPDATE`, `DELETE` or `CONNECT`.
    pub operation: Operation,
    /// Who made the request.
    #[serde(default)]
    pub user_info: UserInfo,
    /// The object as it would be stored (CREATE, UPDATE).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<serde_json::Value>,
    /// The object as it is stored (UPDATE, DELETE).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_object: Option<serde_json::Value>,
    /// Whether nothing will be stored (`kubectl apply --dry-run=server`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<bool>,
    /// The operation's options (`CreateOptions`, …), as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<serde_json::Value>,
}

/// `response`: the webhook's answer (the fields of `admission.k8s.io/v1`
/// `AdmissionResponse`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionResponse {
    /// The request's `uid`.
    pub uid: String,
    /// Whether the object is admitted.
    pub allowed: bool,
    /// Why it is refused, shown to whoever made the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ResponseStatus>,
    /// The JSON Patch, base64 (standard alphabet, padded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patch: Option<String>,
    /// [`PATCH_TYPE`] when there is a patch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patch_type: Option<String>,
    /// Added to the API server's audit event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_annotations: Option<BTreeMap<String, String>>,
    /// Warnings returned to the client that made the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warnings: Option<Vec<String>>,
}

/// `response.status`: the part of a `meta/v1` `Status` a refusal fills in.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResponseStatus {
    /// The HTTP status code the API server answers its client with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<i32>,
    /// What went wrong, for a human.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// A machine-readable reason, such as `BadRequest`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A review that cannot be answered with an `AdmissionReview`: the webhook
/// answers HTTP 400 (413 for [`ReviewError::TooLarge`]) with this message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReviewError {
    /// The body is over [`MAX_REVIEW_BYTES`].
    TooLarge {
        /// Bytes received (at least; reading stops past the limit).
        size: usize,
    },
    /// The body is not an `AdmissionReview` in JSON.
    NotJson(String),
    /// `apiVersion` is not [`API_VERSION`].
    ApiVersion(String),
    /// `kind` is not [`KIND`].
    Kind(String),
    /// The review has no `request`.
    NoRequest,
    /// `request.uid` is empty.
    NoUid,
    /// A Pod request whose `object` is missing or not a Pod.
    NotAPod {
        /// The request's `uid`.
        uid: String,
        /// Why it does not read as a Pod.
        reason: String,
    },
    /// The computed patch does not apply to the object that was sent (the
    /// object has a shape the API types do not keep).
    Patch {
        /// The request's `uid`.
        uid: String,
        /// json-patch's error.
        reason: String,
    },
}

impl fmt::Display for ReviewError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReviewError::TooLarge { size } => write!(
                f,
                "the admission review is {size} bytes or more, over the limit of {MAX_REVIEW_BYTES}"
            ),
            ReviewError::NotJson(e) => {
                write!(f, "the body is not an admission review in JSON: {e}")
            }
            ReviewError::ApiVersion(v) => {
                write!(
                    f,
                    "apiVersion `{v}` is not supported: expected `{API_VERSION}`"
                )
            }
            ReviewError::Kind(k) => write!(f, "kind `{k}` is not `{KIND}`"),
            ReviewError::NoRequest => f.write_str("the admission review has no `request`"),
            ReviewError::NoUid => f.write_str("the admission request has an empty `uid`"),
            ReviewError::NotAPod { uid, reason } => {
                write!(f, "request `{uid}`: the object is not a pod: {reason}")
            }
            ReviewError::Patch { uid, reason } => write!(
                f,
                "request `{uid}`: the patch does not apply to the pod that was sent: {reason}"
            ),
        }
    }
}

impl std::error::Error for ReviewError {}

impl ReviewError {
    /// The HTTP status the webhook answers with: 413 for a body too large,
    /// 400 otherwise.
    pub fn http_status(&self) -> u16 {
        match self {
            ReviewError::TooLarge { .. } => 413,
            _ => 400,
        }
    }
}

/// Answers one AdmissionReview (the request body as sent): the response
/// body, or why the review cannot be answered. `namespace_opted_in`: the
/// pod's namespace carries the label `sluice.io/inject=enabled` (the webhook
/// is told so by its path). See the module documentation for the rules.
pub fn review(
    body: &[u8],
    namespace_opted_in: bool,
    config: &InjectConfig,
) -> Result<Vec<u8>, ReviewError> {
    let response = review_response(body, namespace_opted_in, config)?;
    let review = AdmissionReview {
        api_version: API_VERSION.to_owned(),
        kind: KIND.to_owned(),
        request: None,
        response: Some(response),
    };
    // Serializing a struct of strings, bools and maps cannot fail.
    Ok(serde_json::to_vec(&review).unwrap_or_default())
}

/// The `response` for a review body (see [`review`]).
pub fn review_response(
    body: &[u8],
    namespace_opted_in: bool,
    config: &InjectConfig,
) -> Result<AdmissionResponse, ReviewError> {
    if body.len() > MAX_REVIEW_BYTES {
        return Err(ReviewError::TooLarge { size: body.len() });
    }
    let review: AdmissionReview =
        serde_json::from_slice(body).map_err(|e| ReviewError::NotJson(e.to_string()))?;
    if review.api_version != API_VERSION {
        return Err(ReviewError::ApiVersion(review.api_version));
    }
    if review.kind != KIND {
        return Err(ReviewError::Kind(review.kind));
    }
    let request = review.request.ok_or(ReviewError::NoRequest)?;
    if request.uid.is_empty() {
        return Err(ReviewError::NoUid);
    }
    let is_pod_create = request.operation == Operation::Create
        && request.kind.group.is_empty()
        && request.kind.version == "v1"
        && request.kind.kind == "Pod"
        && request.sub_resource.as_deref().unwrap_or("").is_empty();
    if !is_pod_create {
        return Ok(allow(request.uid));
    }
    let uid = request.uid;
    let not_a_pod = |reason: String| ReviewError::NotAPod {
        uid: uid.clone(),
        reason,
    };
    let Some(object) = request.object else {
        return Err(not_a_pod("the request has no `object`".to_owned()));
    };
    let pod: Pod = serde_json::from_value(object.clone()).map_err(|e| not_a_pod(e.to_string()))?;
    let name = pod_name(&pod, request.name.as_deref());
    let Some(spec) = pod.spec.as_ref() else {
        return Err(not_a_pod("the pod has no `spec`".to_owned()));
    };
    let (meta, spec) = match inject::inject_pod(&pod.metadata, spec, namespace_opted_in, config) {
        Ok(Injection::Injected { meta, spec }) => (meta, spec),
        Ok(Injection::Skipped(_)) => return Ok(allow(uid)),
        Err(e) => return Ok(refuse(uid, &name, &e)),
    };
    let injected = Pod {
        metadata: meta,
        spec: Some(spec),
        status: pod.status.clone(),
    };
    let before = serde_json::to_value(&pod).map_err(|e| not_a_pod(e.to_string()))?;
    let after = serde_json::to_value(&injected).map_err(|e| not_a_pod(e.to_string()))?;
    let patch = json_patch::diff(&before, &after);
    if patch.0.is_empty() {
        return Ok(allow(uid));
    }
    // The patch was computed on the pod as the API types read it; it must
    // also apply to the object as it was sent, which the API server patches.
    let mut sent = object;
    json_patch::patch(&mut sent, &patch).map_err(|e| ReviewError::Patch {
        uid: uid.clone(),
        reason: e.to_string(),
    })?;
    // A patch (a list of operations) always serializes.
    let patch_json = serde_json::to_vec(&patch).unwrap_or_default();
    Ok(AdmissionResponse {
        uid,
        allowed: true,
        patch: Some(base64::engine::general_purpose::STANDARD.encode(patch_json)),
        patch_type: Some(PATCH_TYPE.to_owned()),
        ..AdmissionResponse::default()
    })
}

/// The pod's name for messages: its name, its `generateName` with `*`, or
/// the request's name.
fn pod_name(pod: &Pod, request_name: Option<&str>) -> String {
    if let Some(name) = pod.metadata.name.as_deref().filter(|n| !n.is_empty()) {
        return name.to_owned();
    }
    if let Some(prefix) = pod
        .metadata
        .generate_name
        .as_deref()
        .filter(|n| !n.is_empty())
    {
        return format!("{prefix}*");
    }
    request_name.unwrap_or("").to_owned()
}

fn allow(uid: String) -> AdmissionResponse {
    AdmissionResponse {
        uid,
        allowed: true,
        ..AdmissionResponse::default()
    }
}

fn refuse(uid: String, name: &str, e: &InjectError) -> AdmissionResponse {
    AdmissionResponse {
        uid,
        allowed: false,
        status: Some(ResponseStatus {
            code: Some(400),
            message: Some(format!("sluice cannot inject pod `{name}`: {e}")),
            reason: Some("BadRequest".to_owned()),
        }),
        ..AdmissionResponse::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, ContainerPort, PodSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use serde_json::{json, Value};

    fn pod(annotations: &[(&str, &str)]) -> Pod {
        Pod {
            metadata: ObjectMeta {
                generate_name: Some("web-7d4b9c-".to_owned()),
                namespace: Some("shop".to_owned()),
                annotations: (!annotations.is_empty()).then(|| {
                    annotations
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                        .collect()
                }),
                ..ObjectMeta::default()
            },
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "web".to_owned(),
                    image: Some("nginx:1.27".to_owned()),
                    ports: Some(vec![ContainerPort {
                        container_port: 8080,
                        protocol: Some("TCP".to_owned()),
                        ..ContainerPort::default()
                    }]),
                    ..Container::default()
                }],
                ..PodSpec::default()
            }),
            status: None,
        }
    }

    fn review_json(operation: &str, kind: &str, object: Value) -> Value {
        json!({
            "apiVersion": API_VERSION,
            "kind": KIND,
            "request": {
                "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
                "kind": {"group": "", "version": "v1", "kind": kind},
                "resource": {"group": "", "version": "v1", "resource": "pods"},
                "requestKind": {"group": "", "version": "v1", "kind": kind},
                "requestResource": {"group": "", "version": "v1", "resource": "pods"},
                "namespace": "shop",
                "operation": operation,
                "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller", "groups": ["system:serviceaccounts"]},
                "object": object,
                "oldObject": null,
                "dryRun": false,
                "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"}
            }
        })
    }

    fn answer(body: &Value, opted_in: bool) -> Result<AdmissionResponse, ReviewError> {
        let bytes = review(
            &serde_json::to_vec(body).expect("json"),
            opted_in,
            &InjectConfig::default(),
        )?;
        let review: AdmissionReview = serde_json::from_slice(&bytes).expect("the answer reads");
        assert_eq!(review.api_version, API_VERSION);
        assert_eq!(review.kind, KIND);
        assert!(review.request.is_none());
        Ok(review.response.expect("a response"))
    }

    fn decoded_patch(response: &AdmissionResponse) -> json_patch::Patch {
        assert_eq!(response.patch_type.as_deref(), Some(PATCH_TYPE));
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(response.patch.as_deref().expect("a patch"))
            .expect("base64");
        serde_json::from_slice(&bytes).expect("a JSON patch")
    }

    #[test]
    fn an_opted_in_pod_gets_the_patch_that_gives_inject_pod_output() {
        let pod = pod(&[]);
        let object = serde_json::to_value(&pod).expect("json");
        let response =
            answer(&review_json("CREATE", "Pod", object.clone()), true).expect("answered");
        assert_eq!(response.uid, "705ab4f5-6393-11e8-b7cc-42010a800002");
        assert!(response.allowed);
        let mut patched = object;
        json_patch::patch(&mut patched, &decoded_patch(&response)).expect("applies");
        let Ok(Injection::Injected { meta, spec }) = inject::inject_pod(
            &pod.metadata,
            pod.spec.as_ref().expect("spec"),
            true,
            &InjectConfig::default(),
        ) else {
            panic!("inject_pod injects the pod");
        };
        let expected = Pod {
            metadata: meta,
            spec: Some(spec),
            status: None,
        };
        assert_eq!(patched, serde_json::to_value(&expected).expect("json"));
    }

    #[test]
    fn fields_the_api_types_do_not_know_survive_the_patch() {
        let mut object = serde_json::to_value(pod(&[])).expect("json");
        object["spec"]["someFutureField"] = json!({"x": [1, 2]});
        let response =
            answer(&review_json("CREATE", "Pod", object.clone()), true).expect("answered");
        let mut patched = object;
        json_patch::patch(&mut patched, &decoded_patch(&response)).expect("applies");
        assert_eq!(patched["spec"]["someFutureField"], json!({"x": [1, 2]}));
        assert_eq!(
            patched["spec"]["initContainers"][0]["name"],
            json!(inject::INIT_CONTAINER)
        );
    }

    #[test]
    fn skipped_pods_and_other_requests_are_allowed_unchanged() {
        let plain = serde_json::to_value(pod(&[])).expect("json");
        let unchanged = |body: Value, opted_in: bool| {
            let response = answer(&body, opted_in).expect("answered");
            assert!(response.allowed, "{body}");
            assert_eq!(response.patch, None, "{body}");
            assert_eq!(response.patch_type, None, "{body}");
            assert_eq!(response.status, None, "{body}");
        };
        // Not opted in, no annotation.
        unchanged(review_json("CREATE", "Pod", plain.clone()), false);
        // Opted out in an opted-in namespace.
        let disabled =
            serde_json::to_value(pod(&[("sluice.io/inject", "disabled")])).expect("json");
        unchanged(review_json("CREATE", "Pod", disabled), true);
        // Already injected.
        let injected = serde_json::to_value(pod(&[("sluice.io/injected", "0.1.0")])).expect("json");
        unchanged(review_json("CREATE", "Pod", injected), true);
        // Not a CREATE, not a Pod, a subresource.
        unchanged(review_json("UPDATE", "Pod", plain.clone()), true);
        unchanged(review_json("DELETE", "Pod", plain.clone()), true);
        unchanged(
            review_json("CREATE", "Binding", json!({"target": {}})),
            true,
        );
        let mut sub = review_json("CREATE", "Pod", plain.clone());
        sub["request"]["subResource"] = json!("ephemeralcontainers");
        unchanged(sub, true);
        let mut apps = review_json("CREATE", "Deployment", json!({}));
        apps["request"]["kind"]["group"] = json!("apps");
        unchanged(apps, true);
    }

    #[test]
    fn a_pod_enabled_on_its_own_is_injected_anywhere() {
        let object = serde_json::to_value(pod(&[("sluice.io/inject", "enabled")])).expect("json");
        let response = answer(&review_json("CREATE", "Pod", object), false).expect("answered");
        assert!(response.allowed);
        assert!(!decoded_patch(&response).0.is_empty());
    }

    #[test]
    fn pods_that_ask_for_the_proxy_but_cannot_have_it_are_refused_by_name() {
        let mut host = pod(&[("sluice.io/inject", "enabled")]);
        host.metadata.name = Some("node-agent".to_owned());
        host.spec.as_mut().expect("spec").host_network = Some(true);
        let object = serde_json::to_value(&host).expect("json");
        let response = answer(&review_json("CREATE", "Pod", object), false).expect("answered");
        assert!(!response.allowed);
        assert_eq!(response.patch, None);
        let status = response.status.expect("a status");
        assert_eq!(status.code, Some(400));
        let message = status.message.expect("a message");
        assert!(message.contains("`node-agent`"), "{message}");
        assert!(message.contains("hostNetwork"), "{message}");

        let typo = serde_json::to_value(pod(&[("sluice.io/inject", "yes")])).expect("json");
        let response = answer(&review_json("CREATE", "Pod", typo), false).expect("answered");
        assert!(!response.allowed);
        let message = response.status.and_then(|s| s.message).expect("a message");
        assert!(message.contains("`web-7d4b9c-*`"), "{message}");
        assert!(message.contains("sluice.io/inject: yes"), "{message}");
    }

    #[test]
    fn malformed_reviews_are_errors_that_name_the_problem() {
        let config = InjectConfig::default();
        let err = |body: &[u8]| review(body, true, &config).expect_err("an error");
        assert!(matches!(err(b"not json"), ReviewError::NotJson(_)));
        assert!(matches!(err(b""), ReviewError::NotJson(_)));
        assert!(matches!(err(b"null"), ReviewError::NotJson(_)));
        let mut v1beta1 = review_json("CREATE", "Pod", json!({}));
        v1beta1["apiVersion"] = json!("admission.k8s.io/v1beta1");
        let e = err(&serde_json::to_vec(&v1beta1).expect("json"));
        assert_eq!(
            e,
            ReviewError::ApiVersion("admission.k8s.io/v1beta1".to_owned())
        );
        assert!(e.to_string().contains("`admission.k8s.io/v1beta1`"), "{e}");
        let mut kind = review_json("CREATE", "Pod", json!({}));
        kind["kind"] = json!("ConversionReview");
        assert_eq!(
            err(&serde_json::to_vec(&kind).expect("json")),
            ReviewError::Kind("ConversionReview".to_owned())
        );
        let no_request = json!({"apiVersion": API_VERSION, "kind": KIND});
        assert_eq!(
            err(&serde_json::to_vec(&no_request).expect("json")),
            ReviewError::NoRequest
        );
        let mut no_uid = review_json("CREATE", "Pod", json!({}));
        no_uid["request"]["uid"] = json!("");
        assert_eq!(
            err(&serde_json::to_vec(&no_uid).expect("json")),
            ReviewError::NoUid
        );
        let not_pod = review_json("CREATE", "Pod", json!({"spec": {"containers": "web"}}));
        assert!(matches!(
            err(&serde_json::to_vec(&not_pod).expect("json")),
            ReviewError::NotAPod { .. }
        ));
        let mut no_object = review_json("CREATE", "Pod", json!({}));
        no_object["request"]
            .as_object_mut()
            .expect("object")
            .remove("object");
        assert!(matches!(
            err(&serde_json::to_vec(&no_object).expect("json")),
            ReviewError::NotAPod { .. }
        ));
        let big = vec![b' '; MAX_REVIEW_BYTES + 1];
        let e = err(&big);
        assert_eq!(
            e,
            ReviewError::TooLarge {
                size: MAX_REVIEW_BYTES + 1
            }
        );
        assert_eq!(e.http_status(), 413);
    }

    #[test]
    fn junk_never_panics() {
        let config = InjectConfig::default();
        let valid = serde_json::to_vec(&review_json(
            "CREATE",
            "Pod",
            serde_json::to_value(pod(&[])).expect("json"),
        ))
        .expect("json");
        // Every prefix of a valid review.
        for end in 0..valid.len() {
            let _ = review(&valid[..end], true, &config);
        }
        // Nesting deeper than serde_json's recursion limit.
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(review(deep.as_bytes(), true, &config).is_err());
        // Random byte flips and random bytes.
        let mut rng = sluice_testkit::Rng::new(12);
        for _ in 0..2_000 {
            let mut bytes = valid.clone();
            for _ in 0..rng.range(1, 8) {
                let at = rng.below(bytes.len());
                bytes[at] = rng.next_u64() as u8;
            }
            let _ = review(&bytes, rng.chance(50), &config);
        }
        for _ in 0..500 {
            let len = rng.below(256);
            let bytes: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
            let _ = review(&bytes, true, &config);
        }
        // Values of the wrong JSON type in every field of the request.
        let fields = [
            "uid",
            "kind",
            "resource",
            "namespace",
            "operation",
            "userInfo",
            "object",
            "dryRun",
            "name",
        ];
        for field in fields {
            for junk in [
                json!(null),
                json!(1),
                json!("x"),
                json!([]),
                json!({}),
                json!(true),
            ] {
                let mut body = review_json(
                    "CREATE",
                    "Pod",
                    serde_json::to_value(pod(&[])).expect("json"),
                );
                body["request"][field] = junk;
                let _ = review(&serde_json::to_vec(&body).expect("json"), true, &config);
            }
        }
    }
}
