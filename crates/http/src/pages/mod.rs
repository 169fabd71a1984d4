//! The web application: server-rendered pages (maud templates, escaped by
//! construction), forms that work without JavaScript, a little script where it
//! helps (hold countdown, "near me", the visitor's own time zone). Sessions are
//! the HttpOnly SameSite cookie set at sign-in; every form carries a CSRF token
//! (double-submit cookie).

mod account;
mod auth;
mod book;
mod clinic_rules;
mod notify;
mod patient;
mod search;
mod staff;
mod video_room;
mod visit_types_editor;
mod visits;

use crate::{extract::read_cookie, AppState};
use axum::{
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{Html, IntoResponse, Response},
    routing::{get, post},
    Router,
};
use jiff::Timestamp;
use maud::{html, Markup, DOCTYPE};
use medislot_app::{Actor, AppError};
use medislot_domain::{FieldError, Mode, Role};
use medislot_store::{AppointmentRecord, ClinicRecord, DoctorRecord};
use std::collections::HashMap;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(style_path(), get(|| async { asset(STYLE, "text/css; charset=utf-8") }))
        .route(script_path(), get(|| async { asset(SCRIPT, "text/javascript; charset=utf-8") }))
        // Browsers ask for /favicon.ico whatever the page says; both names serve the one icon.
        .route("/favicon.svg", get(|| async { asset(ICON, "image/svg+xml") }))
        .route("/favicon.ico", get(|| async { asset(ICON, "image/svg+xml") }))
        .route("/", get(search::search))
        .route("/doctors/{id}", get(patient::doctor_week))
        .route("/book/{slot_id}", get(book::show).post(book::submit))
        .route("/holds/{id}", get(book::hold_page).post(book::confirm))
        .route("/appointments", get(patient::mine))
        .route("/appointments/{id}", get(book::confirmation))
        .route("/appointments/{id}/reschedule", get(patient::reschedule_page).post(patient::reschedule))
        .route("/appointments/{id}/cancel", get(patient::cancel_page).post(patient::cancel))
        .route("/appointments/{id}/calendar.ics", get(book::calendar_file))
        .route("/login", get(auth::login_page).post(auth::login))
        .route("/register", get(auth::register_page).post(auth::register))
        .route("/logout", post(auth::logout))
        .route("/doctor", get(staff::doctor_home))
        .route("/doctor/profile", post(staff::create_profile))
        .route("/doctor/schedule", get(staff::schedule_page).post(staff::save_schedule))
        .route("/doctor/time-off", get(back_to("/doctor/schedule")).post(staff::add_time_off))
        .route("/doctor/time-off/{id}/remove", get(back_to("/doctor/schedule")).post(staff::remove_time_off))
        .route("/doctor/agenda", get(staff::agenda))
        .route("/doctor/video-room", get(video_room::page).post(video_room::save))
        .route("/doctor/visit-types", get(visit_types_editor::page).post(visit_types_editor::save))
        .route("/agenda/{id}", post(staff::agenda_action))
        .route("/clinic", get(staff::clinics).post(staff::create_clinic))
        .route("/clinic/{id}/rules", get(clinic_rules::show).post(clinic_rules::save))
        .route("/membership/{id}", get(back_to("/")).post(staff::decide_membership))
        .route("/admin/verification", get(staff::verification_queue))
        .route("/admin/verification/{id}", get(back_to("/admin/verification")).post(staff::decide))
        .route("/ops", get(staff::operations))
        .route("/notifications", get(notify::notifications))
        .route("/account", get(account::page))
        .route("/account/erase", get(back_to("/account")).post(account::erase))
        .route("/account/export.json", get(account::export))
        .route("/account/calendar.ics", get(account::calendar))
        .route("/clinic/{id}/appointments.csv", get(account::clinic_csv))
        .route("/doctors/{id}/waitlist", get(notify::back_to_doctor).post(notify::join_waitlist))
        .route("/waitlist/{id}/leave", post(notify::leave_waitlist))
}

