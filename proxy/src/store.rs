//! The loaded policy bundle, swapped atomically on reload.
//!
//! A [`Bundle`] borrows its bytes, so the unit that is swapped is a
//! [`LoadedBundle`]: the aligned bytes and the bundle validated from them,
//! held together (`self_cell`) behind an `Arc`. A request clones the `Arc`
//! once and finishes under that bundle whatever happens meanwhile.

use sluice_runtime::{AlignedBytes, Bundle, LoadError};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

self_cell::self_cell!(
    struct BundleCell {
        owner: AlignedBytes,
        #[covariant]
        dependent: Bundle,
    }
);

/// A validated bundle with its bytes, and when it was loaded.
pub struct LoadedBundle {
    cell: BundleCell,
    generation: u64,
    loaded_at: SystemTime,
    hash: String,
}

impl std::fmt::Debug for LoadedBundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedBundle")
            .field("hash", &self.hash)
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

impl LoadedBundle {
    /// Validates `bytes` as a bundle.
    pub fn load(bytes: &[u8], generation: u64) -> Result<LoadedBundle, LoadError> {
        let cell = BundleCell::try_new(AlignedBytes::new(bytes), |b| {
            Bundle::from_bytes(b.as_bytes())
        })?;
        let hash = hex_hash(cell.borrow_dependent().hash());
        Ok(LoadedBundle {
            cell,
            generation,
            loaded_at: SystemTime::now(),
            hash,
        })
    }

    /// The bundle.
    pub fn bundle(&self) -> &Bundle<'_> {
        self.cell.borrow_dependent()
    }

    /// Counts loads: each new bundle has a larger generation.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The content hash as 16 hex digits, as `sluice inspect` shows it.
    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// When it was loaded.
    pub fn loaded_at(&self) -> SystemTime {
        self.loaded_at
    }

    /// Its size in bytes.
    pub fn len(&self) -> usize {
        self.cell.borrow_owner().as_bytes().len()
    }

    /// Whether it has no bytes (never true for a valid bundle).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A bundle hash as 16 hex digits.
pub(crate) fn hex_hash(hash: u64) -> String {
    format!("{hash:016x}")
}

/// The current bundle, if any, and a signal that fires on every swap.
pub(crate) struct PolicyStore {
    current: RwLock<Option<Arc<LoadedBundle>>>,
    changed: tokio::sync::watch::Sender<u64>,
    generation: std::sync::atomic::AtomicU64,
}

impl Default for PolicyStore {
    fn default() -> Self {
        PolicyStore {
            current: RwLock::new(None),
            changed: tokio::sync::watch::Sender::new(0),
            generation: std::sync::atomic::AtomicU64::new(0),
        }
    }
}

impl PolicyStore {
    /// An empty store: no bundle yet, so nothing is forwarded.
    pub(crate) fn new() -> Arc<PolicyStore> {
        Arc::new(PolicyStore::default())
    }

    /// The bundle serving now.
    pub(crate) fn current(&self) -> Option<Arc<LoadedBundle>> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Validates `bytes` and, if valid, swaps them in. The old bundle keeps
    /// serving when they are not.
    pub(crate) fn install(&self, bytes: &[u8]) -> Result<Arc<LoadedBundle>, LoadError> {
        let generation = self
            .generation
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        let loaded = Arc::new(LoadedBundle::load(bytes, generation)?);
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Some(loaded.clone());
        self.changed.send_replace(generation);
        Ok(loaded)
    }

    /// A receiver that sees each swap's generation.
    pub(crate) fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changed.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_rejected_and_the_store_stays_empty() {
        let store = PolicyStore::new();
        assert!(store.install(b"not a bundle").is_err());
        assert!(store.current().is_none());
    }
}
