//! The store conformance suite: every behaviour a backend promises, written
//! once as generic functions over `DynStore` and instantiated per backend.

use jiff::{SignedDuration, Timestamp};
use medislot_domain::{
    AppointmentId, AppointmentStatus, ClinicId, Coordinates, DoctorId, Interval, Mode, Policy, Role, Schedule,
    TimeZoneName, UserId, VerificationState,
};
use medislot_store::*;
use std::sync::Arc;

#[path = "conformance/search.rs"]
mod search;
use search::*;

struct Fixture {
    store: DynStore,
    doctor: DoctorId,
    patients: Vec<UserId>,
    t0: Timestamp,
    db: TestDb,
}

/// Where a test's fresh database lives, so that it can be removed afterwards.
enum TestDb {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { admin_url: String, name: String },
}

impl TestDb {
    async fn drop_db(self) {
        if let TestDb::Postgres { admin_url, name } = self {
            use sqlx::Connection;
            let mut admin = sqlx::PgConnection::connect(&admin_url).await.unwrap();
            sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut admin).await.unwrap();
        }
    }
}

async fn sqlite() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("t.db").display());
    let store = connect(&url, &ConnectOptions::default()).await.unwrap();
    fixture(store, TestDb::Sqlite(dir)).await
}

/// A fresh, uniquely named database on the PostgreSQL server that
/// `MEDISLOT_TEST_POSTGRES_URL` names (scripts/test starts one when none runs).
async fn postgres() -> Fixture {
    use sqlx::Connection;
    let admin_url = std::env::var("MEDISLOT_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let mut admin = sqlx::PgConnection::connect(&admin_url).await.unwrap_or_else(|e| {
        panic!("PostgreSQL is needed for this test and is not reachable at {admin_url} ({e}); run scripts/test, which starts it")
    });
    let name = format!("medislot_test_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut admin).await.unwrap();
    let (base, _) = admin_url.rsplit_once('/').unwrap();
    let store = connect(&format!("{base}/{name}"), &ConnectOptions::default()).await.unwrap();
    fixture(store, TestDb::Postgres { admin_url, name }).await
}

async fn fixture(store: DynStore, db: TestDb) -> Fixture {
    let now = Timestamp::now();
    let mut patients = vec![];
    for i in 0..25 {
        let u = UserRecord {
            id: UserId::new(),
            email: format!("p{i}@example.org"),
            password_hash: "x".into(),
            role: Role::Patient,
            name: format!("P{i}"),
            created_at: now,
        };
        store.create_user(&u).await.unwrap();
        patients.push(u.id);
    }
    let admin = UserRecord {
        id: UserId::new(),
        email: "ca@example.org".into(),
        password_hash: "x".into(),
        role: Role::ClinicAdmin,
        name: "CA".into(),
        created_at: now,
    };
    store.create_user(&admin).await.unwrap();
    let clinic = ClinicRecord {
        id: ClinicId::new(),
        name: "C".into(),
        address: "A".into(),
        postal: medislot_domain::PostalAddress {
            city: Some("Paris".into()),
            district: None,
            postal_code: Some("75004".into()),
            country: Some("FR".into()),
        },
        phone: Some("+33142721010".into()),
        position: Coordinates { lat: 48.0, lon: 2.0 },
        time_zone: TimeZoneName::parse("tz", "Europe/Paris").unwrap(),
        region: "local".into(),
        policy: Policy::Strict,
        rules: Default::default(),
        created_at: now,
    };
    store.create_clinic(&clinic, admin.id).await.unwrap();
    let doctor = DoctorRecord {
        id: DoctorId::new(),
        user_id: None,
        clinic_id: clinic.id,
        name: "Dr".into(),
        specialties: vec!["cardiology".into()],
        languages: vec!["fr".into()],
        modes: vec![Mode::InPerson],
        licence_number: "L".into(),
        bio: String::new(),
        verification: VerificationState::Verified,
        verification_reason: None,
        membership: medislot_domain::Membership::Active,
        schedule: Schedule::default(),
        video_room_url: None,
        version: 1,
        created_at: now,
        updated_at: now,
        visit_types: vec![],
    };
    store.create_doctor(&doctor).await.unwrap();
    Fixture { store, doctor: doctor.id, patients, t0: "2030-01-07T09:00:00Z".parse().unwrap(), db }
}

impl Fixture {
    fn at(&self, mins: i64) -> Timestamp {
        self.t0 + SignedDuration::from_mins(mins)
    }

    fn cmd(&self, patient: usize, from: i64, len: i64, status: AppointmentStatus) -> PlaceAppointment {
        PlaceAppointment {
            id: AppointmentId::new(),
            doctor_id: self.doctor,
            patient_id: self.patients[patient],
            start: self.at(from),
            end: self.at(from + len),
            mode: Mode::InPerson,
            reason: String::new(),
            status,
            hold_expires_at: (status == AppointmentStatus::Held).then(|| self.at(-60)),
            origin_region: "local".into(),
            now: self.at(-120),
            idempotency: None,
            max_holds: 3,
            visit: None,
        }
    }
}

fn created(p: Result<Placed>) -> AppointmentRecord {
    match p {
        Ok(Placed::Created(a)) => a,
        other => panic!("expected a new appointment, got {other:?}"),
    }
}

/// A change that cancels the appointment.
fn cancelled() -> Decide {
    Box::new(|a| {
        Ok(AppointmentChange {
            status: AppointmentStatus::Cancelled,
            start: a.start,
            end: a.end,
            cancel_reason: Some("x".into()),
            event: "appointment.cancelled",
            detail: None,
        })
    })
}

async fn overlap_of_any_length_is_refused(f: &Fixture) {
    let a = created(f.store.place(&f.cmd(0, 60, 30, AppointmentStatus::Booked)).await);
    for (from, len) in [(60, 30), (80, 20), (50, 20), (40, 60), (65, 10)] {
        let r = f.store.place(&f.cmd(1, from, len, AppointmentStatus::Booked)).await;
        assert!(matches!(r, Err(StoreError::SlotTaken)), "[{from}, +{len}) overlaps [60, 90): {r:?}");
    }
    // Touching intervals do not overlap.
    created(f.store.place(&f.cmd(1, 90, 20, AppointmentStatus::Booked)).await);
    created(f.store.place(&f.cmd(1, 40, 20, AppointmentStatus::Booked)).await);
    // A cancelled appointment frees its range.
    f.store.modify_appointment(a.id, f.at(-100), None, cancelled()).await.unwrap();
    created(f.store.place(&f.cmd(2, 70, 10, AppointmentStatus::Booked)).await);
    // Moving an appointment onto another's time is refused too (update, not only insert).
    let moved = f
        .store
        .place(&f.cmd(3, 200, 30, AppointmentStatus::Booked))
        .await
        .map(|p| match p {
            Placed::Created(a) => a,
            _ => unreachable!(),
        })
        .unwrap();
    let decide: Decide = Box::new(|a| {
        Ok(AppointmentChange {
            status: a.status,
            start: a.start - SignedDuration::from_mins(110),
            end: a.end - SignedDuration::from_mins(110),
            cancel_reason: None,
            event: "appointment.rescheduled",
            detail: None,
        })
    });
    assert!(matches!(f.store.modify_appointment(moved.id, f.at(-100), None, decide).await, Err(StoreError::SlotTaken)));
}

