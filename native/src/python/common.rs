//! Top-level `spead2` classes: exceptions, `Flavour`, `ThreadPool`, constants.

use std::sync::Arc;

use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyValueError};
use pyo3::prelude::*;

use crate::protocol::{ids, Flavour as CoreFlavour};
use crate::python::detached::Detached;
use crate::thread_pool::{self, ThreadPool as CoreThreadPool};

create_exception!(
    spead2,
    Stopped,
    PyException,
    "The stream or ring buffer has stopped."
);
create_exception!(
    spead2,
    Empty,
    PyException,
    "No data is available right now."
);
create_exception!(spead2, Full, PyException, "The ring buffer is full.");

/// `spead2.Flavour`: subclassable; native code accepts subclass instances.
#[pyclass(subclass, module = "spead2._spead2", name = "Flavour", frozen)]
#[derive(Clone)]
pub struct Flavour {
    pub inner: CoreFlavour,
}

#[pymethods]
impl Flavour {
    #[new]
    #[pyo3(signature = (version = 4, item_pointer_bits = 64, heap_address_bits = 40, bug_compat = 0))]
    fn new(
        version: i64,
        item_pointer_bits: i64,
        heap_address_bits: i64,
        bug_compat: i64,
    ) -> PyResult<Self> {
        let inner = CoreFlavour::new(version, item_pointer_bits, heap_address_bits, bug_compat)
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        Ok(Flavour { inner })
    }

    #[getter]
    fn version(&self) -> u32 {
        CoreFlavour::VERSION
    }

    #[getter]
    fn item_pointer_bits(&self) -> u32 {
        CoreFlavour::ITEM_POINTER_BITS
    }

    #[getter]
    fn heap_address_bits(&self) -> u32 {
        self.inner.heap_address_bits()
    }

    #[getter]
    fn bug_compat(&self) -> u32 {
        self.inner.bug_compat()
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other
            .cast::<Flavour>()
            .map(|o| o.get().inner == self.inner)
            .unwrap_or(false)
    }

    fn __ne__(&self, other: &Bound<'_, PyAny>) -> bool {
        !self.__eq__(other)
    }

    fn __repr__(&self) -> String {
        format!(
            "spead2.Flavour(4, 64, {}, {})",
            self.inner.heap_address_bits(),
            self.inner.bug_compat()
        )
    }

    // Unhashable, as in spead2 (equality is by value but the class is subclassable).
    #[classattr]
    fn __hash__() -> Option<()> {
        None
    }
}

impl Flavour {
    pub fn new_py(py: Python<'_>, inner: CoreFlavour) -> PyResult<Py<Flavour>> {
        Py::new(py, Flavour { inner })
    }
}

/// `spead2.ThreadPool(threads=1, affinity=None)`.
#[pyclass(module = "spead2._spead2", name = "ThreadPool", frozen)]
pub struct ThreadPool {
    pub inner: Detached<Arc<CoreThreadPool>>,
}

#[pymethods]
impl ThreadPool {
    #[new]
    #[pyo3(signature = (threads = 1, affinity = None))]
    fn new(py: Python<'_>, threads: i64, affinity: Option<Vec<usize>>) -> PyResult<Self> {
        if threads <= 0 {
            return Err(PyValueError::new_err("at least one thread is required"));
        }
        let affinity = affinity.unwrap_or_default();
        let inner = py
            .detach(|| CoreThreadPool::new(threads as usize, &affinity))
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        Ok(ThreadPool {
            inner: Detached::new(inner),
        })
    }

    /// Stops the worker threads; streams using the pool stop receiving.
    fn stop(&self, py: Python<'_>) {
        let inner = Arc::clone(&self.inner);
        py.detach(move || inner.stop());
    }

    /// Pins the calling thread to one CPU core.
    #[staticmethod]
    fn set_affinity(core: usize) -> PyResult<()> {
        thread_pool::set_affinity(core).map_err(PyErr::from)
    }

    #[getter]
    fn num_threads(&self) -> usize {
        self.inner.num_threads()
    }
}

/// `spead2._spead2.log_info(msg)`: logs through the same path as the core.
#[pyfunction]
pub fn log_info(msg: &str) {
    log::info!("{msg}");
}

pub fn add_constants(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let constants: [(&str, u64); 21] = [
        (
            "BUG_COMPAT_DESCRIPTOR_WIDTHS",
            ids::BUG_COMPAT_DESCRIPTOR_WIDTHS.into(),
        ),
        ("BUG_COMPAT_SHAPE_BIT_1", ids::BUG_COMPAT_SHAPE_BIT_1.into()),
        ("BUG_COMPAT_SWAP_ENDIAN", ids::BUG_COMPAT_SWAP_ENDIAN.into()),
        (
            "BUG_COMPAT_PYSPEAD_0_5_2",
            ids::BUG_COMPAT_PYSPEAD_0_5_2.into(),
        ),
        ("NULL_ID", ids::NULL_ID),
        ("HEAP_CNT_ID", ids::HEAP_CNT_ID),
        ("HEAP_LENGTH_ID", ids::HEAP_LENGTH_ID),
        ("PAYLOAD_OFFSET_ID", ids::PAYLOAD_OFFSET_ID),
        ("PAYLOAD_LENGTH_ID", ids::PAYLOAD_LENGTH_ID),
        ("DESCRIPTOR_ID", ids::DESCRIPTOR_ID),
        ("STREAM_CTRL_ID", ids::STREAM_CTRL_ID),
        ("DESCRIPTOR_NAME_ID", ids::DESCRIPTOR_NAME_ID),
        ("DESCRIPTOR_DESCRIPTION_ID", ids::DESCRIPTOR_DESCRIPTION_ID),
        ("DESCRIPTOR_SHAPE_ID", ids::DESCRIPTOR_SHAPE_ID),
        ("DESCRIPTOR_FORMAT_ID", ids::DESCRIPTOR_FORMAT_ID),
        ("DESCRIPTOR_ID_ID", ids::DESCRIPTOR_ID_ID),
        ("DESCRIPTOR_DTYPE_ID", ids::DESCRIPTOR_DTYPE_ID),
        ("CTRL_STREAM_START", ids::CTRL_STREAM_START),
        ("CTRL_DESCRIPTOR_REISSUE", ids::CTRL_DESCRIPTOR_REISSUE),
        ("CTRL_STREAM_STOP", ids::CTRL_STREAM_STOP),
        ("CTRL_DESCRIPTOR_UPDATE", ids::CTRL_DESCRIPTOR_UPDATE),
    ];
    for (name, value) in constants {
        m.add(name, value)?;
    }
    m.add("MEMCPY_STD", 0)?;
    m.add("MEMCPY_NONTEMPORAL", 1)?;
    Ok(())
}
