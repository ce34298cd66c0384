//! Argument conversions that reproduce spead2's (pybind11's) error types.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyFloat, PyInt};

/// An unsigned integer argument: pybind11 rejects floats and negatives with TypeError.
pub fn unsigned(value: &Bound<'_, PyAny>, name: &str) -> PyResult<u64> {
    if value.is_instance_of::<PyFloat>()
        || !(value.is_instance_of::<PyInt>() || value.hasattr("__index__")?)
    {
        return Err(incompatible(name, value));
    }
    let v: i128 = value
        .call_method0("__index__")?
        .extract()
        .map_err(|_| incompatible(name, value))?;
    u64::try_from(v).map_err(|_| incompatible(name, value))
}

pub fn unsigned_usize(value: &Bound<'_, PyAny>, name: &str) -> PyResult<usize> {
    usize::try_from(unsigned(value, name)?).map_err(|_| incompatible(name, value))
}

/// A boolean argument: pybind11 accepts only real bools (and numpy bools).
pub fn boolean(value: &Bound<'_, PyAny>, name: &str) -> PyResult<bool> {
    if value.is_instance_of::<PyBool>() {
        return value.extract();
    }
    let type_name = value.get_type().name()?.to_string();
    if type_name == "bool_" || type_name == "bool" {
        return value.is_truthy();
    }
    Err(incompatible(name, value))
}

pub fn incompatible(name: &str, value: &Bound<'_, PyAny>) -> PyErr {
    let shown = value
        .repr()
        .map(|r| r.to_string())
        .unwrap_or_else(|_| "?".into());
    PyTypeError::new_err(format!(
        "incompatible function arguments: {name} cannot be {shown}"
    ))
}

/// A 16-bit port: pybind11 rejects out-of-range values with TypeError.
pub fn port(value: &Bound<'_, PyAny>) -> PyResult<u16> {
    u16::try_from(unsigned(value, "port")?).map_err(|_| incompatible("port", value))
}

pub fn nonzero(value: usize, message: &str) -> PyResult<usize> {
    if value == 0 {
        Err(PyValueError::new_err(message.to_owned()))
    } else {
        Ok(value)
    }
}
