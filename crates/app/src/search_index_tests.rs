//! The read model agrees with the full slot computation: random sequences
//! of bookings, holds (some running out), cancels, schedule changes, time
//! off, time passing and replicated changes, each followed by the searches
//! patients make, answered once from the index and once by computing every
//! candidate's slots from its schedule and busy times. Runs on SQLite, and
//! on PostgreSQL too where `MEDISLOT_TEST_POSTGRES_URL` names a server.

use crate::{App, AppConfig, SearchParams};
use jiff::{SignedDuration, Timestamp};
use medislot_domain::{
    schedule::{RangeInput, ScheduleInput},
    AppointmentId, AppointmentStatus, ClinicId, Coordinates, DoctorId, Interval, Membership, Mode, Policy,
    PostalAddress, Role, Schedule, TimeZoneName, UserId, VerificationState,
};
use medislot_store::{
    AppointmentChange, BulkLoad, ClinicRecord, DoctorQuery, DoctorRecord, DynStore, PlaceAppointment, RegionSnapshot,
    UserRecord,
};
use proptest::prelude::*;
use std::sync::{
    atomic::{AtomicI64, Ordering},
    Arc,
};

#[derive(Debug, Clone)]
enum Op {
    Book { doctor: usize, pick: usize },
    Hold { doctor: usize, pick: usize, minutes: i64 },
    Cancel { pick: usize },
    Pass { minutes: i64 },
    Reschedule { doctor: usize, template: usize },
    TimeOff { doctor: usize, from_h: i64, hours: i64 },
    Replicate { pick: usize, clear: bool },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..DOCTORS, 0usize..40).prop_map(|(doctor, pick)| Op::Book { doctor, pick }),
        2 => (0..DOCTORS, 0usize..40, 1i64..90).prop_map(|(doctor, pick, minutes)| Op::Hold { doctor, pick, minutes }),
        2 => (0usize..100).prop_map(|pick| Op::Cancel { pick }),
        3 => (1i64..24 * 60).prop_map(|minutes| Op::Pass { minutes }),
        1 => (0..DOCTORS, 0..TEMPLATES).prop_map(|(doctor, template)| Op::Reschedule { doctor, template }),
        1 => (0..DOCTORS, 0i64..24 * 10, 1i64..48).prop_map(|(doctor, from_h, hours)| Op::TimeOff { doctor, from_h, hours }),
        1 => (0usize..40, any::<bool>()).prop_map(|(pick, clear)| Op::Replicate { pick, clear }),
    ]
}

const DOCTORS: usize = 7;
const TEMPLATES: usize = 3;
const PEER: &str = "peer";

fn template(i: usize) -> Schedule {
    let r = |day: &str, a: &str, b: &str, mode: &str, len: i64| RangeInput::weekly(day, a, b, mode, len);
    let (weekly, notice, horizon) = match i {
        0 => (
            ["monday", "tuesday", "wednesday", "thursday", "friday"]
                .iter()
                .flat_map(|d| [r(d, "09:00", "12:00", "in_person", 30), r(d, "16:00", "17:00", "online", 20)])
                .collect(),
            60,
            30,
        ),
        1 => (
            vec![r("tuesday", "08:00", "10:00", "in_person", 45), r("saturday", "10:00", "11:00", "online", 15)],
            0,
            20,
        ),
        _ => (
            vec![r("wednesday", "22:00", "23:50", "in_person", 25), r("friday", "13:00", "14:00", "online", 30)],
            600,
            45,
        ),
    };
    let input = ScheduleInput { weekly, extra: vec![], horizon_days: Some(horizon), min_notice_minutes: Some(notice) };
    Schedule::parse(&input).unwrap()
}

fn clinic(name: &str, lat: f64, lon: f64, zone: &str, region: &str, now: Timestamp) -> ClinicRecord {
    ClinicRecord {
        id: ClinicId::new(),
        name: name.into(),
        address: "1 Main Street".into(),
        postal: PostalAddress::default(),
        phone: None,
        position: Coordinates { lat, lon },
        time_zone: TimeZoneName::parse("time_zone", zone).unwrap(),
        region: region.into(),
        policy: Policy::Strict,
        rules: Default::default(),
        created_at: now,
    }
}

