//! ringbuffer
