//! The SPEAD packet: an 8-byte header, item pointers, then payload.
//!
//! `PacketHeader::parse` is a typed view over one packet's bytes that validates every field once;
//! `emit_packet` is its mirror image. Both are tested against the same byte arrays below.

use std::fmt;

use super::flavour::mask;
use super::ids::{HEAP_CNT_ID, HEAP_LENGTH_ID, PAYLOAD_LENGTH_ID, PAYLOAD_OFFSET_ID};

/// Byte ranges of the fixed header (big-endian).
mod field {
    use std::ops::Range;
    pub const MAGIC: usize = 0;
    pub const VERSION: usize = 1;
    pub const ITEM_ID_BYTES: usize = 2;
    pub const HEAP_ADDRESS_BYTES: usize = 3;
    pub const N_ITEMS: Range<usize> = 6..8;
    pub const HEADER_LEN: usize = 8;
}

pub const MAGIC: u8 = 0x53;
pub const VERSION: u8 = 4;
pub const HEADER_SIZE: usize = field::HEADER_LEN;
pub const POINTER_SIZE: usize = 8;

/// One 64-bit item pointer: immediate flag, item ID, then address or immediate value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ItemPointer(pub u64);

impl ItemPointer {
    const IMMEDIATE: u64 = 1 << 63;

    pub fn immediate(id: u64, value: u64, heap_address_bits: u32) -> Self {
        Self::IMMEDIATE.into_pointer(id, value, heap_address_bits)
    }

    pub fn addressed(id: u64, address: u64, heap_address_bits: u32) -> Self {
        0.into_pointer(id, address, heap_address_bits)
    }

    pub fn is_immediate(self) -> bool {
        self.0 & Self::IMMEDIATE != 0
    }

    pub fn id(self, heap_address_bits: u32) -> u64 {
        (self.0 & !Self::IMMEDIATE) >> heap_address_bits
    }

    /// The address (addressed items) or value (immediates).
    pub fn value(self, heap_address_bits: u32) -> u64 {
        self.0 & mask(heap_address_bits)
    }

    pub fn from_be_bytes(bytes: [u8; 8]) -> Self {
        ItemPointer(u64::from_be_bytes(bytes))
    }
}

trait IntoPointer {
    fn into_pointer(self, id: u64, value: u64, heap_address_bits: u32) -> ItemPointer;
}

impl IntoPointer for u64 {
    fn into_pointer(self, id: u64, value: u64, heap_address_bits: u32) -> ItemPointer {
        let id_bits = 63 - heap_address_bits;
        ItemPointer(
            self | ((id & mask(id_bits)) << heap_address_bits) | (value & mask(heap_address_bits)),
        )
    }
}

/// Why a packet was rejected before it reached heap assembly.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DecodeError {
    TooShort,
    BadMagic,
    BadFlavour,
    PointersOverflow,
    NoHeapCnt,
    NoPayloadOffset,
    NoPayloadLength,
    PayloadOverflowsHeap,
    PayloadOverflowsPacket,
}

impl DecodeError {
    /// Short machine-readable name, used for drop counters and metrics labels.
    pub fn reason(self) -> &'static str {
        match self {
            Self::TooShort => "too_short",
            Self::BadMagic => "bad_magic",
            Self::BadFlavour => "bad_flavour",
            Self::PointersOverflow => "pointers_overflow",
            Self::NoHeapCnt => "no_heap_cnt",
            Self::NoPayloadOffset => "no_payload_offset",
            Self::NoPayloadLength => "no_payload_length",
            Self::PayloadOverflowsHeap => "payload_overflows_heap",
            Self::PayloadOverflowsPacket => "payload_overflows_packet",
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let msg = match self {
            Self::TooShort => "packet rejected because it is too short for a header",
            Self::BadMagic => "packet rejected because magic or version did not match",
            Self::BadFlavour => "packet rejected because flavour is not SPEAD-64-*",
            Self::PointersOverflow => "packet rejected because the items overflow the packet",
            // spead2 does not say which one is missing.
            Self::NoHeapCnt | Self::NoPayloadOffset | Self::NoPayloadLength => {
                "packet rejected because it does not have required items"
            }
            Self::PayloadOverflowsHeap => {
                "packet rejected because payload would overflow given heap length"
            }
            Self::PayloadOverflowsPacket => {
                "packet rejected because payload length overflows packet size"
            }
        };
        f.write_str(msg)
    }
}

impl std::error::Error for DecodeError {}

