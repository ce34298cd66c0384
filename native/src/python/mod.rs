//! PyO3 bindings only.
