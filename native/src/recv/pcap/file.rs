//! The capture file containers: classic pcap and pcapng, read record by record.
//!
//! Reading is incremental (files can be many gigabytes) and memory is bounded: one frame of
//! at most [`MAX_CAPTURED_LEN`] bytes is held at a time, and blocks or options that are not
//! needed are discarded as they stream past instead of being buffered.

use std::io::{self, Read};

use super::error::PcapError;
use super::frame::LinkType;

/// The largest captured frame accepted. This is libpcap's maximum snapshot length; a larger
/// claimed length means a corrupt file, and trusting it would allocate without bound.
pub const MAX_CAPTURED_LEN: usize = 262_144;

/// More interfaces than this in one pcapng section is taken as corruption; the bound keeps
/// the interface table small whatever the file says.
const MAX_INTERFACES: usize = 65_536;

const PCAP_HEADER_LEN: usize = 24;
const PCAP_RECORD_HEADER_LEN: usize = 16;

/// The Section Header Block type reads the same in both byte orders, which is how a reader
/// recognises a section before knowing its byte order.
const NG_SECTION_HEADER: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];
const NG_BYTE_ORDER_MAGIC: u32 = 0x1a2b_3c4d;
const NG_INTERFACE_DESCRIPTION: u32 = 1;
const NG_OBSOLETE_PACKET: u32 = 2;
const NG_SIMPLE_PACKET: u32 = 3;
const NG_ENHANCED_PACKET: u32 = 6;
/// Block type, total length, and the trailing copy of the total length.
const NG_BLOCK_OVERHEAD: u32 = 12;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ByteOrder {
    Little,
    Big,
}

impl ByteOrder {
    fn u16(self, bytes: &[u8]) -> u16 {
        let array: [u8; 2] = [bytes[0], bytes[1]];
        match self {
            ByteOrder::Little => u16::from_le_bytes(array),
            ByteOrder::Big => u16::from_be_bytes(array),
        }
    }

    fn u32(self, bytes: &[u8]) -> u32 {
        let array: [u8; 4] = [bytes[0], bytes[1], bytes[2], bytes[3]];
        match self {
            ByteOrder::Little => u32::from_le_bytes(array),
            ByteOrder::Big => u32::from_be_bytes(array),
        }
    }
}

/// Which container the file is, with what that container fixes for the whole file.
#[derive(Clone, Copy, Debug)]
enum Container {
    Pcap(LinkType),
    PcapNg,
}

/// Metadata of one captured frame; the bytes are in [`CaptureReader::data`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordInfo {
    pub link_type: LinkType,
    /// Bytes captured, which may be fewer than were on the wire.
    pub captured_len: usize,
    /// Length of the frame on the wire.
    pub original_len: u32,
}

/// Reads the frames of a classic pcap or pcapng file in order.
pub struct CaptureReader<R: Read> {
    input: R,
    container: Container,
    order: ByteOrder,
    /// Link types of the current pcapng section's interfaces, by interface ID.
    interfaces: Vec<LinkType>,
    /// Holds the current frame in its first `len` bytes. It keeps its high-water length so
    /// that reading a frame does not zero-fill the buffer again.
    buffer: Vec<u8>,
    len: usize,
}

impl<R: Read> CaptureReader<R> {
    /// Reads the file header, detecting the container and byte order.
    pub fn new(input: R) -> Result<CaptureReader<R>, PcapError> {
        let mut reader: CaptureReader<R> = CaptureReader {
            input,
            container: Container::PcapNg,
            order: ByteOrder::Little,
            interfaces: Vec::new(),
            buffer: Vec::new(),
            len: 0,
        };
        let mut magic: [u8; 4] = [0; 4];
        if !reader.read_start(&mut magic)? {
            return Err(PcapError::Format("capture file is empty".to_string()));
        }
        if magic == NG_SECTION_HEADER {
            let mut length: [u8; 4] = [0; 4];
            reader.read_exact(&mut length, "section header block")?;
            reader.start_section(length)?;
        } else {
            reader.read_pcap_header(magic)?;
        }
        Ok(reader)
    }

    /// The bytes of the frame returned by the last successful [`Self::next_record`].
    pub fn data(&self) -> &[u8] {
        &self.buffer[..self.len]
    }

    /// Advances to the next captured frame, or returns `None` at the end of the file.
    pub fn next_record(&mut self) -> Result<Option<RecordInfo>, PcapError> {
        self.len = 0;
        match self.container {
            Container::Pcap(link_type) => self.next_pcap_record(link_type),
            Container::PcapNg => self.next_ng_record(),
        }
    }