/// A validated packet. `pointers` holds every item pointer (special ones included) as raw
/// big-endian bytes; `payload` is exactly `payload_length` bytes.
#[derive(Clone, Copy, Debug)]
pub struct PacketHeader<'a> {
    pub heap_address_bits: u32,
    pub heap_cnt: u64,
    /// `None` when the packet carries no HEAP_LENGTH (an unsized heap).
    pub heap_length: Option<u64>,
    pub payload_offset: u64,
    pub payload_length: u64,
    pub pointers: &'a [u8],
    pub payload: &'a [u8],
}

impl<'a> PacketHeader<'a> {
    /// Validates the packet at the start of `data`; returns it and the bytes it occupies
    /// (`data` may hold more, as in a TCP stream or a memory buffer).
    pub fn parse(data: &'a [u8]) -> Result<(Self, usize), DecodeError> {
        let n_items = Self::check_header(data)?;
        let pointers_end = HEADER_SIZE + n_items * POINTER_SIZE;
        if pointers_end > data.len() {
            return Err(DecodeError::PointersOverflow);
        }
        let heap_address_bits = u32::from(data[field::HEAP_ADDRESS_BYTES]) * 8;
        let pointers = &data[HEADER_SIZE..pointers_end];
        let specials = Specials::scan(pointers, heap_address_bits);
        let heap_cnt = specials.heap_cnt.ok_or(DecodeError::NoHeapCnt)?;
        let payload_offset = specials
            .payload_offset
            .ok_or(DecodeError::NoPayloadOffset)?;
        let payload_length = specials
            .payload_length
            .ok_or(DecodeError::NoPayloadLength)?;
        if let Some(len) = specials.heap_length {
            // Values are below 2^56, so the sum cannot overflow.
            if payload_offset + payload_length > len {
                return Err(DecodeError::PayloadOverflowsHeap);
            }
        }
        let available = (data.len() - pointers_end) as u64;
        if payload_length > available {
            return Err(DecodeError::PayloadOverflowsPacket);
        }
        let size = pointers_end + payload_length as usize;
        let packet = PacketHeader {
            heap_address_bits,
            heap_cnt,
            heap_length: specials.heap_length,
            payload_offset,
            payload_length,
            pointers,
            payload: &data[pointers_end..size],
        };
        Ok((packet, size))
    }

    /// Checks magic, version and flavour; returns the number of item pointers.
    pub fn check_header(data: &[u8]) -> Result<usize, DecodeError> {
        if data.len() < HEADER_SIZE {
            return Err(DecodeError::TooShort);
        }
        if data[field::MAGIC] != MAGIC || data[field::VERSION] != VERSION {
            return Err(DecodeError::BadMagic);
        }
        let id_bytes = data[field::ITEM_ID_BYTES];
        let address_bytes = data[field::HEAP_ADDRESS_BYTES];
        if id_bytes == 0
            || address_bytes == 0
            || u32::from(id_bytes) + u32::from(address_bytes) != 8
        {
            return Err(DecodeError::BadFlavour);
        }
        Ok(usize::from(u16::from_be_bytes([
            data[field::N_ITEMS.start],
            data[field::N_ITEMS.start + 1],
        ])))
    }

    /// Total bytes of the packet whose header starts `data`, from header fields alone
    /// (used by stream framers that must know how much to read before parsing).
    pub fn framed_size(data: &[u8]) -> Result<Option<usize>, DecodeError> {
        let n_items = Self::check_header(data)?;
        let pointers_end = HEADER_SIZE + n_items * POINTER_SIZE;
        if data.len() < pointers_end {
            return Ok(None);
        }
        let heap_address_bits = u32::from(data[field::HEAP_ADDRESS_BYTES]) * 8;
        let specials = Specials::scan(&data[HEADER_SIZE..pointers_end], heap_address_bits);
        let payload_length = specials
            .payload_length
            .ok_or(DecodeError::NoPayloadLength)?;
        Ok(Some(pointers_end + payload_length as usize))
    }

    pub fn n_items(&self) -> usize {
        self.pointers.len() / POINTER_SIZE
    }

    pub fn pointer(&self, index: usize) -> ItemPointer {
        let at = index * POINTER_SIZE;
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&self.pointers[at..at + POINTER_SIZE]);
        ItemPointer::from_be_bytes(bytes)
    }

    pub fn iter_pointers(&self) -> impl Iterator<Item = ItemPointer> + 'a {
        self.pointers.chunks_exact(POINTER_SIZE).map(|c| {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(c);
            ItemPointer::from_be_bytes(bytes)
        })
    }
}

/// The immediates that frame a packet; the last occurrence of each wins.
#[derive(Default)]
struct Specials {
    heap_cnt: Option<u64>,
    heap_length: Option<u64>,
    payload_offset: Option<u64>,
    payload_length: Option<u64>,
}

