//! `spead2._spead2.send.Stream`: the native base of every send stream, and the writer
//! factories the Python transport classes (`UdpStream`, `TcpStream`, ...) build it from.
//!
//! Overloaded constructors are resolved in Python (spead2/send/_streams.py); each factory here
//! has one fixed signature.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::RawFd;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pyo3::exceptions::{PyOSError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

use super::config::{enum_value, group_mode, StreamConfig};
use super::heap::{Heap, HeapReference, HeapReferenceList};
use super::packet_generator::packet_error;
use crate::python::common::ThreadPool;
use crate::python::convert::{os_error, signed, unsigned, unsigned_usize};
use crate::python::detached::Detached;
use crate::python::inproc::InprocQueue;
use crate::python::net::{dup_socket_fd, resolve};
use crate::send::group::GroupMode;
use crate::send::heap::SendHeap;
use crate::send::stream::{
    HeapRef, RateMethod, SendError, Stream as CoreStream, StreamConfig as CoreConfig, StreamError,
};
use crate::send::writer::bytes::{BytesBuffer, BytesWriter};
use crate::send::writer::inproc::InprocWriter;
use crate::send::writer::tcp::TcpWriter;
use crate::send::writer::udp::{UdpMode, UdpWriter};
use crate::send::writer::{Writer as CoreWriter, WriterError};

/// How often a blocking send wakes to let Python handle signals (Ctrl-C).
const SIGNAL_CHECK: Duration = Duration::from_millis(100);

/// spead2's exception for each refusal: OSError with an errno, or ValueError.
fn send_error(e: SendError) -> PyErr {
    match (e, e.errno()) {
        (SendError::Packet(p), _) => packet_error(p),
        (_, Some(errno)) => PyOSError::new_err((errno, e.to_string())),
        (_, None) => PyRuntimeError::new_err(e.to_string()),
    }
}

fn io_error(e: std::io::Error) -> PyErr {
    os_error(e)
}

fn writer_error(e: WriterError) -> PyErr {
    match e {
        WriterError::Invalid(message) => PyValueError::new_err(message),
        WriterError::Io { error, .. } => io_error(error),
    }
}

fn stream_error(e: StreamError) -> PyErr {
    match e {
        StreamError::Io(e) => io_error(e),
        other => PyValueError::new_err(other.to_string()),
    }
}

/// A transport built by a factory, waiting to be handed to a stream (once).
#[pyclass(module = "spead2._spead2.send", name = "_Writer", frozen)]
pub struct Writer {
    inner: Mutex<Option<Box<dyn CoreWriter>>>,
}

impl Writer {
    fn wrap(writer: impl CoreWriter + 'static) -> Writer {
        Writer {
            inner: Mutex::new(Some(Box::new(writer))),
        }
    }
}

/// The bytes a `BytesStream` has produced.
#[pyclass(module = "spead2._spead2.send", name = "_BytesBuffer", frozen)]
pub struct PyBytesBuffer {
    inner: BytesBuffer,
}

#[pymethods]
impl PyBytesBuffer {
    fn getvalue<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.inner.getvalue())
    }
}

fn endpoints(list: Vec<(String, u16)>) -> PyResult<Vec<SocketAddr>> {
    list.iter()
        .map(|(host, port)| resolve(host, *port))
        .collect()
}

fn optional_address(address: &str) -> PyResult<Option<IpAddr>> {
    if address.is_empty() {
        return Ok(None);
    }
    address
        .parse()
        .map(Some)
        .map_err(|_| PyValueError::new_err(format!("invalid interface address {address}")))
}

/// UDP to `endpoints`; `mode` is "unicast", "multicast", "multicast_v4" or "multicast_v6".
#[pyfunction]
#[pyo3(signature = (endpoints_list, buffer_size, mode, ttl = 1, interface_address = String::new(), interface_index = 0))]
pub fn udp_writer(
    py: Python<'_>,
    endpoints_list: Vec<(String, u16)>,
    buffer_size: usize,
    mode: &str,
    ttl: u32,
    interface_address: String,
    interface_index: u32,
) -> PyResult<Writer> {
    let addrs = endpoints(endpoints_list)?;
    let mode = match mode {
        "unicast" => UdpMode::Unicast {
            interface_address: optional_address(&interface_address)?,
        },
        "multicast" => UdpMode::Multicast { ttl },
        "multicast_v4" => {
            let iface: Ipv4Addr = interface_address
                .parse()
                .map_err(|_| PyValueError::new_err("interface_address must be an IPv4 address"))?;
            UdpMode::MulticastV4 {
                ttl,
                interface_address: iface,
            }
        }
        "multicast_v6" => UdpMode::MulticastV6 {
            hops: ttl,
            interface_index,
        },
        other => return Err(PyValueError::new_err(format!("unknown UDP mode {other}"))),
    };
    let writer = py
        .detach(|| UdpWriter::new(&addrs, buffer_size, mode))
        .map_err(writer_error)?;
    Ok(Writer::wrap(writer))
}

