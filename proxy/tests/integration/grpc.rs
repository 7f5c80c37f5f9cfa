//! gRPC through the proxy with tonic's client and server: an allowed
//! method, a denied method (PERMISSION_DENIED) and an unknown method
//! (UNIMPLEMENTED). The application answers UNIMPLEMENTED for unknown
//! methods too, so the test counts the calls that reach it and checks that
//! the proxy's answers carry `x-sluice-error`.

use crate::support;

use http::uri::PathAndQuery;
use http_body_util::BodyExt;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use support::*;

const POLICY: &str = r#"
server billing {
  port 50051
  protocol grpc
  route charge { grpc "billing.v1.Billing/Charge" }
  route refund { grpc "billing.v1.Billing/Refund" }
}
allow local-charge { to billing.charge  from network 127.0.0.0/8 }
"#;

/// `billing.v1.ChargeRequest` / `ChargeReply`, written by hand.
#[derive(Clone, PartialEq, prost::Message)]
struct Charge {
    #[prost(string, tag = "1")]
    account: String,
    #[prost(uint64, tag = "2")]
    cents: u64,
}

/// The application: tonic's server-side gRPC handling for each method of
/// `billing.v1.Billing`, served by hyper (HTTP/2 only, as gRPC servers are);
/// counts the calls that reach it.
async fn grpc_app() -> (SocketAddr, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let addr = local_server(move |stream| {
        let counted = counted.clone();
        async move {
            let service =
                hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    counted.fetch_add(1, Ordering::SeqCst);
                    async move {
                        let req = req.map(|b| {
                            tonic::body::Body::new(
                                b.map_err(|e| tonic::Status::internal(e.to_string())),
                            )
                        });
                        let mut grpc =
                            tonic::server::Grpc::new(
                                tonic_prost::ProstCodec::<Charge, Charge>::default(),
                            );
                        let response = match req.uri().path() {
                            "/billing.v1.Billing/Charge" | "/billing.v1.Billing/Refund" => {
                                grpc.unary(Echo(req.uri().path().to_owned()), req).await
                            }
                            _ => tonic::Status::unimplemented("no such method").into_http(),
                        };
                        Ok::<_, std::convert::Infallible>(response)
                    }
                });
            let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        }
    })
    .await;
    (addr, calls)
}

#[derive(Clone)]
struct Echo(String);

impl tonic::server::UnaryService<Charge> for Echo {
    type Response = Charge;
    type Future = std::future::Ready<Result<tonic::Response<Charge>, tonic::Status>>;
    fn call(&mut self, request: tonic::Request<Charge>) -> Self::Future {
        let mut reply = request.into_inner();
        reply.account = format!("{} via {}", reply.account, self.0);
        std::future::ready(Ok(tonic::Response::new(reply)))
    }
}

async fn call(
    client: &mut tonic::client::Grpc<tonic::transport::Channel>,
    method: &'static str,
) -> Result<Charge, tonic::Status> {
    client.ready().await.unwrap();
    let codec = tonic_prost::ProstCodec::<Charge, Charge>::default();
    let request = tonic::Request::new(Charge {
        account: "acme".into(),
        cents: 42,
    });
    client
        .unary(request, PathAndQuery::from_static(method), codec)
        .await
        .map(tonic::Response::into_inner)
}

#[tokio::test]
async fn grpc_methods_are_allowed_denied_and_unimplemented() {
    let dir = TempDir::new("grpc");
    let (app, app_calls) = grpc_app().await;
    std::fs::write(dir.path("policy.bundle"), compile(POLICY)).unwrap();
    let toml = format!(
        "[policy]\nbundle = \"policy.bundle\"\n[admin]\nlisten = \"127.0.0.1:0\"\n[[inbound]]\nlisten = \"127.0.0.1:0\"\nport = 50051\napp = \"{app}\"\ntls = \"plaintext\"\n"
    );
    let proxy = start_proxy(&dir, &toml).await;
    let channel =
        tonic::transport::Endpoint::from_shared(format!("http://{}", proxy.inbound_addrs()[0]))
            .unwrap()
            .connect()
            .await
            .unwrap();
    let mut client = tonic::client::Grpc::new(channel);

    let reply = call(&mut client, "/billing.v1.Billing/Charge")
        .await
        .unwrap();
    assert_eq!(reply.account, "acme via /billing.v1.Billing/Charge");
    assert_eq!(reply.cents, 42);
    assert_eq!(app_calls.load(Ordering::SeqCst), 1);

    // The proxy's own answers: they name why, and the application never
    // sees the call.
    let proxy_error = |status: &tonic::Status| {
        status
            .metadata()
            .get("x-sluice-error")
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let denied = call(&mut client, "/billing.v1.Billing/Refund")
        .await
        .unwrap_err();
    assert_eq!(denied.code(), tonic::Code::PermissionDenied, "{denied:?}");
    assert_eq!(
        proxy_error(&denied).as_deref(),
        Some("forbidden"),
        "{denied:?}"
    );

    let unknown = call(&mut client, "/billing.v1.Billing/Explode")
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::Unimplemented, "{unknown:?}");
    assert_eq!(
        proxy_error(&unknown).as_deref(),
        Some("no-route"),
        "{unknown:?}"
    );

    // A path attack in a method name never reaches the application.
    let attack = call(&mut client, "/billing.v1.Billing/Charge/../Refund")
        .await
        .unwrap_err();
    assert_eq!(attack.code(), tonic::Code::PermissionDenied, "{attack:?}");
    assert_eq!(
        proxy_error(&attack).as_deref(),
        Some("forbidden"),
        "{attack:?}"
    );
    assert_eq!(
        app_calls.load(Ordering::SeqCst),
        1,
        "only the allowed call reached the application"
    );
    proxy.shutdown().await;
}
