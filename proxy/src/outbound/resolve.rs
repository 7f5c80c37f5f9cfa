//! Name resolution, injectable: the system resolver in production, a
//! fixed table in tests (no DNS server needed).

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::RwLock;

/// What a resolution returns, boxed so resolvers can be trait objects.
pub type Resolution<'a> = Pin<Box<dyn Future<Output = io::Result<Vec<IpAddr>>> + Send + 'a>>;

/// Turns a host name into addresses.
pub trait Resolve: Send + Sync + 'static {
    /// The addresses of `host` (never an IP literal: callers handle those).
    fn resolve<'a>(&'a self, host: &'a str) -> Resolution<'a>;
}

/// The operating system's resolver (`getaddrinfo`, on a blocking thread).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct SystemResolver;

impl Resolve for SystemResolver {
    fn resolve<'a>(&'a self, host: &'a str) -> Resolution<'a> {
        Box::pin(async move {
            let addrs = tokio::net::lookup_host((host, 0)).await?;
            let mut ips: Vec<IpAddr> = addrs.map(|a| a.ip().to_canonical()).collect();
            ips.dedup();
            Ok(ips)
        })
    }
}

/// A fixed table of names, changeable at run time; unknown names fail.
#[derive(Debug, Default)]
pub struct StaticResolver {
    names: RwLock<HashMap<String, Vec<IpAddr>>>,
}

impl StaticResolver {
    /// An empty table.
    pub fn new() -> Self {
        StaticResolver::default()
    }

    /// Sets the addresses of `host` (an empty list makes it fail).
    pub fn set(&self, host: &str, ips: &[IpAddr]) {
        let mut names = self.names.write().unwrap_or_else(|e| e.into_inner());
        names.insert(normalize_host(host), ips.to_vec());
    }
}

impl Resolve for StaticResolver {
    fn resolve<'a>(&'a self, host: &'a str) -> Resolution<'a> {
        let found = self
            .names
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&normalize_host(host))
            .filter(|ips| !ips.is_empty())
            .cloned();
        Box::pin(async move {
            found.ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("`{host}` does not resolve"),
                )
            })
        })
    }
}

/// Lowercase, without a trailing dot.
fn normalize_host(host: &str) -> String {
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// The addresses of `host`: an IP literal as is, a name through `resolver`.
pub(crate) async fn addresses(
    resolver: &dyn Resolve,
    host: &str,
    port: u16,
) -> io::Result<Vec<SocketAddr>> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip.to_canonical(), port)]);
    }
    let ips = resolver.resolve(host).await?;
    Ok(ips
        .into_iter()
        .map(|ip| SocketAddr::new(ip, port))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn static_names_resolve_and_literals_pass_through() {
        let r = StaticResolver::new();
        r.set("API.example.", &["10.0.0.1".parse().unwrap()]);
        let got = addresses(&r, "api.example", 443).await.unwrap();
        assert_eq!(got, vec!["10.0.0.1:443".parse().unwrap()]);
        assert!(addresses(&r, "other.example", 1).await.is_err());
        let lit = addresses(&r, "127.0.0.1", 5).await.unwrap();
        assert_eq!(lit, vec!["127.0.0.1:5".parse().unwrap()]);
    }
}