    fn read_pcap_header(&mut self, magic: [u8; 4]) -> Result<(), PcapError> {
        // Microsecond and nanosecond timestamp magics; timestamps themselves are not needed.
        self.order = match u32::from_le_bytes(magic) {
            0xa1b2_c3d4 | 0xa1b2_3c4d => ByteOrder::Little,
            0xd4c3_b2a1 | 0x4d3c_b2a1 => ByteOrder::Big,
            _ => return Err(PcapError::Format("unknown capture file format".to_string())),
        };
        let mut header: [u8; PCAP_HEADER_LEN - 4] = [0; PCAP_HEADER_LEN - 4];
        self.read_exact(&mut header, "pcap file header")?;
        let major: u16 = self.order.u16(&header[0..2]);
        if major != 2 {
            return Err(PcapError::Format(format!(
                "unsupported pcap format version {major}"
            )));
        }
        // The upper bits of the link type field describe an FCS, which the IP and UDP length
        // fields make irrelevant here.
        let link_type: LinkType = LinkType((self.order.u32(&header[16..20]) & 0xffff) as u16);
        if !link_type.is_supported() {
            return Err(PcapError::Format(format!(
                "unsupported pcap link type {} (supported: Ethernet, Linux SLL, raw IP, BSD loopback)",
                link_type.0
            )));
        }
        self.container = Container::Pcap(link_type);
        Ok(())
    }

    fn next_pcap_record(&mut self, link_type: LinkType) -> Result<Option<RecordInfo>, PcapError> {
        let mut header: [u8; PCAP_RECORD_HEADER_LEN] = [0; PCAP_RECORD_HEADER_LEN];
        if !self.read_start(&mut header)? {
            return Ok(None);
        }
        let captured_len: usize = self.order.u32(&header[8..12]) as usize;
        let original_len: u32 = self.order.u32(&header[12..16]);
        self.read_frame(captured_len)?;
        Ok(Some(RecordInfo {
            link_type,
            captured_len,
            original_len,
        }))
    }

    fn next_ng_record(&mut self) -> Result<Option<RecordInfo>, PcapError> {
        loop {
            let mut head: [u8; 8] = [0; 8];
            if !self.read_start(&mut head)? {
                return Ok(None);
            }
            if head[0..4] == NG_SECTION_HEADER {
                self.start_section([head[4], head[5], head[6], head[7]])?;
                continue;
            }
            let block_type: u32 = self.order.u32(&head[0..4]);
            let total_len: u32 = self.order.u32(&head[4..8]);
            if total_len < NG_BLOCK_OVERHEAD || total_len % 4 != 0 {
                return Err(PcapError::Format(format!(
                    "corrupt pcapng file: invalid block length {total_len}"
                )));
            }
            let body_len: usize = (total_len - NG_BLOCK_OVERHEAD) as usize;
            let record: Option<RecordInfo> = match block_type {
                NG_INTERFACE_DESCRIPTION => {
                    self.read_interface(body_len)?;
                    None
                }
                NG_ENHANCED_PACKET => Some(self.read_enhanced_packet(body_len)?),
                NG_SIMPLE_PACKET => Some(self.read_simple_packet(body_len)?),
                NG_OBSOLETE_PACKET => Some(self.read_obsolete_packet(body_len)?),
                _ => {
                    self.skip(body_len, "pcapng block")?;
                    None
                }
            };
            self.check_trailer(total_len)?;
            if record.is_some() {
                return Ok(record);
            }
        }
    }

    /// Reads the rest of a Section Header Block, given the raw bytes of its total length.
    fn start_section(&mut self, raw_total_len: [u8; 4]) -> Result<(), PcapError> {
        let mut fixed: [u8; 16] = [0; 16];
        self.read_exact(&mut fixed, "section header block")?;
        self.order = if ByteOrder::Little.u32(&fixed[0..4]) == NG_BYTE_ORDER_MAGIC {
            ByteOrder::Little
        } else if ByteOrder::Big.u32(&fixed[0..4]) == NG_BYTE_ORDER_MAGIC {
            ByteOrder::Big
        } else {
            return Err(PcapError::Format(
                "corrupt pcapng file: bad byte-order magic".to_string(),
            ));
        };
        let total_len: u32 = self.order.u32(&raw_total_len);
        let fixed_len: u32 = NG_BLOCK_OVERHEAD + fixed.len() as u32;
        if total_len < fixed_len || total_len % 4 != 0 {
            return Err(PcapError::Format(format!(
                "corrupt pcapng file: invalid section header length {total_len}"
            )));
        }
        let major: u16 = self.order.u16(&fixed[4..6]);
        if major != 1 {
            return Err(PcapError::Format(format!(
                "unsupported pcapng format version {major}"
            )));
        }
        // The section length (fixed[8..16]) is optional and not needed to read sequentially.
        self.skip((total_len - fixed_len) as usize, "section header options")?;
        self.check_trailer(total_len)?;
        self.container = Container::PcapNg;
        self.interfaces.clear();
        Ok(())
    }

