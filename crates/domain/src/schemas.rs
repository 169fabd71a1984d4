//! How the API's OpenAPI document describes the values this crate parses: the
//! same choices, lengths and ranges the parsers check, so the document
//! promises neither more nor less than the server takes. Rules JSON Schema
//! cannot say (one range overlapping another, an end after its start, a slot
//! that exists) stay in the parsers and answer 422 naming the field.

use crate::{appointment::Mode, schedule::Weekday};
use utoipa::openapi::{
    schema::{ArrayBuilder, ObjectBuilder, SchemaType, Type},
    Object, RefOr, Schema,
};

/// A string, or `null` too when `nullable`.
fn text(nullable: bool) -> ObjectBuilder {
    let ty: SchemaType = if nullable { [Type::String, Type::Null].into_iter().collect() } else { Type::String.into() };
    ObjectBuilder::new().schema_type(ty)
}

/// One of `values` (or `null` when `nullable`).
pub fn one_of(values: &[&str], nullable: bool) -> Object {
    let mut all: Vec<serde_json::Value> = values.iter().map(|v| (*v).into()).collect();
    if nullable {
        all.push(serde_json::Value::Null);
    }
    text(nullable).enum_values(Some(all)).build()
}

const MODES: [&str; 2] = [Mode::InPerson.as_str(), Mode::Online.as_str()];

/// `in_person` or `online`.
pub fn mode() -> Object {
    one_of(&MODES, false)
}

/// `in_person`, `online` or absent (`null`): either.
pub fn mode_or_null() -> Object {
    one_of(&MODES, true)
}

/// At least one mode, each once.
pub fn modes() -> RefOr<Schema> {
    ArrayBuilder::new().items(mode()).min_items(Some(1)).max_items(Some(2)).into()
}

/// The modes, when changed.
pub fn modes_or_null() -> RefOr<Schema> {
    let ty: SchemaType = [Type::Array, Type::Null].into_iter().collect();
    ArrayBuilder::new().schema_type(ty).items(mode()).min_items(Some(1)).max_items(Some(2)).into()
}

/// `monday` … `sunday`, or absent.
pub fn weekday_or_null() -> Object {
    let names: Vec<&str> = Weekday::NAMES.iter().map(|(n, _)| *n).collect();
    one_of(&names, true)
}

/// A tag such as a specialty or a language, as `people::parse_tag` reads it.
pub fn tag() -> Object {
    text(false)
        .pattern(Some(r"^[A-Za-z0-9][A-Za-z0-9 _-]{1,39}$"))
        .description(Some("2-40 letters, digits or dashes, e.g. general-practice, fr"))
        .build()
}

/// `min` to 20 tags.
pub fn tags(min: usize) -> ArrayBuilder {
    ArrayBuilder::new().items(tag()).min_items(Some(min)).max_items(Some(20))
}

/// At least one specialty.
pub fn specialties() -> RefOr<Schema> {
    tags(1).into()
}

/// Spoken languages, possibly none.
pub fn languages() -> RefOr<Schema> {
    tags(0).into()
}

/// Specialties or languages, when changed.
pub fn tags_or_null() -> RefOr<Schema> {
    let ty: SchemaType = [Type::Array, Type::Null].into_iter().collect();
    tags(0).schema_type(ty).into()
}

/// Free text of 1 to `max` characters, not blank, without control characters
/// (`people::parse_name`).
fn name_of(max: usize, nullable: bool) -> Object {
    text(nullable)
        .min_length(Some(1))
        .max_length(Some(max))
        .pattern(Some(r"^[^\u0000-\u0009\u000B-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u0009\u000B-\u001F\u007F-\u009F]*$"))
        .build()
}

/// A person's or clinic's name.
pub fn name() -> Object {
    name_of(200, false)
}

/// A name, when changed.
pub fn name_or_null() -> Object {
    name_of(200, true)
}

/// A postal address as one text.
pub fn address() -> Object {
    name_of(500, false)
}

/// A city or district, or absent.
pub fn place_or_null() -> Object {
    text(true).max_length(Some(100)).build()
}

/// A postal code, or absent.
pub fn postal_code_or_null() -> Object {
    text(true).pattern(Some(r"^\s*[A-Za-z0-9 -]{2,16}\s*$|^\s*$")).build()
}

/// An ISO 3166-1 alpha-2 country code, or absent.
pub fn country_or_null() -> Object {
    text(true).pattern(Some(r"^\s*[A-Za-z]{2}\s*$|^\s*$")).build()
}

/// An international telephone number, or absent (`contact::parse_phone`).
pub fn phone_or_null() -> Object {
    text(true).pattern(Some(r"^\s*\+[0-9 .()-]{8,30}\s*$|^\s*$")).build()
}

/// A licence number.
pub fn licence() -> Object {
    name_of(64, false)
}

