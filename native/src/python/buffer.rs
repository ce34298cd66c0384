//! A Python buffer held by native code as plain bytes, whatever its element format.
//!
//! pyo3's typed `PyBuffer<u8>` refuses buffers whose format is not a byte (e.g. a `<u2` numpy
//! array), but spead2 sends any contiguous buffer as raw bytes, so this takes a simple
//! (format-less) view instead.

use pyo3::ffi;
use pyo3::prelude::*;

pub struct RawBuffer {
    view: Box<ffi::Py_buffer>,
}

// SAFETY: the view pins the exporter's memory until released; the bytes are only read (never
// resized) from other threads, and release takes the GIL (see Drop).
unsafe impl Send for RawBuffer {}
// SAFETY: as above; shared access is read-only.
unsafe impl Sync for RawBuffer {}

impl RawBuffer {
    /// A C-contiguous byte view of `obj` (BufferError if it cannot give one).
    pub fn get(obj: &Bound<'_, PyAny>) -> PyResult<Self> {
        // SAFETY: Py_buffer is plain data and all-zero is its "empty" state.
        let mut view: Box<ffi::Py_buffer> = Box::new(unsafe { std::mem::zeroed() });
        // SAFETY: obj is a live object (we hold the GIL through `obj`), and `view` points to a
        // writable Py_buffer that outlives the call.
        let rc = unsafe { ffi::PyObject_GetBuffer(obj.as_ptr(), &mut *view, ffi::PyBUF_SIMPLE) };
        if rc != 0 {
            return Err(PyErr::fetch(obj.py()));
        }
        Ok(RawBuffer { view })
    }
}

impl AsRef<[u8]> for RawBuffer {
    fn as_ref(&self) -> &[u8] {
        let len = usize::try_from(self.view.len).unwrap_or(0);
        if len == 0 {
            return &[];
        }
        // SAFETY: PyBUF_SIMPLE guarantees `buf` is `len` contiguous bytes, valid until release.
        unsafe { std::slice::from_raw_parts(self.view.buf as *const u8, len) }
    }
}

impl Drop for RawBuffer {
    /// Releases the view with the GIL. During interpreter shutdown (a worker dropping a
    /// reader after the main thread began finalising) it cannot attach, so the view is
    /// leaked: the process is exiting and the exporter's memory goes with it.
    fn drop(&mut self) {
        let released = Python::try_attach(|_| {
            // SAFETY: the view was filled by PyObject_GetBuffer and is released exactly once.
            unsafe { ffi::PyBuffer_Release(&mut *self.view) };
        });
        if released.is_none() {
            log::debug!("leaking a Python buffer view at interpreter shutdown");
        }
    }
}