/// A GET of a form's POST-only address (a reload, a bookmark) goes to the page the form is on.
fn back_to(page: &'static str) -> impl Fn() -> std::future::Ready<Response> + Clone + Send + 'static {
    move || std::future::ready(axum::response::Redirect::to(page).into_response())
}

/// What every page needs: who is signed in, and the CSRF token for its forms.
pub struct Web {
    pub me: Option<Actor>,
    pub csrf: String,
    set_csrf: Option<HeaderValue>,
    form_csrf_ok: bool,
}

impl Web {
    pub async fn new(s: &AppState, headers: &HeaderMap) -> Self {
        Self::with_form(s, headers, None).await
    }

    /// For a submitted form: also checks its CSRF token against the cookie.
    pub async fn with_form(s: &AppState, headers: &HeaderMap, form: Option<&Form>) -> Self {
        let me = match s.cookies.read_session(headers) {
            Some(token) => s.app.authenticate(&token).await.ok().flatten(),
            None => None,
        };
        let cookie = read_cookie(headers, s.cookies.csrf()).filter(|t| t.len() == 32);
        let form_csrf_ok = matches!((&cookie, form.and_then(|f| f.get("csrf"))), (Some(c), Some(f)) if c == f);
        let (csrf, set_csrf) = match cookie {
            Some(t) => (t, None),
            None => {
                let t = uuid::Uuid::new_v4().simple().to_string();
                let (name, secure) = (s.cookies.csrf(), s.cookies.secure_attr());
                let set = HeaderValue::from_str(&format!("{name}={t}; Path=/; HttpOnly; SameSite=Strict{secure}")).ok();
                (t, set)
            }
        };
        Web { me, csrf, set_csrf, form_csrf_ok }
    }

    pub fn csrf_ok(&self) -> bool {
        self.form_csrf_ok
    }

    pub fn patient(&self) -> Option<&Actor> {
        self.me.as_ref().filter(|a| a.role() == Role::Patient)
    }

    /// The hidden CSRF field every form carries.
    pub fn csrf_field(&self) -> Markup {
        html! { input type="hidden" name="csrf" value=(self.csrf); }
    }

    /// A whole page in the site's layout.
    pub fn render(&self, status: StatusCode, title: &str, body: Markup) -> Response {
        let page = html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    title { (title) " · medislot" }
                    link rel="stylesheet" href=(style_path());
                    link rel="icon" href="/favicon.svg" type="image/svg+xml";
                }
                body {
                    a.skip href="#main" { "Skip to content" }
                    header {
                        nav aria-label="Main" {
                            a href="/" { strong { "medislot" } }
                            a href="/" { "Find a doctor" }
                            @if let Some(me) = &self.me {
                                @match me.role() {
                                    Role::Patient => { a href="/appointments" { "My appointments" } }
                                    Role::Doctor => { a href="/doctor" { "My agenda" } a href="/doctor/schedule" { "My schedule" } }
                                    Role::ClinicAdmin => { a href="/clinic" { "My clinics" } a href="/doctor/agenda" { "Clinic agenda" } a href="/ops" { "Operations" } }
                                    Role::Admin => { a href="/admin/verification" { "Verification queue" } a href="/ops" { "Operations" } }
                                }
                                a href="/notifications" { "Notifications" }
                                a href="/account" { "Account" }
                                form.inline method="post" action="/logout" {
                                    (self.csrf_field())
                                    button.link type="submit" { "Sign out (" (me.user.name) ")" }
                                }
                            } @else {
                                a href="/login" { "Sign in" }
                                a href="/register" { "Create an account" }
                            }
                        }
                    }
                    main #main { (body) }
                    script src=(script_path()) defer {}
                }
            }
        };
        let mut resp = (status, Html(page.into_string())).into_response();
        if let Some(c) = &self.set_csrf {
            resp.headers_mut().append(header::SET_COOKIE, c.clone());
        }
        resp
    }

    pub fn ok(&self, title: &str, body: Markup) -> Response {
        self.render(StatusCode::OK, title, body)
    }

    /// A page for an error the visitor can do something about.
    pub fn problem(&self, e: &AppError) -> Response {
        if let AppError::PatientBusy { other } = e {
            let title = "You already have an appointment then";
            return self.render(
                StatusCode::CONFLICT,
                title,
                html! {
                    h1 { (title) }
                    p { "You already have an appointment at that time. Cancel or move it first, or pick another time." }
                    @if let Some(o) = other {
                        p { a href={ "/appointments/" (o.id) } { "See the appointment you have then" } }
                    }
                    p { a href="/appointments" { "My appointments" } " · " a href="/" { "Back to the start" } }
                },
            );
        }
        let (status, title, text): (StatusCode, &str, String) = match e {
            AppError::Unauthenticated => (StatusCode::UNAUTHORIZED, "Please sign in", "Please sign in first.".into()),
            AppError::NotFound(what) => (StatusCode::NOT_FOUND, "Not found", format!("No such {what}.")),
            AppError::Forbidden(why) => (StatusCode::FORBIDDEN, "Not allowed", (*why).to_string()),
            AppError::VisitRestricted(why) => (StatusCode::FORBIDDEN, "Not bookable online", (*why).to_string()),
            AppError::HomeRegionUnreachable { .. } | AppError::HomeRegionNoAnswer { .. } => {
                (StatusCode::SERVICE_UNAVAILABLE, "Try again", format!("{e} Please try again in a moment."))
            }
            AppError::Unavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "Try again",
                "The service is busy right now. Please try again in a moment.".into(),
            ),
            AppError::OutcomeUnknown(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "Please check",
                "We could not confirm that your change was saved. Please check your appointments \
                 in a moment before trying again."
                    .into(),
            ),
            other => (StatusCode::UNPROCESSABLE_ENTITY, "Not possible", other.to_string()),
        };
        self.render(status, title, html! { h1 { (title) } p { (text) } p { a href="/" { "Back to the start" } } })
    }
}

