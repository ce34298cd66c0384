//! `spead2.recv.StreamConfig`, `RingStreamConfig` and `StreamStatConfig`.

use std::sync::Arc;

use pyo3::exceptions::{PyIndexError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyType};

use crate::protocol::ids::BUG_COMPAT_ALL;
use crate::python::convert::{
    boolean, enum_value, incompatible, make_enum, nonzero, unsigned, unsigned_usize,
};
use crate::python::memory::MemoryAllocator;
use crate::recv::config::{Memcpy, RingConfig, StreamConfig as CoreConfig};
use crate::recv::stats::{StatConfig, StatMode, StatsConfig};

static MODE: PyOnceLock<Py<PyType>> = PyOnceLock::new();

/// `StreamStatConfig.Mode`, a real `enum.Enum` as in spead2.
pub fn mode_enum(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    MODE.get_or_try_init(py, || {
        make_enum(
            py,
            "spead2._spead2.recv",
            "StreamStatConfig.Mode",
            &[("COUNTER", 0), ("MAXIMUM", 1)],
        )
    })
    .map(|t| t.bind(py))
}

fn mode_arg(mode: Option<&Bound<'_, PyAny>>) -> PyResult<StatMode> {
    let Some(mode) = mode else {
        return Ok(StatMode::Counter);
    };
    match enum_value(mode, mode_enum(mode.py())?, "mode")? {
        1 => Ok(StatMode::Maximum),
        _ => Ok(StatMode::Counter),
    }
}

fn mode_member(py: Python<'_>, mode: StatMode) -> PyResult<Py<PyAny>> {
    Ok(mode_enum(py)?.call1((mode as i64,))?.unbind())
}

/// `StreamStatConfig(name, mode=Mode.COUNTER)`.
#[pyclass(module = "spead2._spead2.recv", name = "StreamStatConfig", frozen)]
#[derive(Clone)]
pub struct StreamStatConfig {
    pub inner: StatConfig,
}

#[pymethods]
impl StreamStatConfig {
    #[new]
    #[pyo3(signature = (name, mode = None))]
    fn new(name: String, mode: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        Ok(StreamStatConfig {
            inner: StatConfig {
                name,
                mode: mode_arg(mode)?,
            },
        })
    }

    #[classattr]
    #[pyo3(name = "Mode")]
    fn mode_class(py: Python<'_>) -> PyResult<Py<PyAny>> {
        Ok(mode_enum(py)?.clone().into_any().unbind())
    }

    #[getter]
    fn name(&self) -> &str {
        &self.inner.name
    }

    #[getter]
    fn mode(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        mode_member(py, self.inner.mode)
    }

    /// Combines two values of this statistic according to its mode.
    fn combine(&self, a: u64, b: u64) -> u64 {
        self.inner.mode.combine(a, b)
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other
            .cast::<StreamStatConfig>()
            .map(|o| o.get().inner == self.inner)
            .unwrap_or(false)
    }

    fn __ne__(&self, other: &Bound<'_, PyAny>) -> bool {
        !self.__eq__(other)
    }

    #[classattr]
    fn __hash__() -> Option<()> {
        None
    }
}

/// `spead2.recv.StreamConfig(**kwargs)`.
#[pyclass(module = "spead2._spead2.recv", name = "StreamConfig")]
pub struct StreamConfig {
    pub core: CoreConfig,
    pub memory_allocator: Py<MemoryAllocator>,
}

const STREAM_CONFIG_KEYS: [&str; 11] = [
    "max_heaps",
    "max_heap_size",
    "substreams",
    "bug_compat",
    "memcpy",
    "memory_allocator",
    "stop_on_stop_item",
    "allow_unsized_heaps",
    "allow_out_of_order",
    "stream_id",
    "explicit_start",
];

