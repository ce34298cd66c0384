//! `spead2.recv.Heap`, `IncompleteHeap` and `RawItem`: received heaps exposed to Python
//! without copying their payload.
//!
//! spead2 hands out *writable* item buffers (users modify received arrays in place), so the
//! payload cannot stay behind shared references. When a heap is wrapped, everything Rust
//! needs from its bytes (item boundaries, descriptors) is computed while it is still uniquely
//! owned; then its buffer moves into a `HeapMemory` that is only ever accessed through a raw
//! pointer by Python's buffer protocol.

use std::ffi::{c_int, c_void};
use std::sync::Arc;

use pyo3::ffi;
use pyo3::prelude::*;

use crate::memory::Buffer;
use crate::protocol::descriptor::RawDescriptor as CoreDescriptor;
use crate::protocol::Flavour as CoreFlavour;
use crate::python::common::Flavour;
use crate::python::descriptor::RawDescriptor;
use crate::recv::heap::{ItemRef, ReceivedHeap};

/// Memory handed to Python: a raw view of `len` bytes at `ptr`, kept alive by `_owner`.
struct HeapMemory {
    _owner: Option<Buffer>,
    ptr: *mut u8,
    len: usize,
}

// SAFETY: `ptr` points into `_owner`'s heap storage, which never moves and lives exactly as long
// as this struct; Rust never reads or writes through it after construction, and Python only
// touches it through the buffer protocol, under Python's own rules for shared buffers.
unsafe impl Send for HeapMemory {}
// SAFETY: as above; no Rust code dereferences `ptr`.
unsafe impl Sync for HeapMemory {}

impl HeapMemory {
    fn new(mut owner: Buffer) -> Self {
        // `deref_mut` is the last Rust access to the bytes; the pointer carries its permission.
        let ptr = owner.as_mut_ptr();
        let len = owner.len();
        HeapMemory {
            _owner: Some(owner),
            ptr,
            len,
        }
    }

    fn empty() -> Self {
        HeapMemory {
            _owner: None,
            ptr: std::ptr::NonNull::dangling().as_ptr(),
            len: 0,
        }
    }
}

/// Fields shared by `Heap` and `IncompleteHeap`.
#[pyclass(subclass, module = "spead2._spead2.recv", name = "HeapBase", frozen)]
pub struct HeapBase {
    memory: Arc<HeapMemory>,
    items: Vec<ItemRef>,
    cnt: u64,
    flavour: CoreFlavour,
    start_of_stream: bool,
    end_of_stream: bool,
}

#[pyclass(extends = HeapBase, module = "spead2._spead2.recv", name = "Heap", frozen)]
pub struct Heap {
    descriptors: Vec<CoreDescriptor>,
}

#[pyclass(extends = HeapBase, module = "spead2._spead2.recv", name = "IncompleteHeap", frozen)]
pub struct IncompleteHeap {
    heap_length: i64,
    received_length: u64,
    payload_ranges: Vec<(u64, u64)>,
}

/// One item of a received heap; its value is available through the buffer protocol.
#[pyclass(module = "spead2._spead2.recv", name = "RawItem", frozen)]
pub struct RawItem {
    memory: Arc<HeapMemory>,
    offset: usize,
    length: usize,
    #[pyo3(get)]
    id: u64,
    #[pyo3(get)]
    is_immediate: bool,
    #[pyo3(get)]
    immediate_value: u64,
}

#[pymethods]
impl RawItem {
    /// # Safety
    /// Called by CPython with a valid `view` to fill.
    unsafe fn __getbuffer__(
        slf: Bound<'_, Self>,
        view: *mut ffi::Py_buffer,
        flags: c_int,
    ) -> PyResult<()> {
        let this = slf.get();
        // `offset + length <= memory.len` was checked when the item was created.
        // SAFETY: the pointer stays in bounds; FillInfo stores a new reference to `slf`, which
        // keeps `memory` (and so the bytes) alive until the view is released.
        let rc = unsafe {
            let ptr = this.memory.ptr.add(this.offset);
            ffi::PyBuffer_FillInfo(
                view,
                slf.as_ptr(),
                ptr.cast::<c_void>(),
                this.length as ffi::Py_ssize_t,
                0,
                flags,
            )
        };
        if rc != 0 {
            return Err(PyErr::fetch(slf.py()));
        }
        Ok(())
    }

