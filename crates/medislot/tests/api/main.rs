//! Black-box tests of the medislot binary: one test binary, one module per area.

mod helpers;

mod accounts;
mod backup;
mod booking;
mod clinic_rules;
mod fhir;
mod hardening;
mod invitations;
mod notifications;
mod openapi_conformance;
mod privacy;
mod promises;
mod seed;
mod upgrade;
mod validation;
mod video;
mod visit_types;
