//! Well-known SPEAD item IDs and stream-control values (SPEAD rev 1, section 3.3).

pub const NULL_ID: u64 = 0x00;
pub const HEAP_CNT_ID: u64 = 0x01;
pub const HEAP_LENGTH_ID: u64 = 0x02;
pub const PAYLOAD_OFFSET_ID: u64 = 0x03;
pub const PAYLOAD_LENGTH_ID: u64 = 0x04;
pub const DESCRIPTOR_ID: u64 = 0x05;
pub const STREAM_CTRL_ID: u64 = 0x06;

pub const DESCRIPTOR_NAME_ID: u64 = 0x10;
pub const DESCRIPTOR_DESCRIPTION_ID: u64 = 0x11;
pub const DESCRIPTOR_SHAPE_ID: u64 = 0x12;
pub const DESCRIPTOR_FORMAT_ID: u64 = 0x13;
pub const DESCRIPTOR_ID_ID: u64 = 0x14;
pub const DESCRIPTOR_DTYPE_ID: u64 = 0x15;

pub const CTRL_STREAM_START: u64 = 0;
pub const CTRL_DESCRIPTOR_REISSUE: u64 = 1;
pub const CTRL_STREAM_STOP: u64 = 2;
pub const CTRL_DESCRIPTOR_UPDATE: u64 = 3;

/// Descriptor fields use SPEAD-64-40 widths whatever the flavour.
pub const BUG_COMPAT_DESCRIPTOR_WIDTHS: u32 = 1;
/// Variable dimensions in a shape are flagged with bit 1 rather than bit 0.
pub const BUG_COMPAT_SHAPE_BIT_1: u32 = 2;
/// Numpy data is sent in the opposite byte order to the one the header names.
pub const BUG_COMPAT_SWAP_ENDIAN: u32 = 4;
pub const BUG_COMPAT_PYSPEAD_0_5_2: u32 = 7;
pub const BUG_COMPAT_ALL: u32 = BUG_COMPAT_PYSPEAD_0_5_2;
