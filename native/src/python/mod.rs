//! PyO3 bindings only: conversions and Python-facing classes over the core. No protocol logic.

mod buffer;
mod common;
mod convert;
mod descriptor;
mod detached;
mod inproc;
mod logging;
mod memory;
mod net;
mod recv;
mod send;

use pyo3::prelude::*;

/// Adds `child` as an attribute of `parent` and registers it in `sys.modules` under its dotted
/// name, so `import spead2._spead2.recv` works like a real package module.
fn add_submodule(
    py: Python<'_>,
    parent: &Bound<'_, PyModule>,
    child: &Bound<'_, PyModule>,
) -> PyResult<()> {
    let name = format!("{}.{}", parent.name()?, child.name()?);
    child.setattr("__name__", &name)?;
    parent.add_submodule(child)?;
    py.import("sys")?
        .getattr("modules")?
        .set_item(name, child)?;
    Ok(())
}

#[pymodule]
fn _spead2(py: Python<'_>, m: &Bound<'_, PyModule>) -> PyResult<()> {
    logging::install(py)?;
    m.add("Stopped", py.get_type::<common::Stopped>())?;
    m.add("Empty", py.get_type::<common::Empty>())?;
    m.add("Full", py.get_type::<common::Full>())?;
    common::add_constants(m)?;
    m.add_class::<common::Flavour>()?;
    m.add_class::<common::ThreadPool>()?;
    m.add_class::<memory::MemoryAllocator>()?;
    m.add_class::<memory::MmapAllocator>()?;
    m.add_class::<memory::MemoryPool>()?;
    m.add_class::<inproc::InprocQueue>()?;
    m.add_class::<descriptor::RawDescriptor>()?;
    m.add_function(wrap_pyfunction!(common::log_info, m)?)?;
    recv::register(py, m)?;
    send::register(py, m)?;
    Ok(())
}