/// An HTML page for an error met on the way to a page (an unknown URL, a body
/// too large, a wrong method): the site's layout, the status, what to do next.
pub fn error_page(status: StatusCode, title: &str, detail: &str) -> Response {
    let web = Web { me: None, csrf: String::new(), set_csrf: None, form_csrf_ok: false };
    let hint = match status.as_u16() {
        404 => "The address may be mistyped, or the page may have moved.",
        405 => "This page cannot be opened this way.",
        s if s >= 500 => "Something went wrong on our side. Please try again in a moment.",
        _ => "",
    };
    web.render(
        status,
        title,
        html! {
            h1 { (title) }
            p { (detail) }
            @if !hint.is_empty() { p { (hint) } }
            p { a href="/" { "Back to the start" } }
        },
    )
}

/// A submitted form's fields.
pub struct Form(pub HashMap<String, String>);

impl Form {
    pub fn parse(body: &[u8]) -> Self {
        Form(form_urlencoded::parse(body).into_owned().collect())
    }

    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str).filter(|v| !v.is_empty())
    }

    pub fn text(&self, k: &str) -> String {
        self.get(k).unwrap_or("").to_string()
    }
}

/// Field errors by field name, to show each next to its field.
pub fn field_errors(errors: &[FieldError]) -> HashMap<String, String> {
    errors.iter().map(|e| (e.field.clone(), e.message.clone())).collect()
}

/// The message for one field, if any, linked to it for screen readers.
pub fn error_for(errors: &HashMap<String, String>, field: &str) -> Markup {
    html! {
        @if let Some(m) = errors.get(field) {
            p.error id={ (field) "-error" } role="alert" { (m) }
        }
    }
}

/// The clinic's rules as they hold for this appointment (its visit type may
/// have a cut-off of its own).
pub fn rules_of(a: &AppointmentRecord, d: &DoctorRecord, c: &ClinicRecord) -> medislot_domain::ClinicRules {
    medislot_app::rules_for_visit(c, d, a.visit.as_ref().map(|v| v.code.as_str()))
}

/// "Thursday 26 November 2026, 09:30 (Europe/Paris)".
pub fn local(t: Timestamp, c: &ClinicRecord) -> String {
    format!("{} ({})", t.to_zoned(c.time_zone.tz()).strftime("%A %-d %B %Y, %H:%M"), c.time_zone.as_str())
}

