//! `spead2.MemoryAllocator`, `MmapAllocator` and `MemoryPool`.

use std::sync::Arc;

use pyo3::prelude::*;

use crate::memory::{Allocator, DefaultAllocator};

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
}

#[pymethods]
impl MemoryAllocator {
    #[new]
    fn new() -> Self {
        Self::default_allocator()
    }
}
