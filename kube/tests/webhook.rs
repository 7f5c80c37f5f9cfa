//! The admission webhook over TLS, as the API server calls it: a webhook on
//! 127.0.0.1:0 with a serving certificate for `sluice-webhook.sluice.svc`
//! signed by a CA made here, a client that trusts only that CA, and
//! AdmissionReview v1 bodies built from k8s-openapi Pod objects.

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::{Container, ContainerPort, Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use rustls::pki_types::ServerName;
use serde_json::{json, Value};
use sluice_kube::admission::{self, AdmissionResponse, AdmissionReview};
use sluice_kube::inject::{self, InjectConfig, Injection};
use sluice_kube::webhook::Webhook;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// The Service's DNS name, which the API server checks the certificate against.
const SERVICE_DNS: &str = "sluice-webhook.sluice.svc";

/// A running webhook and a client for it.
struct Server {
    addr: SocketAddr,
    connector: TlsConnector,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<()>,
    dir: PathBuf,
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sluice-kube-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

impl Server {
    async fn start(name: &str) -> Server {
        let dir = temp_dir(name);
        // A CA and a serving certificate it signs, as cert-manager issues one.
        let ca_key = rcgen::KeyPair::generate().expect("ca key");
        let mut ca_params = rcgen::CertificateParams::new(Vec::new()).expect("ca params");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "webhook test CA");
        let ca_cert = ca_params.self_signed(&ca_key).expect("ca");
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let key = rcgen::KeyPair::generate().expect("key");
        let params = rcgen::CertificateParams::new(vec![
            SERVICE_DNS.to_owned(),
            format!("{SERVICE_DNS}.cluster.local"),
        ])
        .expect("params");
        let cert = params.signed_by(&key, &issuer).expect("cert");
        let (cert_path, key_path) = (dir.join("tls.crt"), dir.join("tls.key"));
        std::fs::write(&cert_path, cert.pem()).expect("write cert");
        std::fs::write(&key_path, key.serialize_pem()).expect("write key");

        let webhook = Webhook::bind(
            "127.0.0.1:0".parse().expect("addr"),
            &cert_path,
            &key_path,
            InjectConfig::default(),
        )
        .await
        .expect("the webhook starts");
        let addr = webhook.local_addr().expect("addr");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let done = tokio::spawn(webhook.run(async {
            let _ = stopped.await;
        }));

        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca_cert.der().clone()).expect("root");
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
        Server {
            addr,
            connector: TlsConnector::from(Arc::new(config)),
            stop: Some(stop),
            done,
            dir,
        }
    }

    async fn tls(&self) -> tokio_rustls::client::TlsStream<TcpStream> {
        let tcp = TcpStream::connect(self.addr).await.expect("connect");
        self.connector
            .connect(ServerName::try_from(SERVICE_DNS).expect("name"), tcp)
            .await
            .expect("the certificate verifies for the Service's name")
    }

    /// One request on a new connection: the status and the body.
    async fn request(&self, method: &str, path: &str, body: Vec<u8>) -> (StatusCode, Bytes) {
        let io = TokioIo::new(self.tls().await);
        let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
            .await
            .expect("handshake");
        tokio::spawn(connection);
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", SERVICE_DNS)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .expect("request");
        let response = sender.send_request(request).await.expect("response");
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        (status, body)
    }

    /// POSTs a review; the response stanza of the 200 answer.
    async fn review(&self, path: &str, review: &Value) -> AdmissionResponse {
        let (status, body) = self
            .request("POST", path, serde_json::to_vec(review).expect("json"))
            .await;
        assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
        let answer: AdmissionReview = serde_json::from_slice(&body).expect("an AdmissionReview");
        assert_eq!(answer.api_version, "admission.k8s.io/v1");
        assert_eq!(answer.kind, "AdmissionReview");
        let response = answer.response.expect("a response");
        assert_eq!(
            response.uid,
            review["request"]["uid"].as_str().expect("uid")
        );
        response
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(30), &mut self.done)
            .await
            .expect("the webhook stops")
            .expect("the webhook task");
        std::fs::remove_dir_all(&self.dir).ok();
    }
}

