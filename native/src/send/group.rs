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