    fn __repr__(&self) -> String {
        format!("<RawItem id={:#x} length={}>", self.id, self.length)
    }
}

impl HeapBase {
    fn raw_items(&self) -> Vec<RawItem> {
        self.items.iter().map(|item| self.raw_item(item)).collect()
    }

    fn raw_item(&self, item: &ItemRef) -> RawItem {
        let (memory, offset, length) = if item.is_immediate {
            let bytes = item.immediate_bytes[..item.length.min(8)].to_vec();
            let len = bytes.len();
            (
                Arc::new(HeapMemory::new(Buffer::new(
                    Box::new(bytes.into_boxed_slice()),
                    len,
                ))),
                0,
                len,
            )
        } else {
            let end = item.offset.saturating_add(item.length).min(self.memory.len);
            let start = item.offset.min(end);
            (self.memory.clone(), start, end - start)
        };
        RawItem {
            memory,
            offset,
            length,
            id: item.id,
            is_immediate: item.is_immediate,
            immediate_value: item.immediate_value,
        }
    }
}

#[pymethods]
impl HeapBase {
    #[getter]
    fn cnt(&self) -> u64 {
        self.cnt
    }

    #[getter]
    fn flavour(&self, py: Python<'_>) -> PyResult<Py<Flavour>> {
        Flavour::new_py(py, self.flavour)
    }

    /// The heap's items (descriptors excluded); an incomplete heap gives only its immediates.
    fn get_items(&self) -> Vec<RawItem> {
        self.raw_items()
    }

    fn is_start_of_stream(&self) -> bool {
        self.start_of_stream
    }

    fn is_end_of_stream(&self) -> bool {
        self.end_of_stream
    }
}

#[pymethods]
impl Heap {
    fn get_descriptors(&self) -> Vec<RawDescriptor> {
        self.descriptors
            .iter()
            .cloned()
            .map(RawDescriptor::from)
            .collect()
    }
}

#[pymethods]
impl IncompleteHeap {
    /// HEAP_LENGTH, or -1 if no packet carried it.
    #[getter]
    fn heap_length(&self) -> i64 {
        self.heap_length
    }

    #[getter]
    fn received_length(&self) -> u64 {
        self.received_length
    }

    /// (start, end) byte ranges received; empty unless `incomplete_keep_payload_ranges`.
    #[getter]
    fn payload_ranges(&self) -> Vec<(u64, u64)> {
        self.payload_ranges.clone()
    }
}

fn descriptors_of(heap: &ReceivedHeap, flavour: CoreFlavour) -> Vec<CoreDescriptor> {
    heap.descriptor_payloads()
        .iter()
        .flat_map(|value| CoreDescriptor::parse_all(value, flavour))
        .filter_map(|d| match d {
            Ok(d) => Some(d),
            Err(e) => {
                log::info!("ignoring descriptor: {e}");
                None
            }
        })
        .collect()
}

/// Wraps a heap from the ring as a `Heap` or, if it is not contiguous, an `IncompleteHeap`.
pub fn wrap_heap(py: Python<'_>, mut heap: ReceivedHeap) -> PyResult<Py<PyAny>> {
    let flavour =
        CoreFlavour::with_address_bits(heap.heap_address_bits().into(), heap.bug_compat().into())
            .unwrap_or_default();
    let contiguous = heap.is_contiguous();
    let items = heap.items();
    let descriptors = if contiguous {
        descriptors_of(&heap, flavour)
    } else {
        Vec::new()
    };
    let memory = Arc::new(
        heap.take_payload()
            .map_or_else(HeapMemory::empty, HeapMemory::new),
    );
    let base = HeapBase {
        memory,
        items,
        cnt: heap.cnt(),
        flavour,
        start_of_stream: heap.is_start_of_stream(),
        end_of_stream: heap.is_end_of_stream(),
    };
    if contiguous {
        let init = PyClassInitializer::from(base).add_subclass(Heap { descriptors });
        Ok(Py::new(py, init)?.into_any())
    } else {
        let sub = IncompleteHeap {
            heap_length: heap.heap_length(),
            received_length: heap.received_length(),
            payload_ranges: heap.payload_ranges().to_vec(),
        };
        let init = PyClassInitializer::from(base).add_subclass(sub);
        Ok(Py::new(py, init)?.into_any())
    }
}