async fn expired_holds_free_their_slot_and_are_audited(f: &Fixture) {
    let mut hold = f.cmd(0, 60, 30, AppointmentStatus::Held);
    hold.hold_expires_at = Some(f.at(-30));
    let h = created(f.store.place(&hold).await);
    // Before expiry the hold occupies the slot.
    let mut early = f.cmd(1, 60, 30, AppointmentStatus::Booked);
    early.now = f.at(-31);
    assert!(matches!(f.store.place(&early).await, Err(StoreError::SlotTaken)));
    // After expiry the slot is free again, and the expiry is in the audit log.
    let mut late = f.cmd(1, 60, 30, AppointmentStatus::Booked);
    late.now = f.at(-30);
    created(f.store.place(&late).await);
    let after = f.store.appointment(h.id).await.unwrap().unwrap();
    assert_eq!(after.status, AppointmentStatus::Cancelled);
    let audit = f.store.audit_of(h.id).await.unwrap();
    assert_eq!(audit.last().unwrap().detail.as_deref(), Some("hold expired"));
}

/// Nodes' clocks disagree: each store call carries its node's `now`. A node whose
/// clock runs fast may end another's hold early; the hold's owner, confirming
/// through a node whose clock runs slow, then finds the slot taken — never a
/// second appointment on it.
async fn clock_skew_between_nodes_never_double_books(f: &Fixture) {
    let mut hold = f.cmd(0, 60, 30, AppointmentStatus::Held);
    hold.hold_expires_at = Some(f.at(-30));
    let h = created(f.store.place(&hold).await);
    // The fast node sees the hold as expired and books the slot for someone else.
    let mut fast = f.cmd(1, 60, 30, AppointmentStatus::Booked);
    fast.now = f.at(-29);
    let taken = created(f.store.place(&fast).await);
    // The slow node still believes the hold is live and tries to confirm it.
    let mut slow = f.cmd(0, 60, 30, AppointmentStatus::Booked);
    slow.now = f.at(-90);
    assert!(matches!(f.store.place(&slow).await, Err(StoreError::SlotTaken)));
    // A new booking from the slow node overlapping the taken slot is refused too.
    let mut other = f.cmd(2, 75, 30, AppointmentStatus::Booked);
    other.now = f.at(-90);
    assert!(matches!(f.store.place(&other).await, Err(StoreError::SlotTaken)));
    assert_eq!(f.store.appointment(h.id).await.unwrap().unwrap().status, AppointmentStatus::Cancelled);
    assert_eq!(f.store.appointment(taken.id).await.unwrap().unwrap().status, AppointmentStatus::Booked);
}

async fn booking_ones_own_hold_confirms_it(f: &Fixture) {
    let h = created(f.store.place(&f.cmd(0, 60, 30, AppointmentStatus::Held)).await);
    let a = created(f.store.place(&f.cmd(0, 60, 30, AppointmentStatus::Booked)).await);
    assert_eq!((a.id, a.status, a.version), (h.id, AppointmentStatus::Booked, h.version + 1));
    assert!(a.hold_expires_at.is_none());
}

/// Every appointment gets its own unguessable video room when it is made; a
/// confirmed hold keeps its room, a move draws a new one, a cancel keeps it,
/// and a bulk load keeps the rooms it was given.
async fn video_rooms_are_drawn_when_made_and_again_when_moved(f: &Fixture) {
    let room = |a: &AppointmentRecord| a.video_room.clone().expect("the appointment has a video room");
    let is_secret = |r: &str| r.len() == 32 && r.bytes().all(|b| b.is_ascii_hexdigit());
    let held = created(f.store.place(&f.cmd(0, 60, 30, AppointmentStatus::Held)).await);
    let booked = created(f.store.place(&f.cmd(0, 60, 30, AppointmentStatus::Booked)).await);
    assert_eq!(booked.id, held.id);
    assert_eq!(room(&booked), room(&held), "confirming a hold keeps its room");
    let other = created(f.store.place(&f.cmd(1, 120, 30, AppointmentStatus::Booked)).await);
    assert!(is_secret(&room(&booked)) && is_secret(&room(&other)), "{booked:?} {other:?}");
    assert_ne!(room(&booked), room(&other), "each appointment has a room of its own");

    let moved = f.store.modify_appointment(booked.id, f.at(-100), None, moved_by(200)).await.unwrap();
    assert!(is_secret(&room(&moved)));
    assert_ne!(room(&moved), room(&booked), "a move draws a new room");
    let gone = f.store.modify_appointment(moved.id, f.at(-100), None, cancelled()).await.unwrap();
    assert_eq!(room(&gone), room(&moved), "a cancel changes nothing of it but its status");
    let read = f.store.appointment(moved.id).await.unwrap().unwrap();
    assert_eq!(read.video_room, gone.video_room);
}

/// An appointment keeps its visit (type and answers): written when made,
/// set when a hold is confirmed, kept through a move; a doctor's visit types
/// are read back as written.
async fn visits_are_kept_with_appointments_and_doctors(f: &Fixture) {
    let answer = medislot_domain::Answer { question: "why".into(), text: "Why?".into(), answer: "pain".into() };
    let visit = Visit { code: "long".into(), name: "Long visit".into(), intake: vec![answer] };
    let mut hold = f.cmd(0, 60, 90, AppointmentStatus::Held);
    hold.visit = Some(Visit { intake: vec![], ..visit.clone() });
    let held = created(f.store.place(&hold).await);
    assert_eq!(held.visit.as_ref().map(|v| (v.code.as_str(), v.intake.len())), Some(("long", 0)));
    let mut book = f.cmd(0, 60, 90, AppointmentStatus::Booked);
    book.visit = Some(visit.clone());
    let booked = created(f.store.place(&book).await);
    assert_eq!((booked.id, booked.visit.as_ref()), (held.id, Some(&visit)), "the confirmation writes the answers");
    let moved = f.store.modify_appointment(booked.id, f.at(-100), None, moved_by(300)).await.unwrap();
    assert_eq!(moved.visit.as_ref(), Some(&visit));
    let plain = created(f.store.place(&f.cmd(1, 600, 30, AppointmentStatus::Booked)).await);
    assert_eq!(f.store.appointment(plain.id).await.unwrap().unwrap().visit, None);

    let mut d = f.store.doctor(f.doctor).await.unwrap().unwrap();
    let input: medislot_domain::visit_type::VisitTypesInput = serde_json::from_value(serde_json::json!({
        "visit_types": [{"code": "long", "name": "Long visit", "duration_minutes": 90, "modes": ["in_person"],
                         "bookable_by": "existing_patients",
                         "questions": [{"id": "why", "text": "Why?", "kind": "text", "required": true}]}]
    }))
    .unwrap();
    d.visit_types = medislot_domain::visit_type::parse_visit_types(&input, &[Mode::InPerson]).unwrap();
    f.store.update_doctor(&d, d.version).await.unwrap();
    let read = f.store.doctor(f.doctor).await.unwrap().unwrap();
    assert_eq!(read.visit_types, d.visit_types);
}

