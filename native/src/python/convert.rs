//! Argument conversions that reproduce spead2's (pybind11's) error types.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyType};

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

/// A boolean argument as pybind11 converts it: bools, None (false), numbers and numpy bools
/// by truth value; anything else (e.g. a str) is a TypeError.
pub fn boolean(value: &Bound<'_, PyAny>, name: &str) -> PyResult<bool> {
    if value.is_instance_of::<PyBool>() {
        return value.extract();
    }
    if value.is_none() {
        return Ok(false);
    }
    let type_name = value.get_type().fully_qualified_name()?.to_string();
    let numpy_bool = type_name == "numpy.bool" || type_name == "numpy.bool_";
    if value.is_instance_of::<PyInt>() || value.is_instance_of::<PyFloat>() || numpy_bool {
        return value.is_truthy();
    }
    Err(incompatible(name, value))
}

/// Builds a Python `enum.Enum` class (spead2's enums are real Python enums).
pub fn make_enum(
    py: Python<'_>,
    module: &str,
    qualname: &str,
    members: &[(&str, i64)],
) -> PyResult<Py<PyType>> {
    let name = qualname.rsplit('.').next().unwrap_or(qualname);
    let kwargs = PyDict::new(py);
    kwargs.set_item("module", module)?;
    kwargs.set_item("qualname", qualname)?;
    let cls = py
        .import("enum")?
        .getattr("Enum")?
        .call((name, members.to_vec()), Some(&kwargs))?;
    Ok(cls.cast_into::<PyType>()?.unbind())
}

/// The integer value of a member of `enum_type`, or TypeError.
pub fn enum_value(
    value: &Bound<'_, PyAny>,
    enum_type: &Bound<'_, PyType>,
    what: &str,
) -> PyResult<i64> {
    if !value.is_instance(enum_type)? {
        return Err(pyo3::exceptions::PyTypeError::new_err(format!(
            "{what} must be a {}",
            enum_type.name()?
        )));
    }
    value.getattr("value")?.extract()
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

/// A signed integer argument: pybind11 raises TypeError (not OverflowError) when out of range.
pub fn signed(value: &Bound<'_, PyAny>, name: &str) -> PyResult<i64> {
    if value.is_instance_of::<PyFloat>() {
        return Err(incompatible(name, value));
    }
    let v: i128 = value
        .call_method0("__index__")
        .and_then(|v| v.extract())
        .map_err(|_| incompatible(name, value))?;
    i64::try_from(v).map_err(|_| incompatible(name, value))
}

/// An OSError carrying the errno, so Python picks the matching subclass
/// (ConnectionRefusedError, BlockingIOError, ...).
pub fn os_error(e: std::io::Error) -> PyErr {
    match e.raw_os_error() {
        Some(code) => {
            let text = std::io::Error::from_raw_os_error(code).to_string();
            let text = text.split(" (os error").next().unwrap_or(&text).to_owned();
            pyo3::exceptions::PyOSError::new_err((code, text))
        }
        None => pyo3::exceptions::PyOSError::new_err(e.to_string()),
    }
}
