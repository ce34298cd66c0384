//! `spead2._spead2.recv._Stream`: the native base of `spead2.recv.Stream`.

use std::net::{IpAddr, SocketAddr};
use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::Duration;

use pyo3::exceptions::{PyRuntimeError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple};
use socket2::Socket;

use super::config::{RingStreamConfig, StreamConfig};
use super::heap::wrap_heap;
use super::stats::StreamStats;
use crate::python::buffer::RawBuffer;
use crate::python::common::{Empty, Stopped, ThreadPool};
use crate::python::convert::{port, unsigned_usize};
use crate::python::detached::Detached;
use crate::python::inproc::InprocQueue;
use crate::python::net::{dup_socket_fd, resolve};
use crate::recv::reader::{
    buffer::BufferReader, inproc::InprocReader, pcap_file::PcapFileReader, tcp, udp,
};
use crate::recv::ringbuffer::PopError;
use crate::recv::stream::{AddReaderError, Stream as CoreStream};
use crate::thread_pool::Reader;

/// How often a blocking `get` wakes to let Python handle signals (Ctrl-C).
const SIGNAL_CHECK: Duration = Duration::from_millis(100);

#[pyclass(subclass, module = "spead2._spead2.recv", name = "_Stream")]
pub struct PyStream {
    inner: Detached<Arc<CoreStream>>,
    config: Py<StreamConfig>,
    ring_config: Py<RingStreamConfig>,
}

/// `Stream.Ringbuffer`: read-only views of the stream's ring.
#[pyclass(module = "spead2._spead2.recv", name = "Ringbuffer", frozen)]
pub struct Ringbuffer {
    stream: Arc<CoreStream>,
}

#[pymethods]
impl Ringbuffer {
    fn size(&self) -> usize {
        self.stream.ring().size()
    }

    fn capacity(&self) -> usize {
        self.stream.ring().capacity()
    }
}

fn reader_error(e: AddReaderError) -> PyErr {
    match e {
        AddReaderError::AlreadyStarted => {
            PyRuntimeError::new_err("cannot add readers after start() with explicit_start")
        }
    }
}

/// A duplicate of a Python socket, so the caller may close its own.
fn dup_socket(sock: &Bound<'_, PyAny>) -> PyResult<Socket> {
    Ok(Socket::from(dup_socket_fd(sock)?))
}

/// Socket set-up failures: spead2 raises RuntimeError for bind errors and the like.
fn io_error(e: std::io::Error) -> PyErr {
    PyRuntimeError::new_err(e.to_string())
}

/// Positional-or-keyword argument lookup for the overloaded reader methods.
struct Args<'a, 'py> {
    args: &'a Bound<'py, PyTuple>,
    kwargs: Option<&'a Bound<'py, PyDict>>,
}

impl<'py> Args<'_, 'py> {
    fn get(&self, index: usize, name: &str) -> PyResult<Option<Bound<'py, PyAny>>> {
        if index < self.args.len() {
            return Ok(Some(self.args.get_item(index)?));
        }
        match self.kwargs {
            Some(kw) => kw.get_item(name),
            None => Ok(None),
        }
    }

    fn usize_or(&self, index: usize, name: &str, default: usize) -> PyResult<usize> {
        self.get(index, name)?
            .map_or(Ok(default), |v| unsigned_usize(&v, name))
    }

    fn string_or(&self, index: usize, name: &str, default: &str) -> PyResult<String> {
        self.get(index, name)?
            .map_or(Ok(default.to_owned()), |v| v.extract())
    }

    fn has_kw(&self, name: &str) -> bool {
        self.kwargs
            .is_some_and(|kw| kw.contains(name).unwrap_or(false))
    }
}

impl PyStream {
    fn add(&self, reader: Box<dyn Reader>) -> PyResult<()> {
        self.inner.add_reader(reader).map_err(reader_error)
    }

    fn add_udp_socket(&self, socket: Socket, max_size: usize) -> PyResult<()> {
        let reader =
            udp::UdpReader::new(self.inner.shared().clone(), socket, max_size).map_err(io_error)?;
        self.add(Box::new(reader))
    }

