//! Recurring unknown visitors (opt-in, `DDFR_UNKNOWN_VISITORS`): an unknown face seen again and
//! again gets a stable anonymous `unknown_id` across connections.
//!
//! A `/ws` track confirmed Unknown (see `ddfr-track`) is one *sighting*. Its embedding is
//! compared with every visitor's centroid (mean embedding); at or above the recognition
//! threshold it is that visitor (the centroid moves towards it), else a new visitor with a
//! random id. Each sighting may add one aligned face chip, up to [`MAX_SAMPLES`] per visitor —
//! never a frame. The frame path only touches the in-memory registry; writes go to the store
//! through a bounded queue drained by a background task, and a retention task deletes
//! visitors not seen for the retention period (default 7 days). With the feature off nothing is
//! kept, and whatever an earlier run kept is deleted at start.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use ddfr_core::{Embedding, ModelId, VisitorId};
use ddfr_protocol::Timestamp;
use ddfr_store::{PersonStore, Visitor, VisitorWrite};
use tokio::sync::mpsc;

/// Face chips kept per visitor (for the UI and for promotion into a person).
pub const MAX_SAMPLES: u64 = 5;

/// Store writes that may wait; beyond this a write is dropped and counted (the frame path
/// never waits on the database).
const WRITE_QUEUE: usize = 256;

/// How often the retention task runs.
pub const RETENTION_INTERVAL: Duration = Duration::from_secs(3600);

/// Settings of the feature.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VisitorsConfig {
    /// How long a visitor not seen again is kept.
    pub retention: Duration,
}

impl VisitorsConfig {
    /// The default: 7 days.
    pub const DEFAULT_RETENTION_DAYS: u32 = 7;

    /// Retention in whole days.
    pub fn from_days(days: u32) -> Self {
        Self { retention: Duration::from_secs(u64::from(days) * 86_400) }
    }

    /// Retention in whole days, for replies.
    pub fn retention_days(&self) -> u64 {
        self.retention.as_secs() / 86_400
    }
}

/// One visitor as the registry keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct VisitorEntry {
    /// The anonymous id.
    pub id: VisitorId,
    /// Mean embedding, unit-norm.
    pub centroid: Embedding,
    /// Sightings counted.
    pub sightings: u64,
    /// First sighting.
    pub first_seen: Timestamp,
    /// Latest sighting.
    pub last_seen: Timestamp,
    /// Chips stored.
    pub n_samples: u64,
}

/// The in-memory registry of unknown visitors for one embedding model.
#[derive(Debug)]
pub struct VisitorRegistry {
    model: ModelId,
    min_similarity: f32,
    config: VisitorsConfig,
    entries: Mutex<Vec<VisitorEntry>>,
    writes: mpsc::Sender<VisitorWrite>,
    dropped_writes: AtomicU64,
}

impl VisitorRegistry {
    /// A registry holding the stored visitors of `model` (others are ignored: their vectors
    /// cannot be compared), and the receiving end of its write queue for
    /// [`run_visitor_writer`].
    pub fn new(
        model: ModelId,
        min_similarity: f32,
        config: VisitorsConfig,
        stored: Vec<Visitor>,
    ) -> (Self, mpsc::Receiver<VisitorWrite>) {
        let entries = stored
            .into_iter()
            .filter(|v| v.model == model)
            .map(|v| VisitorEntry {
                id: v.id,
                centroid: v.centroid,
                sightings: v.sightings,
                first_seen: v.first_seen,
                last_seen: v.last_seen,
                n_samples: v.n_samples,
            })
            .collect();
        let (writes, receiver) = mpsc::channel(WRITE_QUEUE);
        let registry = Self {
            model,
            min_similarity,
            config,
            entries: Mutex::new(entries),
            writes,
            dropped_writes: AtomicU64::new(0),
        };
        (registry, receiver)
    }

    /// The feature's settings.
    pub fn config(&self) -> VisitorsConfig {
        self.config
    }

