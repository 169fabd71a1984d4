//! How a clinic is found and reached: the parts of its postal address a letter
//! (and a slot finder) needs, and its telephone number.

use crate::error::{Errors, Invalid};
use serde::{Deserialize, Serialize};

/// The structured parts of a clinic's address; the street line(s) stay the
/// clinic's `address`. Each part is absent until the clinic gives it (clinics
/// created before these parts existed have none).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PostalAddress {
    pub city: Option<String>,
    /// State, province, county or region, where the country uses one.
    pub district: Option<String>,
    pub postal_code: Option<String>,
    /// ISO 3166-1 alpha-2, upper case (`FR`).
    pub country: Option<String>,
}

/// The raw parts as clients send them; blank means absent.
#[derive(Debug, Clone, Default)]
pub struct PostalInput<'a> {
    pub city: Option<&'a str>,
    pub district: Option<&'a str>,
    pub postal_code: Option<&'a str>,
    pub country: Option<&'a str>,
}

/// A part that was given: trimmed, and not blank.
fn given(v: Option<&str>) -> Option<&str> {
    v.map(str::trim).filter(|v| !v.is_empty())
}

impl PostalAddress {
    /// Checks every part at once.
    pub fn parse(input: PostalInput<'_>) -> Result<Self, Invalid> {
        let mut errs = Errors::default();
        let place = |field: &str, v: &str, errs: &mut Errors| {
            if v.chars().count() > 100 || v.chars().any(char::is_control) {
                errs.push(field, "must be at most 100 characters, without control characters");
            }
            v.to_string()
        };
        let city = given(input.city).map(|v| place("city", v, &mut errs));
        let district = given(input.district).map(|v| place("district", v, &mut errs));
        let postal_code = given(input.postal_code).map(|v| {
            let ok =
                (2..=16).contains(&v.len()) && v.chars().all(|c| c.is_ascii_alphanumeric() || c == ' ' || c == '-');
            if !ok {
                errs.push("postal_code", "must be 2-16 letters, digits, spaces or dashes");
            }
            v.to_ascii_uppercase()
        });
        let country = given(input.country).map(|v| {
            if !(v.len() == 2 && v.chars().all(|c| c.is_ascii_alphabetic())) {
                errs.push("country", "must be an ISO 3166-1 alpha-2 country code such as FR");
            }
            v.to_ascii_uppercase()
        });
        errs.finish()?;
        Ok(Self { city, district, postal_code, country })
    }

    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// A telephone number in E.164 (`+33142345678`): a `+`, then 8 to 15 digits.
/// The spaces, dots, dashes and parentheses people type are dropped.
pub fn parse_phone(field: &str, raw: &str) -> Result<String, Invalid> {
    let bad = || Invalid::field(field, "must be an international number such as +33 1 42 34 56 78");
    let raw = raw.trim();
    let rest = raw.strip_prefix('+').ok_or_else(bad)?;
    if !rest.chars().all(|c| c.is_ascii_digit() || " .-()".contains(c)) {
        return Err(bad());
    }
    let digits: String = rest.chars().filter(char::is_ascii_digit).collect();
    if !(8..=15).contains(&digits.len()) || digits.starts_with('0') {
        return Err(bad());
    }
    Ok(format!("+{digits}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_keep_what_is_given_and_normalise_codes() {
        let a = PostalAddress::parse(PostalInput {
            city: Some(" Paris "),
            district: Some(""),
            postal_code: Some("75010"),
            country: Some("fr"),
        })
        .unwrap();
        assert_eq!(a.city.as_deref(), Some("Paris"));
        assert_eq!(a.district, None, "blank is absent");
        assert_eq!(a.country.as_deref(), Some("FR"));
        assert!(PostalAddress::parse(PostalInput::default()).unwrap().is_empty());
    }

    #[test]
    fn wrong_parts_are_each_named() {
        let e = PostalAddress::parse(PostalInput {
            city: Some("Par\u{7}is"),
            district: None,
            postal_code: Some("75 010 <"),
            country: Some("France"),
        })
        .unwrap_err();
        let fields: Vec<&str> = e.0.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(fields, ["city", "postal_code", "country"]);
    }

    #[test]
    fn phones_are_kept_in_e164() {
        assert_eq!(parse_phone("phone", "+33 1 42-34.56 (78)").unwrap(), "+33142345678");
        for bad in ["0142345678", "+33", "+0033142345678", "+33 1 42 34 56 78 ext 2", "+1234567890123456"] {
            assert!(parse_phone("phone", bad).is_err(), "{bad}");
        }
    }
}
