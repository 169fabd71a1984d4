//! Route groups, one module each; merged in [`crate::router`].

pub mod accounts;
pub mod appointments;
pub mod clinics;
pub mod doctors;
pub mod internal;
pub mod notifications;
pub mod privacy;
pub mod regions;
pub mod system;
pub mod video;
pub mod visit_types;

/// Equal bytes, in a time that depends only on the lengths (secrets and tokens).
pub(crate) fn same_secret(given: &[u8], secret: &[u8]) -> bool {
    given.len() == secret.len() && given.iter().zip(secret).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}
