//! Slot ids: deterministic and opaque, derived from the doctor, the UTC start
//! and, for a doctor with visit types, the visit type's code, so every node in
//! every region computes the same id for the same slot.

use crate::{error::Invalid, ids::DoctorId};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use jiff::Timestamp;
use std::fmt;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SlotId {
    pub doctor: DoctorId,
    pub start: Timestamp,
    /// The visit type's code; none for a slot of the schedule itself.
    pub visit: Option<String>,
}

const PREFIX: &str = "slot_";

impl SlotId {
    pub fn new(doctor: DoctorId, start: Timestamp) -> Self {
        Self { doctor, start, visit: None }
    }

    /// The slot of one visit type (`None`: the schedule's own slot).
    pub fn of_visit(doctor: DoctorId, start: Timestamp, visit: Option<&str>) -> Self {
        Self { doctor, start, visit: visit.map(str::to_string) }
    }

    pub fn encode(&self) -> String {
        let mut bytes = Vec::with_capacity(24 + self.visit.as_ref().map_or(0, String::len));
        bytes.extend_from_slice(self.doctor.0.as_bytes());
        bytes.extend_from_slice(&self.start.as_second().to_be_bytes());
        if let Some(code) = &self.visit {
            bytes.extend_from_slice(code.as_bytes());
        }
        format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
    }

    pub fn parse(field: &str, raw: &str) -> Result<Self, Invalid> {
        let bad = || Invalid::field(field, "is not a slot id; take one from GET /api/v1/doctors/{id}/slots");
        let body = raw.strip_prefix(PREFIX).ok_or_else(bad)?;
        let bytes = URL_SAFE_NO_PAD.decode(body).map_err(|_| bad())?;
        if bytes.len() < 24 {
            return Err(bad());
        }
        let visit = match &bytes[24..] {
            [] => None,
            code => {
                let code = std::str::from_utf8(code).map_err(|_| bad())?;
                let ok = (2..=40).contains(&code.len())
                    && code.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
                    && !code.starts_with('-');
                if !ok {
                    return Err(bad());
                }
                Some(code.to_string())
            }
        };
        let doctor = Uuid::from_slice(&bytes[..16]).map_err(|_| bad())?;
        let mut secs = [0u8; 8];
        secs.copy_from_slice(&bytes[16..24]);
        let start = Timestamp::from_second(i64::from_be_bytes(secs)).map_err(|_| bad())?;
        // A start the API would never accept is no slot (and no arithmetic on it may overflow).
        crate::instant::check(field, start).map_err(|_| bad())?;
        Ok(Self { doctor: DoctorId(doctor), start, visit })
    }
}

impl fmt::Display for SlotId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.encode())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_is_deterministic() {
        let d = DoctorId("0190f7a4-1111-7000-8000-000000000001".parse().unwrap());
        let t: Timestamp = "2025-03-20T09:00:00Z".parse().unwrap();
        let a = SlotId::new(d, t);
        assert_eq!(a.encode(), SlotId::new(d, t).encode());
        assert_eq!(SlotId::parse("slot_id", &a.encode()).unwrap(), a);
        assert_ne!(a.encode(), SlotId::new(d, t + jiff::SignedDuration::from_mins(30)).encode());
        let first = SlotId::of_visit(d, t, Some("first-consultation"));
        assert_ne!(first.encode(), a.encode());
        assert_eq!(SlotId::parse("slot_id", &first.encode()).unwrap(), first);
        // As the OpenAPI document describes them: 32 to 86 URL-safe characters.
        let longest = SlotId::of_visit(d, t, Some(&"a".repeat(40))).encode();
        assert_eq!((a.encode().len() - PREFIX.len(), longest.len() - PREFIX.len()), (32, 86));
    }

    proptest::proptest! {
        /// Any bytes make an answer, never a panic; an accepted id has an in-range start.
        #[test]
        fn any_bytes_are_answered(
            doctor in proptest::array::uniform16(0u8..),
            secs in proptest::num::i64::ANY,
            tail in proptest::collection::vec(proptest::num::u8::ANY, 0..70),
        ) {
            let mut bytes = doctor.to_vec();
            bytes.extend_from_slice(&secs.to_be_bytes());
            bytes.extend_from_slice(&tail);
            let raw = format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
            if let Ok(id) = SlotId::parse("slot_id", &raw) {
                proptest::prop_assert!(crate::instant::check("t", id.start).is_ok());
                proptest::prop_assert_eq!(id.encode(), raw);
            }
        }
    }

    #[test]
    fn starts_near_the_time_librarys_limits_are_no_slot() {
        let d = DoctorId("0190f7a4-1111-7000-8000-000000000001".parse().unwrap());
        for secs in [253_402_207_200i64, -377_705_116_800, 7_258_118_400, 0] {
            let mut bytes = [0u8; 24];
            bytes[..16].copy_from_slice(d.0.as_bytes());
            bytes[16..].copy_from_slice(&secs.to_be_bytes());
            let raw = format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
            assert_eq!(SlotId::parse("slot_id", &raw).unwrap_err().0[0].field, "slot_id", "{secs}");
        }
    }

    #[test]
    fn garbage_is_refused_with_the_field_named() {
        for bad in ["", "slot_", "slot_!!!", "doc_123_2025-03-20T09:00", "slot_AAAA"] {
            assert_eq!(SlotId::parse("slot_id", bad).unwrap_err().0[0].field, "slot_id");
        }
    }
}
