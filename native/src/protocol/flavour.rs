//! SPEAD flavours: SPEAD-64-XX, the only family spead2 speaks.

use std::fmt;

use super::ids::BUG_COMPAT_ALL;

/// A SPEAD-64-XX flavour: how the 64-bit item pointer splits into ID and address.
///
/// Equality ignores version and item-pointer width because both are fixed (4 and 64).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Flavour {
    heap_address_bits: u32,
    bug_compat: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FlavourError {
    Version(i64),
    ItemPointerBits(i64),
    HeapAddressBits(i64),
    BugCompat(i64),
}

impl fmt::Display for FlavourError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Version(v) => write!(f, "version is not supported ({v} != 4)"),
            Self::ItemPointerBits(v) => write!(f, "item_pointer_bits not supported ({v} != 64)"),
            Self::HeapAddressBits(v) => write!(
                f,
                "heap_address_bits is invalid ({v}): must be a multiple of 8 from 8 to 56"
            ),
            Self::BugCompat(v) => write!(f, "unknown bug_compat flags ({v:#x})"),
        }
    }
}

impl std::error::Error for FlavourError {}

impl Default for Flavour {
    /// SPEAD-64-40 with no bug compatibility, as `spead2.Flavour()`.
    fn default() -> Self {
        Flavour {
            heap_address_bits: 40,
            bug_compat: 0,
        }
    }
}

impl Flavour {
    pub const VERSION: u32 = 4;
    pub const ITEM_POINTER_BITS: u32 = 64;

    pub fn new(
        version: i64,
        item_pointer_bits: i64,
        heap_address_bits: i64,
        bug_compat: i64,
    ) -> Result<Self, FlavourError> {
        if version != 4 {
            return Err(FlavourError::Version(version));
        }
        if item_pointer_bits != 64 {
            return Err(FlavourError::ItemPointerBits(item_pointer_bits));
        }
        Self::with_address_bits(heap_address_bits, bug_compat)
    }

    /// A SPEAD-64-`heap_address_bits` flavour.
    pub fn with_address_bits(
        heap_address_bits: i64,
        bug_compat: i64,
    ) -> Result<Self, FlavourError> {
        if !(8..=56).contains(&heap_address_bits) || heap_address_bits % 8 != 0 {
            return Err(FlavourError::HeapAddressBits(heap_address_bits));
        }
        if bug_compat < 0 || bug_compat & !(BUG_COMPAT_ALL as i64) != 0 {
            return Err(FlavourError::BugCompat(bug_compat));
        }
        Ok(Flavour {
            heap_address_bits: heap_address_bits as u32,
            bug_compat: bug_compat as u32,
        })
    }

    pub fn heap_address_bits(&self) -> u32 {
        self.heap_address_bits
    }

    pub fn bug_compat(&self) -> u32 {
        self.bug_compat
    }

    /// Bytes in the address (or immediate value) part of an item pointer.
    pub fn heap_address_bytes(&self) -> usize {
        (self.heap_address_bits / 8) as usize
    }

    /// Bits available for an item ID (the immediate flag takes one bit).
    pub fn item_id_bits(&self) -> u32 {
        64 - 1 - self.heap_address_bits
    }

    /// Largest value an address, immediate or heap cnt can hold.
    pub fn address_mask(&self) -> u64 {
        mask(self.heap_address_bits)
    }

    pub fn id_mask(&self) -> u64 {
        mask(self.item_id_bits())
    }
}

/// The low `bits` bits set.
pub const fn mask(bits: u32) -> u64 {
    if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_every_multiple_of_eight() {
        for bits in (8..=56).step_by(8) {
            let f = Flavour::new(4, 64, bits, 0).unwrap();
            assert_eq!(f.heap_address_bits() as i64, bits);
            assert_eq!(f.item_id_bits() as i64, 63 - bits);
        }
    }

    #[test]
    fn rejects_bad_parameters() {
        assert_eq!(Flavour::new(3, 64, 40, 0), Err(FlavourError::Version(3)));
        assert_eq!(
            Flavour::new(4, 32, 40, 0),
            Err(FlavourError::ItemPointerBits(32))
        );
        for bits in [0, 4, 41, 64, -8] {
            assert_eq!(
                Flavour::new(4, 64, bits, 0),
                Err(FlavourError::HeapAddressBits(bits))
            );
        }
        assert_eq!(Flavour::new(4, 64, 40, 8), Err(FlavourError::BugCompat(8)));
    }

    #[test]
    fn equality_is_address_bits_and_bug_compat() {
        assert_eq!(Flavour::default(), Flavour::new(4, 64, 40, 0).unwrap());
        assert_ne!(Flavour::default(), Flavour::new(4, 64, 48, 0).unwrap());
        assert_ne!(Flavour::default(), Flavour::new(4, 64, 40, 1).unwrap());
        assert_eq!(Flavour::default().address_mask(), (1 << 40) - 1);
    }
}