    /// Counts one sighting of an unknown face (one track) and returns its visitor. `chip`
    /// is asked for a JPEG of the aligned face only when the visitor still wants samples.
    pub fn sighting(
        &self,
        embedding: &Embedding,
        now: Timestamp,
        chip: impl FnOnce() -> Option<Vec<u8>>,
    ) -> VisitorId {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let best = entries
            .iter_mut()
            .map(|e| (e.centroid.similarity(embedding), e))
            .filter(|(similarity, _)| *similarity >= self.min_similarity)
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, e)| e);
        let write = match best {
            Some(entry) => {
                entry.centroid = running_mean(&entry.centroid, entry.sightings, embedding);
                entry.sightings += 1;
                entry.last_seen = now;
                let sample = if entry.n_samples < MAX_SAMPLES { chip() } else { None };
                if sample.is_some() {
                    entry.n_samples += 1;
                }
                VisitorWrite::Sighting {
                    id: entry.id,
                    centroid: entry.centroid.clone(),
                    sightings: entry.sightings,
                    at: now,
                    sample: sample.map(|jpeg| (embedding.clone(), jpeg)),
                }
            }
            None => {
                let id = fresh_id(&entries);
                let sample = chip();
                entries.push(VisitorEntry {
                    id,
                    centroid: embedding.clone(),
                    sightings: 1,
                    first_seen: now,
                    last_seen: now,
                    n_samples: u64::from(sample.is_some()),
                });
                VisitorWrite::Create {
                    id,
                    model: self.model.clone(),
                    centroid: embedding.clone(),
                    at: now,
                    sample: sample.map(|jpeg| (embedding.clone(), jpeg)),
                }
            }
        };
        let id = match &write {
            VisitorWrite::Create { id, .. } | VisitorWrite::Sighting { id, .. } => *id,
        };
        drop(entries);
        if self.writes.try_send(write).is_err() {
            self.dropped_writes.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(visitor = id.0, "visitor write queue full; a sighting was not stored");
        }
        id
    }

    /// The visitors in memory, most recently seen first.
    pub fn entries(&self) -> Vec<VisitorEntry> {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner).clone();
        entries.sort_by(|a, b| b.last_seen.cmp(&a.last_seen).then(a.id.cmp(&b.id)));
        entries
    }

    /// Forgets a visitor (deleted or promoted).
    pub fn remove(&self, id: VisitorId) {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner).retain(|e| e.id != id);
    }

    /// Forgets visitors last seen before `before`.
    pub fn purge(&self, before: Timestamp) {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|e| e.last_seen >= before);
    }

    /// Writes dropped because the queue was full.
    pub fn dropped_writes(&self) -> u64 {
        self.dropped_writes.load(Ordering::Relaxed)
    }
}

/// A random positive 48-bit id not in use: ids reveal nothing about how many visitors were seen.
fn fresh_id(entries: &[VisitorEntry]) -> VisitorId {
    loop {
        let id = VisitorId(i64::try_from(rand::random::<u64>() >> 16).unwrap_or(1).max(1));
        if entries.iter().all(|e| e.id != id) {
            return id;
        }
    }
}

/// The mean of `n` embeddings averaging to `mean`, plus `new`, re-normalised.
fn running_mean(mean: &Embedding, n: u64, new: &Embedding) -> Embedding {
    if mean.dim() != new.dim() {
        return mean.clone();
    }
    let n = n as f32;
    let mixed: Vec<f32> =
        mean.as_slice().iter().zip(new.as_slice()).map(|(m, x)| (m * n + x) / (n + 1.0)).collect();
    Embedding::from_raw(mixed).unwrap_or_else(|_| mean.clone())
}

/// Drains the registry's write queue into the store until the registry is dropped.
pub async fn run_visitor_writer(
    store: Arc<dyn PersonStore>,
    mut writes: mpsc::Receiver<VisitorWrite>,
) {
    while let Some(write) = writes.recv().await {
        if let Err(error) = store.write_visitor(&write).await {
            tracing::error!(%error, "storing an unknown-visitor sighting failed");
        }
    }
}

