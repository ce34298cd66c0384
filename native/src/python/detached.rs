//! Dropping native objects that wait for worker threads, with the GIL released.
//!
//! Streams and thread pools join or wait for their threads when dropped, and those threads
//! may need the GIL to release Python buffers they hold. If the last reference goes away while
//! this thread holds the GIL, both would wait forever; so the drop happens detached.

use std::ops::Deref;

use pyo3::prelude::*;

pub struct Detached<T: Send>(Option<T>);

impl<T: Send> Detached<T> {
    pub fn new(value: T) -> Self {
        Detached(Some(value))
    }
}

impl<T: Send> Deref for Detached<T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.0.as_ref().expect("present until dropped")
    }
}

impl<T: Send> Drop for Detached<T> {
    fn drop(&mut self) {
        let mut value = self.0.take();
        Python::try_attach(|py| py.detach(|| drop(value.take())));
        // Not attached and cannot attach (shutdown): no GIL is held, so just drop.
        drop(value);
    }
}
