//! `spead2.recv.StreamStats`: a snapshot of a stream's statistics with a mapping interface.

use std::sync::Arc;

use pyo3::exceptions::{PyIndexError, PyKeyError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyString;

use super::config::StreamStatConfig;
use crate::python::convert::unsigned;
use crate::recv::stats::{index, Stats};

#[pyclass(module = "spead2._spead2.recv", name = "StreamStats")]
#[derive(Clone)]
pub struct StreamStats {
    pub inner: Stats,
}

impl StreamStats {
    fn position(&self, key: &Bound<'_, PyAny>) -> PyResult<usize> {
        if let Ok(name) = key.cast::<PyString>() {
            let name = name.to_str()?;
            return self
                .inner
                .config
                .index_of(name)
                .ok_or_else(|| PyKeyError::new_err(name.to_owned()));
        }
        let i: i64 = key
            .extract()
            .map_err(|_| PyTypeError::new_err("statistics are indexed by name or index"))?;
        if i < 0 {
            return Err(PyTypeError::new_err("negative indices are not supported"));
        }
        let i = i as usize;
        if i >= self.inner.values.len() {
            return Err(PyIndexError::new_err(""));
        }
        Ok(i)
    }

    fn combined(&self, other: &StreamStats) -> PyResult<Stats> {
        if *self.inner.config != *other.inner.config {
            return Err(PyValueError::new_err(
                "cannot add statistics with different configurations",
            ));
        }
        let mut out = self.inner.clone();
        out.merge(&other.inner.values);
        Ok(out)
    }

    fn names(&self) -> Vec<String> {
        self.inner.config.iter().map(|s| s.name.clone()).collect()
    }
}

#[pymethods]
impl StreamStats {
    #[getter]
    fn heaps(&self) -> u64 {
        self.inner.values[index::HEAPS]
    }

    #[setter]
    fn set_heaps(&mut self, value: u64) {
        self.inner.values[index::HEAPS] = value;
    }

    #[getter]
    fn incomplete_heaps_evicted(&self) -> u64 {
        self.inner.values[index::INCOMPLETE_HEAPS_EVICTED]
    }

    #[setter]
    fn set_incomplete_heaps_evicted(&mut self, value: u64) {
        self.inner.values[index::INCOMPLETE_HEAPS_EVICTED] = value;
    }

    #[getter]
    fn incomplete_heaps_flushed(&self) -> u64 {
        self.inner.values[index::INCOMPLETE_HEAPS_FLUSHED]
    }

    #[setter]
    fn set_incomplete_heaps_flushed(&mut self, value: u64) {
        self.inner.values[index::INCOMPLETE_HEAPS_FLUSHED] = value;
    }

    #[getter]
    fn packets(&self) -> u64 {
        self.inner.values[index::PACKETS]
    }

    #[setter]
    fn set_packets(&mut self, value: u64) {
        self.inner.values[index::PACKETS] = value;
    }

    #[getter]
    fn batches(&self) -> u64 {
        self.inner.values[index::BATCHES]
    }

    #[setter]
    fn set_batches(&mut self, value: u64) {
        self.inner.values[index::BATCHES] = value;
    }

    #[getter]
    fn max_batch(&self) -> u64 {
        self.inner.values[index::MAX_BATCH]
    }

    #[setter]
    fn set_max_batch(&mut self, value: u64) {
        self.inner.values[index::MAX_BATCH] = value;
    }

    #[getter]
    fn single_packet_heaps(&self) -> u64 {
        self.inner.values[index::SINGLE_PACKET_HEAPS]
    }

    #[setter]
    fn set_single_packet_heaps(&mut self, value: u64) {
        self.inner.values[index::SINGLE_PACKET_HEAPS] = value;
    }

    #[getter]
    fn search_dist(&self) -> u64 {
        self.inner.values[index::SEARCH_DIST]
    }

    #[setter]
    fn set_search_dist(&mut self, value: u64) {
        self.inner.values[index::SEARCH_DIST] = value;
    }

    #[getter]
    fn worker_blocked(&self) -> u64 {
        self.inner.values[index::WORKER_BLOCKED]
    }

    #[setter]
    fn set_worker_blocked(&mut self, value: u64) {
        self.inner.values[index::WORKER_BLOCKED] = value;
    }

    fn __getitem__(&self, key: &Bound<'_, PyAny>) -> PyResult<u64> {
        Ok(self.inner.values[self.position(key)?])
    }

    fn __setitem__(&mut self, key: &Bound<'_, PyAny>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let i = self.position(key)?;
        self.inner.values[i] = unsigned(value, "value")?;
        Ok(())
    }

    fn __contains__(&self, name: &str) -> bool {
        self.inner.config.index_of(name).is_some()
    }

    #[pyo3(signature = (name, default = None))]
    fn get(&self, py: Python<'_>, name: &str, default: Option<Py<PyAny>>) -> PyResult<Py<PyAny>> {
        match self.inner.config.index_of(name) {
            Some(i) => Ok(self.inner.values[i].into_pyobject(py)?.into_any().unbind()),
            None => Ok(default.unwrap_or_else(|| py.None())),
        }
    }

    fn keys(&self) -> Vec<String> {
        self.names()
    }

    fn values(&self) -> Vec<u64> {
        self.inner.values.clone()
    }

    fn items(&self) -> Vec<(String, u64)> {
        self.names()
            .into_iter()
            .zip(self.inner.values.iter().copied())
            .collect()
    }

    fn __iter__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let names = pyo3::types::PyList::new(py, self.names())?;
        Ok(names.try_iter()?.into_any().unbind())
    }

    fn __len__(&self) -> usize {
        self.inner.values.len()
    }

    fn __add__(&self, other: PyRef<'_, StreamStats>) -> PyResult<StreamStats> {
        Ok(StreamStats {
            inner: self.combined(&other)?,
        })
    }

    fn __iadd__(&mut self, other: PyRef<'_, StreamStats>) -> PyResult<()> {
        self.inner = self.combined(&other)?;
        Ok(())
    }

    #[getter]
    fn config(&self) -> Vec<StreamStatConfig> {
        self.inner
            .config
            .iter()
            .map(|s| StreamStatConfig { inner: s.clone() })
            .collect()
    }

    fn __repr__(&self) -> String {
        let body: Vec<String> = self
            .items()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        format!("StreamStats({})", body.join(", "))
    }
}

impl StreamStats {
    pub fn from_stats(inner: Stats) -> Self {
        StreamStats { inner }
    }

    pub fn config_arc(&self) -> Arc<crate::recv::stats::StatsConfig> {
        self.inner.config.clone()
    }
}