/// Applies keyword arguments through the property setters, rejecting unknown names.
pub fn apply_kwargs(
    obj: &Bound<'_, PyAny>,
    kwargs: Option<&Bound<'_, PyDict>>,
    known: &[&str],
) -> PyResult<()> {
    let Some(kwargs) = kwargs else { return Ok(()) };
    for (key, value) in kwargs.iter() {
        let key: String = key.extract()?;
        if !known.contains(&key.as_str()) {
            return Err(PyTypeError::new_err(format!(
                "got an unexpected keyword argument '{key}'"
            )));
        }
        obj.setattr(key.as_str(), value)?;
    }
    Ok(())
}

impl StreamConfig {
    pub fn py_default(py: Python<'_>) -> PyResult<Py<StreamConfig>> {
        let allocator = Py::new(py, MemoryAllocator::stream_default())?;
        Py::new(
            py,
            StreamConfig {
                core: CoreConfig::default(),
                memory_allocator: allocator,
            },
        )
    }
}

#[pymethods]
impl StreamConfig {
    #[new]
    #[pyo3(signature = (**kwargs))]
    fn new(py: Python<'_>, kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<Py<Self>> {
        let obj = Self::py_default(py)?;
        apply_kwargs(obj.bind(py).as_any(), kwargs, &STREAM_CONFIG_KEYS)?;
        Ok(obj)
    }

    #[classattr]
    const DEFAULT_MAX_HEAPS: usize = crate::recv::config::DEFAULT_MAX_HEAPS;

    #[getter]
    fn max_heaps(&self) -> usize {
        self.core.max_heaps
    }

    #[setter]
    fn set_max_heaps(&mut self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        self.core.max_heaps =
            nonzero(unsigned_usize(value, "max_heaps")?, "max_heaps cannot be 0")?;
        Ok(())
    }

    #[classattr]
    const DEFAULT_MAX_HEAP_SIZE: u64 = crate::recv::config::DEFAULT_MAX_HEAP_SIZE;

    /// Not in spead2: the largest heap (payload bytes) a packet may claim or reach; packets
    /// beyond it are rejected before anything is allocated.
    #[getter]
    fn max_heap_size(&self) -> u64 {
        self.core.max_heap_size
    }

    #[setter]
    fn set_max_heap_size(&mut self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let size = unsigned(value, "max_heap_size")?;
        if size == 0 {
            return Err(PyValueError::new_err("max_heap_size cannot be 0"));
        }
        self.core.max_heap_size = size;
        Ok(())
    }

    #[getter]
    fn substreams(&self) -> usize {
        self.core.substreams
    }

    #[setter]
    fn set_substreams(&mut self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        self.core.substreams = nonzero(
            unsigned_usize(value, "substreams")?,
            "substreams cannot be 0",
        )?;
        Ok(())
    }

    #[getter]
    fn bug_compat(&self) -> u32 {
        self.core.bug_compat
    }

    #[setter]
    fn set_bug_compat(&mut self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let v = unsigned(value, "bug_compat")?;
        if v & !u64::from(BUG_COMPAT_ALL) != 0 {
            return Err(PyValueError::new_err(
                "unknown compatibility bits in bug_compat",
            ));
        }
        self.core.bug_compat = v as u32;
        Ok(())
    }

    #[getter]
    fn memcpy(&self) -> u32 {
        self.core.memcpy as u32
    }

    #[setter]
    fn set_memcpy(&mut self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let v: i64 = value.extract().map_err(|_| incompatible("memcpy", value))?;
        self.core.memcpy = match v {
            0 => Memcpy::Std,
            1 => Memcpy::NonTemporal,
            _ => return Err(PyValueError::new_err("Unknown memcpy function")),
        };
        Ok(())
    }

    /// Reading back gives the very object that was assigned.
    #[getter]
    fn memory_allocator(&self, py: Python<'_>) -> Py<MemoryAllocator> {
        self.memory_allocator.clone_ref(py)
    }

    #[setter]
    fn set_memory_allocator(&mut self, value: Bound<'_, MemoryAllocator>) {
        self.core.allocator = value.get().inner.clone();
        self.memory_allocator = value.unbind();
    }

    #[getter]
    fn stop_on_stop_item(&self) -> bool {
        self.core.stop_on_stop_item
    }

