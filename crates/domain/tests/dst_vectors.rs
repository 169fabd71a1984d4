//! Reproduces `tests/vectors/slots.json` exactly: slots on DST days, computed
//! from the IANA database outside this codebase (see `tests/vectors/README.md`).

use jiff::civil::{Date, Time};
use medislot_domain::schedule::{expand_range, local_rfc3339};
use serde::Deserialize;

#[derive(Deserialize)]
struct Vectors {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    zone: String,
    date: Date,
    range: [String; 2],
    slot_minutes: i64,
    why: String,
    slots: Vec<Expected>,
}

#[derive(Deserialize)]
struct Expected {
    start: String,
    local: String,
}

fn vectors_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/slots.json")
}

#[test]
fn dst_vectors_are_reproduced_exactly() {
    let raw = std::fs::read_to_string(vectors_path()).unwrap();
    let v: Vectors = serde_json::from_str(&raw).unwrap();
    assert!(!v.cases.is_empty());
    let zones: std::collections::BTreeSet<&str> = v.cases.iter().map(|c| c.zone.as_str()).collect();
    assert!(zones.len() >= 2, "vectors cover at least two zones: {zones:?}");
    for c in &v.cases {
        let tz = jiff::tz::TimeZone::get(&c.zone).unwrap();
        let start: Time = format!("{}:00", c.range[0]).parse().unwrap();
        let end: Time = format!("{}:00", c.range[1]).parse().unwrap();
        let got = expand_range(&tz, c.date, start, end, c.slot_minutes, 0);
        let got: Vec<(String, String)> =
            got.iter().map(|iv| (iv.start.to_string(), local_rfc3339(iv.start, &tz))).collect();
        let want: Vec<(String, String)> = c.slots.iter().map(|s| (s.start.clone(), s.local.clone())).collect();
        assert_eq!(got, want, "{} {} {:?} ({})", c.zone, c.date, c.range, c.why);
    }
}
