//! Route groups, one module each; merged in [`crate::router`].

pub mod accounts;
pub mod appointments;
pub mod clinics;
pub mod doctors;
pub mod internal;
pub mod notifications;
pub mod regions;
pub mod system;
