//! Visit types: what a doctor offers to be booked for. A first consultation
//! takes 45 minutes and a follow-up 15; some are online only, some only for
//! patients the doctor has already seen, some booked by the clinic's staff
//! alone; each may ask intake questions whose answers travel with the
//! appointment to the doctor. A doctor without visit types is booked on their
//! schedule's own slots, as before visit types existed.

use crate::{
    appointment::Mode,
    error::{Errors, Invalid},
    people::parse_name,
    schedule::MAX_HORIZON_DAYS,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};

/// Most visit types one doctor offers.
pub const MAX_VISIT_TYPES: usize = 20;
/// Most intake questions one visit type asks.
pub const MAX_QUESTIONS: usize = 20;
/// Most options one choice question offers.
pub const MAX_OPTIONS: usize = 20;
/// Longest answer to a text question.
pub const MAX_ANSWER: usize = 1000;
/// A visit type's code, and a question's id: lower-case letters, digits and dashes.
pub const CODE_PATTERN: &str = r"^[a-z0-9][a-z0-9-]{1,39}$";

/// Who may book a visit type online.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum BookableBy {
    /// Any patient.
    #[default]
    Everyone,
    /// Patients the doctor has not seen yet.
    NewPatients,
    /// Patients the doctor has seen (a visit that took place: arrived or fulfilled).
    ExistingPatients,
    /// Nobody online: the clinic's staff book it.
    Staff,
}

impl BookableBy {
    pub const NAMES: [(&'static str, BookableBy); 4] = [
        ("everyone", BookableBy::Everyone),
        ("new_patients", BookableBy::NewPatients),
        ("existing_patients", BookableBy::ExistingPatients),
        ("staff", BookableBy::Staff),
    ];

    pub fn as_str(self) -> &'static str {
        Self::NAMES.iter().find(|(_, b)| *b == self).map_or("everyone", |(n, _)| n)
    }

    pub fn parse(field: &str, s: &str) -> Result<Self, Invalid> {
        Self::NAMES
            .iter()
            .find(|(n, _)| *n == s)
            .map(|(_, b)| *b)
            .ok_or_else(|| Invalid::field(field, "must be everyone, new_patients, existing_patients or staff"))
    }