/// An instant in the clinic's zone, with the visitor's own time added by the page script when it differs.
pub fn when(t: Timestamp, c: &ClinicRecord) -> Markup {
    html! { time datetime=(t.to_string()) data-zone=(c.time_zone.as_str()) { (local(t, c)) } }
}

pub fn mode_text(m: Mode) -> &'static str {
    match m {
        Mode::InPerson => "in person",
        Mode::Online => "online (video)",
    }
}

/// A same-site path to go back to after signing in (never another site).
/// Browsers drop tabs and line breaks from URLs and read `\\` as `/`, so
/// `/\t/evil.example` would become `//evil.example`: only a plain path of
/// visible ASCII, with no backslash and no `//` anywhere, is kept; anything
/// else falls back to `/`.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && n.len() <= 2048
                && n.bytes().all(|b| b.is_ascii_graphic())
                && !n.contains('\\')
                && !n.contains("//") =>
        {
            n.to_string()
        }
        _ => "/".into(),
    }
}

pub fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The stylesheet and the script, as files: the Content-Security-Policy allows
/// no inline code. Their names carry a digest of their content, so they can be
/// cached for a year and change name when they change.
fn asset(body: &'static str, kind: &'static str) -> Response {
    ([(header::CONTENT_TYPE, kind), (header::CACHE_CONTROL, "public, max-age=31536000, immutable")], body)
        .into_response()
}

/// The site's icon: a white calendar page with a tick, on the site's blue.
const ICON: &str = r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect width="32" height="32" rx="6" fill="#0b57d0"/><rect x="7" y="9" width="18" height="16" rx="2" fill="#fff"/><rect x="7" y="9" width="18" height="4" fill="#c2d7fa"/><path d="M11 19l3 3 7-7" stroke="#0b57d0" stroke-width="2.5" fill="none" stroke-linecap="round" stroke-linejoin="round"/></svg>"##;

/// A short digest of an asset's content, for its cache-busting name.
fn digest(body: &str) -> String {
    // FNV-1a: stable across builds and platforms; not for security.
    let h = body.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    format!("{:08x}", h >> 32)
}

pub fn style_path() -> &'static str {
    static PATH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PATH.get_or_init(|| format!("/static/site-{}.css", digest(STYLE)))
}

pub fn script_path() -> &'static str {
    static PATH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PATH.get_or_init(|| format!("/static/site-{}.js", digest(SCRIPT)))
}

