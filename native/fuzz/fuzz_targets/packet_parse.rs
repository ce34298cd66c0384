//! Arbitrary bytes into `PacketHeader::parse`: must return a result, never panic, and an
//! accepted packet must be internally consistent.
#![no_main]

use _spead2::protocol::PacketHeader;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = PacketHeader::check_header(data);
    let _ = PacketHeader::framed_size(data);
    if let Ok((packet, size)) = PacketHeader::parse(data) {
        assert!(size <= data.len());
        assert_eq!(packet.payload.len() as u64, packet.payload_length);
        assert_eq!(packet.pointers.len() % 8, 0);
        if let Some(len) = packet.heap_length {
            assert!(packet.payload_offset + packet.payload_length <= len);
        }
        // Walk every pointer the way the assembler does.
        let hab = packet.heap_address_bits;
        for (i, p) in packet.iter_pointers().enumerate() {
            assert_eq!(p, packet.pointer(i));
            let _ = (p.id(hab), p.value(hab), p.is_immediate());
        }
        assert_eq!(packet.n_items(), packet.pointers.len() / 8);
    }
});
