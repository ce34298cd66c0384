//! TCP writer: packets back to back on one connection (the receiver frames them by their
//! PAYLOAD_LENGTH), a whole batch per `sendmsg` with iovecs into the items.

use std::io::{self, IoSlice};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::{clone_error, set_send_buffer, wait_writable, OutPacket, Writer, WriterError};

/// `spead2.send.TcpStream.DEFAULT_BUFFER_SIZE`.
pub const DEFAULT_BUFFER_SIZE: usize = 212_992;

/// Most iovecs per `sendmsg` (Linux UIO_MAXIOV).
const MAX_IOV: usize = 1024;

pub struct TcpWriter {
    socket: Socket,
}

impl TcpWriter {
    /// Connects (blocking) to `endpoint`, from `interface_address` if given.
    pub fn connect(
        endpoint: SocketAddr,
        buffer_size: usize,
        interface_address: Option<IpAddr>,
    ) -> Result<TcpWriter, WriterError> {
        let socket = Socket::new(
            Domain::for_address(endpoint),
            Type::STREAM,
            Some(Protocol::TCP),
        )
        .map_err(WriterError::io("socket"))?;
        set_send_buffer(&socket, buffer_size).map_err(WriterError::io("set_option"))?;
        if let Some(address) = interface_address {
            socket
                .bind(&SockAddr::from(SocketAddr::new(address, 0)))
                .map_err(WriterError::io("bind"))?;
        }
        socket
            .connect(&SockAddr::from(endpoint))
            .map_err(WriterError::io("connect"))?;
        Ok(Self::with_socket(socket))
    }

    /// Sends on an existing (connected) socket; the caller passes a duplicate. Its
    /// options and blocking mode are left alone.
    pub fn from_socket(socket: OwnedFd) -> TcpWriter {
        Self::with_socket(Socket::from(socket))
    }

    fn with_socket(socket: Socket) -> TcpWriter {
        // Batches are written whole, so Nagle would only delay the tail of a heap.
        if let Err(e) = socket.set_nodelay(true) {
            log::debug!("could not set TCP_NODELAY: {e}");
        }
        TcpWriter { socket }
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket
            .local_addr()?
            .as_socket()
            .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))
    }

    /// Writes all of `slices`; on failure returns the error and how many bytes went out.
    fn write_all(&self, mut slices: &mut [IoSlice<'_>]) -> Result<(), (usize, io::Error)> {
        let mut sent = 0;
        IoSlice::advance_slices(&mut slices, 0);
        while !slices.is_empty() {
            let chunk = &slices[..slices.len().min(MAX_IOV)];
            match self
                .socket
                .send_vectored_with_flags(chunk, libc::MSG_NOSIGNAL)
            {
                Ok(0) => return Err((sent, io::Error::from(io::ErrorKind::WriteZero))),
                Ok(n) => {
                    sent += n;
                    IoSlice::advance_slices(&mut slices, n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    wait_writable(self.socket.as_raw_fd()).map_err(|e| (sent, e))?;
                }
                Err(e) => return Err((sent, e)),
            }
        }
        Ok(())
    }
}

impl Writer for TcpWriter {
    fn num_substreams(&self) -> usize {
        1
    }

    fn write(&mut self, packets: &[OutPacket<'_>], errors: &mut Vec<(usize, io::Error)>) {
        let mut slices: Vec<IoSlice<'_>> = packets
            .iter()
            .flat_map(|p| p.slices.iter().copied())
            .collect();
        if let Err((sent, error)) = self.write_all(&mut slices) {
            log::debug!("TCP send failed: {error}");
            // Every packet not entirely written has failed (the stream is now broken).
            let mut end = 0;
            for (index, packet) in packets.iter().enumerate() {
                end += packet.len();
                if end > sent {
                    errors.push((index, clone_error(&error)));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::{TcpListener, TcpStream};

    fn packet<'a>(slices: &'a [IoSlice<'a>]) -> OutPacket<'a> {
        OutPacket {
            slices,
            substream: 0,
        }
    }

    #[test]
    fn writes_packets_back_to_back() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut w = TcpWriter::connect(
            listener.local_addr().unwrap(),
            DEFAULT_BUFFER_SIZE,
            Some("127.0.0.1".parse().unwrap()),
        )
        .unwrap();
        let (mut conn, peer) = listener.accept().unwrap();
        assert_eq!(peer, w.local_addr().unwrap());
        // Enough data that the kernel takes it in several partial writes.
        let big = vec![3u8; 4 << 20];
        let a = [IoSlice::new(b"ab"), IoSlice::new(b""), IoSlice::new(b"cd")];
        let b = [IoSlice::new(&big)];
        let c = [IoSlice::new(b"ef")];
        let reader = std::thread::spawn(move || {
            let mut all = Vec::new();
            conn.read_to_end(&mut all).unwrap();
            all
        });
        let mut errors = Vec::new();
        w.write(&[packet(&a), packet(&b), packet(&c)], &mut errors);
        assert!(errors.is_empty());
        drop(w);
        let all = reader.join().unwrap();
        assert_eq!(all.len(), 4 + (4 << 20) + 2);
        assert_eq!(&all[..4], b"abcd");
        assert!(all[4..all.len() - 2].iter().all(|&x| x == 3));
        assert_eq!(&all[all.len() - 2..], b"ef");
    }

    #[test]
    fn refused_connection_is_an_error() {
        // Bind then drop a listener to find a port nobody listens on.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        match TcpWriter::connect(port, DEFAULT_BUFFER_SIZE, None) {
            Err(WriterError::Io { context, error }) => {
                assert_eq!(context, "connect");
                assert_eq!(error.raw_os_error(), Some(libc::ECONNREFUSED));
            }
            _ => panic!("expected ECONNREFUSED"),
        }
    }

    #[test]
    fn broken_connection_fails_every_packet() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (conn, _) = listener.accept().unwrap();
        drop(conn);
        let mut w = TcpWriter::from_socket(OwnedFd::from(client));
        let data = vec![0u8; 1 << 16];
        let slices = [IoSlice::new(&data)];
        let packets = [packet(&slices), packet(&slices)];
        // The first write may still be accepted before the peer's RST arrives.
        let mut errors = Vec::new();
        for _ in 0..100 {
            w.write(&packets, &mut errors);
            if !errors.is_empty() {
                break;
            }
        }
        assert!(!errors.is_empty());
        let codes: Vec<_> = errors.iter().map(|(_, e)| e.raw_os_error()).collect();
        assert!(codes
            .iter()
            .all(|c| *c == Some(libc::EPIPE) || *c == Some(libc::ECONNRESET)));
        assert_eq!(errors.last().unwrap().0, 1);
    }
}