/// A request (a `pending` placement) awaits the clinic: placed new or
/// confirming the patient's own hold, it occupies its time, a retry answers
/// 202 as it did, and once answered it awaits no one.
async fn requests_await_the_clinic_until_answered(f: &Fixture) {
    let mut req = f.cmd(0, 60, 30, AppointmentStatus::Pending);
    req.idempotency = Some(IdempotencyKey { key: "req".into(), fingerprint: "fp".into() });
    let a = created(f.store.place(&req).await);
    assert_eq!((a.status, a.awaiting_clinic), (AppointmentStatus::Pending, true));
    match f.store.place(&req).await.unwrap() {
        Placed::Replayed { appointment, status_code } => assert_eq!((appointment.id, status_code), (a.id, 202)),
        other => panic!("{other:?}"),
    }
    assert!(matches!(f.store.place(&f.cmd(1, 75, 30, AppointmentStatus::Booked)).await, Err(StoreError::SlotTaken)));
    let confirm: Decide = Box::new(|a| {
        Ok(AppointmentChange {
            status: AppointmentStatus::Booked,
            start: a.start,
            end: a.end,
            cancel_reason: None,
            event: "appointment.booked",
            detail: None,
        })
    });
    let booked = f.store.modify_appointment(a.id, f.at(-100), None, confirm).await.unwrap();
    assert_eq!((booked.status, booked.awaiting_clinic), (AppointmentStatus::Booked, false));

    let held = created(f.store.place(&f.cmd(1, 200, 30, AppointmentStatus::Held)).await);
    let from_hold = created(f.store.place(&f.cmd(1, 200, 30, AppointmentStatus::Pending)).await);
    assert_eq!(
        (from_hold.id, from_hold.status, from_hold.awaiting_clinic),
        (held.id, AppointmentStatus::Pending, true)
    );
}

/// Erasing an account keeps its row as a pseudonym and its appointments,
/// and ends its sessions; its old address finds no one.
async fn an_erased_account_keeps_its_appointments_under_a_pseudonym(f: &Fixture) {
    let patient = f.store.user_by_id(f.patients[7]).await.unwrap().unwrap();
    let a = created(f.store.place(&f.cmd(7, 60, 30, AppointmentStatus::Booked)).await);
    f.store.create_token("erase-token", patient.id, f.at(10_000)).await.unwrap();
    assert!(f.store.user_by_token("erase-token", f.at(0)).await.unwrap().is_some());
    let pseudonym = UserRecord {
        email: "erased-x@erased.invalid".into(),
        name: "Erased patient x".into(),
        password_hash: "!erased".into(),
        ..patient.clone()
    };
    f.store.erase_user(&pseudonym, &patient.email).await.unwrap();
    assert!(f.store.user_by_token("erase-token", f.at(0)).await.unwrap().is_none(), "its sessions end");
    assert!(f.store.user_by_email(&patient.email).await.unwrap().is_none(), "the address finds no one");
    let kept = f.store.user_by_id(patient.id).await.unwrap().unwrap();
    assert_eq!((kept.name.as_str(), kept.email.as_str()), ("Erased patient x", "erased-x@erased.invalid"));
    assert_eq!(f.store.appointment(a.id).await.unwrap().unwrap().patient_id, patient.id, "the appointment stays");
    let unknown = UserRecord { id: UserId::new(), ..pseudonym };
    assert!(matches!(f.store.erase_user(&unknown, "nobody@example.org").await, Err(StoreError::NotFound)));
}

async fn idempotency_keys_replay_or_refuse(f: &Fixture) {
    let mut c = f.cmd(0, 60, 30, AppointmentStatus::Booked);
    c.idempotency = Some(IdempotencyKey { key: "k1".into(), fingerprint: "fp1".into() });
    let a = created(f.store.place(&c).await);
    let mut again = f.cmd(0, 60, 30, AppointmentStatus::Booked);
    again.idempotency = c.idempotency.clone();
    match f.store.place(&again).await.unwrap() {
        Placed::Replayed { appointment, status_code } => assert_eq!((appointment.id, status_code), (a.id, 201)),
        other => panic!("{other:?}"),
    }
    let mut different = f.cmd(0, 120, 30, AppointmentStatus::Booked);
    different.idempotency = Some(IdempotencyKey { key: "k1".into(), fingerprint: "fp2".into() });
    assert!(matches!(f.store.place(&different).await, Err(StoreError::IdempotencyMismatch)));
    // Keys are per user: another patient may use the same key.
    let mut other = f.cmd(1, 120, 30, AppointmentStatus::Booked);
    other.idempotency = Some(IdempotencyKey { key: "k1".into(), fingerprint: "fp2".into() });
    created(f.store.place(&other).await);
}

async fn concurrent_placements_have_one_winner(f: &Fixture) {
    let store = f.store.clone();
    let cmds: Vec<PlaceAppointment> =
        (0..25).map(|i| f.cmd(i, 60 + (i as i64 % 3) * 10, 30, AppointmentStatus::Booked)).collect();
    let tasks: Vec<_> = cmds
        .into_iter()
        .map(|c| {
            let s = Arc::clone(&store);
            tokio::spawn(async move { s.place(&c).await })
        })
        .collect();
    let mut won = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => won += 1,
            Err(StoreError::SlotTaken) => {}
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(won, 1, "25 overlapping requests, one winner");
}

/// Other doctors of the fixture's clinic, to book one patient with several.
async fn more_doctors(f: &Fixture, n: usize) -> Vec<DoctorId> {
    let first = f.store.doctor(f.doctor).await.unwrap().unwrap();
    let mut ids = Vec::new();
    for i in 0..n {
        let d = DoctorRecord { id: DoctorId::new(), licence_number: format!("L-{i}"), ..first.clone() };
        f.store.create_doctor(&d).await.unwrap();
        ids.push(d.id);
    }
    ids
}

fn at_doctor(mut cmd: PlaceAppointment, doctor: DoctorId) -> PlaceAppointment {
    cmd.doctor_id = doctor;
    cmd
}

fn moved_by(mins: i64) -> Decide {
    Box::new(move |a| {
        Ok(AppointmentChange {
            status: a.status,
            start: a.start + SignedDuration::from_mins(mins),
            end: a.end + SignedDuration::from_mins(mins),
            cancel_reason: None,
            event: "appointment.rescheduled",
            detail: None,
        })
    })
}