/// A pod as a ReplicaSet controller creates it: generateName, no name yet.
fn pod(annotations: &[(&str, &str)]) -> Pod {
    Pod {
        metadata: ObjectMeta {
            generate_name: Some("web-5d8f7c9b4-".to_owned()),
            namespace: Some("shop".to_owned()),
            labels: Some([("app".to_owned(), "web".to_owned())].into()),
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
                image: Some("registry.k8s.io/e2e-test-images/agnhost:2.53".to_owned()),
                args: Some(vec!["netexec".to_owned(), "--http-port=8080".to_owned()]),
                ports: Some(vec![ContainerPort {
                    container_port: 8080,
                    protocol: Some("TCP".to_owned()),
                    ..ContainerPort::default()
                }]),
                ..Container::default()
            }],
            service_account_name: Some("web".to_owned()),
            ..PodSpec::default()
        }),
        status: None,
    }
}

/// An AdmissionReview v1 for creating `pod`, with the fields the API server sends.
fn create_review(uid: &str, pod: &Pod) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "requestResource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "shop",
            "operation": "CREATE",
            "userInfo": {
                "username": "system:serviceaccount:kube-system:replicaset-controller",
                "uid": "4f9d4bd2-2d0c-4d5c-8f5b-5f5b0c1e7a11",
                "groups": ["system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"]
            },
            "object": serde_json::to_value(pod).expect("pod json"),
            "oldObject": null,
            "dryRun": false,
            "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"}
        }
    })
}

/// What `sluice inject` makes of the pod.
fn injected(pod: &Pod) -> Pod {
    match inject::inject_pod(
        &pod.metadata,
        pod.spec.as_ref().expect("spec"),
        true,
        &InjectConfig::default(),
    ) {
        Ok(Injection::Injected { meta, spec }) => Pod {
            metadata: meta,
            spec: Some(spec),
            status: None,
        },
        other => panic!("inject_pod injects the pod: {other:?}"),
    }
}

/// The pod with the response's patch applied, as the API server does.
fn patched(pod: &Pod, response: &AdmissionResponse) -> Value {
    assert!(response.allowed);
    assert_eq!(response.patch_type.as_deref(), Some("JSONPatch"));
    let patch = base64::engine::general_purpose::STANDARD
        .decode(response.patch.as_deref().expect("a patch"))
        .expect("base64");
    let patch: json_patch::Patch = serde_json::from_slice(&patch).expect("a JSON Patch");
    let mut object = serde_json::to_value(pod).expect("json");
    json_patch::patch(&mut object, &patch).expect("the patch applies");
    object
}

