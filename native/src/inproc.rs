//! `spead2.InprocQueue`: an in-process packet transport shared by send and receive streams.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};

use crate::thread_pool::ReaderHandle;

pub enum Pop {
    Packet(Vec<u8>),
    Empty,
    Stopped,
}

#[derive(Default)]
struct State {
    packets: VecDeque<Vec<u8>>,
    stopped: bool,
    /// Readers to wake when a packet arrives or the queue stops.
    listeners: Vec<ReaderHandle>,
}

#[derive(Default)]
pub struct InprocQueue {
    state: Mutex<State>,
}

impl InprocQueue {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn notify(listeners: &[ReaderHandle]) {
        for l in listeners {
            l.notify();
        }
    }

    /// Queues one packet; fails once the queue is stopped.
    pub fn add_packet(&self, packet: Vec<u8>) -> Result<(), Stopped> {
        let mut state = self.lock();
        if state.stopped {
            return Err(Stopped);
        }
        state.packets.push_back(packet);
        let listeners = state.listeners.clone();
        drop(state);
        Self::notify(&listeners);
        Ok(())
    }

    /// Readers see the remaining packets, then the end of the stream.
    pub fn stop(&self) {
        let mut state = self.lock();
        state.stopped = true;
        let listeners = state.listeners.clone();
        drop(state);
        Self::notify(&listeners);
    }

    pub fn pop(&self) -> Pop {
        let mut state = self.lock();
        match state.packets.pop_front() {
            Some(p) => Pop::Packet(p),
            None if state.stopped => Pop::Stopped,
            None => Pop::Empty,
        }
    }

    pub fn subscribe(&self, reader: ReaderHandle) {
        self.lock().listeners.push(reader);
    }

    pub fn len(&self) -> usize {
        self.lock().packets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn is_stopped(&self) -> bool {
        self.lock().stopped
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stopped;

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("queue has been stopped")
    }
}

impl std::error::Error for Stopped {}
