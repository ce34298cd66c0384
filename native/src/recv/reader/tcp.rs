//! Reads SPEAD over TCP: listens, accepts one connection, and frames packets from the bytes.

use std::io::{self, Read};
use std::net::SocketAddr;
use std::sync::Arc;

use mio::Interest;
use socket2::{Domain, Protocol, Socket, Type};

use crate::recv::reader::udp::set_receive_buffer;
use crate::recv::stream::StreamShared;
use crate::recv::tcp_framer::TcpFramer;
use crate::thread_pool::{Context, Progress, Reader};

pub const DEFAULT_MAX_SIZE: usize = 65536;
pub const DEFAULT_BUFFER_SIZE: usize = 212992;
/// Reads per run before yielding to other readers on the worker.
const READS_PER_RUN: usize = 16;

/// A listening socket for `add_tcp_reader(port, ...)`.
pub fn listen(addr: SocketAddr, buffer_size: usize) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    // Set on the listener so the accepted connection inherits it.
    set_receive_buffer(&socket, buffer_size)?;
    socket.bind(&addr.into())?;
    socket.listen(1)?;
    Ok(socket)
}

enum Connection {
    Listening(mio::net::TcpListener),
    Connected(mio::net::TcpStream),
}

pub struct TcpReader {
    shared: Arc<StreamShared>,
    connection: Connection,
    framer: TcpFramer,
}

impl TcpReader {
    pub fn new(shared: Arc<StreamShared>, listener: Socket, max_size: usize) -> io::Result<Self> {
        listener.set_nonblocking(true)?;
        let listener = mio::net::TcpListener::from_std(listener.into());
        Ok(TcpReader {
            shared,
            connection: Connection::Listening(listener),
            framer: TcpFramer::new(max_size),
        })
    }

    /// spead2 takes a single connection: the listener closes once it is accepted.
    fn accept(&mut self, ctx: &Context<'_>) -> Progress {
        let Connection::Listening(listener) = &mut self.connection else {
            return Progress::More;
        };
        match listener.accept() {
            Ok((mut stream, _)) => {
                let _ = ctx.registry.deregister(listener);
                if let Err(e) = ctx
                    .registry
                    .register(&mut stream, ctx.token, Interest::READABLE)
                {
                    log::warn!("failed to watch accepted TCP connection: {e}");
                    return Progress::Done;
                }
                self.connection = Connection::Connected(stream);
                Progress::More
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Progress::Idle,
            Err(e) => {
                log::warn!("error accepting TCP connection: {e}");
                Progress::Idle
            }
        }
    }

    /// Reads once into the framer; returns false at end of stream.
    fn read_once(&mut self) -> io::Result<bool> {
        let Connection::Connected(stream) = &mut self.connection else {
            return Ok(true);
        };
        let n = stream.read(self.framer.spare_capacity())?;
        self.framer.commit(n);
        Ok(n > 0)
    }

    fn process_packets(&mut self, at_end: bool) -> bool {
        let mut batch = self.shared.batch();
        while let Some(packet) = self.framer.next_packet() {
            match packet {
                Ok(bytes) => {
                    batch.add_packet(bytes);
                }
                Err(reason) => batch.drop_packet(reason),
            }
            if batch.is_stopped() {
                return false;
            }
        }
        if at_end {
            if let Some(reason) = self.framer.finish() {
                log::info!("dropped partial packet at end of TCP stream");
                batch.drop_packet(reason);
            }
            batch.end_of_stream();
            return false;
        }
        true
    }
}

impl Reader for TcpReader {
    fn source(&mut self) -> Option<&mut dyn mio::event::Source> {
        match &mut self.connection {
            Connection::Listening(l) => Some(l),
            Connection::Connected(s) => Some(s),
        }
    }

    fn run(&mut self, ctx: &Context<'_>) -> Progress {
        if self.shared.is_stopping() {
            return Progress::Done;
        }
        if matches!(self.connection, Connection::Listening(_)) {
            return self.accept(ctx);
        }
        for _ in 0..READS_PER_RUN {
            let open = match self.read_once() {
                Ok(open) => open,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Progress::Idle,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // A reset peer ends the stream like a close; what was framed is kept.
                    log::warn!("error reading from TCP connection: {e}");
                    false
                }
            };
            if !self.process_packets(!open) {
                return Progress::Done;
            }
        }
        Progress::More
    }
}