fn doctor(i: usize, clinic: ClinicId, verified: bool, now: Timestamp) -> DoctorRecord {
    let specialties = ["cardiology", "dermatology"];
    DoctorRecord {
        id: DoctorId::new(),
        user_id: None,
        clinic_id: clinic,
        // Two share a name: ties are broken by id.
        name: format!("Dr {}", ["Abel", "Bea", "Abel", "Cyd", "Dee", "Eli", "Fay", "Gus", "Hal"][i]),
        specialties: if i % 3 == 2 {
            vec![specialties[0].into(), specialties[1].into()]
        } else {
            vec![specialties[i % 2].into()]
        },
        languages: if i.is_multiple_of(2) { vec!["en".into(), "fr".into()] } else { vec!["en".into()] },
        modes: if i.is_multiple_of(3) { vec![Mode::InPerson] } else { vec![Mode::InPerson, Mode::Online] },
        licence_number: format!("T-{i}"),
        bio: String::new(),
        verification: if verified { VerificationState::Verified } else { VerificationState::Pending },
        verification_reason: None,
        membership: Membership::Active,
        schedule: template(i % TEMPLATES),
        video_room_url: None,
        version: 1,
        created_at: now,
        updated_at: now,
        visit_types: vec![],
    }
}

struct World {
    app: App,
    store: DynStore,
    clock: Arc<AtomicI64>,
    patient: UserId,
    /// Local doctors (the last one pending, never listed), then the peer's.
    doctors: Vec<DoctorId>,
    peer_clinic: ClinicRecord,
    peer_doctor: DoctorRecord,
    appointments: Vec<AppointmentId>,
    _dir: Option<tempfile::TempDir>,
}

impl World {
    fn now(&self) -> Timestamp {
        Timestamp::from_microsecond(self.clock.load(Ordering::SeqCst)).unwrap()
    }

    async fn new(store: DynStore, dir: Option<tempfile::TempDir>) -> Self {
        let start: Timestamp = "2026-03-16T06:00:00Z".parse().unwrap();
        let clock = Arc::new(AtomicI64::new(start.as_microsecond()));
        let c = clock.clone();
        let config = AppConfig {
            availability_cache_ttl: std::time::Duration::ZERO,
            directory_cache_ttl: std::time::Duration::ZERO,
            ..AppConfig::default()
        };
        let app = App::with_clock(
            store.clone(),
            config,
            Arc::new(move || Timestamp::from_microsecond(c.load(Ordering::SeqCst)).unwrap()),
        );
        let now = start;
        let user = |role, email: &str| UserRecord {
            id: UserId::new(),
            email: email.into(),
            password_hash: "x".into(),
            role,
            name: email.into(),
            created_at: now,
        };
        let patient = user(Role::Patient, &format!("p-{}@example.org", UserId::new()));
        let admin = user(Role::ClinicAdmin, &format!("a-{}@example.org", UserId::new()));
        let clinics = [
            clinic("Paris", 48.8566, 2.3522, "Europe/Paris", "local", now),
            clinic("Versailles", 48.8049, 2.1204, "Europe/Paris", "local", now),
            clinic("New York", 40.7128, -74.006, "America/New_York", "local", now),
        ];
        let doctors: Vec<DoctorRecord> =
            (0..DOCTORS).map(|i| doctor(i, clinics[i % clinics.len()].id, i + 1 < DOCTORS, now)).collect();
        let load = BulkLoad {
            users: vec![patient.clone(), admin.clone()],
            clinics: clinics.iter().map(|c| (c.clone(), admin.id)).collect(),
            doctors: doctors.clone(),
            appointments: vec![],
            search: vec![],
        };
        store.bulk_load(&load).await.unwrap();
        let peer_clinic = clinic("Berlin", 52.52, 13.405, "Europe/Berlin", PEER, now);
        let peer_doctor = doctor(DOCTORS, peer_clinic.id, true, now);
        let mut w = World {
            app,
            store,
            clock,
            patient: patient.id,
            doctors: doctors.iter().map(|d| d.id).collect(),
            peer_clinic,
            peer_doctor,
            appointments: vec![],
            _dir: dir,
        };
        w.replicate(vec![], true).await;
        w.doctors.push(w.peer_doctor.id);
        w.app.catch_up_search_index().await.unwrap();
        w
    }

