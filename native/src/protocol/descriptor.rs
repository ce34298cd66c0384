//! Item descriptors (DESCRIPTOR_ID values): parse and emit.
