//! The search page: what was typed understood as people say it, the places
//! with doctors, and each result's next free times.

use super::{error_for, local, mode_text, urlencode, Web};
use crate::AppState;
use axum::{
    extract::{Query, State},
    http::{HeaderMap, StatusCode},
    response::Response,
};
use jiff::{SignedDuration, Timestamp};
use maud::{html, Markup};
use medislot_app::{AppError, SearchParams};
use medislot_domain::people::COMMON_SPECIALTIES as SPECIALTIES;
use medislot_domain::vocabulary::{self, Understood};
use medislot_store::Place;
use std::collections::{BTreeMap, HashMap};

/// A `YYYY-MM-DD` field as the start of that day (UTC), or a field error.
fn date(q: &HashMap<String, String>, field: &str, errors: &mut HashMap<String, String>) -> Option<Timestamp> {
    let v = q.get(field).filter(|v| !v.is_empty())?;
    match v.parse::<jiff::civil::Date>().ok().and_then(|d| d.to_zoned(jiff::tz::TimeZone::UTC).ok()) {
        Some(z) => Some(z.timestamp()),
        None => {
            errors.insert(field.into(), "must be a date (YYYY-MM-DD)".into());
            None
        }
    }
}

/// A search's parameters as a query string.
fn query_string(q: &HashMap<String, String>) -> String {
    q.iter().map(|(k, v)| format!("{}={}", urlencode(k), urlencode(v))).collect::<Vec<_>>().join("&")
}

/// "Cardiology, General practice": specialties as people name them.
pub(super) fn specialties_text(slugs: &[String]) -> String {
    slugs.iter().map(|s| vocabulary::specialty_label(s, false)).collect::<Vec<_>>().join(", ")
}

/// "French, English": languages by name.
pub(super) fn languages_text(codes: &[String]) -> String {
    codes.iter().map(|c| vocabulary::language_label(c)).collect::<Vec<_>>().join(", ")
}

/// The search form. "Near" offers the cities where doctors can be booked
/// (see [`medislot_app::App::places`]); "near me" uses the browser's position.
fn search_form(q: &HashMap<String, String>, errors: &HashMap<String, String>, places: &[Place]) -> Markup {
    let v = |k: &str| q.get(k).cloned().unwrap_or_default();
    html! {
        form method="get" action="/" role="search" {
            div.grid {
                div {
                    label for="specialty" { "Specialty" }
                    input #specialty name="specialty" list="specialties" value=(v("specialty")) placeholder="e.g. cardiologist, généraliste";
                    datalist #specialties {
                        @for s in SPECIALTIES {
                            option value=(vocabulary::specialty_label(s, false)) {}
                            option value=(vocabulary::specialty_label(s, true)) {}
                        }
                    }
                    (error_for(errors, "specialty"))
                }
                div {
                    label for="city" { "Near" }
                    select #city name="city" {
                        option value="" { "anywhere" }
                        @for p in places { option value=(p.city) selected[v("city") == p.city] { (p.city) } }
                    }
                    input #lat type="hidden" name="lat" value=(v("lat"));
                    input #lon type="hidden" name="lon" value=(v("lon"));
                    button.secondary #near-me type="button" hidden { "Near me" }
                    (error_for(errors, "near"))
                }
                div {
                    label for="radius_km" { "Within (km)" }
                    input #radius_km name="radius_km" type="number" min="1" max="1000" value=(q.get("radius_km").cloned().unwrap_or_else(|| "25".into()));
                    (error_for(errors, "radius_km"))
                }
                div {
                    label for="mode" { "Consultation" }
                    select #mode name="mode" {
                        option value="" { "in person or online" }
                        option value="in_person" selected[v("mode") == "in_person"] { "in person" }
                        option value="online" selected[v("mode") == "online"] { "online (video)" }
                    }
                    (error_for(errors, "mode"))
                }
                div {
                    label for="language" { "Language" }
                    input #language name="language" value=(v("language")) placeholder="e.g. French, français";
                    (error_for(errors, "language"))
                }
                div {
                    label for="from" { "From" }
                    input #from name="from" type="date" value=(v("from"));
                    (error_for(errors, "from"))
                }
                div {
                    label for="to" { "Until" }
                    input #to name="to" type="date" value=(v("to"));
                    (error_for(errors, "to"))
                }
            }
            button type="submit" { "Search" }
        }
    }
}

