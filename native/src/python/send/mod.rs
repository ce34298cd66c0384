//! Bindings for `spead2._spead2.send`.

pub mod config;
pub mod heap;
pub mod packet_generator;
pub mod stream;

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
    m.add_class::<stream::Stream>()?;
    m.add_class::<stream::Writer>()?;
    m.add_class::<stream::PyBytesBuffer>()?;
    m.add_function(wrap_pyfunction!(stream::udp_writer, &m)?)?;
    m.add_function(wrap_pyfunction!(stream::udp_socket_writer, &m)?)?;
    m.add_function(wrap_pyfunction!(stream::tcp_connect_writer, &m)?)?;
    m.add_function(wrap_pyfunction!(stream::tcp_socket_writer, &m)?)?;
    m.add_function(wrap_pyfunction!(stream::bytes_writer, &m)?)?;
    m.add_function(wrap_pyfunction!(stream::inproc_writer, &m)?)?;
    super::add_submodule(py, parent, &m)
}