    fn read_interface(&mut self, body_len: usize) -> Result<(), PcapError> {
        let mut fixed: [u8; 8] = [0; 8];
        self.read_block_fixed(&mut fixed, body_len, "interface description block")?;
        let link_type: LinkType = LinkType(self.order.u16(&fixed[0..2]));
        if self.interfaces.len() >= MAX_INTERFACES {
            return Err(PcapError::Format(
                "corrupt pcapng file: too many interfaces".to_string(),
            ));
        }
        if !link_type.is_supported() {
            log::warn!(
                "pcapng interface {} has unsupported link type {}; its packets are ignored",
                self.interfaces.len(),
                link_type.0
            );
        }
        self.interfaces.push(link_type);
        self.skip(body_len - fixed.len(), "interface options")
    }

    fn read_enhanced_packet(&mut self, body_len: usize) -> Result<RecordInfo, PcapError> {
        let mut fixed: [u8; 20] = [0; 20];
        self.read_block_fixed(&mut fixed, body_len, "enhanced packet block")?;
        let interface: u32 = self.order.u32(&fixed[0..4]);
        let captured_len: u32 = self.order.u32(&fixed[12..16]);
        let original_len: u32 = self.order.u32(&fixed[16..20]);
        self.read_packet_data(
            interface,
            captured_len,
            original_len,
            body_len - fixed.len(),
        )
    }

    fn read_obsolete_packet(&mut self, body_len: usize) -> Result<RecordInfo, PcapError> {
        let mut fixed: [u8; 20] = [0; 20];
        self.read_block_fixed(&mut fixed, body_len, "packet block")?;
        let interface: u32 = u32::from(self.order.u16(&fixed[0..2]));
        let captured_len: u32 = self.order.u32(&fixed[12..16]);
        let original_len: u32 = self.order.u32(&fixed[16..20]);
        self.read_packet_data(
            interface,
            captured_len,
            original_len,
            body_len - fixed.len(),
        )
    }

    /// A Simple Packet Block has no captured length: the data is the original length
    /// bounded by the block, and belongs to the first interface.
    fn read_simple_packet(&mut self, body_len: usize) -> Result<RecordInfo, PcapError> {
        let mut fixed: [u8; 4] = [0; 4];
        self.read_block_fixed(&mut fixed, body_len, "simple packet block")?;
        let original_len: u32 = self.order.u32(&fixed);
        let rest: usize = body_len - fixed.len();
        let captured_len: u32 = original_len.min(u32::try_from(rest).unwrap_or(u32::MAX));
        self.read_packet_data(0, captured_len, original_len, rest)
    }

    /// Reads a packet's data from the `rest` bytes of its block body, skipping the padding
    /// and options that follow it.
    fn read_packet_data(
        &mut self,
        interface: u32,
        captured_len: u32,
        original_len: u32,
        rest: usize,
    ) -> Result<RecordInfo, PcapError> {
        let Some(&link_type) = self.interfaces.get(interface as usize) else {
            return Err(PcapError::Format(format!(
                "corrupt pcapng file: packet refers to undeclared interface {interface}"
            )));
        };
        let captured_len: usize = captured_len as usize;
        if captured_len > rest {
            return Err(PcapError::Format(format!(
                "corrupt pcapng file: captured length {captured_len} exceeds its block"
            )));
        }
        self.read_frame(captured_len)?;
        self.skip(rest - captured_len, "packet block options")?;
        Ok(RecordInfo {
            link_type,
            captured_len,
            original_len,
        })
    }

    /// Reads the fixed fields at the start of a block body, checking the body can hold them.
    fn read_block_fixed(
        &mut self,
        fixed: &mut [u8],
        body_len: usize,
        what: &str,
    ) -> Result<(), PcapError> {
        if body_len < fixed.len() {
            return Err(PcapError::Format(format!(
                "corrupt pcapng file: {what} too short ({body_len} bytes)"
            )));
        }
        self.read_exact(fixed, what)
    }

