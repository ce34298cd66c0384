//! `spead2.MemoryAllocator`, `MmapAllocator` and `MemoryPool`.

use std::sync::Arc;

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use crate::memory::mmap::MmapAllocator as CoreMmap;
use crate::memory::pool::{MemoryPool as CorePool, PoolConfig};
use crate::memory::recycle::Recycler;
use crate::memory::{Allocator, DefaultAllocator};
use crate::python::common::ThreadPool;
use crate::python::convert::unsigned_usize;
use crate::thread_pool::Spawner;

/// Base class of every allocator; on its own, the global allocator.
#[pyclass(subclass, module = "spead2._spead2", name = "MemoryAllocator", frozen)]
pub struct MemoryAllocator {
    pub inner: Arc<dyn Allocator>,
}

impl MemoryAllocator {
    pub fn default_allocator() -> Self {
        MemoryAllocator {
            inner: Arc::new(DefaultAllocator),
        }
    }

    /// What a receive `StreamConfig` starts with: the global allocator, recycling the last
    /// few freed buffers (`memory::recycle`).
    pub fn stream_default() -> Self {
        MemoryAllocator {
            inner: Arc::new(Recycler::new()),
        }
    }
}

#[pymethods]
impl MemoryAllocator {
    #[new]
    fn new() -> Self {
        Self::default_allocator()
    }
}

/// `spead2.MmapAllocator(flags=0, prefer_huge=False)`: anonymous mappings.
#[pyclass(extends = MemoryAllocator, module = "spead2._spead2", name = "MmapAllocator", frozen)]
pub struct MmapAllocator;

#[pymethods]
impl MmapAllocator {
    #[new]
    #[pyo3(signature = (flags = 0, prefer_huge = false))]
    fn new(flags: i32, prefer_huge: bool) -> PyClassInitializer<Self> {
        let inner = Arc::new(CoreMmap::new(flags, prefer_huge));
        PyClassInitializer::from(MemoryAllocator { inner }).add_subclass(MmapAllocator)
    }
}

/// `spead2.MemoryPool`: `(lower, upper, max_free, initial, allocator=None)`, or with a thread
/// pool for background refill: `(thread_pool, lower, upper, max_free, initial, low_water,
/// allocator=None)`.
#[pyclass(extends = MemoryAllocator, module = "spead2._spead2", name = "MemoryPool", frozen)]
pub struct MemoryPool {
    pool: CorePool,
}

fn allocator_arg(value: Option<&Bound<'_, PyAny>>) -> PyResult<Arc<dyn Allocator>> {
    match value {
        None => Ok(Arc::new(DefaultAllocator)),
        Some(v) if v.is_none() => Ok(Arc::new(DefaultAllocator)),
        Some(v) => Ok(v.cast::<MemoryAllocator>()?.get().inner.clone()),
    }
}

#[pymethods]
impl MemoryPool {
    #[new]
    #[pyo3(signature = (*args, **kwargs))]
    fn new(
        py: Python<'_>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<PyClassInitializer<Self>> {
        let first_is_pool = args.len() > 0 && args.get_item(0)?.is_instance_of::<ThreadPool>()
            || kwargs.is_some_and(|k| k.contains("thread_pool").unwrap_or(false));
        let names: &[&str] = if first_is_pool {
            &[
                "thread_pool",
                "lower",
                "upper",
                "max_free",
                "initial",
                "low_water",
                "allocator",
            ]
        } else {
            &["lower", "upper", "max_free", "initial", "allocator"]
        };
        let get = |i: usize| -> PyResult<Option<Bound<'_, PyAny>>> {
            if i < args.len() {
                return Ok(Some(args.get_item(i)?));
            }
            match kwargs {
                Some(k) => k.get_item(names[i]),
                None => Ok(None),
            }
        };
        let required = |i: usize| -> PyResult<usize> {
            let v = get(i)?.ok_or_else(|| {
                PyTypeError::new_err(format!("MemoryPool(): missing argument {}", names[i]))
            })?;
            unsigned_usize(&v, names[i])
        };
        if args.len() > names.len() {
            return Err(PyTypeError::new_err("MemoryPool(): too many arguments"));
        }
        let offset = usize::from(first_is_pool);
        let config = PoolConfig {
            lower: required(offset)?,
            upper: required(offset + 1)?,
            max_free: required(offset + 2)?,
            initial: required(offset + 3)?,
            low_water: if first_is_pool { required(5)? } else { 0 },
        };
        let allocator = allocator_arg(get(names.len() - 1)?.as_ref())?;
        let spawner: Option<Arc<dyn Spawner>> = if first_is_pool {
            let tp =
                get(0)?.ok_or_else(|| PyTypeError::new_err("MemoryPool(): missing thread_pool"))?;
            let pool: Arc<crate::thread_pool::ThreadPool> =
                Arc::clone(&tp.cast::<ThreadPool>()?.get().inner);
            Some(pool)
        } else {
            None
        };
        let pool = py
            .detach(|| CorePool::new(config, spawner, allocator))
            .map_err(PyErr::from)?;
        let inner: Arc<dyn Allocator> = Arc::new(pool.clone());
        Ok(PyClassInitializer::from(MemoryAllocator { inner }).add_subclass(MemoryPool { pool }))
    }

    /// Log a warning when the pool is empty and must allocate afresh.
    #[getter]
    fn warn_on_empty(&self) -> bool {
        self.pool.warn_on_empty()
    }

    #[setter]
    fn set_warn_on_empty(&self, value: bool) {
        self.pool.set_warn_on_empty(value);
    }

    /// Occupancy counters (an extension): free, in_use, allocated, empty, refills.
    #[getter]
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.pool.stats();
        let out = PyDict::new(py);
        out.set_item("free", s.free)?;
        out.set_item("in_use", s.in_use)?;
        out.set_item("allocated", s.allocated)?;
        out.set_item("empty", s.empty)?;
        out.set_item("refills", s.refills)?;
        Ok(out)
    }
}
