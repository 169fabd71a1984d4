//! `serve --demo`: a realistic data set on first start — three clinics in two
//! time zones, 40 verified doctors across 10 specialties, patients, and a week
//! of appointments on either side of today. Logins are printed at start-up.

use jiff::{SignedDuration, Timestamp};
use medislot_app::{Actor, App, ClinicInput, DoctorInput, Registration, Verification};
use medislot_domain::{
    schedule::{RangeInput, ScheduleInput},
    AppointmentId, AppointmentStatus, Interval, Mode, Role, UserId,
};
use medislot_store::{AppointmentChange, PlaceAppointment, UserRecord};
use std::collections::HashMap;

use crate::seed::SPECIALTIES;

pub const PASSWORD: &str = "demo-password";
const ADMIN: &str = "admin@demo.medislot.test";
const CLINIC_ADMIN: &str = "clinic@demo.medislot.test";
const PATIENT: &str = "patient@demo.medislot.test";

const FIRST: [&str; 20] = [
    "Camille", "Hugo", "Léa", "Nadia", "Omar", "Sofia", "Jules", "Inès", "Marc", "Chloé", "Ava", "Noah", "Mia",
    "Ethan", "Grace", "Lucas", "Amara", "Daniel", "Priya", "Samuel",
];
const LAST: [&str; 20] = [
    "Martin", "Bernard", "Dubois", "Moreau", "Laurent", "Garcia", "Roux", "Fournier", "Girard", "Bonnet", "Smith",
    "Johnson", "Williams", "Brown", "Davis", "Miller", "Wilson", "Taylor", "Clark", "Lewis",
];

fn err(e: medislot_app::AppError) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}

/// Patients who book but cannot sign in (no password): the demo's waiting room.
async fn crowd(app: &App, n: usize) -> anyhow::Result<Vec<UserId>> {
    let mut ids = Vec::with_capacity(n);
    for k in 0..n {
        let user = UserRecord {
            id: UserId::new(),
            email: format!("visitor{k}@demo.medislot.test"),
            password_hash: "!demo: no password".into(),
            role: Role::Patient,
            name: format!("{} {}", FIRST[k % FIRST.len()], LAST[(k * 7 + 3) % LAST.len()]),
            created_at: app.now(),
        };
        app.store().create_user(&user).await?;
        ids.push(user.id);
    }
    Ok(ids)
}

async fn user(app: &App, email: &str, name: &str, role: &str) -> anyhow::Result<Actor> {
    let reg = Registration { email: email.into(), password: PASSWORD.into(), name: name.into(), role: role.into() };
    Ok(Actor { user: app.register(reg).await.map_err(err)? })
}

fn print_logins() {
    println!("demo logins (password for all: {PASSWORD}):");
    println!("  patient       {PATIENT}");
    println!("  clinic admin  {CLINIC_ADMIN}");
    println!("  doctor        doctor1@demo.medislot.test … doctor40@demo.medislot.test");
    println!("  admin         {ADMIN}");
}

