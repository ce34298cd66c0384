//! In-process writer (`InprocStream`): each packet is copied into its substream's
//! `InprocQueue`, where an in-process receiver picks it up.

use std::io;
use std::sync::Arc;

use crate::inproc::InprocQueue;

use super::{OutPacket, Writer, WriterError};

pub struct InprocWriter {
    queues: Vec<Arc<InprocQueue>>,
}

impl InprocWriter {
    /// One queue per substream (the same objects the caller holds).
    pub fn new(queues: Vec<Arc<InprocQueue>>) -> Result<InprocWriter, WriterError> {
        if queues.is_empty() {
            return Err(WriterError::Invalid("queues is empty"));
        }
        Ok(InprocWriter { queues })
    }

    pub fn queues(&self) -> &[Arc<InprocQueue>] {
        &self.queues
    }
}

impl Writer for InprocWriter {
    fn num_substreams(&self) -> usize {
        self.queues.len()
    }

    /// Pushing onto an in-process queue never waits.
    fn may_run_inline(&self) -> bool {
        true
    }

    fn write(&mut self, packets: &[OutPacket<'_>], errors: &mut Vec<(usize, io::Error)>) {
        for (index, packet) in packets.iter().enumerate() {
            if self.queues[packet.substream]
                .add_packet(packet.to_vec())
                .is_err()
            {
                // spead2 fails sends to a stopped queue with "Operation canceled".
                errors.push((index, io::Error::from_raw_os_error(libc::ECANCELED)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inproc::Pop;
    use std::io::IoSlice;

    #[test]
    fn packets_go_to_their_substream_queue() {
        let queues = vec![Arc::new(InprocQueue::new()), Arc::new(InprocQueue::new())];
        let mut w = InprocWriter::new(queues.clone()).unwrap();
        assert_eq!(w.num_substreams(), 2);
        assert!(Arc::ptr_eq(&w.queues()[1], &queues[1]));
        let a = [IoSlice::new(b"ab"), IoSlice::new(b"c")];
        let b = [IoSlice::new(b"de")];
        let packets = [
            OutPacket {
                slices: &a,
                substream: 1,
            },
            OutPacket {
                slices: &b,
                substream: 0,
            },
        ];
        let mut errors = Vec::new();
        w.write(&packets, &mut errors);
        assert!(errors.is_empty());
        assert!(matches!(queues[1].pop(), Pop::Packet(p) if p == b"abc"));
        assert!(matches!(queues[0].pop(), Pop::Packet(p) if p == b"de"));
        assert!(matches!(queues[0].pop(), Pop::Empty));
    }

    #[test]
    fn stopped_queue_fails_with_ecanceled() {
        let queue = Arc::new(InprocQueue::new());
        queue.stop();
        let mut w = InprocWriter::new(vec![queue]).unwrap();
        let a = [IoSlice::new(b"x")];
        let mut errors = Vec::new();
        w.write(
            &[OutPacket {
                slices: &a,
                substream: 0,
            }],
            &mut errors,
        );
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].1.raw_os_error(), Some(libc::ECANCELED));
    }

    #[test]
    fn no_queues_is_invalid() {
        assert!(matches!(
            InprocWriter::new(Vec::new()),
            Err(WriterError::Invalid("queues is empty"))
        ));
    }
}
