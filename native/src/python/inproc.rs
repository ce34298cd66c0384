//! `spead2.InprocQueue`.

use std::sync::Arc;

use pyo3::buffer::PyBuffer;
use pyo3::prelude::*;

use super::common::Stopped;
use crate::inproc::InprocQueue as CoreQueue;

#[pyclass(module = "spead2._spead2", name = "InprocQueue", frozen)]
pub struct InprocQueue {
    pub inner: Arc<CoreQueue>,
}

#[pymethods]
impl InprocQueue {
    #[new]
    fn new() -> Self {
        InprocQueue {
            inner: Arc::new(CoreQueue::new()),
        }
    }

    /// Queues a copy of one packet.
    fn add_packet(&self, py: Python<'_>, packet: PyBuffer<u8>) -> PyResult<()> {
        let packet = packet.to_vec(py)?;
        self.inner
            .add_packet(packet)
            .map_err(|_| Stopped::new_err("ring buffer has been stopped"))
    }

    /// Readers see the packets already queued, then the end of the stream.
    fn stop(&self) {
        self.inner.stop();
    }
}
