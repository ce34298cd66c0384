//! Reads packets from an in-process queue (`add_inproc_reader`).

use std::sync::Arc;

use crate::inproc::{InprocQueue, Pop};
use crate::recv::stream::StreamShared;
use crate::thread_pool::{Context, Progress, Reader, ReaderHandle};

/// Packets taken from the queue per batch, so one busy queue cannot starve other readers.
const BATCH: usize = 64;

pub struct InprocReader {
    shared: Arc<StreamShared>,
    queue: Arc<InprocQueue>,
}

impl InprocReader {
    pub fn new(shared: Arc<StreamShared>, queue: Arc<InprocQueue>) -> Self {
        InprocReader { shared, queue }
    }
}

impl Reader for InprocReader {
    fn attached(&mut self, handle: &ReaderHandle) {
        self.queue.subscribe(handle.clone());
    }

    fn run(&mut self, _ctx: &Context<'_>) -> Progress {
        if self.shared.is_stopping() {
            return Progress::Done;
        }
        let mut batch = self.shared.batch();
        for _ in 0..BATCH {
            match self.queue.pop() {
                Pop::Packet(packet) => batch.add_datagram(&packet),
                Pop::Empty => return Progress::Idle,
                Pop::Stopped => {
                    batch.end_of_stream();
                    return Progress::Done;
                }
            }
            if batch.is_stopped() {
                return Progress::Done;
            }
        }
        Progress::More
    }
}
