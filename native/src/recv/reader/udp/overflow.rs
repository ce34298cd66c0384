//! Datagrams the kernel dropped because the socket's receive buffer was full. With
//! `SO_RXQ_OVFL` on, every received datagram carries the socket's drop counter so far (a
//! `u32` that wraps), so a reader that falls behind can count what it never saw.

use socket2::Socket;

use super::gro;
use crate::sockopt;

/// Turns the drop counter on; returns whether the kernel accepted it.
pub(super) fn enable(socket: &Socket) -> bool {
    let result = sockopt::set_int(socket, libc::SOL_SOCKET, libc::SO_RXQ_OVFL, 1);
    if let Err(e) = &result {
        log::debug!("SO_RXQ_OVFL not available ({e}); socket overflows are not counted");
    }
    result.is_ok()
}

/// Whether the socket reports its drop counter (as `bind` leaves it, or as the caller set).
pub(super) fn is_enabled(socket: &Socket) -> bool {
    matches!(sockopt::get_int(socket, libc::SOL_SOCKET, libc::SO_RXQ_OVFL), Ok(v) if v != 0)
}

/// The drop counter in the control data of one received datagram, if present.
pub(super) fn count(control: &[u8]) -> Option<u32> {
    let data = gro::find(control, libc::SOL_SOCKET, libc::SO_RXQ_OVFL)?;
    let bytes = data.get(..4)?;
    Some(u32::from_ne_bytes(bytes.try_into().ok()?))
}

/// Turns successive counter readings into the number of new drops.
#[derive(Default)]
pub(super) struct DropTracker {
    last: u32,
}

impl DropTracker {
    /// New drops since the previous reading. The counter starts at 0 with the socket, so
    /// the first reading counts everything dropped before it; it wraps at 2^32.
    pub fn advance(&mut self, reading: u32) -> u64 {
        let new = reading.wrapping_sub(self.last);
        self.last = reading;
        u64::from(new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recv::reader::udp::gro::tests::control;

    #[test]
    fn reads_the_counter_among_other_messages() {
        let gro_size = 1472i32.to_ne_bytes();
        let both = control(&[
            (libc::SOL_UDP, libc::UDP_GRO, &gro_size),
            (libc::SOL_SOCKET, libc::SO_RXQ_OVFL, &7u32.to_ne_bytes()),
        ]);
        assert_eq!(count(&both), Some(7));
        assert_eq!(gro::segment_size(&both), Some(1472));
        assert_eq!(
            count(&control(&[(libc::SOL_UDP, libc::UDP_GRO, &gro_size)])),
            None
        );
        assert_eq!(
            count(&control(&[(libc::SOL_SOCKET, libc::SO_RXQ_OVFL, &[1, 2])])),
            None
        );
    }

    #[test]
    fn tracker_counts_new_drops_across_wraparound() {
        let mut t = DropTracker::default();
        assert_eq!(t.advance(0), 0);
        assert_eq!(t.advance(5), 5);
        assert_eq!(t.advance(5), 0);
        t.advance(u32::MAX - 1);
        assert_eq!(t.advance(2), 4);
    }
}