async fn a_patient_is_never_booked_twice_at_once(f: &Fixture) {
    let others = more_doctors(f, 2).await;
    let (b, c) = (others[0], others[1]);
    created(f.store.place(&f.cmd(0, 60, 30, AppointmentStatus::Booked)).await);
    // With another doctor, at any overlapping time, booked or held: refused.
    for (from, len, status) in
        [(75, 30, AppointmentStatus::Booked), (60, 30, AppointmentStatus::Held), (50, 90, AppointmentStatus::Booked)]
    {
        let r = f.store.place(&at_doctor(f.cmd(0, from, len, status), b)).await;
        assert!(matches!(r, Err(StoreError::PatientBusy)), "[{from}, +{len}) overlaps [60, 90): {r:?}");
    }
    // The doctor's own slot taken is reported as such first.
    let r = f.store.place(&f.cmd(0, 60, 30, AppointmentStatus::Booked)).await;
    assert!(matches!(r, Err(StoreError::SlotTaken)), "{r:?}");
    // Touching times, and other patients, are fine.
    let next = created(f.store.place(&at_doctor(f.cmd(0, 90, 30, AppointmentStatus::Booked), b)).await);
    created(f.store.place(&at_doctor(f.cmd(1, 60, 30, AppointmentStatus::Booked), c)).await);
    // Moving onto one's own other appointment is refused; nothing moved.
    let r = f.store.modify_appointment(next.id, f.at(-100), None, moved_by(-20)).await;
    assert!(matches!(r, Err(StoreError::PatientBusy)), "{r:?}");
    assert_eq!(f.store.appointment(next.id).await.unwrap().unwrap().start, f.at(90));
    // Moving within one's own free time, even over the appointment's own old time, is fine.
    let later = f.store.modify_appointment(next.id, f.at(-100), None, moved_by(10)).await.unwrap();
    assert_eq!(later.start, f.at(100));
    // A hold the patient let run out elsewhere does not stand in the way…
    let mut hold = at_doctor(f.cmd(0, 300, 30, AppointmentStatus::Held), c);
    hold.hold_expires_at = Some(f.at(-30));
    let h = created(f.store.place(&hold).await);
    let mut early = at_doctor(f.cmd(0, 300, 30, AppointmentStatus::Booked), b);
    early.now = f.at(-31);
    assert!(matches!(f.store.place(&early).await, Err(StoreError::PatientBusy)), "…while it is live");
    let mut late = at_doctor(f.cmd(0, 300, 30, AppointmentStatus::Booked), b);
    late.now = f.at(-30);
    created(f.store.place(&late).await);
    let expired = f.store.appointment(h.id).await.unwrap().unwrap();
    assert_eq!(expired.status, AppointmentStatus::Cancelled, "released, with its audit row");
    assert_eq!(f.store.audit_of(h.id).await.unwrap().last().unwrap().detail.as_deref(), Some("hold expired"));
    // Cancelling frees the patient's time.
    let gone = created(f.store.place(&at_doctor(f.cmd(0, 500, 30, AppointmentStatus::Booked), b)).await);
    f.store.modify_appointment(gone.id, f.at(-100), None, cancelled()).await.unwrap();
    created(f.store.place(&at_doctor(f.cmd(0, 500, 30, AppointmentStatus::Booked), c)).await);
}

/// One patient racing for visits of different lengths with twelve doctors at
/// once (all of them overlap minute 80): one wins, every other is told the
/// patient is busy, and the winner's doctor alone has the appointment.
async fn concurrent_bookings_of_one_patient_have_one_winner(f: &Fixture) {
    let doctors = more_doctors(f, 12).await;
    let tasks: Vec<_> = doctors
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let k = i as i64 % 3;
            let status = if i % 4 == 3 { AppointmentStatus::Held } else { AppointmentStatus::Booked };
            let cmd = at_doctor(f.cmd(0, 60 + k * 5, 30 + k * 15, status), *d);
            let s = Arc::clone(&f.store);
            tokio::spawn(async move { s.place(&cmd).await })
        })
        .collect();
    let mut won = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(Placed::Created(_)) => won += 1,
            Err(StoreError::PatientBusy) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(won, 1, "twelve overlapping visits of one patient, one winner");
    let q = AppointmentQuery {
        scope: Scope::Patient(f.patients[0]),
        doctor: None,
        status: None,
        from: None,
        to: None,
        limit: 100,
        offset: 0,
    };
    let (mine, total) = f.store.list_appointments(&q).await.unwrap();
    assert_eq!(total, 1, "{mine:?}");
}

async fn changes_write_outbox_rows_in_the_same_transaction(f: &Fixture) {
    let before = f.store.outbox_after(0, 1000).await.unwrap().len();
    let a = created(f.store.place(&f.cmd(0, 60, 30, AppointmentStatus::Booked)).await);
    let rows = f.store.outbox_after(0, 1000).await.unwrap();
    assert_eq!(rows.len(), before + 1);
    let last = rows.last().unwrap();
    assert_eq!(last.topic, "appointment.booked");
    assert_eq!(last.payload["appointment_id"], a.id.to_string());
    // A refused change writes nothing.
    let _ = f.store.place(&f.cmd(1, 60, 30, AppointmentStatus::Booked)).await;
    assert_eq!(f.store.outbox_after(0, 1000).await.unwrap().len(), before + 1);
}

/// Every backend writes the payload `outbox_payload` makes of the change, the
/// confirmation of a hold included (whose id and version only the database knows).
async fn outbox_payloads_describe_each_change_alike(f: &Fixture) {
    let hold_cmd = f.cmd(0, 60, 30, AppointmentStatus::Held);
    let h = created(f.store.place(&hold_cmd).await);
    let book_cmd = f.cmd(0, 60, 30, AppointmentStatus::Booked);
    let a = created(f.store.place(&book_cmd).await);
    let rows = f.store.outbox_after(0, 1000).await.unwrap();
    let [.., held, booked] = rows.as_slice() else { panic!("two outbox rows") };
    let patient = Some(f.patients[0]);
    let expected = outbox_payload(held.event_id, "appointment.held", None, &h, patient, hold_cmd.now);
    assert_eq!((held.topic.as_str(), &held.payload), ("appointment.held", &expected));
    let expected = outbox_payload(booked.event_id, "appointment.booked", Some(&h), &a, patient, book_cmd.now);
    assert_eq!((booked.topic.as_str(), &booked.payload), ("appointment.booked", &expected));
}

/// A clinic's rules are kept, and its doctors marked changed (peers then
/// replicate the clinic again); an unknown clinic is not found.
async fn clinic_rules_are_kept_and_mark_the_clinics_doctors_changed(f: &Fixture) {
    let clinic = f.store.doctor(f.doctor).await.unwrap().unwrap().clinic_id;
    let later = f.t0 + SignedDuration::from_hours(1);
    let rules =
        medislot_domain::ClinicRules { cancel_cutoff_minutes: 24 * 60, noshow_limit: 2, noshow_period_days: 90 };
    f.store.set_clinic_rules(clinic, rules, later).await.unwrap();
    assert_eq!(f.store.clinic(clinic).await.unwrap().unwrap().rules, rules);
    assert!(f.store.doctor(f.doctor).await.unwrap().unwrap().updated_at >= later);
    let unknown = f.store.set_clinic_rules(ClinicId::new(), rules, later).await;
    assert!(matches!(unknown, Err(StoreError::NotFound)), "{unknown:?}");
}

async fn doctor_updates_are_compare_and_swap(f: &Fixture) {
    let mut d = f.store.doctor(f.doctor).await.unwrap().unwrap();
    d.bio = "first".into();
    d.video_room_url = Some("https://meet.example.org/dr".into());
    f.store.update_doctor(&d, 1).await.unwrap();
    d.bio = "stale".into();
    d.video_room_url = None;
    assert!(matches!(f.store.update_doctor(&d, 1).await, Err(StoreError::VersionMismatch { current: 2 })));
    let read = f.store.doctor(f.doctor).await.unwrap().unwrap();
    assert_eq!((read.bio.as_str(), read.video_room_url.as_deref()), ("first", Some("https://meet.example.org/dr")));
}

async fn changes_are_tracked_for_publishers(f: &Fixture) {
    let now = Timestamp::now();
    let before = f.store.last_change(now).await.unwrap().expect("the fixture made changes");
    assert!(before <= now);
    let later = now + SignedDuration::from_secs(5);
    assert!(f.store.doctors_changed_since(later, later).await.unwrap().is_empty(), "nothing changed after now");
    let since = f.store.doctors_changed_since(before, now).await.unwrap();
    assert!(since.contains(&f.doctor), "the doctor's set-up is a change: {since:?}");
    // A booking is a change of its doctor's availability.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let mark = Timestamp::now();
    assert!(f.store.doctors_changed_since(mark, mark).await.unwrap().is_empty(), "no change yet");
    f.store.place(&f.cmd(0, 8, 30, AppointmentStatus::Booked)).await.unwrap();
    let after = Timestamp::now();
    assert_eq!(f.store.doctors_changed_since(mark, after).await.unwrap(), vec![f.doctor]);
    assert!(f.store.last_change(after).await.unwrap().unwrap() >= Timestamp::from_second(mark.as_second()).unwrap());
}

