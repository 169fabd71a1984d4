//! `medislot seed`: a large, realistic data set, fast (bulk inserts in
//! batches): clinics in ten cities and five time zones, verified doctors with
//! weekly schedules and a booking horizon of `--days`, patients, and booked
//! appointments. Every generated account's password is `seed-password`.

use jiff::{SignedDuration, Timestamp};
use medislot_app::App;
use medislot_domain::free_index::FreeIndex;
use medislot_domain::{
    schedule::{RangeInput, ScheduleInput},
    AppointmentId, AppointmentStatus, ClinicId, Coordinates, DoctorId, Interval, Mode, Policy, PostalAddress, Role,
    Schedule, TimeZoneName, UserId, VerificationState,
};
use medislot_store::search::{SearchEntry, SearchListing};
use medislot_store::{AppointmentRecord, BulkLoad, ClinicRecord, DoctorRecord, UserRecord};
use rand::{rngs::StdRng, Rng, SeedableRng};

pub const PASSWORD: &str = "seed-password";
const BATCH: usize = 5000;

/// (city, state where the country uses one, country, dialling code, latitude, longitude, zone)
type City = (&'static str, Option<&'static str>, &'static str, &'static str, f64, f64, &'static str);
const CITIES: [City; 10] = [
    ("Paris", None, "FR", "33", 48.8566, 2.3522, "Europe/Paris"),
    ("Lyon", None, "FR", "33", 45.7640, 4.8357, "Europe/Paris"),
    ("Marseille", None, "FR", "33", 43.2965, 5.3698, "Europe/Paris"),
    ("Berlin", None, "DE", "49", 52.5200, 13.4050, "Europe/Berlin"),
    ("Madrid", None, "ES", "34", 40.4168, -3.7038, "Europe/Madrid"),
    ("London", None, "GB", "44", 51.5072, -0.1276, "Europe/London"),
    ("New York", Some("NY"), "US", "1", 40.7128, -74.0060, "America/New_York"),
    ("Chicago", Some("IL"), "US", "1", 41.8781, -87.6298, "America/Chicago"),
    ("Toronto", Some("ON"), "CA", "1", 43.6532, -79.3832, "America/Toronto"),
    ("Sydney", Some("NSW"), "AU", "61", -33.8688, 151.2093, "Australia/Sydney"),
];
pub use medislot_domain::people::COMMON_SPECIALTIES as SPECIALTIES;
const LANGUAGES: [&str; 6] = ["en", "fr", "de", "es", "it", "ar"];
const FIRST: [&str; 12] =
    ["Camille", "Hugo", "Léa", "Nadia", "Omar", "Sofia", "Jules", "Ava", "Noah", "Grace", "Priya", "Samuel"];
const LAST: [&str; 12] = [
    "Martin", "Dubois", "Moreau", "Garcia", "Roux", "Fournier", "Smith", "Brown", "Miller", "Wilson", "Clark", "Lewis",
];

#[derive(Debug, Clone, clap::Args)]
pub struct SeedArgs {
    #[arg(long, default_value_t = 2000)]
    pub doctors: usize,
    #[arg(long, default_value_t = 200)]
    pub clinics: usize,
    /// Booking horizon of every doctor, in days.
    #[arg(long, default_value_t = 60)]
    pub days: i64,
    /// Patients (default: one per 20 booked appointments, at least 1000, so
    /// that each has room for theirs: nobody is booked twice at once).
    #[arg(long)]
    pub patients: Option<usize>,
    /// Booked appointments per doctor, within the first week.
    #[arg(long, default_value_t = 4)]
    pub appointments_per_doctor: usize,
    /// Random seed: the same seed gives the same data set.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

fn schedule(rng: &mut StdRng, days: i64, online: bool) -> anyhow::Result<Schedule> {
    let slot = if rng.gen_bool(0.5) { 20 } else { 30 };
    let mut weekly = vec![];
    for day in ["monday", "tuesday", "wednesday", "thursday", "friday"] {
        weekly.push(RangeInput::weekly(day, "09:00", "12:30", "in_person", slot));
        weekly.push(RangeInput::weekly(day, "14:00", if online { "16:00" } else { "18:00" }, "in_person", slot));
        if online {
            weekly.push(RangeInput::weekly(day, "16:00", "18:00", "online", 20));
        }
    }
    if rng.gen_bool(0.3) {
        weekly.push(RangeInput::weekly("saturday", "09:00", "12:00", "in_person", slot));
    }
    let input = ScheduleInput { weekly, extra: vec![], horizon_days: Some(days), min_notice_minutes: Some(60) };
    Schedule::parse(&input).map_err(|e| anyhow::anyhow!("generated schedule is invalid: {e:?}"))
}

/// The times each patient is already booked, so that generated data never
/// gives a patient two appointments at once (the stores refuse that).
#[derive(Default)]
pub(crate) struct Diary(std::collections::HashMap<UserId, std::collections::BTreeMap<Timestamp, Timestamp>>);

impl Diary {
    /// Books `[start, end)` for the patient if they are free then.
    pub(crate) fn take(&mut self, patient: UserId, start: Timestamp, end: Timestamp) -> bool {
        let times = self.0.entry(patient).or_default();
        // The times are disjoint: only the last one to start before `end` can overlap.
        if times.range(..end).next_back().is_some_and(|(_, &e)| start < e) {
            return false;
        }
        times.insert(start, end);
        true
    }
}

/// Generates and loads the data set; returns (clinics, doctors, patients, appointments) created.
pub async fn run(app: &App, args: &SeedArgs) -> anyhow::Result<(usize, usize, usize, usize)> {
    anyhow::ensure!(args.clinics >= 1 && args.doctors >= 1, "--clinics and --doctors must be at least 1");
    anyhow::ensure!((1..=365).contains(&args.days), "--days must be between 1 and 365");
    let patient_count =
        args.patients.unwrap_or_else(|| (args.doctors.saturating_mul(args.appointments_per_doctor) / 20).max(1000));
    anyhow::ensure!(patient_count >= 1, "--patients must be at least 1");
    let mut rng = StdRng::seed_from_u64(args.seed);
    let now = app.now();
    // The records are dated a little before the search rows computed from
    // them: the rows already say what they hold, so a node starting on the
    // set has nothing to catch up (it looks at changes shortly before the
    // newest rows).
    let dated = now - SignedDuration::from_mins(1);
    let hash = app.password_hash(PASSWORD).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
    let user = |role: Role, email: String, name: String| UserRecord {
        id: UserId::new(),
        email,
        password_hash: hash.clone(),
        role,
        name,
        created_at: dated,
    };

    let mut first = BulkLoad::default();
    let patients: Vec<UserRecord> = (0..patient_count)
        .map(|i| user(Role::Patient, format!("patient{i}-{run}@seed.medislot.test"), format!("Patient {i}")))
        .collect();
    let patient_ids: Vec<UserId> = patients.iter().map(|p| p.id).collect();
    first.users.extend(patients);
    let admin = user(Role::ClinicAdmin, format!("clinics-{run}@seed.medislot.test"), "Seed clinic admin".into());
    let admin_id = admin.id;
    first.users.push(admin);
    let mut clinics = vec![];
    for i in 0..args.clinics {
        let (city, district, country, dial, lat, lon, tz) = CITIES[i % CITIES.len()];
        let c = ClinicRecord {
            id: ClinicId::new(),
            name: format!("{city} Health Centre {}", i / CITIES.len() + 1),
            address: format!("{} Main Street", 1 + i % 200),
            postal: PostalAddress {
                city: Some(city.to_string()),
                district: district.map(str::to_string),
                postal_code: Some(format!("{:05}", 10_000 + i % 90_000)),
                country: Some(country.to_string()),
            },
            phone: Some(format!("+{dial}{:09}", 100_000_000 + i % 900_000_000)),
            position: Coordinates { lat: lat + rng.gen_range(-0.15..0.15), lon: lon + rng.gen_range(-0.2..0.2) },
            time_zone: TimeZoneName::parse("time_zone", tz).map_err(|e| anyhow::anyhow!("{e:?}"))?,
            region: "local".into(),
            policy: if i % 2 == 0 { Policy::Strict } else { Policy::Available },
            rules: Default::default(),
            created_at: dated,
        };
        clinics.push(c.clone());
        first.clinics.push((c, admin_id));
    }
    app.store().bulk_load(&first).await?;

    let mut appointments = 0;
    let week = Interval { start: now + SignedDuration::from_hours(2), end: now + SignedDuration::from_hours(24 * 7) };
    // One batch is written while the next is generated.
    let mut writing: Option<tokio::task::JoinHandle<Result<(), medislot_store::StoreError>>> = None;
    let mut diary = Diary::default();
    for chunk in (0..args.doctors).collect::<Vec<_>>().chunks(BATCH) {
        let mut batch = BulkLoad::default();
        for &i in chunk {
            let clinic = &clinics[i % clinics.len()];
            let online = rng.gen_bool(0.4);
            let mut specialties = vec![SPECIALTIES[rng.gen_range(0..SPECIALTIES.len())].to_string()];
            if rng.gen_bool(0.2) {
                let second = SPECIALTIES[rng.gen_range(0..SPECIALTIES.len())].to_string();
                if second != specialties[0] {
                    specialties.push(second);
                }
            }
            let d = DoctorRecord {
                id: DoctorId::new(),
                user_id: None,
                clinic_id: clinic.id,
                name: format!("Dr {} {}", FIRST[rng.gen_range(0..FIRST.len())], LAST[rng.gen_range(0..LAST.len())]),
                specialties,
                languages: vec!["en".into(), LANGUAGES[rng.gen_range(1..LANGUAGES.len())].into()],
                modes: if online { vec![Mode::InPerson, Mode::Online] } else { vec![Mode::InPerson] },
                licence_number: format!("SEED-{i:06}"),
                bio: String::new(),
                verification: VerificationState::Verified,
                verification_reason: None,
                membership: medislot_domain::Membership::Active,
                schedule: schedule(&mut rng, args.days, online)?,
                video_room_url: None,
                version: 1,
                created_at: dated,
                updated_at: dated,
                visit_types: vec![],
            };
            // Booked appointments on distinct slots of the first week.
            let slots = d.schedule.slots(d.id, &clinic.time_zone.tz(), week, &[]);
            let mut taken = std::collections::HashSet::new();
            for _ in 0..args.appointments_per_doctor.min(slots.len()) {
                let s = &slots[rng.gen_range(0..slots.len())];
                if !taken.insert(s.start) {
                    continue;
                }
                // A patient free at that time (a patient is never in two places at once).
                let Some(patient_id) = (0..8)
                    .map(|_| patient_ids[rng.gen_range(0..patient_ids.len())])
                    .find(|p| diary.take(*p, s.start, s.end))
                else {
                    continue;
                };
                batch.appointments.push(AppointmentRecord {
                    id: AppointmentId::new(),
                    doctor_id: d.id,
                    patient_id,
                    start: s.start,
                    end: s.end,
                    mode: s.mode,
                    reason: "seed".into(),
                    status: AppointmentStatus::Booked,
                    version: 1,
                    origin_region: "local".into(),
                    hold_expires_at: None,
                    cancel_reason: None,
                    cancelled_by: None,
                    created_at: dated,
                    updated_at: dated,
                    video_room: (s.mode == Mode::Online).then(medislot_store::new_video_room),
                    visit: None,
                    awaiting_clinic: false,
                });
            }
            batch.doctors.push(d);
        }
        appointments += batch.appointments.len();
        // As of now, not as of the seed's start: a long seed's first rows would
        // otherwise be minutes old, their next starts passed, when it ends.
        batch.search = search_entries(&batch, &clinics, app.now());
        if let Some(previous) = writing.take() {
            previous.await??;
        }
        let store = app.store().clone();
        writing = Some(tokio::spawn(async move { store.bulk_load(&batch).await }));
    }
    if let Some(last) = writing {
        last.await??;
    }
    app.store().refresh_statistics().await?;
    // Search's index, so that the first search after `serve` reads it at once.
    app.catch_up_search_index().await?;
    Ok((args.clinics, args.doctors, patient_count, appointments))
}

/// The batch's doctors' search rows, computed from their schedules and the
/// appointments seeded for them, on every core.
fn search_entries(batch: &BulkLoad, clinics: &[ClinicRecord], now: jiff::Timestamp) -> Vec<SearchEntry> {
    let clinics: std::collections::HashMap<ClinicId, &ClinicRecord> = clinics.iter().map(|c| (c.id, c)).collect();
    let mut busy: std::collections::HashMap<DoctorId, Vec<Interval>> = std::collections::HashMap::new();
    for a in &batch.appointments {
        busy.entry(a.doctor_id).or_default().push(Interval { start: a.start, end: a.end });
    }
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let per = batch.doctors.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let parts: Vec<_> = batch
            .doctors
            .chunks(per)
            .map(|doctors| {
                let (clinics, busy) = (&clinics, &busy);
                scope.spawn(move || {
                    doctors
                        .iter()
                        .map(|d| {
                            let c = clinics[&d.clinic_id];
                            let b = busy.get(&d.id).map(Vec::as_slice).unwrap_or(&[]);
                            let free = FreeIndex::compute(&d.schedule, d.id, &c.time_zone.tz(), b, now);
                            SearchEntry {
                                doctor_id: d.id,
                                at: now,
                                listing: Some(SearchListing {
                                    name: d.name.clone(),
                                    specialties: d.specialties.clone(),
                                    languages: d.languages.clone(),
                                    modes: d.modes.clone(),
                                    position: c.position,
                                    free,
                                }),
                            }
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        parts.into_iter().flat_map(|p| p.join().unwrap_or_default()).collect()
    })
}