/// UDP through an existing socket (duplicated).
#[pyfunction]
pub fn udp_socket_writer(
    socket: &Bound<'_, PyAny>,
    endpoints_list: Vec<(String, u16)>,
) -> PyResult<Writer> {
    let addrs = endpoints(endpoints_list)?;
    let writer = UdpWriter::from_socket(dup_socket_fd(socket)?, &addrs).map_err(writer_error)?;
    Ok(Writer::wrap(writer))
}

/// TCP: connects now (blocking, with the GIL released).
#[pyfunction]
pub fn tcp_connect_writer(
    py: Python<'_>,
    endpoints_list: Vec<(String, u16)>,
    buffer_size: usize,
    interface_address: &str,
) -> PyResult<Writer> {
    let addrs = endpoints(endpoints_list)?;
    if addrs.len() != 1 {
        return Err(PyValueError::new_err(
            "endpoints must contain exactly one element",
        ));
    }
    let iface = optional_address(interface_address)?;
    let endpoint = addrs[0];
    let writer = py
        .detach(|| TcpWriter::connect(endpoint, buffer_size, iface))
        .map_err(writer_error)?;
    Ok(Writer::wrap(writer))
}

/// TCP over an existing connected socket (duplicated).
#[pyfunction]
pub fn tcp_socket_writer(socket: &Bound<'_, PyAny>) -> PyResult<Writer> {
    Ok(Writer::wrap(TcpWriter::from_socket(dup_socket_fd(socket)?)))
}

/// Packets appended to memory; returns the writer and a handle to read the bytes.
#[pyfunction]
pub fn bytes_writer() -> (Writer, PyBytesBuffer) {
    let (writer, buffer) = BytesWriter::new();
    (Writer::wrap(writer), PyBytesBuffer { inner: buffer })
}

/// In-process queues, one per substream.
#[pyfunction]
pub fn inproc_writer(queues: Vec<PyRef<'_, InprocQueue>>) -> PyResult<Writer> {
    let queues = queues.iter().map(|q| q.inner.clone()).collect();
    Ok(Writer::wrap(
        InprocWriter::new(queues).map_err(writer_error)?,
    ))
}

fn core_config(config: &StreamConfig) -> CoreConfig {
    CoreConfig {
        max_packet_size: config.max_packet_size,
        rate: config.rate,
        burst_size: config.burst_size,
        max_heaps: config.max_heaps,
        burst_rate_ratio: config.burst_rate_ratio,
        rate_method: match config.rate_method {
            0 => RateMethod::Sw,
            1 => RateMethod::Hw,
            _ => RateMethod::Auto,
        },
    }
}

/// The base of every send stream (`spead2.send.Stream`).
#[pyclass(subclass, module = "spead2._spead2.send", name = "Stream")]
pub struct Stream {
    /// Dropping drains the queue and joins the sender thread.
    inner: Detached<Arc<CoreStream>>,
}

/// The group's heaps as the core wants them (snapshots of the Python heaps).
fn group_of(py: Python<'_>, heaps: &Bound<'_, PyAny>) -> PyResult<Vec<HeapRef>> {
    let refs: Vec<Py<HeapReference>> = if let Ok(list) = heaps.cast::<HeapReferenceList>() {
        list.get().refs.iter().map(|r| r.clone_ref(py)).collect()
    } else {
        heaps
            .extract()
            .map_err(|_| PyTypeError::new_err("heaps must be a list of HeapReference"))?
    };
    Ok(refs
        .iter()
        .map(|r| {
            let entry = r.borrow(py).entry(py);
            HeapRef {
                heap: entry.heap,
                cnt: entry.cnt,
                substream_index: entry.substream_index,
                rate: entry.rate,
            }
        })
        .collect())
}

/// `cnt` and `substream_index` with pybind11's conversion errors (TypeError when out of range).
fn heap_options(
    cnt: Option<&Bound<'_, PyAny>>,
    substream_index: Option<&Bound<'_, PyAny>>,
) -> PyResult<(i64, usize)> {
    let cnt = cnt.map_or(Ok(-1), |c| signed(c, "cnt"))?;
    let substream_index =
        substream_index.map_or(Ok(0), |s| unsigned_usize(s, "substream_index"))?;
    Ok((cnt, substream_index))
}

fn mode_of(mode: &Bound<'_, PyAny>) -> PyResult<GroupMode> {
    match enum_value(mode, group_mode(mode.py())?, "mode")? {
        0 => Ok(GroupMode::RoundRobin),
        _ => Ok(GroupMode::Serial),
    }
}

fn single(heap: &Bound<'_, Heap>, cnt: i64, substream_index: usize, rate: f64) -> Vec<HeapRef> {
    let snapshot: Arc<SendHeap> = Arc::new(heap.borrow().inner.clone());
    vec![HeapRef {
        heap: snapshot,
        cnt,
        substream_index,
        rate,
    }]
}

