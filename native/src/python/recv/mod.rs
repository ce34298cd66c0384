//! Bindings for `spead2._spead2.recv`.

pub mod config;
pub mod heap;
pub mod stats;
pub mod stream;

use pyo3::prelude::*;

pub fn register(py: Python<'_>, parent: &Bound<'_, PyModule>) -> PyResult<()> {
    let m = PyModule::new(py, "recv")?;
    m.add_class::<config::StreamConfig>()?;
    m.add_class::<config::RingStreamConfig>()?;
    m.add_class::<config::StreamStatConfig>()?;
    m.add_class::<stats::StreamStats>()?;
    m.add_class::<heap::HeapBase>()?;
    m.add_class::<heap::Heap>()?;
    m.add_class::<heap::IncompleteHeap>()?;
    m.add_class::<heap::RawItem>()?;
    m.add_class::<stream::PyStream>()?;
    m.add_class::<stream::Ringbuffer>()?;
    super::add_submodule(py, parent, &m)
}
