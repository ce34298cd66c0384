//! The UDP payload reader: capture file records, decoded and filtered.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

use super::error::PcapError;
use super::file::{CaptureReader, RecordInfo};
use super::filter::Filter;
use super::frame::{self, Decoded};

/// Large sequential reads keep system calls rare on multi-gigabyte files.
const READ_BUFFER_SIZE: usize = 1 << 20;

/// Yields the payloads of the UDP datagrams in a capture file that match a filter.
pub struct PcapReader<R: Read> {
    capture: CaptureReader<R>,
    filter: Filter,
    /// Number of records read so far, to identify skipped packets in log messages.
    records: u64,
}

impl PcapReader<BufReader<File>> {
    /// Opens a capture file and compiles the filter (empty: every UDP datagram).
    ///
    /// The file is checked before the filter, as libpcap does; both are checked before any
    /// packet is read. Errors opening the file keep their [`io::ErrorKind`] and name the path.
    pub fn open(path: &Path, filter: &str) -> Result<PcapReader<BufReader<File>>, PcapError> {
        let file: File = File::open(path).map_err(|error: io::Error| {
            io::Error::new(error.kind(), format!("{}: {error}", path.display()))
        })?;
        PcapReader::new(BufReader::with_capacity(READ_BUFFER_SIZE, file), filter)
    }
}

impl<R: Read> PcapReader<R> {
    /// Reads the capture file header from `input` and compiles the filter.
    pub fn new(input: R, filter: &str) -> Result<PcapReader<R>, PcapError> {
        let capture: CaptureReader<R> = CaptureReader::new(input)?;
        let filter: Filter = Filter::parse(filter)?;
        Ok(PcapReader {
            capture,
            filter,
            records: 0,
        })
    }

    /// Returns the payload of the next matching UDP datagram, or `None` at the end of the
    /// file. The slice borrows an internal buffer that is reused for every packet.
    ///
    /// Packets that are not UDP, or do not match the filter, are skipped silently; UDP
    /// packets that cannot be delivered whole (truncated, fragmented, inconsistent lengths)
    /// are skipped with a warning. A corrupt or truncated file is a [`PcapError::Format`];
    /// the packets before the corruption have already been returned by then.
    pub fn next_payload(&mut self) -> Result<Option<&[u8]>, PcapError> {
        loop {
            let Some(info) = self.capture.next_record()? else {
                return Ok(None);
            };
            self.records += 1;
            let payload: std::ops::Range<usize> =
                match frame::decode(info.link_type, self.capture.data()) {
                    Decoded::Udp(datagram) if self.filter.matches(&datagram) => datagram.payload,
                    Decoded::Udp(_) | Decoded::NotUdp => continue,
                    Decoded::Invalid(reason) => {
                        self.warn_skipped(&info, reason);
                        continue;
                    }
                };
            return Ok(Some(&self.capture.data()[payload]));
        }
    }

