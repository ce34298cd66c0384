//! Replays the UDP payloads of a capture file into a stream (`add_udp_pcap_file_reader`).

use std::fs::File;
use std::io::BufReader;
use std::path::Path;
use std::sync::Arc;

use crate::recv::pcap::{PcapError, PcapReader};
use crate::recv::stream::StreamShared;
use crate::thread_pool::{Context, Progress, Reader};

/// Datagrams per batch, so a long file shares its worker with other readers.
const BATCH: usize = 64;

pub struct PcapFileReader {
    shared: Arc<StreamShared>,
    reader: PcapReader<BufReader<File>>,
}

impl PcapFileReader {
    /// Opens the file and compiles the filter now, so errors reach the caller at once.
    pub fn open(
        shared: Arc<StreamShared>,
        filename: &str,
        filter: &str,
    ) -> Result<Self, PcapError> {
        let reader = PcapReader::open(Path::new(filename), filter)?;
        Ok(PcapFileReader { shared, reader })
    }
}

impl Reader for PcapFileReader {
    fn run(&mut self, _ctx: &Context<'_>) -> Progress {
        if self.shared.is_stopping() {
            return Progress::Done;
        }
        let mut batch = self.shared.batch();
        for _ in 0..BATCH {
            match self.reader.next_payload() {
                Ok(Some(payload)) => batch.add_datagram(payload),
                Ok(None) => {
                    batch.end_of_stream();
                    return Progress::Done;
                }
                Err(e) => {
                    // As spead2: a corrupt tail ends the stream, keeping what came before.
                    log::warn!("error reading capture file: {e}");
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
