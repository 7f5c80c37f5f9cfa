//! A tiny application for trying the proxy: answers every request with
//! what it saw (method, path, and the peer identity the proxy passed on).
//!
//! `cargo run --release -p sluice-proxy --example echo_app -- 127.0.0.1:9091 [NAME]`
//! (with a NAME, each answer starts with `NAME:`, to tell backends apart).

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9091".into());
    let name: &'static str = std::env::args()
        .nth(2)
        .map_or("", |n| Box::leak(format!("{n}: ").into_boxed_str()));
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    eprintln!("echo app listening on {addr}");
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(async move {
            let service = hyper::service::service_fn(
                |req: http::Request<hyper::body::Incoming>| async move {
                    let identity = req
                        .headers()
                        .get("x-sluice-peer-identity")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("(none: plaintext or no client certificate)");
                    let body = format!(
                        "{name}app saw: {} {}\npeer identity: {identity}\n",
                        req.method(),
                        req.uri().path_and_query().map_or("/", |p| p.as_str()),
                    );
                    Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(Bytes::from(
                        body,
                    ))))
                },
            );
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