async fn directory_updates_since_include_suspended_doctors(f: &Fixture) {
    let later = Timestamp::now() + SignedDuration::from_secs(5);
    assert!(f.store.doctors_updated_since(later).await.unwrap().is_empty(), "nothing changed after now");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let mark = Timestamp::now();
    let mut d = f.store.doctor(f.doctor).await.unwrap().unwrap();
    d.verification = VerificationState::Suspended;
    d.updated_at = Timestamp::now();
    f.store.update_doctor(&d, d.version).await.unwrap();
    let changed = f.store.doctors_updated_since(mark).await.unwrap();
    assert_eq!(changed.len(), 1, "the suspension is a change search must see");
    assert_eq!((changed[0].0.id, changed[0].0.verification), (f.doctor, VerificationState::Suspended));
    assert_eq!(changed[0].1.id, d.clinic_id, "with the doctor's clinic");
    assert!(f.store.search_doctors(&DoctorQuery::default()).await.unwrap().is_empty());
}

async fn bulk_loads_are_checked_and_all_or_nothing(f: &Fixture) {
    let clinic = f.store.doctor(f.doctor).await.unwrap().unwrap().clinic_id;
    let mut doctor = f.store.doctor(f.doctor).await.unwrap().unwrap();
    doctor.id = DoctorId::new();
    doctor.name = "Dr Bulk".into();
    let booked = |from: i64, len: i64| AppointmentRecord {
        id: AppointmentId::new(),
        doctor_id: doctor.id,
        patient_id: f.patients[0],
        start: f.at(from),
        end: f.at(from + len),
        mode: Mode::InPerson,
        reason: String::new(),
        status: AppointmentStatus::Booked,
        version: 1,
        origin_region: "local".into(),
        hold_expires_at: None,
        cancel_reason: None,
        cancelled_by: None,
        created_at: f.t0,
        updated_at: f.t0,
        video_room: Some(format!("{from:032x}")),
        visit: None,
        awaiting_clinic: false,
    };
    // An overlap inside the batch: refused, and nothing of the batch is written.
    let bad = BulkLoad {
        doctors: vec![doctor.clone()],
        appointments: vec![booked(0, 30), booked(20, 30)],
        ..Default::default()
    };
    assert!(matches!(f.store.bulk_load(&bad).await, Err(StoreError::SlotTaken)));
    assert!(f.store.doctor(doctor.id).await.unwrap().is_none(), "the batch left nothing behind");
    let good = BulkLoad {
        doctors: vec![doctor.clone()],
        appointments: vec![booked(0, 30), booked(30, 30)],
        ..Default::default()
    };
    f.store.bulk_load(&good).await.unwrap();
    for a in &good.appointments {
        let read = f.store.appointment(a.id).await.unwrap().unwrap();
        assert_eq!(read.video_room, a.video_room, "a bulk load keeps the rooms it was given");
    }
    assert_eq!(f.store.doctor(doctor.id).await.unwrap().unwrap().clinic_id, clinic);
    let window = medislot_domain::Interval { start: f.at(-60), end: f.at(120) };
    assert_eq!(f.store.busy(&[doctor.id], window, f.at(-120)).await.unwrap().len(), 2);
    f.store.refresh_statistics().await.expect("statistics refresh after a bulk load");
    assert_eq!(f.store.busy(&[doctor.id], window, f.at(-120)).await.unwrap().len(), 2);
}

/// A region tells its peers what it owns: everything, or the doctors changed
/// since the peer's cursor, each with its clinic; never another region's.
async fn region_snapshots_carry_the_regions_own_doctors_in_full_or_since(f: &Fixture) {
    let now = Timestamp::now();
    let full = f.store.region_snapshot("local", "peer", None, now).await.unwrap();
    assert!(full.full);
    assert_eq!(full.doctors.iter().map(|d| d.id).collect::<Vec<_>>(), vec![f.doctor]);
    assert_eq!(full.clinics.len(), 1);
    assert_eq!(full.clinics[0].id, full.doctors[0].clinic_id);
    assert!(f.store.region_snapshot("elsewhere", "peer", None, now).await.unwrap().doctors.is_empty());
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let mark = Timestamp::now();
    let none = f.store.region_snapshot("local", "peer", Some(mark), Timestamp::now()).await.unwrap();
    assert!(!none.full && none.doctors.is_empty() && none.clinics.is_empty(), "nothing changed since");
    let mut d = f.store.doctor(f.doctor).await.unwrap().unwrap();
    d.bio = "changed".into();
    d.updated_at = Timestamp::now();
    f.store.update_doctor(&d, d.version).await.unwrap();
    let since = f.store.region_snapshot("local", "peer", Some(mark), Timestamp::now()).await.unwrap();
    assert_eq!(since.doctors.iter().map(|d| (d.id, d.bio.as_str())).collect::<Vec<_>>(), vec![(f.doctor, "changed")]);
    assert_eq!(since.clinics.iter().map(|c| c.id).collect::<Vec<_>>(), vec![d.clinic_id], "with its clinic");
}

async fn doctors_are_found_by_licence_number(f: &Fixture) {
    let mine = f.store.doctor(f.doctor).await.unwrap().unwrap();
    let found = f.store.doctors_with_licence(&mine.licence_number).await.unwrap();
    assert_eq!(found.iter().map(|d| d.id).collect::<Vec<_>>(), vec![f.doctor]);
    assert!(f.store.doctors_with_licence("NO-SUCH-LICENCE").await.unwrap().is_empty());
}

async fn staff_listings_include_unverified_doctors(f: &Fixture) {
    let d = f.store.doctor(f.doctor).await.unwrap().unwrap();
    let mut pending = d.clone();
    pending.id = DoctorId::new();
    pending.name = "A pending doctor".into();
    pending.verification = VerificationState::Pending;
    f.store.create_doctor(&pending).await.unwrap();
    let queue = f.store.list_doctors(None, Some(VerificationState::Pending)).await.unwrap();
    assert_eq!(queue.iter().map(|(d, _)| d.id).collect::<Vec<_>>(), vec![pending.id]);
    let of_clinic = f.store.list_doctors(Some(d.clinic_id), None).await.unwrap();
    assert_eq!(of_clinic.len(), 2, "both, verified or not");
    assert_eq!(of_clinic[0].0.name, "A pending doctor", "by name");
    assert!(f.store.list_doctors(Some(ClinicId::new()), None).await.unwrap().is_empty());
    let clinics = f.store.list_clinics().await.unwrap();
    assert_eq!(clinics.iter().map(|c| c.id).collect::<Vec<_>>(), vec![d.clinic_id]);
    // Search still shows verified doctors only.
    assert_eq!(f.store.search_doctors(&DoctorQuery::default()).await.unwrap().len(), 1);
}

