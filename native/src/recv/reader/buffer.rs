//! Reads packets laid back to back in memory (`add_buffer_reader`).

use std::sync::Arc;

use crate::memory::SharedBytes;
use crate::recv::stream::StreamShared;
use crate::thread_pool::{Context, Progress, Reader};

pub struct BufferReader {
    shared: Arc<StreamShared>,
    data: SharedBytes,
}

impl BufferReader {
    pub fn new(shared: Arc<StreamShared>, data: SharedBytes) -> Self {
        BufferReader { shared, data }
    }
}

impl Reader for BufferReader {
    /// The whole buffer is one batch, as in spead2; it ends the stream at the end of the data
    /// or at the first bytes that are not a valid packet.
    fn run(&mut self, _ctx: &Context<'_>) -> Progress {
        let data = self.data.clone();
        let mut rest: &[u8] = (*data).as_ref();
        let mut batch = self.shared.batch();
        batch.source_in_memory();
        while !rest.is_empty() && !batch.is_stopped() {
            match batch.add_packet(rest) {
                Some(size) => rest = &rest[size..],
                None => break,
            }
        }
        batch.end_of_stream();
        Progress::Done
    }
}