    async fn replicate(&mut self, busy: Vec<Interval>, full: bool) {
        let snap = RegionSnapshot {
            region: PEER.into(),
            as_of: self.now(),
            full,
            clinics: vec![self.peer_clinic.clone()],
            doctors: vec![self.peer_doctor.clone()],
            busy: busy.into_iter().map(|b| (self.peer_doctor.id, b)).collect(),
            forwarded: vec![],
        };
        self.store.apply_replica("local", &snap, self.now()).await.unwrap();
        self.app.replica_changed(&snap);
    }

    async fn record(&self, id: DoctorId) -> DoctorRecord {
        self.store.doctor(id).await.unwrap().unwrap()
    }

    /// The doctor's free slots over the next ten days, from the schedule.
    async fn free(&self, id: DoctorId) -> Vec<medislot_domain::Slot> {
        let d = self.record(id).await;
        let c = self.store.clinic(d.clinic_id).await.unwrap().unwrap();
        let now = self.now();
        let window = Interval { start: now, end: now + SignedDuration::from_hours(240) };
        self.app.free_slots(&self.app.primary_reader(), &d, &c, window, None, now).await.unwrap()
    }

    async fn apply(&mut self, op: &Op) {
        let now = self.now();
        match *op {
            Op::Book { doctor, pick } | Op::Hold { doctor, pick, .. } => {
                let id = self.doctors[doctor % (DOCTORS - 1)];
                let free = self.free(id).await;
                let Some(s) = free.get(pick % free.len().max(1)) else { return };
                let hold = match op {
                    Op::Hold { minutes, .. } => Some(now + SignedDuration::from_mins(*minutes)),
                    _ => None,
                };
                let cmd = PlaceAppointment {
                    id: AppointmentId::new(),
                    doctor_id: id,
                    patient_id: self.patient,
                    start: s.start,
                    end: s.end,
                    mode: s.mode,
                    reason: String::new(),
                    status: if hold.is_some() { AppointmentStatus::Held } else { AppointmentStatus::Booked },
                    hold_expires_at: hold,
                    origin_region: "local".into(),
                    now,
                    idempotency: None,
                    max_holds: 1000,
                    visit: None,
                };
                if self.store.place(&cmd).await.is_ok() {
                    self.appointments.push(cmd.id);
                }
                self.app.availability_changed(id);
            }
            Op::Cancel { pick } => {
                if self.appointments.is_empty() {
                    return;
                }
                let id = self.appointments[pick % self.appointments.len()];
                let decide: medislot_store::Decide = Box::new(|a| {
                    Ok(AppointmentChange {
                        status: AppointmentStatus::Cancelled,
                        start: a.start,
                        end: a.end,
                        cancel_reason: Some("test".into()),
                        event: "appointment.cancelled",
                        detail: None,
                    })
                });
                if let Ok(a) = self.store.modify_appointment(id, now, None, decide).await {
                    self.app.availability_changed(a.doctor_id);
                }
            }
            Op::Pass { minutes } => {
                self.clock.fetch_add(minutes * 60_000_000, Ordering::SeqCst);
            }
            Op::Reschedule { doctor, template: t } => {
                let mut d = self.record(self.doctors[doctor % (DOCTORS - 1)]).await;
                let expected = d.version;
                d.schedule = template(t);
                d.version += 1;
                d.updated_at = now;
                self.store.update_doctor(&d, expected).await.unwrap();
                self.app.directory_changed(&d).await;
            }
            Op::TimeOff { doctor, from_h, hours } => {
                let id = self.doctors[doctor % (DOCTORS - 1)];
                let start = now + SignedDuration::from_hours(from_h);
                let t = medislot_store::TimeOffRecord {
                    id: uuid::Uuid::now_v7(),
                    doctor_id: id,
                    interval: Interval { start, end: start + SignedDuration::from_hours(hours) },
                    reason: "off".into(),
                };
                self.store.add_time_off(&t).await.unwrap();
                self.app.index_now(id).await;
            }
            Op::Replicate { pick, clear } => {
                let free = self.free(self.peer_doctor.id).await;
                let busy = match free.get(pick % free.len().max(1)) {
                    Some(s) if !clear => vec![Interval { start: s.start, end: s.end }],
                    _ => vec![],
                };
                self.replicate(busy, false).await;
            }
        }
    }

