//! `spead2.MmapAllocator`: anonymous mappings, optionally huge pages.
