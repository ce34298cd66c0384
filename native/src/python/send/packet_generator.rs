//! `spead2.send.PacketGenerator(heap, cnt, max_packet_size)`: the packets of one heap as bytes.

use std::sync::Mutex;

use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use super::heap::Heap;
use crate::send::packet_generator::{PacketError, PacketGenerator as CoreGenerator};

#[pyclass(module = "spead2._spead2.send", name = "PacketGenerator", frozen)]
pub struct PacketGenerator {
    inner: Mutex<CoreGenerator>,
}

/// spead2 raises OSError with an errno for cnt problems and ValueError for size problems.
pub fn packet_error(e: PacketError) -> PyErr {
    match e.errno() {
        Some(errno) => PyOSError::new_err((errno, e.to_string())),
        None => PyValueError::new_err(e.to_string()),
    }
}

#[pymethods]
impl PacketGenerator {
    #[new]
    fn new(heap: PyRef<'_, Heap>, cnt: u64, max_packet_size: usize) -> PyResult<Self> {
        let inner = CoreGenerator::new(&heap.inner, cnt, max_packet_size).map_err(packet_error)?;
        Ok(PacketGenerator {
            inner: Mutex::new(inner),
        })
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyBytes>> {
        let mut out = Vec::new();
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner
            .next_packet_bytes(&mut out)
            .then(|| PyBytes::new(py, &out))
    }
}