    /// Whether a patient may book it online, knowing whether the doctor has seen them.
    pub fn admits(self, seen_before: bool) -> bool {
        match self {
            BookableBy::Everyone => true,
            BookableBy::NewPatients => !seen_before,
            BookableBy::ExistingPatients => seen_before,
            BookableBy::Staff => false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuestionKind {
    /// Free text.
    Text,
    /// One of the question's options.
    Choice,
    /// Yes or no (a JSON boolean).
    YesNo,
}

impl QuestionKind {
    pub const NAMES: [(&'static str, QuestionKind); 3] =
        [("text", QuestionKind::Text), ("choice", QuestionKind::Choice), ("yes_no", QuestionKind::YesNo)];

    pub fn as_str(self) -> &'static str {
        Self::NAMES.iter().find(|(_, k)| *k == self).map_or("text", |(n, _)| n)
    }
}

/// One intake question.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Question {
    /// Stable within its visit type: answers are keyed by it.
    pub id: String,
    pub text: String,
    pub kind: QuestionKind,
    /// The choices of a `choice` question (none for the others).
    #[serde(default)]
    pub options: Vec<String>,
    pub required: bool,
}

/// One visit type of a doctor. Built only through [`parse_visit_types`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VisitType {
    /// Stable, unique among the doctor's visit types (`first-consultation`).
    pub code: String,
    pub name: String,
    pub duration_minutes: i64,
    /// The modes it is offered in: its slots are those of the schedule's
    /// ranges in one of these modes.
    pub modes: Vec<Mode>,
    pub bookable_by: BookableBy,
    #[serde(default)]
    pub questions: Vec<Question>,
    /// Overrides the schedule's minimum notice for this visit type.
    #[serde(default)]
    pub min_notice_minutes: Option<i64>,
    /// Overrides the schedule's booking horizon for this visit type.
    #[serde(default)]
    pub horizon_days: Option<i64>,
    /// Overrides the clinic's cut-off for patients' changes for this visit type.
    #[serde(default)]
    pub cancel_cutoff_hours: Option<i64>,
}

impl VisitType {
    /// The clinic's rules as they hold for this visit type.
    pub fn rules(&self, clinic: crate::ClinicRules) -> crate::ClinicRules {
        match self.cancel_cutoff_hours {
            Some(h) => crate::ClinicRules { cancel_cutoff_minutes: h * 60, ..clinic },
            None => clinic,
        }
    }

    /// Checks a patient's answers to this visit type's questions, naming each
    /// wrong one (`intake.<question id>`); the answers as they are kept.
    pub fn answers(&self, given: &BTreeMap<String, serde_json::Value>) -> Result<Vec<Answer>, Invalid> {
        let mut errs = Errors::default();
        for id in given.keys() {
            if !self.questions.iter().any(|q| &q.id == id) {
                errs.push(format!("intake.{id}"), "is not a question of this visit type");
            }
        }
        let mut out = Vec::new();
        for q in &self.questions {
            let field = format!("intake.{}", q.id);
            let answer = match (q.kind, given.get(&q.id)) {
                (_, None | Some(serde_json::Value::Null)) => None,
                (QuestionKind::YesNo, Some(serde_json::Value::Bool(b))) => {
                    Some(if *b { "yes" } else { "no" }.to_string())
                }
                (QuestionKind::YesNo, Some(_)) => {
                    errs.push(&field, "must be true or false");
                    continue;
                }
                (_, Some(serde_json::Value::String(s))) => {
                    if s.chars().count() > MAX_ANSWER {
                        errs.push(&field, format!("must be at most {MAX_ANSWER} characters"));
                        continue;
                    }
                    if s.chars().any(|c| c.is_control() && c != '\n') {
                        errs.push(&field, "must not contain control characters");
                        continue;
                    }
                    let s = s.trim();
                    if q.kind == QuestionKind::Choice && !s.is_empty() && !q.options.iter().any(|o| o == s) {
                        errs.push(&field, format!("must be one of: {}", q.options.join(", ")));
                        continue;
                    }
                    (!s.is_empty()).then(|| s.to_string())
                }
                (_, Some(_)) => {
                    errs.push(&field, "must be a text");
                    continue;
                }
            };
            match answer {
                Some(answer) => out.push(Answer { question: q.id.clone(), text: q.text.clone(), answer }),
                None if q.required => errs.push(&field, "is required"),
                None => {}
            }
        }
        errs.finish()?;
        Ok(out)
    }
}

/// A patient's answer to one intake question, with the question as it was
/// asked (so the doctor reads it as the patient did, whatever changes later).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Answer {
    /// The question's id.
    pub question: String,
    /// The question's text when it was answered.
    pub text: String,
    /// The answer: free text, the chosen option, or `yes` / `no`.
    pub answer: String,
}

/// The doctor's visit types, as clients send them (the whole list at once).
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VisitTypesInput {
    /// In the order patients are offered them; the first one a patient may
    /// book is the default for slot lists and bookings that name none.
    #[schema(max_items = 20)]
    pub visit_types: Vec<VisitTypeInput>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VisitTypeInput {
    /// Unique among the doctor's visit types, e.g. `first-consultation`.
    #[schema(schema_with = crate::schemas::code)]
    pub code: String,
    #[schema(schema_with = crate::schemas::short_text)]
    pub name: String,
    #[schema(minimum = 5, maximum = 480)]
    pub duration_minutes: i64,
    #[schema(schema_with = crate::schemas::modes)]
    pub modes: Vec<String>,
    /// everyone (the default), new_patients, existing_patients or staff.
    #[schema(schema_with = crate::schemas::bookable_by_or_null)]
    #[serde(default)]
    pub bookable_by: Option<String>,
    #[serde(default)]
    #[schema(max_items = 20)]
    pub questions: Vec<QuestionInput>,
    #[serde(default)]
    #[schema(minimum = 0, maximum = 10080)]
    pub min_notice_minutes: Option<i64>,
    #[serde(default)]
    #[schema(minimum = 1, maximum = 366)]
    pub horizon_days: Option<i64>,
    /// Hours before the start after which patients no longer cancel or move
    /// this visit online, instead of the clinic's cut-off.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 720)]
    pub cancel_cutoff_hours: Option<i64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuestionInput {
    #[schema(schema_with = crate::schemas::code)]
    pub id: String,
    #[schema(schema_with = crate::schemas::question_text)]
    pub text: String,
    /// text, choice or yes_no.
    #[schema(schema_with = crate::schemas::question_kind)]
    pub kind: String,
    /// The choices of a choice question (2 to 20); none for the others.
    #[serde(default)]
    #[schema(schema_with = crate::schemas::options)]
    pub options: Vec<String>,
    #[serde(default)]
    pub required: bool,
}

fn parse_code(field: &str, raw: &str) -> Result<String, Invalid> {
    let ok = (2..=40).contains(&raw.len())
        && raw.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !raw.starts_with('-');
    if ok {
        Ok(raw.to_string())
    } else {
        Err(Invalid::field(field, "must be 2-40 lower-case letters, digits or dashes, e.g. first-consultation"))
    }
}

fn parse_question(field: &str, q: &QuestionInput, errs: &mut Errors) -> Option<Question> {
    let id = errs.take(parse_code(&format!("{field}.id"), &q.id));
    let text = errs.take(parse_name(&format!("{field}.text"), &q.text, 300));
    let kind = QuestionKind::NAMES.iter().find(|(n, _)| *n == q.kind).map(|(_, k)| *k);
    if kind.is_none() {
        errs.push(format!("{field}.kind"), "must be text, choice or yes_no");
    }
    let mut options = Vec::new();
    for (i, o) in q.options.iter().enumerate() {
        let of = format!("{field}.options[{i}]");
        if let Some(o) = errs.take(parse_name(&of, o, 100)) {
            if options.contains(&o) {
                errs.push(of, "repeats another option");
            } else {
                options.push(o);
            }
        }
    }
    match kind {
        Some(QuestionKind::Choice) if !(2..=MAX_OPTIONS).contains(&q.options.len()) => {
            errs.push(format!("{field}.options"), format!("a choice offers 2 to {MAX_OPTIONS} options"));
        }
        Some(QuestionKind::Text | QuestionKind::YesNo) if !q.options.is_empty() => {
            errs.push(format!("{field}.options"), "only a choice question has options");
        }
        _ => {}
    }
    Some(Question { id: id?, text: text?, kind: kind?, options, required: q.required })
}

fn parse_visit_type(field: &str, v: &VisitTypeInput, offered: &[Mode], errs: &mut Errors) -> Option<VisitType> {
    let code = errs.take(parse_code(&format!("{field}.code"), &v.code));
    let name = errs.take(parse_name(&format!("{field}.name"), &v.name, 100));
    if !(5..=480).contains(&v.duration_minutes) {
        errs.push(format!("{field}.duration_minutes"), "must be between 5 and 480");
    }
    let mut modes = Vec::new();
    if v.modes.is_empty() || v.modes.len() > 2 {
        errs.push(format!("{field}.modes"), "must list one or two modes");
    }
    for (i, m) in v.modes.iter().enumerate() {
        let mf = format!("{field}.modes[{i}]");
        match errs.take(Mode::parse(&mf, m)) {
            Some(m) if modes.contains(&m) => errs.push(mf, "repeats another mode"),
            Some(m) if !offered.contains(&m) => errs.push(mf, "is not a mode the doctor offers"),
            Some(m) => modes.push(m),
            None => {}
        }
    }
    let bookable_by = match &v.bookable_by {
        Some(b) => errs.take(BookableBy::parse(&format!("{field}.bookable_by"), b)),
        None => Some(BookableBy::Everyone),
    };
    if v.questions.len() > MAX_QUESTIONS {
        errs.push(format!("{field}.questions"), format!("at most {MAX_QUESTIONS} questions"));
    }
    let mut questions: Vec<Question> = Vec::new();
    for (i, q) in v.questions.iter().enumerate() {
        let qf = format!("{field}.questions[{i}]");
        if let Some(q) = parse_question(&qf, q, errs) {
            if questions.iter().any(|o| o.id == q.id) {
                errs.push(format!("{qf}.id"), "repeats another question's id");
            }
            questions.push(q);
        }
    }
    if v.min_notice_minutes.is_some_and(|m| !(0..=7 * 24 * 60).contains(&m)) {
        errs.push(format!("{field}.min_notice_minutes"), "must be between 0 and 10080 (7 days)");
    }
    if v.horizon_days.is_some_and(|d| !(1..=MAX_HORIZON_DAYS).contains(&d)) {
        errs.push(format!("{field}.horizon_days"), format!("must be between 1 and {MAX_HORIZON_DAYS}"));
    }
    let most = crate::clinic::MAX_CANCEL_CUTOFF_HOURS;
    if v.cancel_cutoff_hours.is_some_and(|h| !(0..=most).contains(&h)) {
        errs.push(format!("{field}.cancel_cutoff_hours"), format!("must be between 0 and {most} hours"));
    }
    Some(VisitType {
        code: code?,
        name: name?,
        duration_minutes: v.duration_minutes,
        modes,
        bookable_by: bookable_by?,
        questions,
        min_notice_minutes: v.min_notice_minutes,
        horizon_days: v.horizon_days,
        cancel_cutoff_hours: v.cancel_cutoff_hours,
    })
}

/// Checks a doctor's whole list of visit types; `offered`: the modes the
/// doctor offers (a visit type offers some of them). Every wrong field is named.
pub fn parse_visit_types(input: &VisitTypesInput, offered: &[Mode]) -> Result<Vec<VisitType>, Invalid> {
    let mut errs = Errors::default();
    if input.visit_types.len() > MAX_VISIT_TYPES {
        errs.push("visit_types", format!("at most {MAX_VISIT_TYPES} visit types"));
    }
    let mut out: Vec<VisitType> = Vec::new();
    let mut codes = HashSet::new();
    for (i, v) in input.visit_types.iter().enumerate() {
        let field = format!("visit_types[{i}]");
        if !codes.insert(v.code.as_str()) {
            errs.push(format!("{field}.code"), "repeats another visit type's code");
        } else if input.visit_types[..i].iter().any(|o| tag(&o.code) == tag(&v.code)) {
            errs.push(format!("{field}.code"), "is too alike another visit type's code for FHIR ids: choose another");
        }
        if let Some(v) = parse_visit_type(&field, v, offered, &mut errs) {
            out.push(v);
        }
    }
    errs.finish()?;
    Ok(out)
}

impl From<&VisitType> for VisitTypeInput {
    /// A visit type as a client would send it again (an editor's starting point).
    fn from(v: &VisitType) -> Self {
        Self {
            code: v.code.clone(),
            name: v.name.clone(),
            duration_minutes: v.duration_minutes,
            modes: v.modes.iter().map(|m| m.as_str().to_string()).collect(),
            bookable_by: Some(v.bookable_by.as_str().to_string()),
            questions: v
                .questions
                .iter()
                .map(|q| QuestionInput {
                    id: q.id.clone(),
                    text: q.text.clone(),
                    kind: q.kind.as_str().to_string(),
                    options: q.options.clone(),
                    required: q.required,
                })
                .collect(),
            min_notice_minutes: v.min_notice_minutes,
            horizon_days: v.horizon_days,
            cancel_cutoff_hours: v.cancel_cutoff_hours,
        }
    }
}

/// A short, stable tag of a visit type's code (8 hex digits, FNV-1a): where an
/// identifier has no room for the code itself (a FHIR id is at most 64
/// characters), the tag names it among the doctor's visit types.
pub fn tag(code: &str) -> String {
    let hash = code.bytes().fold(0x811c_9dc5_u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193));
    format!("{hash:08x}")
}

/// The visit type a slot list or booking that names none is for: the first
/// one a patient may book online. `None` with no such visit type (or none at
/// all): the schedule's own slots.
pub fn default_visit(types: &[VisitType]) -> Option<&VisitType> {
    types.iter().find(|v| v.bookable_by != BookableBy::Staff)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn input(v: serde_json::Value) -> VisitTypesInput {
        serde_json::from_value(v).unwrap()
    }

    fn fields(r: Result<Vec<VisitType>, Invalid>) -> Vec<String> {
        r.unwrap_err().0.into_iter().map(|e| e.field).collect()
    }

    const BOTH: [Mode; 2] = [Mode::InPerson, Mode::Online];

    fn first_visit() -> VisitType {
        let parsed = parse_visit_types(
            &input(json!({"visit_types": [{
                "code": "first", "name": "First consultation", "duration_minutes": 45, "modes": ["in_person"],
                "questions": [
                    {"id": "symptoms", "text": "What brings you?", "kind": "text", "required": true},
                    {"id": "referral", "text": "Referred by your GP?", "kind": "yes_no"},
                    {"id": "insurance", "text": "Insurance", "kind": "choice", "options": ["public", "private"]}
                ]
            }]})),
            &BOTH,
        );
        parsed.unwrap().remove(0)
    }

    #[test]
    fn a_good_list_parses_with_defaults() {
        let v = first_visit();
        assert_eq!((v.code.as_str(), v.duration_minutes, v.bookable_by), ("first", 45, BookableBy::Everyone));
        assert_eq!(v.questions.len(), 3);
        assert_eq!(v.questions[2].options, ["public", "private"]);
    }

    #[test]
    fn every_bad_field_is_named() {
        let bad = input(json!({"visit_types": [
            {"code": "First Visit", "name": " ", "duration_minutes": 2, "modes": ["video"], "bookable_by": "friends",
             "questions": [
                {"id": "q", "text": "", "kind": "essay"},
                {"id": "pick", "text": "Pick", "kind": "choice", "options": ["one"]},
                {"id": "yn", "text": "Yes?", "kind": "yes_no", "options": ["yes", "no"]}
             ], "min_notice_minutes": -1, "horizon_days": 0},
            {"code": "follow-up", "name": "Follow-up", "duration_minutes": 15, "modes": ["online", "online"]},
            {"code": "follow-up", "name": "Again", "duration_minutes": 15, "modes": ["in_person"]}
        ]}));
        let f = fields(parse_visit_types(&bad, &[Mode::InPerson]));
        for want in [
            "visit_types[0].code",
            "visit_types[0].name",
            "visit_types[0].duration_minutes",
            "visit_types[0].modes[0]",
            "visit_types[0].bookable_by",
            "visit_types[0].questions[0].id",
            "visit_types[0].questions[0].text",
            "visit_types[0].questions[0].kind",
            "visit_types[0].questions[1].options",
            "visit_types[0].questions[2].options",
            "visit_types[0].min_notice_minutes",
            "visit_types[0].horizon_days",
            "visit_types[1].modes[0]",
            "visit_types[1].modes[1]",
            "visit_types[2].code",
        ] {
            assert!(f.contains(&want.to_string()), "{want} missing from {f:?}");
        }
    }

    #[test]
    fn answers_are_checked_and_kept_with_their_question() {
        let v = first_visit();
        let given: BTreeMap<String, serde_json::Value> =
            serde_json::from_value(json!({"symptoms": " chest pain ", "referral": true, "insurance": "private"}))
                .unwrap();
        let kept = v.answers(&given).unwrap();
        let pairs: Vec<(&str, &str)> = kept.iter().map(|a| (a.question.as_str(), a.answer.as_str())).collect();
        assert_eq!(pairs, [("symptoms", "chest pain"), ("referral", "yes"), ("insurance", "private")]);
        assert_eq!(kept[0].text, "What brings you?");

        let wrong: BTreeMap<String, serde_json::Value> =
            serde_json::from_value(json!({"referral": "maybe", "insurance": "none", "shoe_size": "42"})).unwrap();
        let mut f: Vec<String> = v.answers(&wrong).unwrap_err().0.into_iter().map(|e| e.field).collect();
        f.sort();
        assert_eq!(f, ["intake.insurance", "intake.referral", "intake.shoe_size", "intake.symptoms"]);
    }

    #[test]
    fn a_visit_type_sent_again_parses_to_itself() {
        let v = first_visit();
        let again = VisitTypesInput { visit_types: vec![VisitTypeInput::from(&v)] };
        assert_eq!(parse_visit_types(&again, &BOTH).unwrap(), vec![v]);
    }

    #[test]
    fn tags_are_short_and_tell_codes_apart() {
        assert_eq!(tag("first"), tag("first"));
        assert_ne!(tag("first"), tag("follow-up"));
        assert_eq!(tag(&"a".repeat(40)).len(), 8);
    }

    #[test]
    fn who_may_book_online() {
        assert!(BookableBy::Everyone.admits(false) && BookableBy::Everyone.admits(true));
        assert!(BookableBy::NewPatients.admits(false) && !BookableBy::NewPatients.admits(true));
        assert!(!BookableBy::ExistingPatients.admits(false) && BookableBy::ExistingPatients.admits(true));
        assert!(!BookableBy::Staff.admits(false) && !BookableBy::Staff.admits(true));
        let mut staff_first = first_visit();
        staff_first.bookable_by = BookableBy::Staff;
        let mut open = first_visit();
        open.code = "open".into();
        let list = [staff_first, open];
        assert_eq!(default_visit(&list).map(|v| v.code.as_str()), Some("open"));
        assert_eq!(default_visit(&list[..1]), None);
    }
}
