//! The error type of the capture file reader.

use std::fmt;
use std::io;

use super::filter::FilterError;

/// Why a capture file could not be opened or read further.
#[derive(Debug)]
pub enum PcapError {
    /// The operating system failed to open or read the file.
    Io(io::Error),
    /// The file is not a capture file we understand, or is corrupt or truncated.
    Format(String),
    /// The filter expression is malformed or uses unsupported features.
    Filter(FilterError),
}

impl fmt::Display for PcapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PcapError::Io(error) => write!(f, "{error}"),
            PcapError::Format(message) => write!(f, "{message}"),
            PcapError::Filter(error) => write!(f, "{error}"),
        }
    }
}

impl std::error::Error for PcapError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PcapError::Io(error) => Some(error),
            PcapError::Format(_) => None,
            PcapError::Filter(error) => Some(error),
        }
    }
}

impl From<io::Error> for PcapError {
    fn from(error: io::Error) -> PcapError {
        PcapError::Io(error)
    }
}

impl From<FilterError> for PcapError {
    fn from(error: FilterError) -> PcapError {
        PcapError::Filter(error)
    }
}