    fn add_udp_multicast(&self, py: Python<'_>, group: &str, a: &Args<'_, '_>) -> PyResult<()> {
        let port = port(
            &a.get(1, "port")?
                .ok_or_else(|| PyTypeError::new_err("port is required"))?,
        )?;
        let max_size = a.usize_or(2, "max_size", udp::DEFAULT_MAX_SIZE)?;
        let buffer_size = a.usize_or(3, "buffer_size", udp::DEFAULT_BUFFER_SIZE)?;
        let group_ip: IpAddr = group
            .parse()
            .map_err(|_| PyRuntimeError::new_err(format!("resolve: host not found: {group}")))?;
        let fifth = a.get(
            4,
            if a.has_kw("interface_index") {
                "interface_index"
            } else {
                "interface_address"
            },
        )?;
        let multicast = match (&group_ip, fifth) {
            (IpAddr::V4(_), None) => Some(udp::Multicast::V4 {
                interface: std::net::Ipv4Addr::UNSPECIFIED,
            }),
            (IpAddr::V6(_), None) => Some(udp::Multicast::V6 { interface_index: 0 }),
            (_, Some(v)) if v.is_instance_of::<PyString>() => {
                let iface: std::net::Ipv4Addr = v.extract::<String>()?.parse().map_err(|_| {
                    PyRuntimeError::new_err("resolve: host not found: interface_address")
                })?;
                Some(udp::Multicast::V4 { interface: iface })
            }
            (_, Some(v)) => Some(udp::Multicast::V6 {
                interface_index: unsigned_usize(&v, "interface_index")? as u32,
            }),
        };
        let multicast = if group_ip.is_multicast() {
            multicast
        } else {
            None
        };
        let addr = SocketAddr::new(group_ip, port);
        let socket = py
            .detach(|| udp::bind(addr, buffer_size, multicast))
            .map_err(io_error)?;
        self.add_udp_socket(socket, max_size)
    }
}

#[pymethods]
impl PyStream {
    #[new]
    #[pyo3(signature = (thread_pool, config = None, ring_config = None))]
    fn new(
        py: Python<'_>,
        thread_pool: PyRef<'_, ThreadPool>,
        config: Option<Py<StreamConfig>>,
        ring_config: Option<Py<RingStreamConfig>>,
    ) -> PyResult<Self> {
        let config = match config {
            Some(c) => c,
            None => StreamConfig::py_default(py)?,
        };
        let ring_config = match ring_config {
            Some(c) => c,
            None => Py::new(py, RingStreamConfig::default())?,
        };
        // The stream keeps copies: changing the caller's objects later has no effect.
        let (core, config) = {
            let c = config.borrow(py);
            let copy = StreamConfig {
                core: c.core.clone(),
                memory_allocator: c.memory_allocator.clone_ref(py),
            };
            (c.core.clone(), Py::new(py, copy)?)
        };
        let ring = ring_config.borrow(py).core;
        let ring_config = Py::new(py, RingStreamConfig { core: ring })?;
        let inner =
            CoreStream::new(Arc::clone(&thread_pool.inner), core, ring).map_err(io_error)?;
        Ok(PyStream {
            inner: Detached::new(Arc::new(inner)),
            config,
            ring_config,
        })
    }

    #[classattr]
    const DEFAULT_UDP_MAX_SIZE: usize = udp::DEFAULT_MAX_SIZE;
    #[classattr]
    const DEFAULT_UDP_BUFFER_SIZE: usize = udp::DEFAULT_BUFFER_SIZE;
    #[classattr]
    const DEFAULT_TCP_MAX_SIZE: usize = tcp::DEFAULT_MAX_SIZE;
    #[classattr]
    const DEFAULT_TCP_BUFFER_SIZE: usize = tcp::DEFAULT_BUFFER_SIZE;

    #[classattr]
    #[pyo3(name = "Ringbuffer")]
    fn ringbuffer_class(py: Python<'_>) -> Py<PyAny> {
        py.get_type::<Ringbuffer>().into_any().unbind()
    }

    /// Reads packets laid back to back in `buffer`; the stream ends where they end.
    fn add_buffer_reader(&self, buffer: &Bound<'_, PyAny>) -> PyResult<()> {
        let data = Arc::new(RawBuffer::get(buffer)?);
        self.add(Box::new(BufferReader::new(
            self.inner.shared().clone(),
            data,
        )))
    }

    /// `(port, max_size, buffer_size, bind_hostname)`, `(socket, max_size)`, or multicast
    /// `(group, port, max_size, buffer_size, interface_address | interface_index)`.
    #[pyo3(signature = (*args, **kwargs))]
    fn add_udp_reader(
        &self,
        py: Python<'_>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<()> {
        let a = Args { args, kwargs };
        let first = a
            .get(0, "port")?
            .or(a.get(0, "socket")?)
            .or(a.get(0, "multicast_group")?)
            .ok_or_else(|| {
                PyTypeError::new_err("add_udp_reader(): missing port, socket or multicast_group")
            })?;
        if let Ok(group) = first.cast::<PyString>() {
            let group = group.to_str()?.to_owned();
            return self.add_udp_multicast(py, &group, &a);
        }
        if first.hasattr("fileno")? && !first.is_instance_of::<pyo3::types::PyInt>() {
            let max_size = a.usize_or(1, "max_size", udp::DEFAULT_MAX_SIZE)?;
            let socket = dup_socket(&first)?;
            return self.add_udp_socket(socket, max_size);
        }
        let port = port(&first)?;
        let max_size = a.usize_or(1, "max_size", udp::DEFAULT_MAX_SIZE)?;
        let buffer_size = a.usize_or(2, "buffer_size", udp::DEFAULT_BUFFER_SIZE)?;
        let host = a.string_or(3, "bind_hostname", "")?;
        let addr = resolve(&host, port)?;
        let socket = py
            .detach(|| udp::bind(addr, buffer_size, None))
            .map_err(io_error)?;
        self.add_udp_socket(socket, max_size)
    }

