//! Requests as the runtime sees them: borrowed, never owned.

use std::net::IpAddr;

/// Access to a request's headers without copying them.
///
/// Implementations compare names case-insensitively and call `f` once per
/// value of that name, in order.
pub trait Headers {
    /// Calls `f` with each value of the header `name` (given in lowercase).
    fn for_each_value(&self, name: &str, f: &mut dyn FnMut(&[u8]));
}

/// A header list as `(name, value)` pairs.
impl<N: AsRef<[u8]>, V: AsRef<[u8]>> Headers for [(N, V)] {
    fn for_each_value(&self, name: &str, f: &mut dyn FnMut(&[u8])) {
        for (n, v) in self {
            if n.as_ref().eq_ignore_ascii_case(name.as_bytes()) {
                f(v.as_ref());
            }
        }
    }
}

/// A header list as a vector of `(name, value)` pairs.
impl<N: AsRef<[u8]>, V: AsRef<[u8]>> Headers for Vec<(N, V)> {
    fn for_each_value(&self, name: &str, f: &mut dyn FnMut(&[u8])) {
        self.as_slice().for_each_value(name, f)
    }
}

/// A header list as an array of `(name, value)` pairs.
impl<N: AsRef<[u8]>, V: AsRef<[u8]>, const K: usize> Headers for [(N, V); K] {
    fn for_each_value(&self, name: &str, f: &mut dyn FnMut(&[u8])) {
        self.as_slice().for_each_value(name, f)
    }
}

/// Whether a header named `name` passes for the header `header` (given in
/// lowercase) once `_` is read as `-`, as CGI and WSGI frameworks read
/// names, in any case. Allocates nothing.
pub fn passes_for_header(name: &[u8], header: &str) -> bool {
    let header = header.as_bytes();
    name.len() == header.len()
        && name.iter().zip(header).all(|(&n, &h)| {
            let n = if n == b'_' {
                b'-'
            } else {
                n.to_ascii_lowercase()
            };
            n == h
        })
}

/// No headers at all.
pub struct NoHeaders;

impl Headers for NoHeaders {
    fn for_each_value(&self, _name: &str, _f: &mut dyn FnMut(&[u8])) {}
}

/// The calling peer of an inbound connection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Peer<'r> {
    /// The peer's IP address, when known.
    pub ip: Option<IpAddr>,
    /// The verified identity from its client certificate, if it presented one.
    pub identity: Option<&'r str>,
}

/// The HTTP part of a request.
#[derive(Clone, Copy)]
pub struct Http<'r> {
    /// The method, e.g. `GET`.
    pub method: &'r str,
    /// The raw request target: path, optional query and fragment.
    pub path: &'r [u8],
    /// The request headers.
    pub headers: &'r dyn Headers,
}

impl std::fmt::Debug for Http<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http")
            .field("method", &self.method)
            .field("path", &String::from_utf8_lossy(self.path))
            .finish_non_exhaustive()
    }
}

/// An inbound request: an HTTP request, or a connection when `http` is `None`.
#[derive(Clone, Copy, Debug)]
pub struct Inbound<'r> {
    /// The destination port.
    pub port: u16,
    /// Method, path and headers; `None` for a connection (TCP).
    pub http: Option<Http<'r>>,
}

/// An outbound request from the local application.
///
/// HTTP: `authority` and `http` set. Tunnel (`CONNECT`): `authority` set,
/// `http` unset. TCP: `ip` and `port` set, nothing else.
#[derive(Clone, Copy, Debug, Default)]
pub struct Outbound<'r> {
    /// `Host`/`:authority`, or the `CONNECT` target.
    pub authority: Option<&'r str>,
    /// The address the proxy will connect to, when known.
    pub ip: Option<IpAddr>,
    /// The destination port for TCP (an authority carries its own).
    pub port: Option<u16>,
    /// Method, path and headers of an HTTP request.
    pub http: Option<Http<'r>>,
}