    #[setter]
    fn set_stop_on_stop_item(&mut self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        self.core.stop_on_stop_item = boolean(value, "stop_on_stop_item")?;
        Ok(())
    }

    #[getter]
    fn allow_unsized_heaps(&self) -> bool {
        self.core.allow_unsized_heaps
    }

    #[setter]
    fn set_allow_unsized_heaps(&mut self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        self.core.allow_unsized_heaps = boolean(value, "allow_unsized_heaps")?;
        Ok(())
    }

    #[getter]
    fn allow_out_of_order(&self) -> bool {
        self.core.allow_out_of_order
    }

    #[setter]
    fn set_allow_out_of_order(&mut self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        self.core.allow_out_of_order = boolean(value, "allow_out_of_order")?;
        Ok(())
    }

    #[getter]
    fn stream_id(&self) -> u64 {
        self.core.stream_id
    }

    #[setter]
    fn set_stream_id(&mut self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        self.core.stream_id = unsigned(value, "stream_id")?;
        Ok(())
    }

    #[getter]
    fn explicit_start(&self) -> bool {
        self.core.explicit_start
    }

    #[setter]
    fn set_explicit_start(&mut self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        self.core.explicit_start = boolean(value, "explicit_start")?;
        Ok(())
    }

    #[getter]
    fn stats(&self) -> Vec<StreamStatConfig> {
        self.core
            .stats
            .iter()
            .map(|s| StreamStatConfig { inner: s.clone() })
            .collect()
    }

    /// Registers a custom statistic; returns its index.
    #[pyo3(signature = (name, mode = None))]
    fn add_stat(&mut self, name: &str, mode: Option<&Bound<'_, PyAny>>) -> PyResult<usize> {
        let mut stats: StatsConfig = (*self.core.stats).clone();
        let index = stats.add(name, mode_arg(mode)?).ok_or_else(|| {
            PyValueError::new_err(format!("A statistic called {name} already exists"))
        })?;
        self.core.stats = Arc::new(stats);
        Ok(index)
    }

    fn get_stat_index(&self, name: &str) -> PyResult<usize> {
        self.core
            .stats
            .index_of(name)
            .ok_or_else(|| PyIndexError::new_err(format!("{name} is not a known statistic name")))
    }

    fn next_stat_index(&self) -> usize {
        self.core.stats.len()
    }
}

/// `spead2.recv.RingStreamConfig(**kwargs)`.
#[pyclass(module = "spead2._spead2.recv", name = "RingStreamConfig")]
#[derive(Clone, Default)]
pub struct RingStreamConfig {
    pub core: RingConfig,
}

#[pymethods]
impl RingStreamConfig {
    #[new]
    #[pyo3(signature = (**kwargs))]
    fn new(py: Python<'_>, kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<Py<Self>> {
        let obj = Py::new(py, RingStreamConfig::default())?;
        apply_kwargs(
            obj.bind(py).as_any(),
            kwargs,
            &["heaps", "contiguous_only", "incomplete_keep_payload_ranges"],
        )?;
        Ok(obj)
    }

    #[classattr]
    const DEFAULT_HEAPS: usize = crate::recv::config::DEFAULT_RING_HEAPS;

    #[getter]
    fn heaps(&self) -> usize {
        self.core.heaps
    }

    #[setter]
    fn set_heaps(&mut self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        self.core.heaps = nonzero(unsigned_usize(value, "heaps")?, "heaps must be at least 1")?;
        Ok(())
    }

    #[getter]
    fn contiguous_only(&self) -> bool {
        self.core.contiguous_only
    }

    #[setter]
    fn set_contiguous_only(&mut self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        self.core.contiguous_only = boolean(value, "contiguous_only")?;
        Ok(())
    }

    #[getter]
    fn incomplete_keep_payload_ranges(&self) -> bool {
        self.core.incomplete_keep_payload_ranges
    }

    #[setter]
    fn set_incomplete_keep_payload_ranges(&mut self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        self.core.incomplete_keep_payload_ranges =
            boolean(value, "incomplete_keep_payload_ranges")?;
        Ok(())
    }
}
