//! Network arguments shared by the receive and send bindings: addresses and Python sockets.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

/// `host` (an address or a name; empty means any IPv4 address) and `port` as a socket address.
/// An unknown host is a RuntimeError, as in spead2.
pub fn resolve(host: &str, port: u16) -> PyResult<SocketAddr> {
    let host = if host.is_empty() { "0.0.0.0" } else { host };
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    (host, port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| PyRuntimeError::new_err(format!("resolve: host not found: {host}")))
}

/// A duplicate of a Python socket's fd, so the caller may close its socket object.
pub fn dup_socket_fd(sock: &Bound<'_, PyAny>) -> PyResult<OwnedFd> {
    let fd: RawFd = sock.call_method0("fileno")?.extract()?;
    // SAFETY: F_DUPFD_CLOEXEC on a caller-supplied fd returns a new fd (or -1) that we own.
    let new_fd = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
    if new_fd < 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    // SAFETY: new_fd is a fresh descriptor owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(new_fd) })
}
