//! `spead2.MemoryPool`: recycled fixed-size buffers with optional background refill.
