//! tcp_framer