    /// The searches compared, as of now.
    fn queries(&self) -> Vec<SearchParams> {
        let now = self.now();
        let midnight = Timestamp::from_second((now.as_second() / 86_400 + 2) * 86_400).unwrap();
        let base = SearchParams { page: 1, per_page: 100, ..Default::default() };
        let p = |f: &dyn Fn(&mut SearchParams)| {
            let mut q = base.clone();
            f(&mut q);
            q
        };
        vec![
            base.clone(),
            p(&|q| q.specialty = Some("cardiology".into())),
            p(&|q| {
                q.specialty = Some("dermatology".into());
                q.mode = Some("online".into());
            }),
            p(&|q| q.language = Some("fr".into())),
            p(&|q| {
                q.near = Some("48.85,2.35".into());
                q.radius_km = Some(50.0);
            }),
            p(&|q| {
                q.available_from = Some(midnight);
                q.available_to = Some(midnight + SignedDuration::from_hours(24 * 5));
            }),
            p(&|q| {
                q.available_from = Some(now + SignedDuration::from_hours(26));
                q.mode = Some("in_person".into());
            }),
            p(&|q| q.available_to = Some(now + SignedDuration::from_hours(72))),
        ]
    }

    /// What search answers by computing every candidate from its schedule.
    async fn computed(&self, p: &SearchParams) -> (Vec<(DoctorId, Option<Timestamp>)>, usize) {
        let now = self.now();
        let from = p.available_from.unwrap_or(now).max(now);
        let to = p.available_to.unwrap_or(from + SignedDuration::from_hours(24 * 14));
        let near = p.near.as_deref().map(|n| Coordinates::parse_pair("near", n).unwrap());
        let radius = p.radius_km.unwrap_or(25.0);
        let mode = p.mode.as_deref().map(|m| Mode::parse("mode", m).unwrap());
        let q = DoctorQuery {
            specialty: p.specialty.clone(),
            language: p.language.clone(),
            mode,
            bounding_box: near.map(|c| c.bounding_box(radius)),
            exclude_doctor: None,
        };
        let mut rows = vec![];
        for (d, c) in self.store.search_doctors(&q).await.unwrap() {
            let dist = near.map(|n| n.distance_km(c.position));
            if dist.is_some_and(|km| km > radius) {
                continue;
            }
            let bw = d.schedule.bookable_window(now);
            let w = Interval { start: from.max(bw.start), end: to.min(bw.end) };
            let busy: Vec<Interval> =
                self.store.busy(&[d.id], w, now).await.unwrap().into_iter().map(|(_, iv)| iv).collect();
            let key = if w.end <= w.start {
                None
            } else {
                d.schedule
                    .slots(d.id, &c.time_zone.tz(), w, &busy)
                    .into_iter()
                    .find(|s| mode.is_none_or(|m| s.mode == m))
                    .map(|s| s.start)
            };
            rows.push((key, dist, d.name.clone(), d.id));
        }
        if p.available_from.is_some() || p.available_to.is_some() {
            rows.retain(|r| r.0.is_some());
        }
        rows.sort_by(|a, b| {
            a.0.unwrap_or(Timestamp::MAX)
                .cmp(&b.0.unwrap_or(Timestamp::MAX))
                .then(a.1.unwrap_or(0.0).total_cmp(&b.1.unwrap_or(0.0)))
                .then(a.2.cmp(&b.2))
                .then(a.3.cmp(&b.3))
        });
        let total = rows.len();
        (rows.into_iter().map(|r| (r.3, r.0)).collect(), total)
    }

