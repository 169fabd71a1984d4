//! Whole numbers as JSON Schema's `integer` has them: `24` and `24.0` alike
//! (a number whose fraction is zero), for fields documented as integers.
//! Use with `#[serde(deserialize_with = "medislot_domain::whole::number")]`,
//! or `whole::optional` (with `#[serde(default)]`) for one that may be absent or null.

use serde::de::{self, Deserializer, Visitor};
use std::fmt;

struct Whole;

impl Visitor<'_> for Whole {
    type Value = i64;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a whole number")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<i64, E> {
        Ok(v)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<i64, E> {
        i64::try_from(v).map_err(|_| E::custom("is too large"))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<i64, E> {
        // Within ±2^53 every whole f64 is exact; beyond, no field of ours goes.
        if v.fract() == 0.0 && v.abs() <= 9_007_199_254_740_992.0 {
            Ok(v as i64)
        } else {
            Err(E::invalid_value(de::Unexpected::Float(v), &self))
        }
    }
}

pub fn number<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    d.deserialize_any(Whole)
}

pub fn optional<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    struct Maybe;
    impl<'de> Visitor<'de> for Maybe {
        type Value = Option<i64>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a whole number or null")
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            number(d).map(Some)
        }
    }
    d.deserialize_option(Maybe)
}

#[cfg(test)]
mod tests {
    #[derive(serde::Deserialize)]
    struct T {
        #[serde(deserialize_with = "super::number")]
        n: i64,
        #[serde(default, deserialize_with = "super::optional")]
        m: Option<i64>,
    }

    #[test]
    fn whole_numbers_are_read_however_they_are_written() {
        let t: T = serde_json::from_str(r#"{"n": 24.0, "m": 3}"#).unwrap();
        assert_eq!((t.n, t.m), (24, Some(3)));
        let t: T = serde_json::from_str(r#"{"n": -2, "m": null}"#).unwrap();
        assert_eq!((t.n, t.m), (-2, None));
        assert_eq!(serde_json::from_str::<T>(r#"{"n": 5}"#).unwrap().m, None);
        for bad in [r#"{"n": 1.5}"#, r#"{"n": "24"}"#, r#"{"n": 1e300}"#, r#"{"n": 1, "m": 2.5}"#] {
            assert!(serde_json::from_str::<T>(bad).is_err(), "{bad}");
        }
    }
}
