//! The bundle: bytes written by the compiler, validated and borrowed here.
//!
//! Layout (all integers little-endian), detailed in `docs/bundle.md`:
//! magic `SLUICEB\0`, format version (u32), flags (u32), xxh3-64 of every
//! byte after the hash field (u64), then sections, each 8-byte aligned.

/// Magic bytes at the start of every bundle.
pub const MAGIC: [u8; 8] = *b"SLUICEB\0";
/// Bundle format version this runtime reads.
pub const FORMAT_VERSION: u32 = 1;

use crate::decision::{Decision, RequestError};
use crate::request::{Inbound, Outbound, Peer};
use crate::trace::Trace;

/// Why bundle bytes were rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoadError {
    /// Placeholder until the loader lands.
    Todo,
}

/// An owned, 8-byte aligned copy of bundle bytes (e.g. read from a file),
/// from which a [`Bundle`] borrows.
#[derive(Clone, Debug, Default)]
pub struct AlignedBytes {
    words: Vec<u64>,
    len: usize,
}

impl AlignedBytes {
    /// Copies `bytes` into aligned storage.
    pub fn new(bytes: &[u8]) -> Self {
        let mut words = vec![0u64; bytes.len().div_ceil(8)];
        for (w, chunk) in words.iter_mut().zip(bytes.chunks(8)) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            *w = u64::from_ne_bytes(b);
        }
        AlignedBytes { words, len: bytes.len() }
    }

    /// The bytes, starting at an 8-byte aligned address.
    pub fn as_bytes(&self) -> &[u8] {
        let (_, bytes, _) = bytemuck_free_cast(&self.words);
        &bytes[..self.len]
    }
}

fn bytemuck_free_cast(words: &[u64]) -> ((), &[u8], ()) {
    todo!("{}", words.len())
}

/// What a bundle holds, for `sluice inspect`.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    /// Placeholder.
    pub lines: Vec<String>,
}

/// A loaded, validated bundle borrowing its bytes.
pub struct Bundle<'a> {
    bytes: &'a [u8],
}

/// Caller-owned scratch space for decisions; create one per thread with
/// [`Bundle::create_scratch`] and reuse it.
pub struct Scratch {
    _priv: (),
}

/// What a peer satisfies, computed once per connection by [`Bundle::classify`].
pub struct PeerClass {
    _priv: (),
}

impl<'a> Bundle<'a> {
    /// Validates `bytes` (magic, version, hash, every table and DFA) and
    /// borrows them. `bytes` must start at an 8-byte aligned address (use
    /// [`AlignedBytes`]).
    pub fn from_bytes(bytes: &'a [u8]) -> Result<Bundle<'a>, LoadError> {
        let _ = bytes;
        Err(LoadError::Todo)
    }

    /// The bundle's content hash (xxh3-64).
    pub fn hash(&self) -> u64 {
        let _ = self.bytes;
        0
    }

    /// What the bundle holds.
    pub fn summary(&self) -> Summary {
        Summary::default()
    }

    /// Fresh scratch space sized for this bundle.
    pub fn create_scratch(&self) -> Scratch {
        Scratch { _priv: () }
    }

    /// A fresh peer classification sized for this bundle.
    pub fn create_peer_class(&self) -> PeerClass {
        PeerClass { _priv: () }
    }

    /// Computes which principals `peer` satisfies, into `class`.
    pub fn classify(&self, peer: &Peer<'_>, class: &mut PeerClass) {
        let _ = (peer, class);
    }

    /// Decides an inbound request of a peer classified into `class`.
    pub fn decide_inbound(
        &self,
        request: &Inbound<'_>,
        class: &PeerClass,
        scratch: &mut Scratch,
    ) -> Result<Decision<'_>, RequestError> {
        self.decide_inbound_traced(request, class, scratch, &mut crate::trace::NoTrace)
    }

    /// [`Bundle::decide_inbound`], reporting each step to `trace`.
    pub fn decide_inbound_traced(
        &self,
        request: &Inbound<'_>,
        class: &PeerClass,
        scratch: &mut Scratch,
        trace: &mut dyn Trace,
    ) -> Result<Decision<'_>, RequestError> {
        let _ = (request, class, scratch, trace);
        todo!()
    }

    /// Decides an outbound request (HTTP, tunnel or TCP).
    pub fn decide_outbound(
        &self,
        request: &Outbound<'_>,
        scratch: &mut Scratch,
    ) -> Result<Decision<'_>, RequestError> {
        self.decide_outbound_traced(request, scratch, &mut crate::trace::NoTrace)
    }

    /// [`Bundle::decide_outbound`], reporting each step to `trace`.
    pub fn decide_outbound_traced(
        &self,
        request: &Outbound<'_>,
        scratch: &mut Scratch,
        trace: &mut dyn Trace,
    ) -> Result<Decision<'_>, RequestError> {
        let _ = (request, scratch, trace);
        todo!()
    }
}
