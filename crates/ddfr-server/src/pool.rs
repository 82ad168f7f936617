//! Bounds CPU work: at most `workers` jobs (a frame, a photo) run at once, each as one
//! `spawn_blocking` job, never on the async runtime's threads.
//!
//! Handlers reach the model pack only through [`InferencePool::run`], so blocking inference
//! inside an `async fn` is impossible by construction. The semaphore permit is moved into the
//! job: a client that disconnects cannot release a permit while its job still runs.

use std::sync::Arc;

use ddfr_engine::pack::ModelPack;
use tokio::sync::Semaphore;

/// Why a job did not run to completion.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// The pool is shutting down.
    #[error("the inference pool is closed")]
    Closed,
    /// The job panicked (a bug); the pool keeps serving.
    #[error("an inference job panicked")]
    Panicked(#[source] tokio::task::JoinError),
}

/// The model pack behind a semaphore sized to the worker count.
#[derive(Debug, Clone)]
pub struct InferencePool {
    permits: Arc<Semaphore>,
    pack: Arc<ModelPack>,
    workers: usize,
}

impl InferencePool {
    /// A pool running at most `workers` jobs at once (at least one). Load `pack` with
    /// `max_concurrent = workers` so every job finds a free session.
    pub fn new(pack: Arc<ModelPack>, workers: usize) -> Self {
        let workers = workers.max(1);
        Self { permits: Arc::new(Semaphore::new(workers)), pack, workers }
    }

    /// The model pack, for its metadata (ids, threshold). Never call inference on it from
    /// async code; use [`InferencePool::run`].
    pub fn pack(&self) -> &ModelPack {
        &self.pack
    }

    /// How many jobs may run at once.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Runs `job` on a blocking thread once a worker slot is free.
    pub async fn run<T, F>(&self, job: F) -> Result<T, PoolError>
    where
        T: Send + 'static,
        F: FnOnce(&ModelPack) -> T + Send + 'static,
    {
        let permit =
            Arc::clone(&self.permits).acquire_owned().await.map_err(|_| PoolError::Closed)?;
        let pack = Arc::clone(&self.pack);
        tokio::task::spawn_blocking(move || {
            // Held until the work ends, even if the client has gone.
            let _permit = permit;
            job(&pack)
        })
        .await
        .map_err(PoolError::Panicked)
    }
}