fn assert_unchanged(response: &AdmissionResponse) {
    assert!(response.allowed);
    assert_eq!(response.patch, None);
    assert_eq!(response.patch_type, None);
    assert_eq!(response.status, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_pod_in_an_opted_in_namespace_is_patched_into_inject_output() {
    let server = Server::start("plain").await;
    let pod = pod(&[]);
    let expected = serde_json::to_value(injected(&pod)).expect("json");
    // The path the manifest uses, and the query form.
    for path in ["/mutate/namespace-enabled", "/mutate?namespace=enabled"] {
        let response = server.review(path, &create_review("uid-plain", &pod)).await;
        assert_eq!(patched(&pod, &response), expected, "{path}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_and_opted_out_pods_are_left_alone() {
    let server = Server::start("skip").await;
    // Already injected (by `sluice inject`, or a webhook call before).
    let already = injected(&pod(&[]));
    let response = server
        .review(
            "/mutate/namespace-enabled",
            &create_review("uid-again", &already),
        )
        .await;
    assert_unchanged(&response);
    // The pod opts out in an opted-in namespace.
    let disabled = pod(&[("sluice.io/inject", "disabled")]);
    let response = server
        .review(
            "/mutate/namespace-enabled",
            &create_review("uid-off", &disabled),
        )
        .await;
    assert_unchanged(&response);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_opts_in_where_its_namespace_did_not() {
    let server = Server::start("pod-opt-in").await;
    let enabled = pod(&[("sluice.io/inject", "enabled")]);
    let response = server
        .review("/mutate", &create_review("uid-on", &enabled))
        .await;
    assert_eq!(
        patched(&enabled, &response),
        serde_json::to_value(injected(&enabled)).expect("json")
    );
    // Without the annotation, nothing.
    let response = server
        .review("/mutate", &create_review("uid-none", &pod(&[])))
        .await;
    assert_unchanged(&response);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_network_pod_that_asks_is_refused_with_its_name() {
    let server = Server::start("host").await;
    let mut host = pod(&[("sluice.io/inject", "enabled")]);
    host.metadata.name = Some("node-agent".to_owned());
    host.spec.as_mut().expect("spec").host_network = Some(true);
    let response = server
        .review("/mutate", &create_review("uid-host", &host))
        .await;
    assert!(!response.allowed);
    assert_eq!(response.patch, None);
    let message = response.status.and_then(|s| s.message).expect("a message");
    assert!(message.contains("`node-agent`"), "{message}");
    assert!(message.contains("hostNetwork"), "{message}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_reviews_get_an_error_answer_and_the_webhook_keeps_serving() {
    let server = Server::start("malformed").await;
    let text = |body: &Bytes| String::from_utf8_lossy(body).into_owned();

    let (status, body) = server
        .request("POST", "/mutate", b"{\"apiVersion\": ".to_vec())
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        text(&body).contains("not an admission review in JSON"),
        "{}",
        text(&body)
    );

    let mut old = create_review("uid-old", &pod(&[]));
    old["apiVersion"] = json!("admission.k8s.io/v1beta1");
    let (status, body) = server
        .request("POST", "/mutate", serde_json::to_vec(&old).expect("json"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        text(&body).contains("`admission.k8s.io/v1beta1`"),
        "{}",
        text(&body)
    );

    let mut not_pod = create_review("uid-junk", &pod(&[]));
    not_pod["request"]["object"]["spec"] = json!({"containers": 7});
    let (status, body) = server
        .request(
            "POST",
            "/mutate",
            serde_json::to_vec(&not_pod).expect("json"),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        text(&body).contains("request `uid-junk`: the object is not a pod"),
        "{}",
        text(&body)
    );

    // A body over the limit, announced by Content-Length: refused before
    // it is read (the client sends only the head, so the answer is read
    // back whole before the webhook closes the connection).
    let mut tls = server.tls().await;
    let head = format!(
        "POST /mutate HTTP/1.1\r\nhost: {SERVICE_DNS}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        admission::MAX_REVIEW_BYTES + 1
    );
    tls.write_all(head.as_bytes()).await.expect("write");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), tls.read_to_end(&mut answer))
        .await
        .expect("the webhook answers and closes");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413 "), "{answer}");
    assert!(answer.contains("over the limit of 3145728"), "{answer}");

    // A request head over the header limit is not served: 431, or the
    // connection closed before the client has written it all (both happen,
    // depending on how far the client got when the webhook gave up).
    // Without the limit (hyper's default buffer is 400 KiB) it would be 200.
    let io = TokioIo::new(server.tls().await);
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .expect("handshake");
    tokio::spawn(connection);
    let request = Request::builder()
        .method("GET")
        .uri("/healthz")
        .header("host", SERVICE_DNS)
        .header("x-padding", "a".repeat(64 * 1024))
        .body(Full::new(Bytes::new()))
        .expect("request");
    if let Ok(response) = sender.send_request(request).await {
        assert_eq!(
            response.status(),
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
        );
    }

    // Wrong paths and methods.
    let (status, _) = server.request("POST", "/validate", Vec::new()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = server.request("GET", "/mutate", Vec::new()).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);

    // Still serving.
    let (status, body) = server.request("GET", "/healthz", Vec::new()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(&body[..], b"ok\n");
    let pod = pod(&[]);
    let response = server
        .review(
            "/mutate/namespace-enabled",
            &create_review("uid-after", &pod),
        )
        .await;
    assert_eq!(
        patched(&pod, &response),
        serde_json::to_value(injected(&pod)).expect("json")
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_idle_connections_and_stops_accepting() {
    let server = Server::start("shutdown").await;
    // A kept-alive connection, idle after one request.
    let io = TokioIo::new(server.tls().await);
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .expect("handshake");
    let connection = tokio::spawn(connection);
    let request = Request::builder()
        .uri("/healthz")
        .header("host", SERVICE_DNS)
        .body(Full::new(Bytes::new()))
        .expect("request");
    let response = sender.send_request(request).await.expect("response");
    assert_eq!(response.status(), StatusCode::OK);
    response.into_body().collect().await.expect("body");

    let addr = server.addr;
    // Well under the drain timeout: the idle connection does not hold
    // shutdown back.
    let started = std::time::Instant::now();
    server.stop().await;
    assert!(
        started.elapsed() < sluice_kube::webhook::DRAIN_TIMEOUT,
        "shutdown took {:?}",
        started.elapsed()
    );
    tokio::time::timeout(Duration::from_secs(10), connection)
        .await
        .expect("the idle connection is closed")
        .expect("connection task")
        .ok();
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "the listener is closed"
    );
}