    async fn agrees(&self, after: &str) -> Result<(), TestCaseError> {
        for q in self.queries() {
            let page = self.app.search(q.clone()).await.unwrap();
            let got: Vec<(DoctorId, Option<Timestamp>)> =
                page.items.iter().map(|h| (h.doctor.id, h.next_slot.as_ref().map(|s| s.start))).collect();
            let (want, total) = self.computed(&q).await;
            prop_assert_eq!(&got, &want, "after {} at {}, search {:?}", after, self.now(), q);
            prop_assert_eq!(page.total, total, "total after {}, search {:?}", after, q);
            // The same search in pages of three, each from the last one's cursor.
            let mut paged = vec![];
            let mut cursor = None;
            for _ in 0..=want.len() / 3 {
                let p = SearchParams { per_page: 3, cursor: cursor.take(), ..q.clone() };
                let page = self.app.search(p).await.unwrap();
                paged.extend(page.items.iter().map(|h| (h.doctor.id, h.next_slot.as_ref().map(|s| s.start))));
                cursor = page.next_cursor;
                if cursor.is_none() {
                    break;
                }
            }
            prop_assert!(cursor.is_none(), "a cursor after the last page, search {:?}", q);
            prop_assert_eq!(&paged, &want, "paged by cursor after {} at {}, search {:?}", after, self.now(), q);
        }
        Ok(())
    }
}

async fn run(store: DynStore, dir: Option<tempfile::TempDir>, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut w = World::new(store, dir).await;
    w.agrees("start").await?;
    for op in &ops {
        let live_holds = w.has_live_holds().await;
        w.apply(op).await;
        if matches!(op, Op::Pass { .. }) && !live_holds {
            // Time alone: rows whose indexed start passed are read from their free times.
            w.agrees(&format!("{op:?}, before the keeper")).await?;
        }
        w.app.keep_search_index().await.unwrap();
        w.agrees(&format!("{op:?}")).await?;
    }
    Ok(())
}

impl World {
    async fn has_live_holds(&self) -> bool {
        let now = self.now();
        !self.store.hold_expiries(&self.doctors, now).await.unwrap().is_empty()
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

async fn sqlite() -> (DynStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("t.db").display());
    let store = medislot_store::connect(&url, &medislot_store::ConnectOptions::default()).await.unwrap();
    (store, dir)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn the_index_agrees_with_computing_every_slot_on_sqlite(ops in prop::collection::vec(op(), 1..25)) {
        runtime().block_on(async {
            let (store, dir) = sqlite().await;
            run(store, Some(dir), ops).await
        })?;
    }

    #[test]
    fn the_index_agrees_with_computing_every_slot_on_postgres(ops in prop::collection::vec(op(), 1..25)) {
        runtime().block_on(async {
            let (store, db) = postgres().await;
            let out = run(store, None, ops).await;
            db.drop().await;
            out
        })?;
    }
}

struct PgDb {
    admin_url: String,
    name: String,
}

impl PgDb {
    async fn drop(self) {
        use sqlx::Connection;
        if let Ok(mut admin) = sqlx::PgConnection::connect(&self.admin_url).await {
            let _ =
                sqlx::query(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)).execute(&mut admin).await;
        }
    }
}

/// A fresh database on the server `MEDISLOT_TEST_POSTGRES_URL` names
/// (scripts/test starts one when none runs).
async fn postgres() -> (DynStore, PgDb) {
    use sqlx::Connection;
    let admin_url = std::env::var("MEDISLOT_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let mut admin = sqlx::PgConnection::connect(&admin_url).await.unwrap_or_else(|e| {
        panic!("PostgreSQL is needed for this test and is not reachable at {admin_url} ({e}); run scripts/test, which starts it")
    });
    let name = format!("medislot_search_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut admin).await.unwrap();
    let (base, _) = admin_url.rsplit_once('/').unwrap();
    let store =
        medislot_store::connect(&format!("{base}/{name}"), &medislot_store::ConnectOptions::default()).await.unwrap();
    (store, PgDb { admin_url, name })
}
