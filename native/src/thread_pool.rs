//! Worker threads that run readers and background tasks (`spead2.ThreadPool`).

/// Runs a task on some worker thread, soon. Used by the memory pool to refill in the
/// background without depending on the whole thread pool.
pub trait Spawner: Send + Sync {
    fn spawn(&self, task: Box<dyn FnOnce() + Send + 'static>);
}
