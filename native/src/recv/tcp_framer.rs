//! Sans-IO framing of SPEAD packets carried over a TCP byte stream.
//!
//! The reader reads straight into the framer's buffer (`spare_capacity` + `commit`, or
//! `push` for bytes already in hand), then drains `next_packet` until it returns `None`.
//! A packet's length comes from its header (the pointer area plus PAYLOAD_LENGTH). Rules,
//! as spead2 4.5.1's TCP reader behaves (checked black-box against the real wheel):
//!
//! - a header that cannot frame a packet (bad magic, version or flavour, or no
//!   PAYLOAD_LENGTH) is skipped 8 bytes at a time until a valid header turns up;
//! - a packet larger than `max_size` is skipped whole, even when its pointer area alone
//!   exceeds `max_size`; its bytes are discarded as they arrive, never accumulated;
//! - a partial packet left when the connection closes is dropped (`finish`).
//!
//! One deliberate difference: when a pointer area larger than `max_size` holds no
//! PAYLOAD_LENGTH, spead2 steps back to 8 bytes after the header and rescans the pointers
//! as possible headers; we have already discarded them (to keep memory bounded) and resume
//! after the pointer area. This only matters for garbage streams.
//!
//! Memory is bounded: the buffer holds at most `max(max_size, 8) + read_chunk` bytes and
//! is allocated once.

use crate::protocol::ids::PAYLOAD_LENGTH_ID;
use crate::protocol::packet::{HEADER_SIZE, POINTER_SIZE};
use crate::protocol::{DecodeError, ItemPointer, PacketHeader};

use super::stats::DropReason;

/// Default extra room for one read beyond the largest packet.
pub const DEFAULT_READ_CHUNK: usize = 64 * 1024;

/// What the framer is doing with the bytes at the front of its buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// At a packet boundary.
    Framing,
    /// Inside a pointer area too large to buffer, looking for PAYLOAD_LENGTH.
    ScanPointers {
        heap_address_bits: u32,
        remaining: usize,
        payload_length: Option<u64>,
    },
    /// Discarding the rest of an oversized packet.
    Discard { remaining: u64 },
}

/// What the front of the buffer turned out to be.
enum Step {
    /// A whole packet of this many bytes is buffered.
    Packet(usize),
    /// Something was dropped (bytes consumed accordingly).
    Dropped(DropReason),
    /// Bytes were consumed silently; look again.
    Progress,
    /// More bytes are needed.
    NeedMore,
}

/// Splits a TCP byte stream into SPEAD packets of at most `max_size` bytes.
pub struct TcpFramer {
    buf: Box<[u8]>,
    /// Unconsumed bytes are `buf[start..end]`.
    start: usize,
    end: usize,
    max_size: usize,
    read_chunk: usize,
    state: State,
}

impl TcpFramer {
    /// A framer for packets of at most `max_size` bytes, with `DEFAULT_READ_CHUNK` of room
    /// for reads.
    pub fn new(max_size: usize) -> Self {
        Self::with_read_chunk(max_size, DEFAULT_READ_CHUNK)
    }

    /// `read_chunk` (at least 1) is the least free space `spare_capacity` offers once
    /// `next_packet` has been drained.
    pub fn with_read_chunk(max_size: usize, read_chunk: usize) -> Self {
        let read_chunk = read_chunk.max(1);
        let capacity = max_size.max(HEADER_SIZE) + read_chunk;
        TcpFramer {
            buf: vec![0u8; capacity].into_boxed_slice(),
            start: 0,
            end: 0,
            max_size,
            read_chunk,
            state: State::Framing,
        }
    }

    pub fn max_size(&self) -> usize {
        self.max_size
    }

    /// Total buffer size, fixed at construction.
    pub fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// Bytes received but not yet consumed.
    pub fn buffered(&self) -> usize {
        self.end - self.start
    }