    fn check_trailer(&mut self, total_len: u32) -> Result<(), PcapError> {
        let mut trailer: [u8; 4] = [0; 4];
        self.read_exact(&mut trailer, "block trailer")?;
        let trailing_len: u32 = self.order.u32(&trailer);
        if trailing_len != total_len {
            return Err(PcapError::Format(format!(
                "corrupt pcapng file: block length {total_len} does not match trailer {trailing_len}"
            )));
        }
        Ok(())
    }

    /// Reads `captured_len` bytes of frame data into the buffer.
    fn read_frame(&mut self, captured_len: usize) -> Result<(), PcapError> {
        if captured_len > MAX_CAPTURED_LEN {
            return Err(PcapError::Format(format!(
                "corrupt capture file: captured length {captured_len} exceeds the maximum of {MAX_CAPTURED_LEN}"
            )));
        }
        if self.buffer.len() < captured_len {
            self.buffer.resize(captured_len, 0);
        }
        let got: usize = read_full(&mut self.input, &mut self.buffer[..captured_len])?;
        if got < captured_len {
            return Err(truncated(captured_len, got, "packet data"));
        }
        self.len = captured_len;
        Ok(())
    }

    /// Fills `buf`, or returns false at a clean end of file before its first byte.
    fn read_start(&mut self, buf: &mut [u8]) -> Result<bool, PcapError> {
        match read_full(&mut self.input, buf)? {
            0 => Ok(false),
            got if got < buf.len() => Err(truncated(buf.len(), got, "record header")),
            _ => Ok(true),
        }
    }

    fn read_exact(&mut self, buf: &mut [u8], what: &str) -> Result<(), PcapError> {
        let got: usize = read_full(&mut self.input, buf)?;
        if got < buf.len() {
            return Err(truncated(buf.len(), got, what));
        }
        Ok(())
    }

    /// Discards `count` bytes without buffering them.
    fn skip(&mut self, count: usize, what: &str) -> Result<(), PcapError> {
        let wanted: u64 = count as u64;
        let got: u64 = io::copy(&mut (&mut self.input).take(wanted), &mut io::sink())?;
        if got < wanted {
            return Err(truncated(count, got as usize, what));
        }
        Ok(())
    }
}

fn truncated(wanted: usize, got: usize, what: &str) -> PcapError {
    PcapError::Format(format!(
        "truncated capture file: tried to read {wanted} bytes of {what}, only got {got}"
    ))
}

