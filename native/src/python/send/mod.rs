//! Bindings for `spead2._spead2.send`.

pub mod config;
pub mod heap;
pub mod packet_generator;

use pyo3::prelude::*;

pub fn register(py: Python<'_>, parent: &Bound<'_, PyModule>) -> PyResult<()> {
    let m = PyModule::new(py, "send")?;
    m.add_class::<config::StreamConfig>()?;
    m.add("RateMethod", config::rate_method(py)?)?;
    m.add("GroupMode", config::group_mode(py)?)?;
    m.add_class::<heap::Heap>()?;
    m.add_class::<heap::HeapReference>()?;
    m.add_class::<heap::HeapReferenceList>()?;
    m.add_class::<packet_generator::PacketGenerator>()?;
    super::add_submodule(py, parent, &m)
}
