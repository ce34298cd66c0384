//! A byte stream cut into reads of fuzzer-chosen sizes through `TcpFramer`: every framed
//! packet must fit `max_size` and be exactly as long as its header says, and the buffer
//! never grows.
#![no_main]

use _spead2::protocol::PacketHeader;
use _spead2::recv::tcp_framer::TcpFramer;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let max_size = usize::from(data[0]) * 8 + 1;
    let read_chunk = usize::from(data[1] & 63) + 1;
    // Reads are cut at sizes cycling through this pattern, like short TCP reads.
    let step = usize::from(data[2] & 31) + 1;
    let stream = &data[3..];
    let mut framer = TcpFramer::with_read_chunk(max_size, read_chunk);
    let capacity = framer.capacity();
    let mut pos = 0;
    let mut use_commit = false;
    while pos < stream.len() {
        let want = step.min(stream.len() - pos);
        let taken = if use_commit {
            let spare = framer.spare_capacity();
            let n = want.min(spare.len());
            spare[..n].copy_from_slice(&stream[pos..pos + n]);
            framer.commit(n);
            n
        } else {
            framer.push(&stream[pos..pos + want])
        };
        use_commit = !use_commit;
        pos += taken;
        drain(&mut framer, max_size);
        assert!(framer.buffered() <= capacity);
        assert_eq!(framer.capacity(), capacity);
        // After a drain there is always room for another read, so the loop progresses.
        assert!(!framer.spare_capacity().is_empty());
    }
    let _ = framer.finish();
    assert_eq!(framer.buffered(), 0);
});

fn drain(framer: &mut TcpFramer, max_size: usize) {
    while let Some(result) = framer.next_packet() {
        if let Ok(packet) = result {
            assert!(packet.len() <= max_size);
            // The framer needs only a valid header and PAYLOAD_LENGTH; missing HEAP_CNT or
            // PAYLOAD_OFFSET is for the reader's full parse to reject.
            assert_eq!(PacketHeader::framed_size(packet), Ok(Some(packet.len())));
            if let Ok((_, size)) = PacketHeader::parse(packet) {
                assert_eq!(size, packet.len());
            }
        }
    }
}
