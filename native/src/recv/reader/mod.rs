//! Readers: one per transport behind one interface.