/// Reads until `buf` is full or the input ends; returns how many bytes were read.
fn read_full<R: Read>(input: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled: usize = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(count) => filled += count,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recv::pcap::testutil::{pcap_file, pcap_header, pcap_record, Endian, NgWriter, Rng};

    const LITTLE: Endian = Endian { big: false };
    const BIG: Endian = Endian { big: true };

    fn frames() -> Vec<Vec<u8>> {
        vec![
            b"first frame".to_vec(),
            Vec::new(),
            vec![0xab; 300],
            b"last".to_vec(),
        ]
    }

    /// Reads every record, returning (link type, data, original length) of each.
    fn read_all(file: &[u8]) -> Result<Vec<(u16, Vec<u8>, u32)>, PcapError> {
        let mut reader: CaptureReader<&[u8]> = CaptureReader::new(file)?;
        let mut out: Vec<(u16, Vec<u8>, u32)> = Vec::new();
        while let Some(info) = reader.next_record()? {
            assert_eq!(info.captured_len, reader.data().len());
            out.push((info.link_type.0, reader.data().to_vec(), info.original_len));
        }
        Ok(out)
    }

    fn expected(link: u16, frames: &[Vec<u8>]) -> Vec<(u16, Vec<u8>, u32)> {
        frames
            .iter()
            .map(|frame: &Vec<u8>| (link, frame.clone(), frame.len() as u32))
            .collect()
    }

    #[test]
    fn classic_pcap_all_magics() {
        for endian in [LITTLE, BIG] {
            for nanos in [false, true] {
                let file: Vec<u8> = pcap_file(endian, nanos, 1, &frames());
                assert_eq!(read_all(&file).unwrap(), expected(1, &frames()));
            }
        }
    }

    #[test]
    fn classic_pcap_truncated_record_and_fcs_bits() {
        let mut file: Vec<u8> = pcap_header(BIG, false, 0x1400_0071);
        pcap_record(&mut file, BIG, b"0123456789", 4);
        assert_eq!(read_all(&file).unwrap(), vec![(113, b"0123".to_vec(), 10)]);
    }

    #[test]
    fn classic_pcap_rejects_bad_headers() {
        let unsupported: Vec<u8> = pcap_file(LITTLE, false, 105, &frames());
        let message: String = read_all(&unsupported).unwrap_err().to_string();
        assert!(
            message.contains("unsupported pcap link type 105"),
            "{message}"
        );
        let mut version: Vec<u8> = pcap_file(LITTLE, false, 1, &[]);
        version[4] = 3;
        assert!(matches!(read_all(&version), Err(PcapError::Format(_))));
        let garbage: &[u8] = b"this is not a capture file at all";
        let message: String = read_all(garbage).unwrap_err().to_string();
        assert_eq!(message, "unknown capture file format");
        assert!(matches!(read_all(b""), Err(PcapError::Format(_))));
    }

    #[test]
    fn oversized_captured_length_is_an_error_without_allocating() {
        let mut file: Vec<u8> = pcap_header(LITTLE, false, 1);
        LITTLE.u32(&mut file, 0);
        LITTLE.u32(&mut file, 0);
        LITTLE.u32(&mut file, 0xffff_fff0);
        LITTLE.u32(&mut file, 0xffff_fff0);
        let mut reader: CaptureReader<&[u8]> = CaptureReader::new(&file[..]).unwrap();
        let error: PcapError = reader.next_record().unwrap_err();
        assert!(error.to_string().contains("exceeds the maximum"), "{error}");
        assert_eq!(reader.buffer.capacity(), 0);
    }

    #[test]
    fn largest_allowed_frame_is_read() {
        let big: Vec<u8> = (0..MAX_CAPTURED_LEN).map(|i: usize| i as u8).collect();
        let file: Vec<u8> = pcap_file(LITTLE, false, 1, std::slice::from_ref(&big));
        assert_eq!(read_all(&file).unwrap(), expected(1, &[big]));
    }

    #[test]
    fn pcapng_packet_blocks_in_both_byte_orders() {
        for endian in [LITTLE, BIG] {
            let mut writer: NgWriter = NgWriter::new(endian);
            writer.interface(1);
            writer.interface(101);
            writer.enhanced(0, b"epb on ethernet", 15);
            writer.enhanced(1, b"epb on raw", 10);
            writer.block(0x0000_0bad, b"unknown block body"); // skipped
            writer.block(5, &[0; 8]); // interface statistics: skipped
            writer.simple(b"spb!!");
            writer.obsolete(1, b"old");
            writer.enhanced(0, b"truncated epb", 9);
            let records: Vec<(u16, Vec<u8>, u32)> = read_all(&writer.out).unwrap();
            assert_eq!(
                records,
                vec![
                    (1, b"epb on ethernet".to_vec(), 15),
                    (101, b"epb on raw".to_vec(), 10),
                    (1, b"spb!!".to_vec(), 5),
                    (101, b"old".to_vec(), 3),
                    (1, b"truncated".to_vec(), 13),
                ]
            );
        }
    }

    #[test]
    fn pcapng_multiple_sections_reset_interfaces() {
        let mut writer: NgWriter = NgWriter::new(LITTLE);
        writer.interface(1);
        writer.enhanced(0, b"one", 3);
        writer.section(BIG);
        writer.interface(229);
        writer.enhanced(0, b"two", 3);
        writer.section(LITTLE);
        writer.enhanced(0, b"no interface", 12);
        let mut reader: CaptureReader<&[u8]> = CaptureReader::new(&writer.out[..]).unwrap();
        let first: RecordInfo = reader.next_record().unwrap().unwrap();
        assert_eq!((first.link_type, reader.data()), (LinkType(1), &b"one"[..]));
        let second: RecordInfo = reader.next_record().unwrap().unwrap();
        assert_eq!(
            (second.link_type, reader.data()),
            (LinkType(229), &b"two"[..])
        );
        let error: PcapError = reader.next_record().unwrap_err();
        assert!(
            error.to_string().contains("undeclared interface 0"),
            "{error}"
        );
    }

    #[test]
    fn pcapng_structural_errors() {
        let mut writer: NgWriter = NgWriter::new(LITTLE);
        writer.interface(1);
        let valid_prefix: usize = writer.out.len();
        writer.enhanced(0, b"data", 4);
        // A trailer that disagrees with the header.
        let mut bad_trailer: Vec<u8> = writer.out.clone();
        let last: usize = bad_trailer.len() - 4;
        bad_trailer[last] ^= 0x04;
        assert!(read_all(&bad_trailer)
            .unwrap_err()
            .to_string()
            .contains("trailer"));
        // A block length that is not a multiple of 4.
        let mut bad_length: Vec<u8> = writer.out.clone();
        bad_length[valid_prefix + 4] += 1;
        assert!(read_all(&bad_length)
            .unwrap_err()
            .to_string()
            .contains("invalid block length"));
        // A captured length larger than the block.
        let mut overlong: Vec<u8> = writer.out.clone();
        overlong[valid_prefix + 8 + 12] = 200;
        assert!(read_all(&overlong)
            .unwrap_err()
            .to_string()
            .contains("exceeds its block"));
        // A bad byte-order magic.
        let mut bad_magic: Vec<u8> = writer.out.clone();
        bad_magic[8] = 0;
        assert!(read_all(&bad_magic)
            .unwrap_err()
            .to_string()
            .contains("byte-order"));
    }

    #[test]
    fn every_truncation_is_an_error_or_a_clean_prefix() {
        let mut writer: NgWriter = NgWriter::new(BIG);
        writer.interface(1);
        for frame in frames() {
            writer.enhanced(0, &frame, frame.len());
        }
        writer.simple(b"simple");
        let ng: Vec<u8> = writer.out;
        let classic: Vec<u8> = pcap_file(LITTLE, true, 1, &frames());
        for file in [ng, classic] {
            let full: usize = read_all(&file).unwrap().len();
            for len in 0..file.len() {
                match read_all(&file[..len]) {
                    // Only cuts at a record boundary may succeed, with fewer records.
                    Ok(records) => assert!(records.len() < full, "len {len}"),
                    Err(PcapError::Format(_)) => {}
                    Err(other) => panic!("len {len}: unexpected {other:?}"),
                }
            }
        }
    }

    #[test]
    fn random_corruption_never_panics() {
        let mut writer: NgWriter = NgWriter::new(LITTLE);
        writer.interface(1);
        for frame in frames() {
            writer.enhanced(0, &frame, frame.len());
            writer.simple(&frame);
        }
        let ng: Vec<u8> = writer.out;
        let classic: Vec<u8> = pcap_file(BIG, false, 1, &frames());
        let mut rng: Rng = Rng(0x1234_5678_9abc_def1);
        for file in [ng, classic] {
            for _ in 0..2000 {
                let mut corrupt: Vec<u8> = file.clone();
                for _ in 0..1 + rng.below(4) {
                    let at: usize = rng.below(corrupt.len());
                    corrupt[at] = rng.next() as u8;
                }
                corrupt.truncate(rng.below(corrupt.len() + 1).max(corrupt.len() / 2));
                // Either outcome is fine; it must terminate without panicking.
                let _ = read_all(&corrupt);
            }
        }
    }

    /// A reader that returns one byte at a time and is interrupted in between.
    struct Trickle<'a> {
        data: &'a [u8],
        interrupt: bool,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.interrupt = !self.interrupt;
            if self.interrupt {
                return Err(io::Error::from(io::ErrorKind::Interrupted));
            }
            let Some((&first, rest)) = self.data.split_first() else {
                return Ok(0);
            };
            if buf.is_empty() {
                return Ok(0);
            }
            buf[0] = first;
            self.data = rest;
            Ok(1)
        }
    }

    #[test]
    fn short_and_interrupted_reads_are_retried() {
        let mut writer: NgWriter = NgWriter::new(LITTLE);
        writer.interface(1);
        writer.enhanced(0, b"trickled", 8);
        let source: Trickle<'_> = Trickle {
            data: &writer.out,
            interrupt: false,
        };
        let mut reader: CaptureReader<Trickle<'_>> = CaptureReader::new(source).unwrap();
        assert!(reader.next_record().unwrap().is_some());
        assert_eq!(reader.data(), b"trickled");
        assert!(reader.next_record().unwrap().is_none());
    }

    #[test]
    fn io_errors_are_reported_as_io() {
        struct Failing;
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("disk on fire"))
            }
        }
        let Err(PcapError::Io(error)) = CaptureReader::new(Failing) else {
            panic!("expected an I/O error");
        };
        assert_eq!(error.to_string(), "disk on fire");
    }
}
