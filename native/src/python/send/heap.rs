//! `spead2.send.Heap`, `HeapReference` and `HeapReferenceList`.

use std::sync::Arc;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PySlice;

use crate::python::buffer::RawBuffer;
use crate::python::common::Flavour;
use crate::python::convert::{signed, unsigned_usize};
use crate::python::descriptor::RawDescriptor;
use crate::send::heap::SendHeap;

/// A heap being built for sending; items reference their buffers without copying.
#[pyclass(module = "spead2._spead2.send", name = "Heap")]
pub struct Heap {
    pub inner: SendHeap,
}

#[pymethods]
impl Heap {
    #[new]
    #[pyo3(signature = (flavour = None))]
    fn new(flavour: Option<PyRef<'_, Flavour>>) -> Self {
        let flavour = flavour.map(|f| f.inner).unwrap_or_default();
        Heap {
            inner: SendHeap::new(flavour),
        }
    }

    #[getter]
    fn flavour(&self, py: Python<'_>) -> PyResult<Py<Flavour>> {
        Flavour::new_py(py, self.inner.flavour)
    }

    #[getter]
    fn repeat_pointers(&self) -> bool {
        self.inner.repeat_pointers
    }

    #[setter]
    fn set_repeat_pointers(&mut self, value: bool) {
        self.inner.repeat_pointers = value;
    }

    /// Adds `item`'s value (from `item.to_buffer()`), kept by reference until sent.
    fn add_item(&mut self, item: &Bound<'_, PyAny>) -> PyResult<()> {
        let id: u64 = item.getattr("id")?.extract()?;
        let buffer = item.call_method0("to_buffer")?;
        let allow_immediate: bool = item.call_method0("allow_immediate")?.is_truthy()?;
        let data = Arc::new(RawBuffer::get(&buffer)?);
        self.inner.add_item(id, data, allow_immediate);
        Ok(())
    }

    /// Adds a descriptor (`descriptor.to_raw(flavour)`, encoded now).
    fn add_descriptor(&mut self, py: Python<'_>, descriptor: &Bound<'_, PyAny>) -> PyResult<()> {
        let flavour = self.flavour(py)?;
        let raw = descriptor.call_method1("to_raw", (flavour,))?;
        let raw: RawDescriptor = raw.cast::<RawDescriptor>()?.borrow().clone();
        self.inner
            .add_descriptor(&raw.into())
            .map_err(|e| PyValueError::new_err(e.to_string()))
    }

    /// Marks the start of the stream (a STREAM_CTRL immediate).
    fn add_start(&mut self) {
        self.inner.add_start();
    }

    /// Marks the end of the stream; receivers stop on it.
    fn add_end(&mut self) {
        self.inner.add_end();
    }
}

/// A heap with its send options, for `send_heaps`.
#[pyclass(module = "spead2._spead2.send", name = "HeapReference")]
pub struct HeapReference {
    heap: Py<Heap>,
    pub cnt: i64,
    pub substream_index: usize,
    #[pyo3(get, set)]
    pub rate: f64,
}

#[pymethods]
impl HeapReference {
    #[new]
    #[pyo3(signature = (heap, *, cnt = None, substream_index = None, rate = -1.0))]
    fn new(
        heap: Py<Heap>,
        cnt: Option<&Bound<'_, PyAny>>,
        substream_index: Option<&Bound<'_, PyAny>>,
        rate: f64,
    ) -> PyResult<Self> {
        let cnt = cnt.map_or(Ok(-1), |c| signed(c, "cnt"))?;
        let substream_index =
            substream_index.map_or(Ok(0), |s| unsigned_usize(s, "substream_index"))?;
        Ok(HeapReference {
            heap,
            cnt,
            substream_index,
            rate,
        })
    }

    #[getter]
    fn cnt(&self) -> i64 {
        self.cnt
    }

    #[setter]
    fn set_cnt(&mut self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        self.cnt = signed(value, "cnt")?;
        Ok(())
    }

    #[getter]
    fn substream_index(&self) -> usize {
        self.substream_index
    }

    #[setter]
    fn set_substream_index(&mut self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        self.substream_index = unsigned_usize(value, "substream_index")?;
        Ok(())
    }

    #[getter]
    fn heap(&self, py: Python<'_>) -> Py<Heap> {
        self.heap.clone_ref(py)
    }
}

/// One element of a heap group, snapshotted for the sender.
pub struct GroupEntry {
    pub heap: Arc<SendHeap>,
    pub cnt: i64,
    pub substream_index: usize,
    pub rate: f64,
}

impl HeapReference {
    pub fn entry(&self, py: Python<'_>) -> GroupEntry {
        GroupEntry {
            heap: Arc::new(self.heap.borrow(py).inner.clone()),
            cnt: self.cnt,
            substream_index: self.substream_index,
            rate: self.rate,
        }
    }
}

/// A prepared list of heap references: converts once, sends many times.
#[pyclass(module = "spead2._spead2.send", name = "HeapReferenceList", frozen)]
pub struct HeapReferenceList {
    pub refs: Vec<Py<HeapReference>>,
}

#[pymethods]
impl HeapReferenceList {
    /// Any iterable of `HeapReference`.
    #[new]
    fn new(heaps: &Bound<'_, PyAny>) -> PyResult<Self> {
        let refs = heaps
            .try_iter()?
            .map(|r| Ok(r?.cast_into::<HeapReference>()?.unbind()))
            .collect::<PyResult<Vec<_>>>()?;
        Ok(HeapReferenceList { refs })
    }

    fn __len__(&self) -> usize {
        self.refs.len()
    }

    fn __getitem__(&self, py: Python<'_>, index: &Bound<'_, PySlice>) -> PyResult<Self> {
        let step: Option<isize> = index.getattr("step")?.extract()?;
        if step == Some(0) {
            return Err(PyValueError::new_err("slice step cannot be zero"));
        }
        let ind = index.indices(self.refs.len() as isize)?;
        let mut refs = Vec::with_capacity(ind.slicelength);
        let mut i = ind.start;
        for _ in 0..ind.slicelength {
            refs.push(self.refs[i as usize].clone_ref(py));
            i += ind.step;
        }
        Ok(HeapReferenceList { refs })
    }
}
