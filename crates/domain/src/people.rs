//! Accounts and the words that describe doctors: roles, e-mail, specialties, languages.

use crate::error::Invalid;
use serde::{Deserialize, Serialize};
use std::{fmt, str::FromStr};

/// The one role a user account has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Patient,
    Doctor,
    ClinicAdmin,
    /// Platform administrator: only created from the command line.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Patient => "patient",
            Role::Doctor => "doctor",
            Role::ClinicAdmin => "clinic_admin",
            Role::Admin => "admin",
        }
    }
}

impl FromStr for Role {
    type Err = Invalid;
    fn from_str(s: &str) -> Result<Self, Invalid> {
        match s {
            "patient" => Ok(Role::Patient),
            "doctor" => Ok(Role::Doctor),
            "clinic_admin" => Ok(Role::ClinicAdmin),
            "admin" => Ok(Role::Admin),
            _ => Err(Invalid::field("role", "must be one of patient, doctor, clinic_admin")),
        }
    }
}

/// A doctor's verification: only `verified` doctors are searchable and bookable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerificationState {
    Pending,
    Verified,
    Rejected,
    Suspended,
}

impl VerificationState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Verified => "verified",
            Self::Rejected => "rejected",
            Self::Suspended => "suspended",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => Self::Pending,
            "verified" => Self::Verified,
            "rejected" => Self::Rejected,
            "suspended" => Self::Suspended,
            _ => return None,
        })
    }
}

/// Whether a doctor's profile belongs to its clinic with both sides' consent.
/// A doctor who names a clinic *requests* to join it; a clinic that names a
/// doctor's account *invites* it; each waits for the other side. Only an
/// `active` profile can be verified (and so listed and booked).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Membership {
    /// The doctor asked to join; the clinic has not accepted yet.
    Requested,
    /// The clinic invited the doctor's account; the doctor has not accepted yet.
    Invited,
    /// Both sides agree (or the clinic manages the profile itself).
    #[default]
    Active,
    /// The clinic declined the doctor's request.
    Declined,
}

impl Membership {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Requested => "requested",
            Self::Invited => "invited",
            Self::Active => "active",
            Self::Declined => "declined",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "requested" => Self::Requested,
            "invited" => Self::Invited,
            "active" => Self::Active,
            "declined" => Self::Declined,
            _ => return None,
        })
    }
}

/// An e-mail address, trimmed and lower-cased; checked for shape, not deliverability.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Email(String);

/// Characters that change nothing on screen but make a different string:
/// zero-width spaces and joiners, bidirectional controls, the byte-order mark,
/// soft hyphens, tags (Unicode's `Cf` format characters), and controls.
pub fn is_invisible(c: char) -> bool {
    c.is_control()
        || matches!(c as u32,
            0x00AD | 0x034F | 0x061C | 0x115F | 0x1160 | 0x17B4 | 0x17B5 | 0x180B..=0x180F
            | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x206F | 0x3164 | 0xFE00..=0xFE0F
            | 0xFEFF | 0xFFA0 | 0xFFF0..=0xFFFB | 0x1D173..=0x1D17A | 0xE0000..=0xE0FFF)
}

/// Letters of more than one script in one part of an address (`pаypal` with a
/// Cyrillic `а`) look like another address: refused.
fn mixes_scripts(part: &str) -> bool {
    use unicode_script::{Script, UnicodeScript};
    let mut seen: Option<Script> = None;
    for c in part.chars().filter(|c| c.is_alphabetic()) {
        let s = c.script();
        if matches!(s, Script::Common | Script::Inherited | Script::Unknown) {
            continue;
        }
        match seen {
            None => seen = Some(s),
            Some(first) if first != s => return true,
            Some(_) => {}
        }
    }
    false
}

