//! `spead2.send.StreamConfig` and the `RateMethod` / `GroupMode` enums.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyType};

pub use crate::python::convert::enum_value;
use crate::python::convert::{make_enum, unsigned_usize};

const MODULE: &str = "spead2._spead2.send";
use crate::python::recv::config::apply_kwargs;
use crate::send::stream::StreamConfig as CoreConfig;

pub const DEFAULT_MAX_PACKET_SIZE: usize = CoreConfig::DEFAULT_MAX_PACKET_SIZE;
pub const DEFAULT_MAX_HEAPS: usize = CoreConfig::DEFAULT_MAX_HEAPS;
pub const DEFAULT_BURST_SIZE: usize = CoreConfig::DEFAULT_BURST_SIZE;
pub const DEFAULT_BURST_RATE_RATIO: f64 = CoreConfig::DEFAULT_BURST_RATE_RATIO;
/// `RateMethod.AUTO`.
pub const DEFAULT_RATE_METHOD: i64 = 2;

static RATE_METHOD: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static GROUP_MODE: PyOnceLock<Py<PyType>> = PyOnceLock::new();

pub fn rate_method(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    RATE_METHOD
        .get_or_try_init(py, || {
            make_enum(
                py,
                MODULE,
                "RateMethod",
                &[("SW", 0), ("HW", 1), ("AUTO", 2)],
            )
        })
        .map(|t| t.bind(py))
}

pub fn group_mode(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    GROUP_MODE
        .get_or_try_init(py, || {
            make_enum(
                py,
                MODULE,
                "GroupMode",
                &[("ROUND_ROBIN", 0), ("SERIAL", 1)],
            )
        })
        .map(|t| t.bind(py))
}

/// `spead2.send.StreamConfig(**kwargs)`.
#[pyclass(module = "spead2._spead2.send", name = "StreamConfig")]
#[derive(Clone)]
pub struct StreamConfig {
    pub max_packet_size: usize,
    pub rate: f64,
    pub burst_size: usize,
    pub max_heaps: usize,
    pub burst_rate_ratio: f64,
    pub rate_method: i64,
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            max_packet_size: DEFAULT_MAX_PACKET_SIZE,
            rate: 0.0,
            burst_size: DEFAULT_BURST_SIZE,
            max_heaps: DEFAULT_MAX_HEAPS,
            burst_rate_ratio: DEFAULT_BURST_RATE_RATIO,
            rate_method: DEFAULT_RATE_METHOD,
        }
    }
}

const KEYS: [&str; 6] = [
    "max_packet_size",
    "rate",
    "burst_size",
    "max_heaps",
    "burst_rate_ratio",
    "rate_method",
];

#[pymethods]
impl StreamConfig {
    #[new]
    #[pyo3(signature = (**kwargs))]
    fn new(py: Python<'_>, kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<Py<Self>> {
        let obj = Py::new(py, StreamConfig::default())?;
        apply_kwargs(obj.bind(py).as_any(), kwargs, &KEYS)?;
        Ok(obj)
    }

    #[classattr]
    const DEFAULT_MAX_PACKET_SIZE: usize = DEFAULT_MAX_PACKET_SIZE;
    #[classattr]
    const DEFAULT_MAX_HEAPS: usize = DEFAULT_MAX_HEAPS;
    #[classattr]
    const DEFAULT_BURST_SIZE: usize = DEFAULT_BURST_SIZE;
    #[classattr]
    const DEFAULT_BURST_RATE_RATIO: f64 = DEFAULT_BURST_RATE_RATIO;

    #[classattr]
    #[pyo3(name = "DEFAULT_RATE_METHOD")]
    fn default_rate_method(py: Python<'_>) -> PyResult<Py<PyAny>> {
        Ok(rate_method(py)?.call1((DEFAULT_RATE_METHOD,))?.unbind())
    }

    #[getter]
    fn max_packet_size(&self) -> usize {
        self.max_packet_size
    }

    #[setter]
    fn set_max_packet_size(&mut self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        self.max_packet_size = unsigned_usize(value, "max_packet_size")?;
        Ok(())
    }

    /// Bytes per second; 0 means as fast as possible.
    #[getter]
    fn rate(&self) -> f64 {
        self.rate
    }

    #[setter]
    fn set_rate(&mut self, value: f64) -> PyResult<()> {
        CoreConfig::check_rate(value).map_err(|e| PyValueError::new_err(e.to_string()))?;
        self.rate = value;
        Ok(())
    }

    #[getter]
    fn burst_size(&self) -> usize {
        self.burst_size
    }

    #[setter]
    fn set_burst_size(&mut self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        self.burst_size = unsigned_usize(value, "burst_size")?;
        Ok(())
    }

    #[getter]
    fn max_heaps(&self) -> usize {
        self.max_heaps
    }

    #[setter]
    fn set_max_heaps(&mut self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let v = unsigned_usize(value, "max_heaps")?;
        CoreConfig::check_max_heaps(v).map_err(|e| PyValueError::new_err(e.to_string()))?;
        self.max_heaps = v;
        Ok(())
    }

    #[getter]
    fn burst_rate_ratio(&self) -> f64 {
        self.burst_rate_ratio
    }

    #[setter]
    fn set_burst_rate_ratio(&mut self, value: f64) -> PyResult<()> {
        CoreConfig::check_burst_rate_ratio(value)
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        self.burst_rate_ratio = value;
        Ok(())
    }

    #[getter]
    fn rate_method(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        Ok(rate_method(py)?.call1((self.rate_method,))?.unbind())
    }

    #[setter]
    fn set_rate_method(&mut self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        self.rate_method = enum_value(value, rate_method(value.py())?, "rate_method")?;
        Ok(())
    }

    /// `rate * burst_rate_ratio`: the catch-up rate after falling behind (read-only).
    #[getter]
    fn burst_rate(&self) -> f64 {
        self.rate * self.burst_rate_ratio
    }
}