impl Specials {
    fn scan(pointers: &[u8], heap_address_bits: u32) -> Self {
        let mut out = Specials::default();
        for chunk in pointers.chunks_exact(POINTER_SIZE) {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(chunk);
            let ptr = ItemPointer::from_be_bytes(bytes);
            if !ptr.is_immediate() {
                continue;
            }
            let value = Some(ptr.value(heap_address_bits));
            match ptr.id(heap_address_bits) {
                HEAP_CNT_ID => out.heap_cnt = value,
                HEAP_LENGTH_ID => out.heap_length = value,
                PAYLOAD_OFFSET_ID => out.payload_offset = value,
                PAYLOAD_LENGTH_ID => out.payload_length = value,
                _ => {}
            }
        }
        out
    }
}

/// Writes a packet header for `n_items` pointers in flavour SPEAD-64-`heap_address_bits`.
pub fn emit_header(out: &mut Vec<u8>, heap_address_bits: u32, n_items: u16) {
    let address_bytes = (heap_address_bits / 8) as u8;
    out.extend_from_slice(&[MAGIC, VERSION, 8 - address_bytes, address_bytes, 0, 0]);
    out.extend_from_slice(&n_items.to_be_bytes());
}

/// Emits a whole packet from raw item pointers and payload (the mirror of `parse`).
pub fn emit_packet(heap_address_bits: u32, pointers: &[ItemPointer], payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_SIZE + pointers.len() * POINTER_SIZE + payload.len());
    emit_header(&mut out, heap_address_bits, pointers.len() as u16);
    for p in pointers {
        out.extend_from_slice(&p.0.to_be_bytes());
    }
    out.extend_from_slice(payload);
    out
}

/// Builds test and tool packets from meaning rather than raw pointers.
#[derive(Clone, Debug)]
pub struct PacketSpec {
    pub heap_address_bits: u32,
    pub heap_cnt: u64,
    pub heap_length: Option<u64>,
    pub payload_offset: u64,
    /// Further pointers after the four framing immediates.
    pub items: Vec<ItemPointer>,
    pub payload: Vec<u8>,
}

