//! Forwards the core's `log` records to Python's `logging` (logger "spead2").
//!
//! Worker threads never take the GIL: records go through a bounded queue to one thread that
//! does. Each call site is rate-limited so a flood of bad packets cannot flood the log.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use pyo3::prelude::*;

/// Records queued for Python before new ones are discarded.
const QUEUE_DEPTH: usize = 1024;
/// Messages per call site per window before suppression.
const BURST: u32 = 10;
const WINDOW: Duration = Duration::from_secs(1);

enum Record {
    Message(log::Level, String),
    Shutdown,
}

#[derive(Clone, Copy)]
struct Window {
    start: Instant,
    emitted: u32,
    suppressed: u64,
}

struct Forwarder {
    tx: SyncSender<Record>,
    limits: Mutex<HashMap<(&'static str, u32), Window>>,
    closed: AtomicBool,
}

static FORWARDER: OnceLock<Forwarder> = OnceLock::new();
static THREAD: Mutex<Option<JoinHandle<()>>> = Mutex::new(None);

impl Forwarder {
    /// Applies the per-call-site limit; returns the suppressed count to report, if allowed.
    fn admit(&self, site: (&'static str, u32)) -> Option<u64> {
        let now = Instant::now();
        let mut limits = self.limits.lock().unwrap_or_else(|e| e.into_inner());
        let w = limits.entry(site).or_insert(Window {
            start: now,
            emitted: 0,
            suppressed: 0,
        });
        if now.duration_since(w.start) >= WINDOW {
            w.start = now;
            w.emitted = 0;
        }
        if w.emitted >= BURST {
            w.suppressed += 1;
            return None;
        }
        w.emitted += 1;
        Some(std::mem::take(&mut w.suppressed))
    }
}

impl log::Log for Forwarder {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::Level::Info && !self.closed.load(Ordering::Relaxed)
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let site = (
            record.file_static().unwrap_or(""),
            record.line().unwrap_or(0),
        );
        let Some(suppressed) = self.admit(site) else {
            return;
        };
        let mut text = record.args().to_string();
        if suppressed > 0 {
            text.push_str(&format!(" ({suppressed} similar messages suppressed)"));
        }
        match self.tx.try_send(Record::Message(record.level(), text)) {
            Ok(()) | Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {}
        }
    }

    fn flush(&self) {}
}

fn method_for(level: log::Level) -> &'static str {
    match level {
        log::Level::Error => "error",
        log::Level::Warn => "warning",
        log::Level::Info => "info",
        log::Level::Debug | log::Level::Trace => "debug",
    }
}

fn run(rx: Receiver<Record>, logger: Py<PyAny>) {
    while let Ok(Record::Message(level, text)) = rx.recv() {
        let logged = Python::try_attach(|py| {
            if let Err(e) = logger.call_method1(py, method_for(level), (text,)) {
                e.print(py);
            }
        });
        if logged.is_none() {
            break; // the interpreter is shutting down
        }
    }
    // `logger` cannot be released without the interpreter once it is gone.
    std::mem::forget(logger);
}

/// Installs the forwarder once per process.
pub fn install(py: Python<'_>) -> PyResult<()> {
    if FORWARDER.get().is_some() {
        return Ok(());
    }
    let logger = py
        .import("logging")?
        .call_method1("getLogger", ("spead2",))?
        .unbind();
    let (tx, rx) = sync_channel(QUEUE_DEPTH);
    let forwarder = Forwarder {
        tx,
        limits: Mutex::new(HashMap::new()),
        closed: AtomicBool::new(false),
    };
    if FORWARDER.set(forwarder).is_err() {
        return Ok(());
    }
    let thread = std::thread::Builder::new()
        .name("spead2-log".into())
        .spawn(move || run(rx, logger))
        .map_err(|e| pyo3::exceptions::PyRuntimeError::new_err(e.to_string()))?;
    *THREAD.lock().unwrap_or_else(|e| e.into_inner()) = Some(thread);
    if let Some(f) = FORWARDER.get() {
        if log::set_logger(f).is_ok() {
            log::set_max_level(log::LevelFilter::Info);
        }
    }
    let shutdown = pyo3::wrap_pyfunction!(shutdown, py)?;
    py.import("atexit")?.call_method1("register", (shutdown,))?;
    Ok(())
}

/// Stops forwarding at interpreter exit: the thread must not take the GIL after finalisation.
#[pyfunction]
fn shutdown(py: Python<'_>) {
    let Some(f) = FORWARDER.get() else { return };
    f.closed.store(true, Ordering::Relaxed);
    // Blocks while the queue is full, which is why the GIL is released around it.
    py.detach(|| {
        let _ = f.tx.send(Record::Shutdown);
        if let Some(t) = THREAD.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = t.join();
        }
    });
}