/// Deletes every stored visitor (the feature is off: nothing from the live stream is kept).
pub async fn delete_all_visitors(store: &dyn PersonStore) -> Result<u64, ddfr_store::StoreError> {
    store.purge_visitors(Timestamp::from_unix_millis(i64::MAX)).await
}

/// The cut-off for `retention` before `now`.
pub fn retention_cutoff(now: Timestamp, retention: Duration) -> Timestamp {
    let millis = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
    Timestamp::from_unix_millis(now.unix_millis().saturating_sub(millis))
}

/// Deletes visitors past their retention, now and then every [`RETENTION_INTERVAL`].
pub async fn run_visitor_retention(store: Arc<dyn PersonStore>, registry: Arc<VisitorRegistry>) {
    let mut interval = tokio::time::interval(RETENTION_INTERVAL);
    loop {
        interval.tick().await;
        let cutoff = retention_cutoff(crate::state::now_timestamp(), registry.config().retention);
        registry.purge(cutoff);
        match store.purge_visitors(cutoff).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "unknown visitors past retention deleted"),
            Err(error) => tracing::error!(%error, "deleting expired unknown visitors failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(values: &[f32]) -> Embedding {
        Embedding::from_raw(values.to_vec()).unwrap()
    }

    fn registry() -> (VisitorRegistry, mpsc::Receiver<VisitorWrite>) {
        VisitorRegistry::new(ModelId::new("m"), 0.9, VisitorsConfig::from_days(7), Vec::new())
    }

    #[test]
    fn the_same_face_is_the_same_visitor_and_a_different_one_is_not() {
        let (registry, mut writes) = registry();
        let t = Timestamp::from_unix_millis;
        let a = registry.sighting(&unit(&[1.0, 0.0, 0.0]), t(1), || Some(vec![1]));
        let again = registry.sighting(&unit(&[0.98, 0.2, 0.0]), t(2), || Some(vec![2]));
        let b = registry.sighting(&unit(&[0.0, 1.0, 0.0]), t(3), || None);
        assert_eq!(a, again);
        assert_ne!(a, b);
        let entries = registry.entries();
        assert_eq!(entries.iter().map(|e| e.id).collect::<Vec<_>>(), vec![b, a]);
        assert_eq!((entries[1].sightings, entries[1].n_samples), (2, 2));
        assert!(matches!(writes.try_recv(), Ok(VisitorWrite::Create { sample: Some(_), .. })));
        assert!(matches!(writes.try_recv(), Ok(VisitorWrite::Sighting { sightings: 2, .. })));
        assert!(matches!(writes.try_recv(), Ok(VisitorWrite::Create { sample: None, .. })));
    }

    #[test]
    fn samples_stop_at_the_cap_and_purge_forgets_old_visitors() {
        let (registry, _writes) = registry();
        let t = Timestamp::from_unix_millis;
        let mut asked = 0;
        for i in 0..8 {
            registry.sighting(&unit(&[1.0, 0.0]), t(i), || {
                asked += 1;
                Some(vec![0])
            });
        }
        assert_eq!(asked, MAX_SAMPLES as usize);
        registry.purge(t(100));
        assert!(registry.entries().is_empty());
    }

    #[test]
    fn a_full_queue_drops_writes_but_never_blocks() {
        let (registry, _writes) = registry();
        for i in 0..(WRITE_QUEUE as i64 + 10) {
            registry.sighting(&unit(&[1.0, 0.0]), Timestamp::from_unix_millis(i), || None);
        }
        assert_eq!(registry.dropped_writes(), 10);
    }

    #[test]
    fn retention_cutoff_subtracts_the_period() {
        let cutoff = retention_cutoff(
            Timestamp::from_unix_millis(10 * 86_400_000),
            VisitorsConfig::from_days(7).retention,
        );
        assert_eq!(cutoff.unix_millis(), 3 * 86_400_000);
    }
}