const STYLE: &str = r#"
*{box-sizing:border-box} body{font-family:system-ui,sans-serif;max-width:48rem;margin:0 auto;padding:0 1rem 2rem;color:#111;background:#fff;line-height:1.5}
header nav{display:flex;flex-wrap:wrap;gap:.5rem 1rem;align-items:center;padding:.75rem 0;border-bottom:1px solid #ccc;margin-bottom:1rem}
a{color:#0b57d0} a:focus,button:focus,input:focus,select:focus,textarea:focus{outline:3px solid #e37400;outline-offset:2px}
.skip{position:absolute;left:-999px} .skip:focus{left:1rem;top:1rem;background:#fff;padding:.5rem}
h1{font-size:1.5rem} h2{font-size:1.2rem}
label{display:block;margin-top:.75rem;font-weight:600}
input,select,textarea{width:100%;padding:.5rem;font-size:1rem;border:1px solid #444;border-radius:.25rem;background:#fff;color:#111}
input[type=checkbox],input[type=radio]{width:auto;margin:0}
label.check{display:flex;align-items:center;gap:.5rem;font-weight:400;margin-top:.5rem}
button{margin-top:1rem;padding:.6rem 1.1rem;font-size:1rem;background:#0b57d0;color:#fff;border:0;border-radius:.25rem;cursor:pointer}
button.secondary{background:#fff;color:#0b57d0;border:1px solid #0b57d0} button.danger{background:#b3261e}
button.link{background:none;color:#0b57d0;padding:0;margin:0;text-decoration:underline}
form.inline{display:inline} .grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(12rem,1fr));gap:0 1rem}
.card{border:1px solid #888;border-radius:.5rem;padding:1rem;margin:1rem 0}
.next .card{border:2px solid #0b57d0;background:#f3f7fe} .past .card{background:#f7f7f7} a.danger{color:#b3261e}
.error{color:#b3261e;font-weight:600;margin:.25rem 0} .notice{background:#fff4e5;border-left:4px solid #e37400;padding:.75rem}
.ok{background:#e7f5ea;border-left:4px solid #1e7e34;padding:.75rem}
.days{display:grid;grid-template-columns:repeat(auto-fit,minmax(9rem,1fr));gap:.75rem} .days ul{list-style:none;padding:0;margin:0}
.days li{margin:.25rem 0} .strip p{margin:.3rem 0} .strip .day{display:inline-block;min-width:6.5rem} .strip .slotlink{padding:.15rem .45rem} .slotlink{display:inline-block;padding:.3rem .6rem;border:1px solid #0b57d0;border-radius:.25rem;text-decoration:none}
.muted{color:#555} .yours{display:block;color:#555;font-size:.9rem} .badge{background:#0b57d0;color:#fff;border-radius:.25rem;padding:0 .4rem;font-size:.85rem} ul.plain{list-style:none;padding:0}
"#;

/// Progressive enhancement only: every page works without it.
const SCRIPT: &str = r#"
(function(){
  var mine = Intl.DateTimeFormat().resolvedOptions().timeZone;
  document.querySelectorAll('time[data-zone]').forEach(function(t){
    if (!mine || t.dataset.zone === mine) return;
    var d = new Date(t.getAttribute('datetime'));
    var s = document.createElement('span'); s.className = 'yours';
    s.textContent = 'Your time: ' + d.toLocaleString([], {weekday:'short', day:'numeric', month:'short', hour:'2-digit', minute:'2-digit'}) + ' (' + mine + ')';
    t.after(s);
  });
  var yz = document.getElementById('yourzone');
  if (yz && mine && yz.dataset.zone !== mine) {
    yz.hidden = false;
    yz.textContent = 'You are in ' + mine + ': your own time follows each slot.';
    document.querySelectorAll('a[data-utc]').forEach(function(a){
      var s = document.createElement('span'); s.className = 'muted';
      s.textContent = ' (' + new Date(a.dataset.utc).toLocaleTimeString([], {hour:'2-digit', minute:'2-digit'}) + ' yours)';
      a.after(s);
    });
  }
  var c = document.getElementById('countdown');
  if (c) {
    var end = Number(c.dataset.expires);
    var tick = function(){
      var left = Math.max(0, Math.round((end - Date.now()) / 1000));
      if (left > 0) {
        c.textContent = Math.floor(left / 60) + ':' + String(left % 60).padStart(2, '0');
        setTimeout(tick, 1000);
        return;
      }
      var n = document.getElementById('hold-notice');
      n.textContent = 'Your hold on this time has run out. ';
      var again = document.createElement('a');
      again.href = n.dataset.again; again.textContent = 'See if it is still free, and the nearest free times';
      n.appendChild(again);
      var f = document.getElementById('confirm-form');
      if (f) f.hidden = true;
    };
    tick();
  }
  var near = document.getElementById('near-me');
  if (near && navigator.geolocation) {
    near.hidden = false;
    near.addEventListener('click', function(){
      navigator.geolocation.getCurrentPosition(function(p){
        document.getElementById('lat').value = p.coords.latitude.toFixed(4);
        document.getElementById('lon').value = p.coords.longitude.toFixed(4);
        document.getElementById('city').value = '';
        near.textContent = 'Using your location';
      });
    });
  }
})();
"#;

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn next_is_a_same_site_path_or_the_start() {
        for ok in ["/", "/appointments", "/book/slot_AAAA?x=1", "/doctors/abc#week"] {
            assert_eq!(safe_next(Some(ok)), ok);
        }
        for bad in [
            "//evil.example",
            "/\t/evil.example",
            "/\n/evil.example",
            "/\\evil.example",
            "\\\\evil.example",
            "/a//b",
            "https://evil.example/",
            "evil.example",
            "/ /evil.example",
            "/\u{200b}/evil.example",
            "/x\r\nSet-Cookie: a=b",
            "",
        ] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(safe_next(None), "/");
    }
}