impl Email {
    /// Normalised (Unicode NFKC, lower case) so that one address is one account
    /// however it is typed; invisible characters and mixed scripts are refused.
    pub fn parse(field: &str, raw: &str) -> Result<Self, Invalid> {
        use unicode_normalization::UnicodeNormalization;
        if raw.chars().any(is_invisible) {
            return Err(Invalid::field(field, "must not contain invisible or control characters"));
        }
        let s: String = raw.trim().nfkc().collect::<String>().to_lowercase();
        if s.split(['@', '.']).any(mixes_scripts) {
            return Err(Invalid::field(
                field,
                "mixes letters of different alphabets in one part; type it in one alphabet",
            ));
        }
        let ok = s.len() <= 254
            && s.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty()
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
                    && !s.chars().any(char::is_whitespace)
                    && s.matches('@').count() == 1
            });
        if ok {
            Ok(Self(s))
        } else {
            Err(Invalid::field(field, "must be an e-mail address like name@example.org"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A free-text name (person, clinic): trimmed, 1..=max characters, no control characters.
pub fn parse_name(field: &str, raw: &str, max: usize) -> Result<String, Invalid> {
    let s = raw.trim();
    if s.is_empty() {
        return Err(Invalid::field(field, "must not be empty"));
    }
    if s.chars().count() > max {
        return Err(Invalid::field(field, format!("must be at most {max} characters")));
    }
    if s.chars().any(|c| c.is_control() && c != '\n') {
        return Err(Invalid::field(field, "must not contain control characters"));
    }
    Ok(s.to_string())
}

/// A tag such as a specialty (`cardiology`) or a language (`fr`): lower-case
/// ASCII letters, digits and dashes, so that search matches exactly.
/// Specialties offered in forms and generated data (doctors may name others).
pub const COMMON_SPECIALTIES: [&str; 12] = [
    "general-practice",
    "cardiology",
    "dermatology",
    "pediatrics",
    "gynecology",
    "ophthalmology",
    "psychiatry",
    "orthopedics",
    "ent",
    "neurology",
    "endocrinology",
    "physiotherapy",
];

pub fn parse_tag(field: &str, raw: &str) -> Result<String, Invalid> {
    let s = raw.trim().to_lowercase().replace([' ', '_'], "-");
    let ok = (2..=40).contains(&s.len())
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-');
    if ok {
        Ok(s)
    } else {
        Err(Invalid::field(field, "must be 2-40 letters, digits or dashes (e.g. general-practice, fr)"))
    }
}

/// A list of tags, deduplicated and sorted; `min` of them at least.
pub fn parse_tags(field: &str, raw: &[String], min: usize) -> Result<Vec<String>, Invalid> {
    if raw.len() < min {
        return Err(Invalid::field(field, format!("must list at least {min}")));
    }
    if raw.len() > 20 {
        return Err(Invalid::field(field, "must list at most 20"));
    }
    let mut out = Vec::with_capacity(raw.len());
    for (i, t) in raw.iter().enumerate() {
        out.push(parse_tag(&format!("{field}[{i}]"), t)?);
    }
    out.sort();
    out.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(Email::parse("email", " Ana@Example.ORG ").unwrap().as_str(), "ana@example.org");
        for bad in ["", "ana", "ana@", "@example.org", "ana@example", "a b@example.org", "a@b@example.org"] {
            let err = Email::parse("email", bad).unwrap_err();
            assert_eq!(err.0[0].field, "email", "{bad}");
        }
    }

    #[test]
    fn one_address_is_one_account_however_it_is_typed() {
        // Full-width letters and compatibility forms fold to the same address (NFKC).
        assert_eq!(Email::parse("email", "ＡＮＡ@example.org").unwrap().as_str(), "ana@example.org");
        assert_eq!(Email::parse("email", "ana@EXAMPLE.org").unwrap().as_str(), "ana@example.org");
        // Invisible characters and controls are refused, with a message that says so.
        for bad in [
            "ana\u{0}@example.org",
            "an\u{200b}a@example.org",
            "ana@exam\u{200d}ple.org",
            "\u{feff}ana@example.org",
            "ana\u{202e}@example.org",
        ] {
            let err = Email::parse("email", bad).unwrap_err();
            assert!(err.0[0].message.contains("invisible"), "{bad:?}: {err}");
        }
        // A Cyrillic letter among Latin ones (a look-alike of patient@…) is refused.
        let err = Email::parse("email", "p\u{0430}tient@example.org").unwrap_err();
        assert!(err.0[0].message.contains("alphabets"), "{err}");
        // One script throughout is fine, whichever it is.
        assert!(Email::parse("email", "\u{043f}\u{0430}\u{0446}\u{0438}\u{0435}\u{043d}\u{0442}@example.org").is_ok());
    }

    #[test]
    fn tags_are_slugs() {
        assert_eq!(parse_tag("s", "General Practice").unwrap(), "general-practice");
        assert!(parse_tag("s", "x").is_err());
        assert!(parse_tag("s", "café").is_err());
        assert_eq!(parse_tags("l", &["FR".into(), "en".into(), "fr".into()], 1).unwrap(), vec!["en", "fr"]);
        assert_eq!(parse_tags("l", &[], 1).unwrap_err().0[0].field, "l");
    }
}
