//! Slot ids: deterministic and opaque, derived from the doctor and the UTC start,
//! so every node in every region computes the same id for the same slot.

use crate::{error::Invalid, ids::DoctorId};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use jiff::Timestamp;
use std::fmt;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SlotId {
    pub doctor: DoctorId,
    pub start: Timestamp,
}

const PREFIX: &str = "slot_";

impl SlotId {
    pub fn new(doctor: DoctorId, start: Timestamp) -> Self {
        Self { doctor, start }
    }

    pub fn encode(&self) -> String {
        let mut bytes = [0u8; 24];
        bytes[..16].copy_from_slice(self.doctor.0.as_bytes());
        bytes[16..].copy_from_slice(&self.start.as_second().to_be_bytes());
        format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
    }

    pub fn parse(field: &str, raw: &str) -> Result<Self, Invalid> {
        let bad = || Invalid::field(field, "is not a slot id; take one from GET /api/v1/doctors/{id}/slots");
        let body = raw.strip_prefix(PREFIX).ok_or_else(bad)?;
        let bytes = URL_SAFE_NO_PAD.decode(body).map_err(|_| bad())?;
        if bytes.len() != 24 {
            return Err(bad());
        }
        let doctor = Uuid::from_slice(&bytes[..16]).map_err(|_| bad())?;
        let mut secs = [0u8; 8];
        secs.copy_from_slice(&bytes[16..]);
        let start = Timestamp::from_second(i64::from_be_bytes(secs)).map_err(|_| bad())?;
        // A start the API would never accept is no slot (and no arithmetic on it may overflow).
        crate::instant::check(field, start).map_err(|_| bad())?;
        Ok(Self { doctor: DoctorId(doctor), start })
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
    }

    proptest::proptest! {
        /// Any 24 bytes make an answer, never a panic; an accepted id has an in-range start.
        #[test]
        fn any_bytes_are_answered(doctor in proptest::array::uniform16(0u8..), secs in proptest::num::i64::ANY) {
            let mut bytes = [0u8; 24];
            bytes[..16].copy_from_slice(&doctor);
            bytes[16..].copy_from_slice(&secs.to_be_bytes());
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