    fn warn_skipped(&self, info: &RecordInfo, reason: &str) {
        if info.captured_len < info.original_len as usize {
            log::warn!(
                "skipping packet {} of capture file: {reason} (captured {} of {} bytes)",
                self.records,
                info.captured_len,
                info.original_len
            );
        } else {
            log::warn!("skipping packet {} of capture file: {reason}", self.records);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recv::pcap::testutil::{
        ethernet, ipv4_udp, ipv6_udp, pcap_file, pcap_header, pcap_record, vlan_ethernet, Endian,
        NgWriter, Rng, UdpSpec, ETHERTYPE_IPV4, ETHERTYPE_IPV6,
    };

    const LITTLE: Endian = Endian { big: false };

    fn v4(payload: &[u8], dst_port: u16) -> Vec<u8> {
        let spec: UdpSpec = UdpSpec::v4([10, 0, 0, 1], [10, 0, 0, 2], 1000, dst_port);
        ethernet(ETHERTYPE_IPV4, &ipv4_udp(&spec, payload))
    }

    fn v6(payload: &[u8], dst_port: u16) -> Vec<u8> {
        let spec: UdpSpec = UdpSpec::v6("fe80::1", "fe80::2", 1000, dst_port);
        ethernet(ETHERTYPE_IPV6, &ipv6_udp(&spec, payload, &[]))
    }

    /// A mixed capture: UDP over IPv4, IPv6 and VLAN, plus TCP and ARP that are skipped.
    fn mixed_frames() -> Vec<Vec<u8>> {
        let mut tcp: Vec<u8> = v4(b"tcp segment", 80);
        tcp[14 + 9] = 6;
        let tagged_spec: UdpSpec = UdpSpec::v4([192, 168, 0, 1], [192, 168, 0, 2], 7, 8888);
        vec![
            v4(b"first", 7148),
            tcp,
            v6(b"second", 7149),
            ethernet(0x0806, &[0; 28]),
            vlan_ethernet(&[0x8100], ETHERTYPE_IPV4, &ipv4_udp(&tagged_spec, b"third")),
            v4(b"", 7148),
        ]
    }

    fn payloads<R: Read>(mut reader: PcapReader<R>) -> Result<Vec<Vec<u8>>, PcapError> {
        let mut out: Vec<Vec<u8>> = Vec::new();
        while let Some(payload) = reader.next_payload()? {
            out.push(payload.to_vec());
        }
        Ok(out)
    }

    fn read(file: &[u8], filter: &str) -> Vec<Vec<u8>> {
        payloads(PcapReader::new(file, filter).unwrap()).unwrap()
    }

    fn strings(items: &[&str]) -> Vec<Vec<u8>> {
        items
            .iter()
            .map(|item: &&str| item.as_bytes().to_vec())
            .collect()
    }

    #[test]
    fn classic_pcap_payloads_and_filters() {
        let file: Vec<u8> = pcap_file(LITTLE, false, 1, &mixed_frames());
        assert_eq!(read(&file, ""), strings(&["first", "second", "third", ""]));
        assert_eq!(read(&file, "port 7148"), strings(&["first", ""]));
        assert_eq!(
            read(&file, "ip6 or dst port 8888"),
            strings(&["second", "third"])
        );
        assert_eq!(
            read(&file, "not host 10.0.0.2"),
            strings(&["second", "third"])
        );
        assert_eq!(read(&file, "port 1"), Vec::<Vec<u8>>::new());
    }

    #[test]
    fn pcapng_payloads_across_sections() {
        let mut writer: NgWriter = NgWriter::new(LITTLE);
        writer.interface(1);
        for frame in mixed_frames() {
            writer.enhanced(0, &frame, frame.len());
        }
        writer.section(Endian { big: true });
        writer.interface(147); // unsupported: its packets are ignored
        writer.interface(1);
        writer.enhanced(0, &v4(b"ignored", 7148), 47);
        writer.enhanced(1, &v4(b"fourth", 7148), 48);
        writer.simple(&v4(b"ignored too", 7148));
        assert_eq!(
            read(&writer.out, "udp"),
            strings(&["first", "second", "third", "", "fourth"])
        );
    }

    #[test]
    fn truncated_and_fragmented_packets_are_skipped() {
        let whole: Vec<u8> = v4(b"whole", 1);
        let cut: Vec<u8> = v4(b"cut by snaplen", 1);
        let mut fragment: Vec<u8> = v4(b"fragment", 1);
        fragment[14 + 6] = 0x20;
        let mut file: Vec<u8> = pcap_header(LITTLE, true, 1);
        pcap_record(&mut file, LITTLE, &cut, cut.len() - 3);
        pcap_record(&mut file, LITTLE, &fragment, fragment.len());
        pcap_record(&mut file, LITTLE, &whole, whole.len());
        assert_eq!(read(&file, ""), strings(&["whole"]));
    }

    #[test]
    fn filter_errors_surface_when_opening() {
        let file: Vec<u8> = pcap_file(LITTLE, false, 1, &mixed_frames());
        let Err(PcapError::Filter(error)) = PcapReader::new(&file[..], "vlan") else {
            panic!("expected a filter error");
        };
        assert!(error.to_string().contains("at 'vlan'"), "{error}");
        // The file is checked first, as libpcap does.
        let Err(PcapError::Format(_)) = PcapReader::new(&b"garbage!"[..], "vlan") else {
            panic!("expected a format error");
        };
    }

    #[test]
    fn packets_before_corruption_are_delivered() {
        let file: Vec<u8> = pcap_file(LITTLE, false, 1, &mixed_frames());
        let mut reader: PcapReader<&[u8]> = PcapReader::new(&file[..file.len() - 1], "").unwrap();
        assert_eq!(reader.next_payload().unwrap(), Some(&b"first"[..]));
        assert_eq!(reader.next_payload().unwrap(), Some(&b"second"[..]));
        assert_eq!(reader.next_payload().unwrap(), Some(&b"third"[..]));
        let error: PcapError = reader.next_payload().unwrap_err();
        assert!(
            error.to_string().starts_with("truncated capture file"),
            "{error}"
        );
    }

    #[test]
    fn open_reads_a_real_file() {
        let path: std::path::PathBuf =
            std::env::temp_dir().join(format!("spead2-pcap-test-{}.pcap", std::process::id()));
        std::fs::write(&path, pcap_file(LITTLE, false, 1, &mixed_frames())).unwrap();
        let result: Result<Vec<Vec<u8>>, PcapError> =
            PcapReader::open(&path, "dst port 7149").and_then(payloads);
        std::fs::remove_file(&path).unwrap();
        assert_eq!(result.unwrap(), strings(&["second"]));
    }

    #[test]
    fn open_reports_missing_files_as_io_errors() {
        let path: &Path = Path::new("/nonexistent/dir/capture.pcap");
        let Err(PcapError::Io(error)) = PcapReader::open(path, "") else {
            panic!("expected an I/O error");
        };
        assert_eq!(error.kind(), io::ErrorKind::NotFound);
        assert!(
            error
                .to_string()
                .starts_with("/nonexistent/dir/capture.pcap: "),
            "{error}"
        );
    }

    #[test]
    fn random_corruption_never_panics() {
        let mut writer: NgWriter = NgWriter::new(LITTLE);
        writer.interface(1);
        for frame in mixed_frames() {
            writer.enhanced(0, &frame, frame.len());
        }
        let classic: Vec<u8> = pcap_file(LITTLE, false, 1, &mixed_frames());
        let mut rng: Rng = Rng(7);
        for file in [writer.out, classic] {
            for _ in 0..3000 {
                let mut corrupt: Vec<u8> = file.clone();
                for _ in 0..1 + rng.below(8) {
                    let at: usize = rng.below(corrupt.len());
                    corrupt[at] = rng.next() as u8;
                }
                if let Ok(reader) = PcapReader::new(&corrupt[..], "") {
                    let _ = payloads(reader);
                }
            }
        }
    }
}
