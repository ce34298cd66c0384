//! Packet order for `send_heaps(heaps, mode)`: several heaps' generators interleaved.
//!
//! ROUND_ROBIN takes one packet from each heap in turn, dropping heaps from the rotation as
//! they run out; SERIAL sends each heap whole before the next. Both match spead2 4.5.1's
//! packet order (vectors in testdata/send).

use std::io::IoSlice;

use super::packet_generator::{PacketGenerator, PacketParts};

/// `spead2.send.GroupMode` (values as in spead2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GroupMode {
    RoundRobin = 0,
    Serial = 1,
}

/// Yields the packets of a group of heaps in the group's order, each tagged with the index
/// of its heap in the group.
pub struct GroupGenerator {
    generators: Vec<PacketGenerator>,
    mode: GroupMode,
    /// Indices of heaps with packets left, in rotation order.
    active: Vec<usize>,
    /// Position in `active` of the heap that sends next.
    position: usize,
}

impl GroupGenerator {
    pub fn new(generators: Vec<PacketGenerator>, mode: GroupMode) -> Self {
        let active = (0..generators.len())
            .filter(|&i| !generators[i].is_done())
            .collect();
        GroupGenerator {
            generators,
            mode,
            active,
            position: 0,
        }
    }

    pub fn mode(&self) -> GroupMode {
        self.mode
    }

    /// Number of heaps in the group.
    pub fn len(&self) -> usize {
        self.generators.len()
    }

    pub fn is_empty(&self) -> bool {
        self.generators.is_empty()
    }

    /// True once every heap has produced all of its packets.
    pub fn is_done(&self) -> bool {
        self.active.is_empty()
    }

    /// The generator of heap `index` (to resolve segments, or read its cnt).
    pub fn generator(&self, index: usize) -> &PacketGenerator {
        &self.generators[index]
    }

    /// Produces the next packet into `parts`; returns its heap's index, or None when done.
    pub fn next_packet(&mut self, parts: &mut PacketParts) -> Option<usize> {
        self.next_with(|generator| generator.next_packet(parts))
    }

    /// Appends the next packet to `out`; returns its heap's index, or None when done.
    pub fn next_packet_bytes(&mut self, out: &mut Vec<u8>) -> Option<usize> {
        self.next_with(|generator| generator.next_packet_bytes(out))
    }

    /// The packet's bytes (header block, then payload) for a packet of heap `index`.
    pub fn slices<'a>(
        &'a self,
        index: usize,
        parts: &'a PacketParts,
    ) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.generators[index].slices(parts)
    }

    /// Appends the `IoSlice`s of a packet of heap `index` to `out`.
    pub fn io_slices<'a>(
        &'a self,
        index: usize,
        parts: &'a PacketParts,
        out: &mut Vec<IoSlice<'a>>,
    ) {
        self.generators[index].io_slices(parts, out);
    }

    fn next_with(&mut self, produce: impl FnOnce(&mut PacketGenerator) -> bool) -> Option<usize> {
        let index = *self.active.get(self.position)?;
        let generator = &mut self.generators[index];
        let produced = produce(generator);
        debug_assert!(produced, "active heaps always have a packet left");
        if generator.is_done() {
            self.active.remove(self.position);
        } else if self.mode == GroupMode::RoundRobin {
            self.position += 1;
        }
        if self.position >= self.active.len() {
            self.position = 0;
        }
        Some(index)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::protocol::Flavour;
    use crate::send::heap::SendHeap;
    use crate::send::packet_generator::vectors::{self, Case, Packet};

    fn mode_of(case: &Case) -> GroupMode {
        match case.mode.as_str() {
            "round_robin" => GroupMode::RoundRobin,
            "serial" => GroupMode::Serial,
            other => panic!("not a group mode: {other}"),
        }
    }

    /// The group of a case, or the first heap's error as spead2 words it.
    fn group_of(case: &Case) -> Result<GroupGenerator, String> {
        let generators = case
            .heaps
            .iter()
            .map(|(heap, cnt)| PacketGenerator::new(heap, *cnt, case.max_packet_size))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        Ok(GroupGenerator::new(generators, mode_of(case)))
    }

    fn packets_by_bytes(case: &Case) -> Result<Vec<Packet>, String> {
        let mut group = group_of(case)?;
        let mut packets = Vec::new();
        let mut out = Vec::new();
        while let Some(index) = group.next_packet_bytes(&mut out) {
            packets.push(Packet::of(index, &out));
            out.clear();
        }
        assert!(group.is_done());
        Ok(packets)
    }

    fn packets_by_parts(case: &Case) -> Result<Vec<Packet>, String> {
        let mut group = group_of(case)?;
        let mut packets = Vec::new();
        let mut parts = PacketParts::new();
        while let Some(index) = group.next_packet(&mut parts) {
            let bytes: Vec<u8> = group.slices(index, &parts).flatten().copied().collect();
            packets.push(Packet::of(index, &bytes));
        }
        Ok(packets)
    }

    fn check_groups(cases: &[Case]) -> usize {
        let mut checked = 0;
        for case in cases.iter().filter(|c| c.mode != "single") {
            let want = match &case.error {
                Some(message) => Err(message.clone()),
                None => Ok(case.packets.clone()),
            };
            assert_eq!(packets_by_bytes(case), want, "case {} (bytes)", case.name);
            assert_eq!(packets_by_parts(case), want, "case {} (parts)", case.name);
            checked += 1;
        }
        checked
    }

    #[test]
    fn catalogue_groups_match_spead2() {
        let cases = vectors::parse(vectors::CATALOGUE);
        assert_eq!(check_groups(&cases), 8);
    }

    fn heap_with_payload(len: usize) -> SendHeap {
        let mut heap = SendHeap::new(Flavour::default());
        heap.add_item(0x1000, Arc::new(vec![1u8; len]), false);
        heap
    }

    /// Packet counts at 1472 bytes: 1, 3 and 2 packets.
    fn three_heaps(mode: GroupMode) -> GroupGenerator {
        let generators = [100, 4000, 2000]
            .iter()
            .enumerate()
            .map(|(i, &len)| PacketGenerator::new(&heap_with_payload(len), i as u64, 1472))
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        GroupGenerator::new(generators, mode)
    }

    fn order(mut group: GroupGenerator) -> Vec<usize> {
        let mut out = Vec::new();
        let mut order = Vec::new();
        while let Some(index) = group.next_packet_bytes(&mut out) {
            order.push(index);
        }
        order
    }

    #[test]
    fn round_robin_drops_finished_heaps_from_the_rotation() {
        assert_eq!(
            order(three_heaps(GroupMode::RoundRobin)),
            [0, 1, 2, 1, 2, 1]
        );
    }

    #[test]
    fn serial_sends_heaps_whole() {
        assert_eq!(order(three_heaps(GroupMode::Serial)), [0, 1, 1, 1, 2, 2]);
    }

    #[test]
    fn an_empty_group_is_done_at_once() {
        let mut group = GroupGenerator::new(Vec::new(), GroupMode::RoundRobin);
        assert!(group.is_empty());
        assert!(group.is_done());
        assert_eq!(group.next_packet(&mut PacketParts::new()), None);
    }

    /// Differential check of groups against a random set (see the single-heap variant).
    #[test]
    #[ignore = "needs SEND_VECTORS=<file from tests/peer/send_vectors.py --random>"]
    fn random_groups_match_spead2() {
        let path = std::env::var("SEND_VECTORS").expect("SEND_VECTORS");
        let cases = vectors::parse(&std::fs::read_to_string(path).unwrap());
        assert!(check_groups(&cases) > 0);
    }
}