pub async fn seed(app: &App) -> anyhow::Result<()> {
    if app.store().user_by_email(ADMIN).await?.is_some() {
        print_logins();
        return Ok(());
    }
    tracing::info!("seeding demo data");
    let admin = Actor { user: app.create_admin(ADMIN, PASSWORD, "Ada Admin").await.map_err(err)? };
    let clinic_admin = user(app, CLINIC_ADMIN, "Claire Clinic", "clinic_admin").await?;
    let mut patients = vec![user(app, PATIENT, "Paul Patient", "patient").await?];
    for (i, name) in ["Zoé Durand", "Liam O'Brien", "Maya Chen", "Karim Haddad", "Elena Rossi"].iter().enumerate() {
        patients.push(user(app, &format!("patient{}@demo.medislot.test", i + 2), name, "patient").await?);
    }

    // (name, street, city, district, postal code, country, phone, latitude, longitude, zone)
    let clinics = [
        (
            "Clinique Saint-Louis",
            "12 rue de Rivoli",
            "Paris",
            "IDF",
            "75004",
            "FR",
            "+33 1 42 72 10 10",
            48.8556,
            2.3580,
            "Europe/Paris",
        ),
        (
            "Centre Médical Bellecour",
            "3 place Bellecour",
            "Lyon",
            "ARA",
            "69002",
            "FR",
            "+33 4 78 42 11 11",
            45.7578,
            4.8320,
            "Europe/Paris",
        ),
        (
            "Hudson Health",
            "250 Hudson St",
            "New York",
            "NY",
            "10013",
            "US",
            "+1 212 555 0134",
            40.7260,
            -74.0079,
            "America/New_York",
        ),
    ];
    let mut clinic_ids = Vec::new();
    for (name, address, city, district, postal_code, country, phone, lat, lon, tz) in clinics {
        let input = ClinicInput {
            name: name.into(),
            address: address.into(),
            city: Some(city.into()),
            district: Some(district.into()),
            postal_code: Some(postal_code.into()),
            country: Some(country.into()),
            phone: Some(phone.into()),
            latitude: lat,
            longitude: lon,
            time_zone: tz.into(),
            region: None,
            policy: Some(if tz == "Europe/Paris" { "strict" } else { "available" }.into()),
            // The demo's patients may change their appointments up to the start;
            // a clinic's admin sets a cut-off on its page ("Change" under the clinic).
            cancel_cutoff_hours: None,
        };
        clinic_ids.push(app.create_clinic(Some(&clinic_admin), input).await.map_err(err)?.id);
    }

    let weekdays = ["monday", "tuesday", "wednesday", "thursday", "friday"];
    let mut doctors = Vec::new();
    for i in 0..40usize {
        let name = format!("Dr {} {}", FIRST[i % 20], LAST[(i * 7 + i / 20) % 20]);
        let account = user(app, &format!("doctor{}@demo.medislot.test", i + 1), &name, "doctor").await?;
        let clinic = clinic_ids[i % 3];
        let languages = if i % 3 == 2 { vec!["en".into(), "es".into()] } else { vec!["fr".into(), "en".into()] };
        let input = DoctorInput {
            clinic_id: clinic,
            user_id: Some(account.user.id),
            name,
            specialties: vec![SPECIALTIES[i % 10].into()],
            languages,
            modes: vec!["in_person".into(), "online".into()],
            licence_number: format!("LIC-{:05}", 10_000 + i),
            bio: format!("{} with {} years of practice.", SPECIALTIES[i % 10].replace('-', " "), 5 + i % 20),
        };
        // The clinic invites the doctor's account; the doctor accepts.
        let doctor = app.create_doctor(Some(&clinic_admin), input).await.map_err(err)?;
        app.decide_membership(Some(&account), doctor.id, "accept").await.map_err(err)?;
        let mut weekly = Vec::new();
        for (d, day) in weekdays.iter().enumerate() {
            weekly.push(RangeInput::weekly(day, "09:00", "12:00", "in_person", 30));
            if (d + i) % 2 == 0 {
                weekly.push(RangeInput::weekly(day, "14:00", "17:00", "online", 20));
            }
        }
        if i % 4 == 0 {
            weekly.push(RangeInput::weekly("saturday", "09:00", "12:00", "in_person", 30));
        }
        let schedule = ScheduleInput { weekly, extra: vec![], horizon_days: Some(90), min_notice_minutes: Some(60) };
        app.put_schedule(Some(&clinic_admin), doctor.id, schedule).await.map_err(err)?;
        let verdict = Verification { decision: "verified".into(), reason: None };
        doctors.push(app.verify_doctor(Some(&admin), doctor.id, verdict).await.map_err(err)?);
    }

    // A week of appointments either side of today, straight through the store
    // (past ones could not be booked through the API, which refuses the past).
    let now = app.now();
    let window =
        Interval { start: now - SignedDuration::from_hours(24 * 7), end: now + SignedDuration::from_hours(24 * 7) };
    // The accounts you sign in with have a long past but only a few
    // appointments ahead, in person and none in the next two days: their next
    // free times are free for them to book. Patients who cannot sign in take
    // the rest.
    let crowd = crowd(app, 40).await?;
    let mut ahead: HashMap<UserId, usize> = HashMap::new();
    let mut n = 0usize;
    let mut diary = crate::seed::Diary::default();
    for (i, doctor) in doctors.iter().enumerate() {
        let clinic = app.clinic(doctor.clinic_id).await.map_err(err)?;
        let slots = doctor.schedule.slots(doctor.id, &clinic.time_zone.tz(), window, &[]);
        for slot in slots.iter().skip(i % 5).step_by(9) {
            let past = slot.end < now;
            let later = slot.start > now + SignedDuration::from_hours(48) && slot.mode == Mode::InPerson;
            let named = patients
                .iter()
                .map(|p| p.user.id)
                .filter(|p| past || later && ahead.get(p).is_none_or(|k| *k < 3))
                .collect::<Vec<_>>();
            let turn = |pool: &[UserId], k: usize| pool[(n + k) % pool.len()];
            // The next patient free at that time (never two appointments at once).
            let mut candidates =
                (0..named.len()).map(|k| turn(&named, k)).chain((0..crowd.len()).map(|k| turn(&crowd, k)));
            let Some(patient_id) = candidates.find(|p| diary.take(*p, slot.start, slot.end)) else {
                continue;
            };
            if !past && named.contains(&patient_id) {
                *ahead.entry(patient_id).or_default() += 1;
            }
            n += 1;
            let cmd = PlaceAppointment {
                id: AppointmentId::new(),
                doctor_id: doctor.id,
                patient_id,
                start: slot.start,
                end: slot.end,
                mode: slot.mode,
                reason: ["Check-up", "Follow-up", "Persistent cough", "Back pain", "Skin rash", "Prescription renewal"]
                    [n % 6]
                    .into(),
                status: AppointmentStatus::Booked,
                hold_expires_at: None,
                origin_region: app.config().region.clone(),
                now: slot.start.min(now) - SignedDuration::from_hours(24),
                idempotency: None,
                max_holds: 0,
                visit: None,
            };
            let placed = app.store().place(&cmd).await?;
            if slot.end < now {
                let id = match placed {
                    medislot_store::Placed::Created(a) | medislot_store::Placed::Replayed { appointment: a, .. } => {
                        a.id
                    }
                };
                let status = if n.is_multiple_of(7) { AppointmentStatus::Noshow } else { AppointmentStatus::Fulfilled };
                let event =
                    if status == AppointmentStatus::Noshow { "appointment.noshow" } else { "appointment.fulfilled" };
                let decide: medislot_store::Decide = Box::new(move |a| {
                    Ok(AppointmentChange {
                        status,
                        start: a.start,
                        end: a.end,
                        cancel_reason: None,
                        event,
                        detail: Some("demo".into()),
                    })
                });
                app.store().modify_appointment(id, Timestamp::now(), doctor.user_id, decide).await?;
            }
        }
    }
    tracing::info!(doctors = doctors.len(), appointments = n, "demo data ready");
    print_logins();
    Ok(())
}
