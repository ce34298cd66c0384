//! A heap to send: items referencing caller-owned buffers (no copy until the socket).

use std::sync::Arc;

use crate::memory::SharedBytes;
use crate::protocol::descriptor::{DescriptorError, RawDescriptor};
use crate::protocol::ids::{CTRL_STREAM_START, CTRL_STREAM_STOP, DESCRIPTOR_ID, STREAM_CTRL_ID};
use crate::protocol::Flavour;

/// An item's value: inline in its pointer, or bytes in a buffer the heap keeps alive.
#[derive(Clone)]
pub enum ItemValue {
    /// Always sent as an immediate (stream control and similar).
    Immediate(u64),
    /// Sent as an immediate only if `allow_immediate` and it fits heap_address_bits/8 bytes.
    Bytes {
        data: SharedBytes,
        allow_immediate: bool,
    },
}

#[derive(Clone)]
pub struct SendItem {
    pub id: u64,
    pub value: ItemValue,
}

impl SendItem {
    /// The value bytes, empty for inline immediates.
    pub fn bytes(&self) -> &[u8] {
        match &self.value {
            ItemValue::Immediate(_) => &[],
            ItemValue::Bytes { data, .. } => (**data).as_ref(),
        }
    }
}

/// `spead2.send.Heap`: items in the order they were added.
#[derive(Clone)]
pub struct SendHeap {
    pub flavour: Flavour,
    pub items: Vec<SendItem>,
    /// Put every item pointer in every packet.
    pub repeat_pointers: bool,
}

impl SendHeap {
    pub fn new(flavour: Flavour) -> Self {
        SendHeap {
            flavour,
            items: Vec::new(),
            repeat_pointers: false,
        }
    }

    pub fn add_item(&mut self, id: u64, data: SharedBytes, allow_immediate: bool) {
        self.items.push(SendItem {
            id,
            value: ItemValue::Bytes {
                data,
                allow_immediate,
            },
        });
    }

    pub fn add_immediate(&mut self, id: u64, value: u64) {
        self.items.push(SendItem {
            id,
            value: ItemValue::Immediate(value),
        });
    }

    /// Adds a DESCRIPTOR_ID item whose value is the encoded descriptor.
    pub fn add_descriptor(&mut self, descriptor: &RawDescriptor) -> Result<(), DescriptorError> {
        let encoded = descriptor.emit(self.flavour)?;
        self.add_item(DESCRIPTOR_ID, Arc::new(encoded), false);
        Ok(())
    }

    pub fn add_start(&mut self) {
        self.add_immediate(STREAM_CTRL_ID, CTRL_STREAM_START);
    }

    pub fn add_end(&mut self) {
        self.add_immediate(STREAM_CTRL_ID, CTRL_STREAM_STOP);
    }
}
