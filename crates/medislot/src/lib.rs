//! Wiring: configuration, the server's start-up and shutdown, demo data.

pub mod cli;
pub mod demo;
pub mod listener;
pub mod seed;
pub mod server;