/// Only cities where someone can be booked are offered: a clinic with no
/// doctor, only an unverified one, or one who has not joined yet, is no place.
async fn places_are_the_cities_with_listed_doctors(f: &Fixture) {
    let d = f.store.doctor(f.doctor).await.unwrap().unwrap();
    let paris = f.store.clinic(d.clinic_id).await.unwrap().unwrap();
    let admin = UserId::new();
    f.store
        .create_user(&UserRecord {
            id: admin,
            email: "ca2@example.org".into(),
            password_hash: "x".into(),
            role: Role::ClinicAdmin,
            name: "CA2".into(),
            created_at: f.t0,
        })
        .await
        .unwrap();
    let clinic = |city: &str, lat: f64| {
        let mut c = ClinicRecord { id: ClinicId::new(), position: Coordinates { lat, lon: 2.0 }, ..paris.clone() };
        c.postal.city = Some(city.into());
        c
    };
    let (second_paris, lyon, berlin) = (clinic("Paris", 48.5), clinic("Lyon", 45.7), clinic("Berlin", 52.5));
    for c in [&second_paris, &lyon, &berlin] {
        f.store.create_clinic(c, admin).await.unwrap();
    }
    let doctor = |clinic: ClinicId, verification, membership| DoctorRecord {
        id: DoctorId::new(),
        clinic_id: clinic,
        licence_number: format!("L-{}", uuid::Uuid::new_v4()),
        verification,
        membership,
        ..d.clone()
    };
    use medislot_domain::Membership;
    f.store.create_doctor(&doctor(second_paris.id, VerificationState::Verified, Membership::Active)).await.unwrap();
    f.store.create_doctor(&doctor(lyon.id, VerificationState::Pending, Membership::Active)).await.unwrap();
    f.store.create_doctor(&doctor(lyon.id, VerificationState::Verified, Membership::Requested)).await.unwrap();
    let places = f.store.places(10).await.unwrap();
    assert_eq!(places.len(), 1, "{places:?}");
    assert_eq!((places[0].city.as_str(), places[0].country.as_deref(), places[0].clinics), ("Paris", Some("FR"), 2));
    assert!((places[0].position.lat - 48.25).abs() < 1e-9, "the middle of its clinics: {places:?}");
    // Once Lyon's doctor is verified, Lyon is a place too, after Paris (fewer clinics).
    let mut now_verified = doctor(lyon.id, VerificationState::Verified, Membership::Active);
    now_verified.licence_number = "L-lyon".into();
    f.store.create_doctor(&now_verified).await.unwrap();
    let cities: Vec<String> = f.store.places(10).await.unwrap().into_iter().map(|p| p.city).collect();
    assert_eq!(cities, ["Paris", "Lyon"]);
    assert_eq!(f.store.places(1).await.unwrap().len(), 1, "at most the limit");
}

async fn activity_counts_what_happened_per_clinic(f: &Fixture) {
    let since = Timestamp::now() - SignedDuration::from_hours(24);
    let clinic = f.store.doctor(f.doctor).await.unwrap().unwrap().clinic_id;
    let mut cmd = f.cmd(0, 0, 30, AppointmentStatus::Booked);
    cmd.now = Timestamp::now();
    f.store.place(&cmd).await.unwrap();
    let mut hold = f.cmd(1, 60, 30, AppointmentStatus::Held);
    hold.now = Timestamp::now();
    hold.hold_expires_at = Some(Timestamp::now() + SignedDuration::from_mins(10));
    f.store.place(&hold).await.unwrap();
    let all = f.store.activity_since(since, None).await.unwrap();
    assert_eq!((all.booked, all.held, all.cancelled), (1, 1, 0), "{all:?}");
    assert_eq!(all.outbox_pending, 2, "each change wrote an outbox row, none delivered yet");
    assert!(all.outbox_oldest.is_some());
    assert_eq!(f.store.activity_since(since, Some(&[clinic])).await.unwrap().booked, 1);
    assert_eq!(f.store.activity_since(since, Some(&[ClinicId::new()])).await.unwrap().booked, 0, "another clinic's");
    assert_eq!(f.store.activity_since(since, Some(&[])).await.unwrap().booked, 0, "no clinics, nothing");
    let later = Timestamp::now() + SignedDuration::from_hours(1);
    assert_eq!(f.store.activity_since(later, None).await.unwrap().booked, 0, "nothing after now");
}

/// A decision that cancels whatever appointment it is given.
fn cancel_it() -> Decide {
    Box::new(|r| {
        Ok(AppointmentChange {
            status: AppointmentStatus::Cancelled,
            start: r.start,
            end: r.end,
            cancel_reason: None,
            event: "appointment.cancelled",
            detail: None,
        })
    })
}

fn email(key: &str, event: uuid::Uuid) -> NewDelivery {
    NewDelivery {
        dedup_key: key.into(),
        channel: Channel::Email,
        recipient: "p0@example.org".into(),
        kind: "booked".into(),
        event_id: event,
        appointment_id: None,
        clinic_id: None,
        payload: serde_json::json!({"subject": key}),
    }
}

async fn outbox_fan_out_happens_once(f: &Fixture) {
    created(f.store.place(&f.cmd(0, 0, 30, AppointmentStatus::Booked)).await);
    let events = f.store.outbox_undispatched(10).await.unwrap();
    assert_eq!(events.len(), 1);
    let e = &events[0];
    let deliveries = vec![email("a", e.event_id), email("b", e.event_id)];
    let note = NewNotification {
        user_id: f.patients[0],
        dedup_key: "n".into(),
        kind: "booked".into(),
        title: "t".into(),
        body: "b".into(),
        appointment_id: None,
        link: None,
    };
    // Two workers race to fan out the same event: one does it, the other finds it done.
    let (x, y) = tokio::join!(
        f.store.dispatch(e.id, &deliveries, std::slice::from_ref(&note), f.t0),
        f.store.dispatch(e.id, &deliveries, std::slice::from_ref(&note), f.t0)
    );
    assert_eq!([x.unwrap(), y.unwrap()].iter().filter(|d| **d).count(), 1);
    assert!(f.store.outbox_undispatched(10).await.unwrap().is_empty());
    assert_eq!(f.store.deliveries(None, 10).await.unwrap().len(), 2);
    assert_eq!(f.store.notifications(f.patients[0], 10).await.unwrap().len(), 1);
    // Queued again (a reminder scan run twice): nothing new.
    assert_eq!(f.store.enqueue(&deliveries, f.t0).await.unwrap(), 0);
    assert_eq!(f.store.delivery_backlog().await.unwrap().0, 2);
}