/// The search page: the form, and when it was submitted, the hits with their next free slot.
pub async fn search(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let w = Web::new(&s, &headers).await;
    if q.is_empty() {
        let places = s.app.places().await;
        let body = html! { h1 { "Find a doctor and book online" } (search_form(&q, &HashMap::new(), &places)) };
        return w.ok("Find a doctor", body);
    }
    let mut errors = HashMap::new();
    let places = s.app.places().await;
    let asked = q.get("city").filter(|c| !c.is_empty());
    let city = asked.and_then(|c| places.iter().find(|p| &p.city == c));
    if let (Some(c), None) = (asked, city) {
        errors.insert("near".into(), format!("no doctors can be booked in {c}: pick one of the places listed"));
    }
    let near = match (city, q.get("lat").filter(|v| !v.is_empty()), q.get("lon").filter(|v| !v.is_empty())) {
        (Some(p), _, _) => Some(format!("{},{}", p.position.lat, p.position.lon)),
        (None, Some(lat), Some(lon)) => Some(format!("{lat},{lon}")),
        _ => None,
    };
    let radius = match q.get("radius_km").filter(|v| !v.is_empty() && near.is_some()) {
        Some(r) => r.parse::<f64>().map_err(|_| errors.insert("radius_km".into(), "must be a number".into())).ok(),
        None => None,
    };
    let page: u32 = q.get("page").and_then(|p| p.parse().ok()).unwrap_or(1).max(1);
    // What was typed, as people say it ("cardiologue", "GP", "French"), as our slugs and codes.
    let typed = |k: &str| q.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
    let specialty = typed("specialty").map(|t| (t, vocabulary::specialty(t)));
    let language = typed("language").map(|t| (t, vocabulary::language(t)));
    let mut understood = Vec::new();
    if let Some((t, Some(Understood::Meant(slug)))) = specialty {
        let label = vocabulary::specialty_label(slug, false);
        if vocabulary::plain(t) != vocabulary::plain(&label) {
            understood.push(format!("{label} for “{t}”"));
        }
    }
    if let Some((t, Some(Understood::Meant(code)))) = language {
        let label = vocabulary::language_label(code);
        if vocabulary::plain(t) != vocabulary::plain(&label) {
            understood.push(format!("doctors who speak {label} for “{t}”"));
        }
    }
    let params = SearchParams {
        specialty: specialty.map(|(t, u)| u.map_or_else(|| t.to_string(), |u| u.value().to_string())),
        near,
        radius_km: radius,
        mode: q.get("mode").filter(|v| !v.is_empty()).cloned(),
        language: language.map(|(t, u)| u.map_or_else(|| t.to_string(), |u| u.value().to_string())),
        available_from: date(&q, "from", &mut errors),
        available_to: date(&q, "to", &mut errors).map(|t| t + SignedDuration::from_hours(24)),
        page,
        per_page: 10,
        cursor: None,
    };
    let result = if errors.is_empty() { Some(s.app.search(params).await) } else { None };
    let found = match result {
        Some(Ok(p)) => Some(p),
        Some(Err(AppError::Invalid(e))) => {
            for f in e.0 {
                let field = match f.field.as_str() {
                    "available_from" => "from".to_string(),
                    "available_to" => "to".to_string(),
                    other => other.to_string(),
                };
                errors.insert(field, f.message);
            }
            None
        }
        Some(Err(e)) => return w.problem(&e),
        None => None,
    };
    let strips = match &found {
        Some(p) => {
            let mode = q.get("mode").filter(|v| !v.is_empty()).map(String::as_str);
            futures::future::join_all(p.items.iter().map(|hit| next_days(&s, &w, hit, mode))).await
        }
        None => vec![],
    };
    let status = if errors.is_empty() { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
    let body = html! {
        h1 { "Find a doctor and book online" }
        (search_form(&q, &errors, &places))
        @if let Some(p) = &found {
            h2 #results { (p.total) @if p.total_is_lower_bound { "+" } " doctors found" }
            @if !understood.is_empty() { p.muted #understood { "Showing " (understood.join(", and ")) "." } }
            @if p.total == 0 {
                @if let Some((t, None)) = specialty {
                    @let suggestions = vocabulary::specialty_suggestions(t, 3);
                    @if !suggestions.is_empty() {
                        p #did-you-mean {
                            "No specialty is called “" (t) "”. Did you mean "
                            @for (i, slug) in suggestions.iter().enumerate() {
                                @if i > 0 { ", " }
                                @let mut other = q.clone();
                                @let _ = other.insert("specialty".into(), (*slug).to_string());
                                @let _ = other.remove("page");
                                a href={ "/?" (query_string(&other)) } { (vocabulary::specialty_label(slug, false)) }
                            }
                            "?"
                        }
                    }
                }
            }
            @for (hit, strip) in p.items.iter().zip(strips.iter()) {
                div.card {
                    p { a href={ "/doctors/" (hit.doctor.id) } { strong { (hit.doctor.name) } } " — " (specialties_text(&hit.doctor.specialties)) }
                    p.muted {
                        (hit.clinic.name) ", " (hit.clinic.address_line())
                        @if let Some(km) = hit.distance_km { " · " (format!("{km:.1}")) " km" }
                        " · speaks " (languages_text(&hit.doctor.languages))
                    }
                    @if let Some(slot) = &hit.next_slot {
                        p { "Next available: " a.slotlink href={ "/book/" (slot.slot_id) } { (local(slot.start, &hit.clinic)) } " · " (mode_text(slot.mode)) }
                        @if strip.len() > 1 || strip.first().is_some_and(|(_, times)| times.len() > 1) {
                            div.strip aria-label="More free times" {
                                @for (day, times) in strip {
                                    p {
                                        span.day { (day.strftime("%a %-d %b").to_string()) ": " }
                                        @for t in times {
                                            " "
                                            a.slotlink href={ "/book/" (t.slot_id) } data-utc=(t.start.to_string()) aria-label={ (local(t.start, &hit.clinic)) ", " (mode_text(t.mode)) } {
                                                (t.start.to_zoned(hit.clinic.time_zone.tz()).strftime("%H:%M").to_string())
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    } @else {
                        p.muted { "No free slot in this period." }
                    }
                }
            }
            @if p.next_cursor.is_some() {
                @let mut next = q.clone();
                @let _ = next.insert("page".into(), (p.page + 1).to_string());
                p { a href={ "/?" (query_string(&next)) } { "More results" } }
            }
        }
    };
    w.render(status, "Find a doctor", body)
}

/// Days shown in a search result's strip, and times a day.
const STRIP_DAYS: usize = 3;
const STRIP_TIMES: usize = 4;

/// A result's next free times: from its next slot, the first few of each of
/// the next days that have any, in the clinic's time zone (of the searched
/// mode, if one was). Nothing when they cannot be read: the result still
/// shows its next slot and its week.
async fn next_days(
    s: &AppState,
    w: &Web,
    hit: &medislot_app::SearchHit,
    mode: Option<&str>,
) -> Vec<(jiff::civil::Date, Vec<medislot_app::SlotView>)> {
    let Some(next) = &hit.next_slot else { return vec![] };
    let to = next.start + SignedDuration::from_hours(24 * 7);
    let Ok(list) = s.app.slots(w.me.as_ref(), hit.doctor.id, Some(next.start), Some(to), mode, None).await else {
        return vec![];
    };
    let tz = hit.clinic.time_zone.tz();
    let mut days: BTreeMap<jiff::civil::Date, Vec<medislot_app::SlotView>> = BTreeMap::new();
    for slot in list.slots {
        let day = slot.start.to_zoned(tz.clone()).date();
        if days.len() == STRIP_DAYS && !days.contains_key(&day) {
            break;
        }
        let times = days.entry(day).or_default();
        if times.len() < STRIP_TIMES {
            times.push(slot);
        }
    }
    days.into_iter().collect()
}