/// A licence number, when changed.
pub fn licence_or_null() -> Object {
    name_of(64, true)
}

/// RFC 3339's `date-time` in 2000–2199, as `instant::parse` reads it (spelled
/// out as a pattern: values are generated from it directly, where a format and
/// a pattern together leave a generator little it may send).
pub const INSTANT_PATTERN: &str = r"^2[01][0-9]{2}-[01][0-9]-[0-3][0-9][Tt][0-2][0-9]:[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?([Zz]|[+-][0-2][0-9]:[0-5][0-9])$";

/// An RFC 3339 instant in 2000–2199 (`instant::parse`).
fn instant_of(nullable: bool) -> Object {
    text(nullable)
        .pattern(Some(INSTANT_PATTERN))
        .description(Some("An RFC 3339 instant (2000–2199), e.g. 2026-03-20T09:00:00Z"))
        .build()
}

/// An instant.
pub fn instant() -> Object {
    instant_of(false)
}

/// An instant, or absent.
pub fn instant_or_null() -> Object {
    instant_of(true)
}

/// A local wall time `HH:MM`.
pub fn local_time() -> Object {
    text(false).pattern(Some(r"^([01][0-9]|2[0-3]):[0-5][0-9]$|^24:00$")).build()
}

/// A calendar date `YYYY-MM-DD`, or absent.
pub fn date_or_null() -> Object {
    text(true).pattern(Some(r"^2[01][0-9]{2}-[01][0-9]-[0-3][0-9]$")).description(Some("YYYY-MM-DD")).build()
}

/// An e-mail address as `people::Email::parse` reads it (which also refuses
/// invisible characters and alphabets mixed in one part).
pub fn email() -> Object {
    const PART: &str = r"[^@\s\u0000-\u001F\u007F-\u009F]";
    const LABEL: &str = r"[^@\s.\u0000-\u001F\u007F-\u009F]";
    let pattern = format!(r"^{PART}+@{LABEL}{PART}*\.{PART}*{LABEL}$");
    text(false).max_length(Some(254)).pattern(Some(pattern)).build()
}

/// A password: 10 to 256 characters.
pub fn password() -> Object {
    text(false).min_length(Some(10)).max_length(Some(256)).build()
}

/// Free text up to `max` characters (a reason, a note).
pub fn note_or_null(max: usize) -> Object {
    text(true).max_length(Some(max)).build()
}

/// A slot id as `GET /doctors/{id}/slots` gives it (`slot_id::SlotId`).
pub fn slot_id() -> Object {
    text(false)
        .pattern(Some(r"^slot_[A-Za-z0-9_-]{32,86}$"))
        .description(Some("A slot id from GET /api/v1/doctors/{id}/slots"))
        .build()
}

/// A visit type's code or an intake question's id (`visit_type::CODE_PATTERN`).
pub fn code() -> Object {
    text(false).pattern(Some(crate::visit_type::CODE_PATTERN)).description(Some("e.g. first-consultation")).build()
}

/// A visit type's code, or absent.
pub fn code_or_null() -> Object {
    text(true).pattern(Some(crate::visit_type::CODE_PATTERN)).build()
}

/// A short name (a visit type's, an option of a question).
pub fn short_text() -> Object {
    name_of(100, false)
}

/// An intake question as the patient reads it.
pub fn question_text() -> Object {
    name_of(300, false)
}

/// `text`, `choice` or `yes_no`.
pub fn question_kind() -> Object {
    let names: Vec<&str> = crate::visit_type::QuestionKind::NAMES.iter().map(|(n, _)| *n).collect();
    one_of(&names, false)
}

/// A choice question's options.
pub fn options() -> RefOr<Schema> {
    ArrayBuilder::new().items(short_text()).max_items(Some(crate::visit_type::MAX_OPTIONS)).into()
}

/// Who may book a visit type online, or absent (everyone).
pub fn bookable_by_or_null() -> Object {
    let names: Vec<&str> = crate::visit_type::BookableBy::NAMES.iter().map(|(n, _)| *n).collect();
    one_of(&names, true)
}

/// Answers to a visit type's intake questions, by question id: a text (a
/// choice's option) or a boolean (a yes/no question).
pub fn intake_or_null() -> RefOr<Schema> {
    use utoipa::openapi::schema::{AdditionalProperties, OneOfBuilder};
    let ty: SchemaType = [Type::Object, Type::Null].into_iter().collect();
    let answer = OneOfBuilder::new()
        .item(text(false).max_length(Some(crate::visit_type::MAX_ANSWER)).build())
        .item(ObjectBuilder::new().schema_type(Type::Boolean).build());
    ObjectBuilder::new()
        .schema_type(ty)
        .max_properties(Some(crate::visit_type::MAX_QUESTIONS))
        .additional_properties(Some(AdditionalProperties::RefOr(answer.into())))
        .into()
}