async fn deliveries_are_claimed_by_one_worker_until_the_lease_runs_out(f: &Fixture) {
    let event = uuid::Uuid::new_v4();
    let batch: Vec<NewDelivery> = (0..40).map(|i| email(&format!("k{i}"), event)).collect();
    assert_eq!(f.store.enqueue(&batch, f.t0).await.unwrap(), 40);
    let lease = SignedDuration::from_secs(30);
    let (a, b) =
        tokio::join!(f.store.claim_deliveries("a", f.t0, lease, 25), f.store.claim_deliveries("b", f.t0, lease, 25));
    let (a, b) = (a.unwrap(), b.unwrap());
    let mut ids: Vec<i64> = a.iter().chain(&b).map(|d| d.id).collect();
    assert_eq!(ids.len(), 40, "all claimed, {} + {}", a.len(), b.len());
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 40, "no delivery claimed twice");
    // Claimed ones are nobody else's until the lease runs out.
    assert!(f.store.claim_deliveries("c", f.t0 + SignedDuration::from_secs(10), lease, 50).await.unwrap().is_empty());
    // a finishes one, dies with the rest; after the lease c takes them over.
    f.store.finish_delivery(a[0].id, "a", &DeliveryOutcome::Delivered { http_status: None }, f.t0).await.unwrap();
    let later = f.t0 + SignedDuration::from_secs(31);
    let retaken = f.store.claim_deliveries("c", later, lease, 50).await.unwrap();
    assert_eq!(retaken.len(), 39);
    // A late finish by the old claimant does not overwrite the new claim.
    let gone = DeliveryOutcome::Dead { error: "late".into(), http_status: None };
    f.store.finish_delivery(a[1].id, "a", &gone, later).await.unwrap();
    let retry = DeliveryOutcome::Retry {
        at: later + SignedDuration::from_secs(60),
        error: "busy".into(),
        http_status: Some(503),
    };
    f.store.finish_delivery(a[1].id, "c", &retry, later).await.unwrap();
    let row = f.store.deliveries(None, 100).await.unwrap().into_iter().find(|d| d.id == a[1].id).unwrap();
    assert_eq!((row.status, row.attempts, row.last_status), (DeliveryStatus::Pending, 1, Some(503)));
    // Not due before its retry time.
    let due = f.store.claim_deliveries("d", later + SignedDuration::from_secs(59), lease, 100).await.unwrap();
    assert!(due.iter().all(|d| d.id != a[1].id));
}

async fn reminders_due_leave_out_queued_and_inactive_appointments(f: &Fixture) {
    let a = created(f.store.place(&f.cmd(0, 0, 30, AppointmentStatus::Booked)).await);
    let b = created(f.store.place(&f.cmd(1, 60, 30, AppointmentStatus::Booked)).await);
    let day = SignedDuration::from_hours(24);
    let offsets = [day, SignedDuration::from_hours(2)];
    // 23 hours before a: both are inside the 24 h window, neither inside 2 h.
    let now = a.start - SignedDuration::from_hours(23);
    let due = f.store.reminders_due(now, &offsets).await.unwrap();
    assert_eq!(due.iter().map(|r| (r.appointment.id, r.offset)).collect::<Vec<_>>(), vec![(a.id, day), (b.id, day)]);
    assert_eq!(due[0].patient_email, "p0@example.org");
    let mut queued = email(&reminder_dedup_key(a.id, a.start, day), uuid::Uuid::new_v4());
    queued.appointment_id = Some(a.id);
    f.store.enqueue(&[queued], now).await.unwrap();
    f.store.modify_appointment(b.id, now, None, cancel_it()).await.unwrap();
    assert!(f.store.reminders_due(now, &offsets).await.unwrap().is_empty());
    // After the start, nothing is due.
    assert!(f.store.reminders_due(a.end, &offsets).await.unwrap().is_empty());
}

async fn waitlist_offers_go_first_come_and_never_twice(f: &Fixture) {
    let entry = |p: usize, mode: Option<Mode>| WaitlistRecord {
        id: uuid::Uuid::now_v7(),
        doctor_id: f.doctor,
        patient_id: f.patients[p],
        not_before: None,
        not_after: None,
        mode,
        status: WaitlistStatus::Waiting,
        offered_appointment_id: None,
        created_at: f.t0,
    };
    let online_only = entry(1, Some(Mode::Online));
    let first = entry(2, None);
    let second = entry(3, None);
    for e in [&online_only, &first, &second] {
        f.store.join_waitlist(e).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    let offer = WaitlistOffer {
        doctor_id: f.doctor,
        start: f.at(0),
        end: f.at(30),
        mode: Mode::InPerson,
        hold_until: f.at(-60),
        origin_region: "local".into(),
        now: f.at(-120),
    };
    // The slot is taken: nobody is offered it.
    let taken = created(f.store.place(&f.cmd(0, 0, 30, AppointmentStatus::Booked)).await);
    assert!(f.store.offer_from_waitlist(&offer).await.unwrap().is_none());
    f.store.modify_appointment(taken.id, f.at(-119), None, cancel_it()).await.unwrap();
    // Free now: the first in-person waiter gets a hold (the online-only one is skipped).
    let (e, hold) = f.store.offer_from_waitlist(&offer).await.unwrap().unwrap();
    assert_eq!((e.id, hold.patient_id, hold.status), (first.id, f.patients[2], AppointmentStatus::Held));
    let events = f.store.outbox_undispatched(10).await.unwrap();
    assert!(events.iter().any(|o| o.topic == "waitlist.offered"));
    // Offered twice (a retried fan-out): the slot is held, so nothing happens.
    assert!(f.store.offer_from_waitlist(&offer).await.unwrap().is_none());
    // The hold runs out: settling returns the slot and puts the entry back.
    let lapsed = f.store.settle_waitlist(f.at(-59)).await.unwrap();
    assert_eq!(lapsed.len(), 1);
    let again = WaitlistOffer { now: f.at(-59), hold_until: f.at(-30), ..offer };
    let (e, _) = f.store.offer_from_waitlist(&again).await.unwrap().unwrap();
    assert_eq!(e.id, second.id, "the next patient, not the first one again");
    let mine = f.store.waitlist_of_patient(f.patients[2]).await.unwrap();
    assert_eq!(mine[0].status, WaitlistStatus::Waiting);
}

async fn time_off_is_listed_removed_and_its_doctor_marked_changed(f: &Fixture) {
    let interval = Interval { start: f.t0, end: f.t0 + SignedDuration::from_hours(2) };
    let t = TimeOffRecord { id: uuid::Uuid::new_v4(), doctor_id: f.doctor, interval, reason: "congress".into() };
    f.store.add_time_off(&t).await.unwrap();
    let listed = f.store.time_off_of(f.doctor, f.t0 - SignedDuration::from_hours(1)).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].id, listed[0].interval, listed[0].reason.as_str()), (t.id, interval, "congress"));
    assert!(f.store.time_off_of(f.doctor, interval.end).await.unwrap().is_empty(), "ended by then");
    let window = Interval { start: f.t0 - SignedDuration::from_hours(1), end: f.t0 + SignedDuration::from_hours(3) };
    assert_eq!(f.store.busy(&[f.doctor], window, f.t0).await.unwrap().len(), 1);

    // Another doctor's id for it: nothing removed.
    let now = Timestamp::now();
    let refused = f.store.remove_time_off(DoctorId::new(), t.id, now).await;
    assert!(matches!(refused, Err(StoreError::NotFound)), "{refused:?}");
    assert_eq!(f.store.time_off_of(f.doctor, f.t0).await.unwrap().len(), 1);

    f.store.remove_time_off(f.doctor, t.id, now).await.unwrap();
    assert!(f.store.time_off_of(f.doctor, f.t0).await.unwrap().is_empty());
    assert!(f.store.busy(&[f.doctor], window, f.t0).await.unwrap().is_empty(), "the time is free again");
    let changed = f.store.doctors_changed_since(now, now + SignedDuration::from_secs(1)).await.unwrap();
    assert!(changed.contains(&f.doctor), "publishers and peers learn of the removal through the doctor");
    assert!(matches!(f.store.remove_time_off(f.doctor, t.id, now).await, Err(StoreError::NotFound)));
}

async fn a_primary_reports_no_replication_lag(f: &Fixture) {
    // Only a standby is behind something; the read-replica watcher leaves a primary alone.
    assert_eq!(f.store.replication_lag().await.unwrap(), None);
}