    /// `(port, max_size, buffer_size, bind_hostname)` or `(acceptor, max_size)`.
    #[pyo3(signature = (*args, **kwargs))]
    fn add_tcp_reader(
        &self,
        py: Python<'_>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<()> {
        let a = Args { args, kwargs };
        let first = a
            .get(0, "port")?
            .or(a.get(0, "acceptor")?)
            .ok_or_else(|| PyTypeError::new_err("add_tcp_reader(): missing port or acceptor"))?;
        let max_size = a.usize_or(1, "max_size", tcp::DEFAULT_MAX_SIZE)?;
        let listener = if first.hasattr("fileno")? && !first.is_instance_of::<pyo3::types::PyInt>()
        {
            dup_socket(&first)?
        } else {
            let port = port(&first)?;
            let buffer_size = a.usize_or(2, "buffer_size", tcp::DEFAULT_BUFFER_SIZE)?;
            let host = a.string_or(3, "bind_hostname", "")?;
            let addr = resolve(&host, port)?;
            py.detach(|| tcp::listen(addr, buffer_size))
                .map_err(io_error)?
        };
        let reader = tcp::TcpReader::new(self.inner.shared().clone(), listener, max_size)
            .map_err(io_error)?;
        self.add(Box::new(reader))
    }

    /// Replays the UDP payloads of a pcap or pcapng file that match `filter`.
    #[pyo3(signature = (filename, filter = ""))]
    fn add_udp_pcap_file_reader(
        &self,
        py: Python<'_>,
        filename: &str,
        filter: &str,
    ) -> PyResult<()> {
        let shared = self.inner.shared().clone();
        // spead2 raises RuntimeError for a missing file, a bad format and a bad filter alike.
        let reader = py
            .detach(|| PcapFileReader::open(shared, filename, filter))
            .map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
        self.add(Box::new(reader))
    }

    fn add_inproc_reader(&self, queue: PyRef<'_, InprocQueue>) -> PyResult<()> {
        let reader = InprocReader::new(self.inner.shared().clone(), queue.inner.clone());
        self.add(Box::new(reader))
    }

    /// Starts readers held back by `explicit_start`.
    fn start(&self, py: Python<'_>) {
        let inner = Arc::clone(&self.inner);
        py.detach(move || inner.start());
    }

    /// Stops receiving; heaps already in the ring can still be read.
    fn stop(&self, py: Python<'_>) {
        let inner = Arc::clone(&self.inner);
        py.detach(move || inner.stop());
    }

    /// Blocks for the next heap; raises `spead2.Stopped` once the stream has ended.
    fn get(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        loop {
            let inner = Arc::clone(&self.inner);
            match py.detach(move || inner.ring().pop_timeout(SIGNAL_CHECK)) {
                Ok(heap) => return wrap_heap(py, heap),
                Err(PopError::Empty) => py.check_signals()?,
                Err(PopError::Stopped) => {
                    return Err(Stopped::new_err("ring buffer has been stopped"))
                }
            }
        }
    }

    /// Returns the next heap if one is ready; raises `spead2.Empty` otherwise.
    fn get_nowait(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        match self.inner.ring().try_pop() {
            Ok(heap) => wrap_heap(py, heap),
            Err(PopError::Empty) => Err(Empty::new_err("ring buffer is empty")),
            Err(PopError::Stopped) => Err(Stopped::new_err("ring buffer has been stopped")),
        }
    }

    /// Readable while a heap is waiting or once the stream has stopped.
    #[getter]
    fn fd(&self) -> RawFd {
        self.inner.ring().fd()
    }

    #[getter]
    fn stats(&self) -> StreamStats {
        StreamStats::from_stats(self.inner.stats())
    }

    #[getter]
    fn config(&self, py: Python<'_>) -> Py<StreamConfig> {
        self.config.clone_ref(py)
    }

    #[getter]
    fn ring_config(&self, py: Python<'_>) -> Py<RingStreamConfig> {
        self.ring_config.clone_ref(py)
    }

    #[getter]
    fn ringbuffer(&self) -> Ringbuffer {
        Ringbuffer {
            stream: Arc::clone(&self.inner),
        }
    }

    /// Packets and heaps discarded, by reason (beyond spead2, which only logs them).
    #[getter]
    fn drop_counts<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let out = PyDict::new(py);
        for (reason, n) in self.inner.drop_counts().iter() {
            out.set_item(reason.name(), n)?;
        }
        Ok(out)
    }
}