impl Stream {
    /// Sends and waits (GIL released: the group may be sent on this thread), waking to
    /// honour Ctrl-C.
    fn send_blocking(&self, py: Python<'_>, group: Vec<HeapRef>, mode: GroupMode) -> PyResult<u64> {
        let inner = Arc::clone(&self.inner);
        let ticket = py
            .detach(move || inner.send_heaps(&group, mode))
            .map_err(send_error)?;
        loop {
            let result = py.detach(|| ticket.wait_timeout(SIGNAL_CHECK));
            match result {
                Some(r) => return r.map_err(io_error),
                None => py.check_signals()?,
            }
        }
    }
}

#[pymethods]
impl Stream {
    #[new]
    fn new(
        py: Python<'_>,
        _thread_pool: PyRef<'_, ThreadPool>,
        writer: PyRef<'_, Writer>,
        config: PyRef<'_, StreamConfig>,
    ) -> PyResult<Self> {
        let writer = writer
            .inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .ok_or_else(|| PyRuntimeError::new_err("writer already used"))?;
        let config = core_config(&config);
        let inner = py
            .detach(|| CoreStream::new(config, writer))
            .map_err(stream_error)?;
        Ok(Stream {
            inner: Detached::new(Arc::new(inner)),
        })
    }

    /// Sends one heap and waits; returns the bytes sent.
    #[pyo3(signature = (heap, cnt = None, substream_index = None, rate = -1.0))]
    fn send_heap(
        &self,
        py: Python<'_>,
        heap: &Bound<'_, Heap>,
        cnt: Option<&Bound<'_, PyAny>>,
        substream_index: Option<&Bound<'_, PyAny>>,
        rate: f64,
    ) -> PyResult<u64> {
        let (cnt, substream_index) = heap_options(cnt, substream_index)?;
        let group = single(heap, cnt, substream_index, rate);
        self.send_blocking(py, group, GroupMode::Serial)
    }

    /// Sends a group of heaps (all or nothing) and waits; returns the bytes sent.
    fn send_heaps(
        &self,
        py: Python<'_>,
        heaps: &Bound<'_, PyAny>,
        mode: &Bound<'_, PyAny>,
    ) -> PyResult<u64> {
        let group = group_of(py, heaps)?;
        self.send_blocking(py, group, mode_of(mode)?)
    }

    /// Queues a group for the asyncio wrappers; returns its completion id.
    fn _send_heaps_async(
        &self,
        py: Python<'_>,
        heaps: &Bound<'_, PyAny>,
        mode: &Bound<'_, PyAny>,
    ) -> PyResult<u64> {
        let group = group_of(py, heaps)?;
        self.inner
            .send_heaps_async(&group, mode_of(mode)?)
            .map_err(send_error)
    }

    /// Queues one heap for the asyncio wrappers; returns its completion id.
    #[pyo3(signature = (heap, cnt = None, substream_index = None, rate = -1.0))]
    fn _send_heap_async(
        &self,
        heap: &Bound<'_, Heap>,
        cnt: Option<&Bound<'_, PyAny>>,
        substream_index: Option<&Bound<'_, PyAny>>,
        rate: f64,
    ) -> PyResult<u64> {
        let (cnt, substream_index) = heap_options(cnt, substream_index)?;
        let group = single(heap, cnt, substream_index, rate);
        self.inner
            .send_heaps_async(&group, GroupMode::Serial)
            .map_err(send_error)
    }

    /// Finished asynchronous groups: (id, bytes sent or the exception to raise).
    fn _take_completions<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let out = PyList::empty(py);
        for c in self.inner.take_completions() {
            let value: Py<PyAny> = match c.result {
                Ok(n) => n.into_pyobject(py)?.into_any().unbind(),
                Err(e) => io_error(e).into_value(py).into_any(),
            };
            out.append((c.id, value))?;
        }
        Ok(out)
    }

    /// Readable while asynchronous completions are waiting.
    #[getter]
    fn fd(&self) -> RawFd {
        self.inner.completion_fd()
    }

    /// Heaps queued and not yet sent.
    #[getter]
    fn _active(&self) -> usize {
        self.inner.outstanding_heaps()
    }

    /// Automatic heap cnts continue from `next` in steps of `step`.
    fn set_cnt_sequence(&self, next: &Bound<'_, PyAny>, step: &Bound<'_, PyAny>) -> PyResult<()> {
        let (next, step) = (unsigned(next, "next")?, unsigned(step, "step")?);
        self.inner
            .set_cnt_sequence(next, step)
            .map_err(|e| PyValueError::new_err(e.to_string()))
    }

    #[getter]
    fn num_substreams(&self) -> usize {
        self.inner.num_substreams()
    }

    /// Blocks until everything queued has been sent.
    fn flush(&self, py: Python<'_>) -> PyResult<()> {
        loop {
            let inner = Arc::clone(&self.inner);
            if py.detach(move || inner.flush_timeout(SIGNAL_CHECK)) {
                return Ok(());
            }
            py.check_signals()?;
        }
    }
}