async fn calendar_tokens_are_replaced_and_revoked(f: &Fixture) {
    assert!(!f.store.calendar_token_matches(f.doctor, "h1").await.unwrap());
    f.store.set_calendar_token(f.doctor, "h1", f.t0).await.unwrap();
    assert!(f.store.calendar_token_matches(f.doctor, "h1").await.unwrap());
    f.store.set_calendar_token(f.doctor, "h2", f.t0).await.unwrap();
    assert!(!f.store.calendar_token_matches(f.doctor, "h1").await.unwrap(), "a new token revokes the old");
    assert!(f.store.calendar_token_matches(f.doctor, "h2").await.unwrap());
    assert!(f.store.revoke_calendar_token(f.doctor).await.unwrap());
    assert!(!f.store.calendar_token_matches(f.doctor, "h2").await.unwrap());
}

macro_rules! conformance {
    ($backend:ident, $($case:ident),* $(,)?) => {
        mod $backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let f = super::$backend().await;
                    super::$case(&f).await;
                    drop(f.store);
                    f.db.drop_db().await;
                }
            )*
        }
    };
}

conformance!(
    sqlite,
    places_are_the_cities_with_listed_doctors,
    a_patient_is_never_booked_twice_at_once,
    concurrent_bookings_of_one_patient_have_one_winner,
    search_rows_are_found_by_every_filter_and_only_fresher_ones_replace_them,
    indexed_pages_by_keyset_add_up_to_the_whole_order,
    indexed_counts_stop_past_the_cap,
    overlap_of_any_length_is_refused,
    expired_holds_free_their_slot_and_are_audited,
    clock_skew_between_nodes_never_double_books,
    booking_ones_own_hold_confirms_it,
    video_rooms_are_drawn_when_made_and_again_when_moved,
    visits_are_kept_with_appointments_and_doctors,
    requests_await_the_clinic_until_answered,
    an_erased_account_keeps_its_appointments_under_a_pseudonym,
    idempotency_keys_replay_or_refuse,
    concurrent_placements_have_one_winner,
    changes_write_outbox_rows_in_the_same_transaction,
    outbox_payloads_describe_each_change_alike,
    doctor_updates_are_compare_and_swap,
    clinic_rules_are_kept_and_mark_the_clinics_doctors_changed,
    changes_are_tracked_for_publishers,
    directory_updates_since_include_suspended_doctors,
    bulk_loads_are_checked_and_all_or_nothing,
    staff_listings_include_unverified_doctors,
    doctors_are_found_by_licence_number,
    region_snapshots_carry_the_regions_own_doctors_in_full_or_since,
    activity_counts_what_happened_per_clinic,
    outbox_fan_out_happens_once,
    deliveries_are_claimed_by_one_worker_until_the_lease_runs_out,
    reminders_due_leave_out_queued_and_inactive_appointments,
    waitlist_offers_go_first_come_and_never_twice,
    calendar_tokens_are_replaced_and_revoked,
    a_primary_reports_no_replication_lag,
    time_off_is_listed_removed_and_its_doctor_marked_changed,
);

conformance!(
    postgres,
    places_are_the_cities_with_listed_doctors,
    a_patient_is_never_booked_twice_at_once,
    concurrent_bookings_of_one_patient_have_one_winner,
    search_rows_are_found_by_every_filter_and_only_fresher_ones_replace_them,
    indexed_pages_by_keyset_add_up_to_the_whole_order,
    indexed_counts_stop_past_the_cap,
    overlap_of_any_length_is_refused,
    expired_holds_free_their_slot_and_are_audited,
    clock_skew_between_nodes_never_double_books,
    booking_ones_own_hold_confirms_it,
    video_rooms_are_drawn_when_made_and_again_when_moved,
    visits_are_kept_with_appointments_and_doctors,
    requests_await_the_clinic_until_answered,
    an_erased_account_keeps_its_appointments_under_a_pseudonym,
    idempotency_keys_replay_or_refuse,
    concurrent_placements_have_one_winner,
    changes_write_outbox_rows_in_the_same_transaction,
    outbox_payloads_describe_each_change_alike,
    doctor_updates_are_compare_and_swap,
    clinic_rules_are_kept_and_mark_the_clinics_doctors_changed,
    changes_are_tracked_for_publishers,
    directory_updates_since_include_suspended_doctors,
    bulk_loads_are_checked_and_all_or_nothing,
    staff_listings_include_unverified_doctors,
    doctors_are_found_by_licence_number,
    region_snapshots_carry_the_regions_own_doctors_in_full_or_since,
    activity_counts_what_happened_per_clinic,
    outbox_fan_out_happens_once,
    deliveries_are_claimed_by_one_worker_until_the_lease_runs_out,
    reminders_due_leave_out_queued_and_inactive_appointments,
    waitlist_offers_go_first_come_and_never_twice,
    calendar_tokens_are_replaced_and_revoked,
    a_primary_reports_no_replication_lag,
    time_off_is_listed_removed_and_its_doctor_marked_changed,
);

/// PostgreSQL only: a database that turns read-only under the store — what a
/// primary demoted by a failover is — makes writes "unavailable, retry", and
/// once it is writable again the same store writes without a restart: pooled
/// connections whose session is still read-only are dropped, not reused.
#[tokio::test]
async fn postgres_turned_read_only_is_unavailable_then_followed_without_a_restart() {
    use sqlx::Connection;
    let f = postgres().await;
    let TestDb::Postgres { admin_url, name } = &f.db else { unreachable!("a PostgreSQL fixture") };
    let mut admin = sqlx::PgConnection::connect(admin_url).await.unwrap();
    // One connection: the one that met the read-only server is the one the pool would hand out again.
    let (base, _) = admin_url.rsplit_once('/').unwrap();
    let store =
        connect(&format!("{base}/{name}"), &ConnectOptions { max_connections: 1, ..Default::default() }).await.unwrap();
    let user = |i: usize| UserRecord {
        id: UserId::new(),
        email: format!("ro{i}@example.org"),
        password_hash: "x".into(),
        role: Role::Patient,
        name: format!("RO{i}"),
        created_at: Timestamp::now(),
    };
    store.create_user(&user(0)).await.unwrap();

    // The server turns read-only, and the store's sessions are cut, as a failover cuts them.
    exec(&mut admin, &format!("ALTER DATABASE {name} SET default_transaction_read_only = on")).await;
    exec(
        &mut admin,
        &format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}' AND pid <> pg_backend_pid()"
        ),
    )
    .await;
    // The first tries may meet a cut connection; then a fresh one, read-only.
    let mut read_only = false;
    for i in 1..10 {
        let refused = store.create_user(&user(i)).await.unwrap_err();
        assert!(matches!(refused, StoreError::Unavailable(_)), "a read-only server means retry: {refused:?}");
        if refused.to_string().contains("read-only") {
            read_only = true;
            break;
        }
    }
    assert!(read_only, "a write reached the read-only server and was refused as such");

    // Writable again (the new primary); the pool still holds the session opened read-only.
    exec(&mut admin, &format!("ALTER DATABASE {name} RESET default_transaction_read_only")).await;
    let again = user(10);
    store.create_user(&again).await.expect("the same store writes again, on a fresh connection");
    assert!(store.user_by_email(&again.email).await.unwrap().is_some());
    drop(admin);
    drop(store);
    drop(f.store);
    f.db.drop_db().await;
}

async fn exec(admin: &mut sqlx::PgConnection, sql: &str) {
    sqlx::query(sql).execute(admin).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
}