    /// Free space to read into; pass the number of bytes read to `commit`. After
    /// `next_packet` has returned `None` it is at least `read_chunk` bytes long.
    pub fn spare_capacity(&mut self) -> &mut [u8] {
        if self.start > 0 && self.buf.len() - self.end < self.read_chunk {
            // Moves less than one packet: everything before it has been consumed.
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        &mut self.buf[self.end..]
    }

    /// Marks `n` bytes of `spare_capacity` as received.
    ///
    /// # Panics
    /// If `n` exceeds the space last returned by `spare_capacity` (a caller bug).
    pub fn commit(&mut self, n: usize) {
        assert!(
            n <= self.buf.len() - self.end,
            "commit beyond spare capacity"
        );
        self.end += n;
    }

    /// Copies in as much of `data` as fits; returns how many bytes were taken. Drain
    /// `next_packet` and push the rest.
    pub fn push(&mut self, data: &[u8]) -> usize {
        let spare = self.spare_capacity();
        let n = data.len().min(spare.len());
        spare[..n].copy_from_slice(&data[..n]);
        self.commit(n);
        n
    }

    /// The next whole packet, or the next reason bytes were dropped; `None` when more
    /// input is needed.
    pub fn next_packet(&mut self) -> Option<Result<&[u8], DropReason>> {
        loop {
            match self.step() {
                Step::Packet(size) => {
                    let at = self.start;
                    self.start += size;
                    return Some(Ok(&self.buf[at..at + size]));
                }
                Step::Dropped(reason) => return Some(Err(reason)),
                Step::Progress => continue,
                Step::NeedMore => return None,
            }
        }
    }

    /// The connection closed: reports what was left of an unfinished packet, if anything,
    /// and resets for reuse. Call after `next_packet` has returned `None`.
    pub fn finish(&mut self) -> Option<DropReason> {
        let leftover = self.buffered();
        let reason = match self.state {
            State::Framing if leftover == 0 => None,
            State::Framing if leftover < HEADER_SIZE => {
                Some(DropReason::Decode(DecodeError::TooShort))
            }
            State::Framing => Some(DropReason::Decode(DecodeError::PayloadOverflowsPacket)),
            // Known to be oversized before it ended; TooLarge was not reported yet.
            State::ScanPointers { .. } => Some(DropReason::TooLarge),
            // Already reported as TooLarge.
            State::Discard { .. } => None,
        };
        self.start = 0;
        self.end = 0;
        self.state = State::Framing;
        reason
    }

    fn data(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
    }

    fn step(&mut self) -> Step {
        match self.state {
            State::Framing => self.frame(),
            State::ScanPointers {
                heap_address_bits,
                remaining,
                payload_length,
            } => self.scan_pointers(heap_address_bits, remaining, payload_length),
            State::Discard { remaining } => self.discard(remaining),
        }
    }

    fn frame(&mut self) -> Step {
        let data = self.data();
        if data.len() < HEADER_SIZE {
            return Step::NeedMore;
        }
        let n_items = match PacketHeader::check_header(data) {
            Ok(n) => n,
            Err(e) => return self.skip_header(e),
        };
        let pointers_end = HEADER_SIZE + n_items * POINTER_SIZE;
        if pointers_end > self.max_size {
            // Byte 3 of the header: heap address bytes (validated by check_header).
            let heap_address_bits = u32::from(data[3]) * 8;
            self.consume(HEADER_SIZE);
            self.state = State::ScanPointers {
                heap_address_bits,
                remaining: n_items,
                payload_length: None,
            };
            return Step::Progress;
        }
        match PacketHeader::framed_size(data) {
            Err(e) => self.skip_header(e),
            Ok(None) => Step::NeedMore,
            Ok(Some(size)) if size > self.max_size => {
                self.state = State::Discard {
                    remaining: size as u64,
                };
                Step::Dropped(DropReason::TooLarge)
            }
            Ok(Some(size)) if size <= data.len() => Step::Packet(size),
            Ok(Some(_)) => Step::NeedMore,
        }
    }

    /// Steps over 8 bytes after a header that frames nothing.
    fn skip_header(&mut self, error: DecodeError) -> Step {
        self.consume(HEADER_SIZE);
        Step::Dropped(DropReason::Decode(error))
    }

    /// Consumes whole pointers of an oversized packet, remembering PAYLOAD_LENGTH.
    fn scan_pointers(
        &mut self,
        heap_address_bits: u32,
        mut remaining: usize,
        mut payload_length: Option<u64>,
    ) -> Step {
        let available = self.data().len() / POINTER_SIZE;
        let take = available.min(remaining);
        let scanned = &self.buf[self.start..self.start + take * POINTER_SIZE];
        for chunk in scanned.chunks_exact(POINTER_SIZE) {
            let mut bytes = [0u8; POINTER_SIZE];
            bytes.copy_from_slice(chunk);
            let ptr = ItemPointer::from_be_bytes(bytes);
            // The last PAYLOAD_LENGTH wins, as in PacketHeader::framed_size.
            if ptr.is_immediate() && ptr.id(heap_address_bits) == PAYLOAD_LENGTH_ID {
                payload_length = Some(ptr.value(heap_address_bits));
            }
        }
        self.consume(take * POINTER_SIZE);
        remaining -= take;
        if remaining > 0 {
            self.state = State::ScanPointers {
                heap_address_bits,
                remaining,
                payload_length,
            };
            return Step::NeedMore;
        }
        match payload_length {
            Some(len) => {
                self.state = State::Discard { remaining: len };
                Step::Dropped(DropReason::TooLarge)
            }
            None => {
                self.state = State::Framing;
                Step::Dropped(DropReason::Decode(DecodeError::NoPayloadLength))
            }
        }
    }

    fn discard(&mut self, remaining: u64) -> Step {
        let available = self.data().len();
        // Bounded by `available`, so the cast back to usize is lossless.
        let n = remaining.min(available as u64);
        self.consume(n as usize);
        let remaining = remaining - n;
        if remaining > 0 {
            self.state = State::Discard { remaining };
            return Step::NeedMore;
        }
        self.state = State::Framing;
        Step::Progress
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::packet::PacketSpec;

    const HAB: u32 = 48;

    /// A packet of heap `cnt` with `len` payload bytes of value `fill`.
    fn packet(cnt: u64, len: usize, fill: u8) -> Vec<u8> {
        PacketSpec {
            heap_address_bits: HAB,
            heap_cnt: cnt,
            heap_length: Some(len as u64),
            payload_offset: 0,
            items: vec![ItemPointer::addressed(0x1000, 0, HAB)],
            payload: vec![fill; len],
        }
        .emit()
    }

    /// A header with `n_items` pointers (HEAP_CNT, PAYLOAD_OFFSET, optional
    /// PAYLOAD_LENGTH, then NULL padding) followed by `payload`.
    fn wide_packet(n_items: u16, payload: &[u8], with_length: bool) -> Vec<u8> {
        let mut pointers = vec![
            ItemPointer::immediate(1, 77, HAB),
            ItemPointer::immediate(3, 0, HAB),
        ];
        if with_length {
            pointers.push(ItemPointer::immediate(
                PAYLOAD_LENGTH_ID,
                payload.len() as u64,
                HAB,
            ));
        }
        pointers.resize(usize::from(n_items), ItemPointer::addressed(0, 0, HAB));
        crate::protocol::packet::emit_packet(HAB, &pointers, payload)
    }

    type Event = Result<Vec<u8>, DropReason>;

    fn drain(framer: &mut TcpFramer, out: &mut Vec<Event>) {
        while let Some(event) = framer.next_packet() {
            out.push(event.map(<[u8]>::to_vec));
        }
    }

    /// Feeds `chunks` as separate reads (each possibly larger than the free space).
    fn feed(framer: &mut TcpFramer, chunks: &[&[u8]]) -> Vec<Event> {
        let mut out = Vec::new();
        for chunk in chunks {
            let mut rest: &[u8] = chunk;
            loop {
                let n = framer.push(rest);
                rest = &rest[n..];
                drain(framer, &mut out);
                assert!(framer.buffered() <= framer.capacity());
                if rest.is_empty() {
                    break;
                }
            }
        }
        out
    }

    fn bad(e: DecodeError) -> Event {
        Err(DropReason::Decode(e))
    }

    #[test]
    fn every_split_point_yields_the_same_packets() {
        let packets = [
            packet(1, 16, b'A'),
            packet(2, 0, b'B'),
            packet(3, 100, b'C'),
        ];
        let stream = packets.concat();
        let expected: Vec<Event> = packets.iter().cloned().map(Ok).collect();
        for split in 0..=stream.len() {
            let mut framer = TcpFramer::new(200);
            let events = feed(&mut framer, &[&stream[..split], &stream[split..]]);
            assert_eq!(events, expected, "split at {split}");
            assert_eq!(framer.finish(), None);
        }
        let mut framer = TcpFramer::new(200);
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(feed(&mut framer, &bytes), expected);
    }

    #[test]
    fn many_packets_in_one_read() {
        let packets: Vec<Vec<u8>> = (0..50).map(|i| packet(i, i as usize, i as u8)).collect();
        let mut framer = TcpFramer::new(1000);
        let events = feed(&mut framer, &[&packets.concat()]);
        assert_eq!(events, packets.into_iter().map(Ok).collect::<Vec<_>>());
    }

    #[test]
    fn bad_headers_are_skipped_eight_bytes_at_a_time() {
        let (p1, p2) = (packet(1, 16, b'A'), packet(2, 16, b'B'));
        let mut framer = TcpFramer::new(200);
        let events = feed(&mut framer, &[&[0xff; 16], &p1, &p2]);
        assert_eq!(
            events,
            vec![
                bad(DecodeError::BadMagic),
                bad(DecodeError::BadMagic),
                Ok(p1.clone()),
                Ok(p2.clone())
            ]
        );
        // A valid magic with an impossible flavour is skipped the same way.
        let mut framer = TcpFramer::new(200);
        let events = feed(&mut framer, &[&[0x53, 4, 3, 3, 0, 0, 0, 1], &p1]);
        assert_eq!(events, vec![bad(DecodeError::BadFlavour), Ok(p1.clone())]);
    }

    #[test]
    fn misaligned_garbage_loses_sync_like_spead2() {
        // Packet sizes are multiples of 8, so 8-byte steps from offset 5 never meet one.
        let (p1, p2) = (packet(1, 16, b'A'), packet(2, 16, b'B'));
        let mut framer = TcpFramer::new(200);
        let events = feed(&mut framer, &[&[0xff; 5], &p1, &p2]);
        assert_eq!(events.len(), (5 + p1.len() + p2.len()) / 8);
        assert!(events.iter().all(Result::is_err));
        assert_eq!(
            framer.finish(),
            Some(DropReason::Decode(DecodeError::TooShort))
        );
    }

    #[test]
    fn header_without_payload_length_is_skipped_by_eight() {
        let p1 = packet(1, 16, b'A');
        // Two pointers, neither PAYLOAD_LENGTH: the 24 bytes are skipped in three steps
        // (the two pointers then read as bad headers).
        let broken = wide_packet(2, &[], false);
        let mut framer = TcpFramer::new(200);
        let events = feed(&mut framer, &[&broken, &p1]);
        assert_eq!(
            events,
            vec![
                bad(DecodeError::NoPayloadLength),
                bad(DecodeError::BadMagic),
                bad(DecodeError::BadMagic),
                Ok(p1),
            ]
        );
    }

    #[test]
    fn max_size_is_inclusive() {
        let (p1, big, p2) = (
            packet(1, 16, b'A'),
            packet(5, 200, b'Z'),
            packet(2, 16, b'B'),
        );
        assert_eq!(big.len(), 248);
        let mut framer = TcpFramer::new(248);
        let events = feed(
            &mut framer,
            &[&[p1.clone(), big.clone(), p2.clone()].concat()],
        );
        assert_eq!(
            events,
            vec![Ok(p1.clone()), Ok(big.clone()), Ok(p2.clone())]
        );
        let mut framer = TcpFramer::new(247);
        let events = feed(&mut framer, &[&[p1.clone(), big, p2.clone()].concat()]);
        assert_eq!(events, vec![Ok(p1), Err(DropReason::TooLarge), Ok(p2)]);
    }

    #[test]
    fn oversized_packet_is_skipped_across_reads_without_buffering() {
        let (p1, big, p2) = (
            packet(1, 16, b'A'),
            packet(5, 2000, b'Z'),
            packet(2, 16, b'B'),
        );
        let mut framer = TcpFramer::with_read_chunk(200, 64);
        assert_eq!(framer.capacity(), 264);
        let mut events = feed(&mut framer, &[&p1, &big[..60]]);
        // Once its pointers are in, what arrived of the big packet is thrown away.
        assert_eq!(framer.buffered(), 0);
        for piece in big[60..].chunks(97) {
            events.extend(feed(&mut framer, &[piece]));
            assert_eq!(framer.buffered(), 0);
        }
        events.extend(feed(&mut framer, &[&p2]));
        assert_eq!(events, vec![Ok(p1), Err(DropReason::TooLarge), Ok(p2)]);
        assert_eq!(framer.finish(), None);
    }

    #[test]
    fn oversized_pointer_area_is_scanned_for_the_payload_length() {
        // 49 pointers make a 400-byte header (> max_size 200); its payload is itself a
        // valid packet, which must be skipped as payload (spead2 does the same).
        let (p1, p2, p3) = (
            packet(1, 16, b'A'),
            packet(2, 16, b'B'),
            packet(3, 16, b'C'),
        );
        let wide = wide_packet(49, &p3, true);
        let mut framer = TcpFramer::with_read_chunk(200, 16);
        let stream = [p1.clone(), wide, p2.clone()].concat();
        let chunks: Vec<&[u8]> = stream.chunks(13).collect();
        let events = feed(&mut framer, &chunks);
        assert_eq!(events, vec![Ok(p1), Err(DropReason::TooLarge), Ok(p2)]);
    }

    #[test]
    fn oversized_pointer_area_without_payload_length_resumes_after_it() {
        let (p1, p3) = (packet(1, 16, b'A'), packet(3, 16, b'C'));
        let wide = wide_packet(49, &[], false);
        let mut framer = TcpFramer::new(200);
        let events = feed(&mut framer, &[&wide, &p3, &p1]);
        assert_eq!(
            events,
            vec![bad(DecodeError::NoPayloadLength), Ok(p3), Ok(p1)]
        );
    }

    #[test]
    fn partial_packet_at_close_is_reported_once() {
        let (p1, p2) = (packet(1, 16, b'A'), packet(2, 16, b'B'));
        let mut framer = TcpFramer::new(200);
        assert_eq!(feed(&mut framer, &[&p1, &p2[..20]]), vec![Ok(p1.clone())]);
        assert_eq!(
            framer.finish(),
            Some(DropReason::Decode(DecodeError::PayloadOverflowsPacket))
        );
        assert_eq!(framer.finish(), None);
        assert_eq!(framer.buffered(), 0);
        // Reusable afterwards.
        assert_eq!(feed(&mut framer, &[&p2]), vec![Ok(p2.clone())]);
        assert_eq!(feed(&mut framer, &[&p2[..5]]), vec![]);
        assert_eq!(
            framer.finish(),
            Some(DropReason::Decode(DecodeError::TooShort))
        );
        // Closing inside an oversized pointer area still counts the packet once.
        let mut framer = TcpFramer::new(200);
        assert_eq!(
            feed(&mut framer, &[&wide_packet(49, &[], true)[..100]]),
            vec![]
        );
        assert_eq!(framer.finish(), Some(DropReason::TooLarge));
    }

    #[test]
    fn reads_go_straight_into_spare_capacity() {
        let p1 = packet(1, 100, b'A');
        let mut framer = TcpFramer::with_read_chunk(150, 32);
        let mut events = Vec::new();
        let mut sent = 0;
        while sent < p1.len() {
            let spare = framer.spare_capacity();
            assert!(spare.len() >= 32);
            let n = spare.len().min(p1.len() - sent).min(40);
            spare[..n].copy_from_slice(&p1[sent..sent + n]);
            framer.commit(n);
            sent += n;
            drain(&mut framer, &mut events);
        }
        assert_eq!(events, vec![Ok(p1)]);
    }

    #[test]
    fn tiny_max_size_drops_everything_but_stays_bounded() {
        let p1 = packet(1, 16, b'A');
        let mut framer = TcpFramer::with_read_chunk(0, 8);
        assert_eq!(framer.capacity(), 16);
        let stream = [p1.clone(), p1.clone()].concat();
        let events = feed(&mut framer, &[&stream]);
        assert_eq!(
            events,
            vec![Err(DropReason::TooLarge), Err(DropReason::TooLarge)]
        );
    }

    #[test]
    fn random_input_never_panics_and_stays_bounded() {
        let mut state: u64 = 0x1234_5678_9abc_def1;
        let mut rng = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let good = packet(1, 40, b'G');
        for _ in 0..300 {
            let mut stream = Vec::new();
            for _ in 0..(rng() % 20) {
                match rng() % 4 {
                    0 => stream.extend((0..rng() % 30).map(|_| rng() as u8)),
                    1 => stream.extend_from_slice(&[0x53, 4, 2, 6, 0, 0, rng() as u8, rng() as u8]),
                    _ => stream.extend_from_slice(&good),
                }
            }
            let mut framer =
                TcpFramer::with_read_chunk(64 + (rng() % 64) as usize, 1 + (rng() % 50) as usize);
            let mut rest: &[u8] = &stream;
            let mut consumed_packets = 0;
            while !rest.is_empty() {
                let want = 1 + (rng() % 100) as usize;
                let n = framer.push(&rest[..want.min(rest.len())]);
                rest = &rest[n..];
                let max_size = framer.max_size();
                while let Some(event) = framer.next_packet() {
                    if let Ok(p) = event {
                        assert!(p.len() <= max_size);
                        assert_eq!(PacketHeader::framed_size(p), Ok(Some(p.len())));
                        consumed_packets += 1;
                    }
                }
                assert!(framer.buffered() <= framer.capacity());
            }
            let _ = framer.finish();
            assert!(consumed_packets <= stream.len() / HEADER_SIZE);
        }
    }
}
