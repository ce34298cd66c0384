//! `spead2._spead2.RawDescriptor`: the wire fields of an item descriptor.

use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::protocol::descriptor::RawDescriptor as CoreDescriptor;

#[pyclass(module = "spead2._spead2", name = "RawDescriptor")]
#[derive(Clone, Default)]
pub struct RawDescriptor {
    #[pyo3(get, set)]
    pub id: u64,
    pub name: Vec<u8>,
    pub description: Vec<u8>,
    /// Negative entries mark variable dimensions.
    pub shape: Vec<i64>,
    pub format: Vec<(String, u64)>,
    pub numpy_header: Vec<u8>,
}

#[pymethods]
impl RawDescriptor {
    #[new]
    fn new() -> Self {
        Self::default()
    }

    #[getter]
    fn name<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.name)
    }

    #[setter]
    fn set_name(&mut self, value: Vec<u8>) {
        self.name = value;
    }

    #[getter]
    fn description<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.description)
    }

    #[setter]
    fn set_description(&mut self, value: Vec<u8>) {
        self.description = value;
    }

    /// Variable dimensions read back as None.
    #[getter]
    fn shape(&self) -> Vec<Option<i64>> {
        self.shape.iter().map(|&d| (d >= 0).then_some(d)).collect()
    }

    #[setter]
    fn set_shape(&mut self, value: Vec<Option<i64>>) {
        self.shape = value.into_iter().map(|d| d.unwrap_or(-1)).collect();
    }

    #[getter]
    fn format(&self) -> Vec<(String, u64)> {
        self.format.clone()
    }

    #[setter]
    fn set_format(&mut self, value: Vec<(String, u64)>) {
        self.format = value;
    }

    #[getter]
    fn numpy_header<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.numpy_header)
    }

    #[setter]
    fn set_numpy_header(&mut self, value: Vec<u8>) {
        self.numpy_header = value;
    }
}

impl From<CoreDescriptor> for RawDescriptor {
    fn from(d: CoreDescriptor) -> Self {
        RawDescriptor {
            id: d.id,
            name: d.name,
            description: d.description,
            shape: d.shape,
            format: d
                .format
                .into_iter()
                .map(|(c, bits)| (char::from(c).to_string(), bits))
                .collect(),
            numpy_header: d.numpy_header,
        }
    }
}

impl From<RawDescriptor> for CoreDescriptor {
    /// Format codes longer than one byte keep their first byte, as only that is encoded.
    fn from(d: RawDescriptor) -> Self {
        CoreDescriptor {
            id: d.id,
            name: d.name,
            description: d.description,
            shape: d.shape,
            format: d
                .format
                .into_iter()
                .map(|(c, bits)| (c.bytes().next().unwrap_or(0), bits))
                .collect(),
            numpy_header: d.numpy_header,
        }
    }
}
