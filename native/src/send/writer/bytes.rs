//! Bytes writer (`BytesStream`): packets appended to an in-memory buffer, as a TCP
//! receiver would see them.

use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use super::{OutPacket, Writer};

/// The stream's side of the buffer.
pub struct BytesWriter {
    buffer: BytesBuffer,
}

/// The caller's side: read what has been sent so far.
#[derive(Clone, Default)]
pub struct BytesBuffer {
    bytes: Arc<Mutex<Vec<u8>>>,
}

impl BytesBuffer {
    fn lock(&self) -> MutexGuard<'_, Vec<u8>> {
        self.bytes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A copy of everything sent so far (`BytesStream.getvalue()`).
    pub fn getvalue(&self) -> Vec<u8> {
        self.lock().clone()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl BytesWriter {
    pub fn new() -> (BytesWriter, BytesBuffer) {
        let buffer = BytesBuffer::default();
        (
            BytesWriter {
                buffer: buffer.clone(),
            },
            buffer,
        )
    }
}

impl Writer for BytesWriter {
    fn num_substreams(&self) -> usize {
        1
    }

    /// Appending to memory never waits.
    fn may_run_inline(&self) -> bool {
        true
    }

    fn write(&mut self, packets: &[OutPacket<'_>], _errors: &mut Vec<(usize, io::Error)>) {
        let mut bytes = self.buffer.lock();
        for packet in packets {
            for slice in packet.slices {
                bytes.extend_from_slice(slice);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::IoSlice;

    #[test]
    fn appends_packets_in_order() {
        let (mut w, buffer) = BytesWriter::new();
        assert!(buffer.is_empty());
        let a = [IoSlice::new(b"ab"), IoSlice::new(b"c")];
        let b = [IoSlice::new(b"de")];
        let packets = [
            OutPacket {
                slices: &a,
                substream: 0,
            },
            OutPacket {
                slices: &b,
                substream: 0,
            },
        ];
        let mut errors = Vec::new();
        w.write(&packets, &mut errors);
        w.write(&packets[1..], &mut errors);
        assert!(errors.is_empty());
        assert_eq!(buffer.getvalue(), b"abcdede");
        assert_eq!(buffer.len(), 7);
    }
}