impl PacketSpec {
    pub fn emit(&self) -> Vec<u8> {
        let hab = self.heap_address_bits;
        let mut pointers = vec![ItemPointer::immediate(HEAP_CNT_ID, self.heap_cnt, hab)];
        if let Some(len) = self.heap_length {
            pointers.push(ItemPointer::immediate(HEAP_LENGTH_ID, len, hab));
        }
        pointers.push(ItemPointer::immediate(
            PAYLOAD_OFFSET_ID,
            self.payload_offset,
            hab,
        ));
        pointers.push(ItemPointer::immediate(
            PAYLOAD_LENGTH_ID,
            self.payload.len() as u64,
            hab,
        ));
        pointers.extend_from_slice(&self.items);
        emit_packet(hab, &pointers, &self.payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 64-40 packet: heap 0x123, length 8, offset 0, payload 8, item 0x1000 at 0.
    const PACKET_64_40: [u8; 48] = [
        0x53, 0x04, 0x03, 0x05, 0x00, 0x00, 0x00, 0x05, //
        0x80, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x23, //
        0x80, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x08, //
        0x80, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, //
        0x80, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x08, //
        0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, //
    ];

    fn packet_64_40_with_payload() -> Vec<u8> {
        let mut v = PACKET_64_40.to_vec();
        v.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        v
    }

    #[test]
    fn parse_reads_every_field() {
        let data = packet_64_40_with_payload();
        let (p, size) = PacketHeader::parse(&data).unwrap();
        assert_eq!(size, 56);
        assert_eq!(p.heap_address_bits, 40);
        assert_eq!(p.heap_cnt, 0x123);
        assert_eq!(p.heap_length, Some(8));
        assert_eq!(p.payload_offset, 0);
        assert_eq!(p.payload_length, 8);
        assert_eq!(p.n_items(), 5);
        assert_eq!(p.payload, &[1, 2, 3, 4, 5, 6, 7, 8]);
        let item = p.pointer(4);
        assert!(!item.is_immediate());
        assert_eq!(item.id(40), 0x1000);
        assert_eq!(item.value(40), 0);
    }

    #[test]
    fn emit_is_the_mirror_of_parse() {
        let spec = PacketSpec {
            heap_address_bits: 40,
            heap_cnt: 0x123,
            heap_length: Some(8),
            payload_offset: 0,
            items: vec![ItemPointer::addressed(0x1000, 0, 40)],
            payload: vec![1, 2, 3, 4, 5, 6, 7, 8],
        };
        assert_eq!(spec.emit(), packet_64_40_with_payload());
    }

    #[test]
    fn trailing_bytes_are_not_part_of_the_packet() {
        let mut data = packet_64_40_with_payload();
        data.extend_from_slice(&[0xff; 13]);
        let (_, size) = PacketHeader::parse(&data).unwrap();
        assert_eq!(size, 56);
    }

    #[test]
    fn pointer_fields_for_every_flavour() {
        for hab in (8..=56).step_by(8) {
            let max_id = mask(63 - hab);
            let p = ItemPointer::immediate(max_id, mask(hab), hab);
            assert!(p.is_immediate());
            assert_eq!(p.id(hab), max_id);
            assert_eq!(p.value(hab), mask(hab));
            let a = ItemPointer::addressed(5, 77, hab);
            assert!(!a.is_immediate());
            assert_eq!((a.id(hab), a.value(hab)), (5, 77));
        }
    }

    fn parse_err(data: &[u8]) -> DecodeError {
        PacketHeader::parse(data).unwrap_err()
    }

    #[test]
    fn each_validation_rule() {
        let good = packet_64_40_with_payload();
        assert_eq!(parse_err(&good[..7]), DecodeError::TooShort);
        let mut bad = good.clone();
        bad[0] = 0x54;
        assert_eq!(parse_err(&bad), DecodeError::BadMagic);
        let mut bad = good.clone();
        bad[1] = 3;
        assert_eq!(parse_err(&bad), DecodeError::BadMagic);
        for (id_bytes, addr_bytes) in [(0, 8), (8, 0), (3, 4), (4, 5)] {
            let mut bad = good.clone();
            bad[2] = id_bytes;
            bad[3] = addr_bytes;
            assert_eq!(parse_err(&bad), DecodeError::BadFlavour);
        }
        let mut bad = good.clone();
        bad[7] = 200;
        assert_eq!(parse_err(&bad), DecodeError::PointersOverflow);
        assert_eq!(parse_err(&good[..50]), DecodeError::PayloadOverflowsPacket);
    }

    fn spec(heap_length: Option<u64>, offset: u64, payload: usize) -> PacketSpec {
        PacketSpec {
            heap_address_bits: 48,
            heap_cnt: 1,
            heap_length,
            payload_offset: offset,
            items: vec![],
            payload: vec![0; payload],
        }
    }

    #[test]
    fn payload_must_fit_heap_length() {
        assert!(PacketHeader::parse(&spec(Some(10), 2, 8).emit()).is_ok());
        assert_eq!(
            parse_err(&spec(Some(10), 3, 8).emit()),
            DecodeError::PayloadOverflowsHeap
        );
        let huge = spec(Some(1 << 47), (1 << 48) - 1, 1).emit();
        assert_eq!(parse_err(&huge), DecodeError::PayloadOverflowsHeap);
    }

    #[test]
    fn unsized_heaps_decode_without_length() {
        let data = spec(None, 0, 8).emit();
        let (p, _) = PacketHeader::parse(&data).unwrap();
        assert_eq!(p.heap_length, None);
    }

    #[test]
    fn missing_framing_items() {
        let hab = 48;
        let cnt = ItemPointer::immediate(HEAP_CNT_ID, 1, hab);
        let off = ItemPointer::immediate(PAYLOAD_OFFSET_ID, 0, hab);
        let len = ItemPointer::immediate(PAYLOAD_LENGTH_ID, 0, hab);
        assert_eq!(
            parse_err(&emit_packet(hab, &[off, len], &[])),
            DecodeError::NoHeapCnt
        );
        assert_eq!(
            parse_err(&emit_packet(hab, &[cnt, len], &[])),
            DecodeError::NoPayloadOffset
        );
        assert_eq!(
            parse_err(&emit_packet(hab, &[cnt, off], &[])),
            DecodeError::NoPayloadLength
        );
        // Only immediates frame a packet: an addressed HEAP_CNT does not count.
        let addressed_cnt = ItemPointer::addressed(HEAP_CNT_ID, 1, hab);
        assert_eq!(
            parse_err(&emit_packet(hab, &[addressed_cnt, off, len], &[])),
            DecodeError::NoHeapCnt
        );
    }

    #[test]
    fn framed_size_needs_only_the_pointers() {
        let data = packet_64_40_with_payload();
        assert_eq!(PacketHeader::framed_size(&data[..20]), Ok(None));
        assert_eq!(PacketHeader::framed_size(&data[..48]), Ok(Some(56)));
    }
}
