//! The workers over a real (SQLite) store with a hand-set clock: reminders,
//! waitlist offers, exactly-once fan-out under racing workers, backoff and
//! dead letters. Time moves only when a test moves it; nothing sleeps.

use jiff::{SignedDuration, Timestamp};
use medislot_app::{Actor, App, AppConfig, BookRequest, ClinicInput, DoctorInput, Registration, Verification};
use medislot_domain::{
    schedule::{RangeInput, ScheduleInput},
    AppointmentStatus, DoctorId, SlotId,
};
use medislot_store::{DeliveryStatus, WaitlistStatus};
use medislot_workers::{mail::Mailer, Pass, WorkerConfig, Workers};
use std::sync::{Arc, Mutex};

const PASSWORD: &str = "correct horse battery";

struct World {
    app: App,
    clock: Arc<Mutex<Timestamp>>,
    patients: Vec<Actor>,
    doctor_user: Actor,
    clinic_admin: Actor,
    doctor: DoctorId,
    clinic: medislot_domain::ClinicId,
    mail: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl World {
    fn set(&self, t: Timestamp) {
        *self.clock.lock().unwrap() = t;
    }

    fn workers(&self, config: WorkerConfig) -> Workers {
        Workers::new(self.app.clone(), Mailer::new(None, self.mail.clone()).unwrap(), config)
    }

    fn worker(&self) -> Workers {
        self.workers(WorkerConfig::default())
    }

    async fn book(&self, patient: usize, start: &str) -> medislot_store::AppointmentRecord {
        let slot = SlotId::new(self.doctor, start.parse().unwrap()).to_string();
        let req = BookRequest { slot_id: slot, mode: None, reason: "check-up".into(), intake: None };
        self.app.book(Some(&self.patients[patient]), req, None).await.unwrap().appointment
    }

    /// Every e-mail written so far: (To, Subject, Message-ID).
    fn mails(&self) -> Vec<(String, String, String)> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.mail).into_iter().flatten().flatten() {
            let text = std::fs::read_to_string(entry.path()).unwrap();
            // Unfold header continuation lines, then read the three headers.
            let head = text.split("\r\n\r\n").next().unwrap_or("").replace("\r\n ", " ");
            let header = |name: &str| {
                head.lines().find_map(|l| l.strip_prefix(&format!("{name}: "))).unwrap_or_default().to_string()
            };
            out.push((header("To"), header("Subject"), header("Message-ID")));
        }
        out
    }

    fn subjects_to(&self, to: &str, containing: &str) -> Vec<String> {
        self.mails().into_iter().filter(|(t, s, _)| t == to && s.contains(containing)).map(|(_, s, _)| s).collect()
    }
}

async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("medislot.db").display());
    let store = medislot_store::connect(&url, &Default::default()).await.unwrap();
    // Monday 2 March 2026, 08:00 UTC (09:00 in Paris, CET).
    let clock = Arc::new(Mutex::new("2026-03-02T08:00:00Z".parse::<Timestamp>().unwrap()));
    let c = clock.clone();
    // Webhook receivers in these tests are on loopback.
    let config = AppConfig {
        availability_cache_ttl: std::time::Duration::ZERO,
        webhooks_allow_private: true,
        ..AppConfig::default()
    };
    let app = App::with_clock(store, config, Arc::new(move || *c.lock().unwrap()));
    let user = |email: &str, name: &str, role: &str| {
        let app = app.clone();
        let reg = Registration { email: email.into(), password: PASSWORD.into(), name: name.into(), role: role.into() };
        async move { Actor { user: app.register(reg).await.unwrap() } }
    };
    let admin = Actor { user: app.create_admin("admin@example.org", PASSWORD, "Ada Admin").await.unwrap() };
    let clinic_admin = user("ca@example.org", "Claire Clinic", "clinic_admin").await;
    let doctor_user = user("dr@example.org", "Dr Camille Martin", "doctor").await;
    let mut patients = Vec::new();
    for (i, name) in ["Paul Patient", "Zoé Durand", "Liam O'Brien", "Maya Chen"].iter().enumerate() {
        patients.push(user(&format!("p{i}@example.org"), name, "patient").await);
    }
    let clinic = app
        .create_clinic(
            Some(&clinic_admin),
            ClinicInput {
                name: "Clinique Saint-Louis".into(),
                address: "12 rue de Rivoli".into(),
                city: Some("Paris".into()),
                postal_code: Some("75004".into()),
                country: Some("FR".into()),
                latitude: 48.8556,
                longitude: 2.358,
                time_zone: "Europe/Paris".into(),
                region: None,
                policy: None,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let doctor = app
        .create_doctor(
            Some(&clinic_admin),
            DoctorInput {
                clinic_id: clinic.id,
                user_id: Some(doctor_user.user.id),
                name: "Dr Camille Martin".into(),
                specialties: vec!["cardiology".into()],
                languages: vec!["fr".into()],
                modes: vec!["in_person".into()],
                licence_number: "LIC-1".into(),
                bio: String::new(),
            },
        )
        .await
        .unwrap();
    app.decide_membership(Some(&doctor_user), doctor.id, "accept").await.unwrap();
    let weekly = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
        .iter()
        .map(|d| RangeInput::weekly(d, "08:00", "18:00", "in_person", 30))
        .collect();
    let schedule = ScheduleInput { weekly, extra: vec![], horizon_days: Some(30), min_notice_minutes: Some(0) };
    app.put_schedule(Some(&clinic_admin), doctor.id, schedule).await.unwrap();
    app.verify_doctor(Some(&admin), doctor.id, Verification { decision: "verified".into(), reason: None })
        .await
        .unwrap();
    let mail = dir.path().join("mail");
    World { app, clock, patients, doctor_user, clinic_admin, doctor: doctor.id, clinic: clinic.id, mail, _dir: dir }
}

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

#[tokio::test]
async fn reminders_come_at_their_offsets_once_and_not_for_cancelled_moved_or_late_bookings() {
    let w = world().await;
    let worker = w.worker();
    // Wednesday 4 March, 10:00 Paris = 09:00 UTC.
    let a = w.book(0, "2026-03-04T09:00:00Z").await;
    // Another, cancelled before its reminders are due.
    let b = w.book(1, "2026-03-04T10:00:00Z").await;
    worker.pass().await.unwrap();
    assert_eq!(w.subjects_to("p0@example.org", "Appointment confirmed").len(), 1);
    assert!(w.subjects_to("p0@example.org", "Reminder").is_empty());

    w.app.cancel(Some(&w.patients[1]), b.id, Some("feeling better".into()), None).await.unwrap();

    // One minute before the 24-hour mark: nothing yet.
    w.set(a.start - SignedDuration::from_hours(24) - SignedDuration::from_mins(1));
    assert_eq!(worker.pass().await.unwrap().reminders, 0);
    // Just past it: one reminder, in the clinic's time, with the zone named.
    w.set(a.start - SignedDuration::from_hours(24) + SignedDuration::from_secs(1));
    let pass = worker.pass().await.unwrap();
    assert_eq!((pass.reminders, pass.delivered), (1, 1), "{pass:?}");
    assert_eq!(
        w.subjects_to("p0@example.org", "Reminder"),
        vec!["Reminder: Dr Camille Martin, Wed 4 Mar 2026, 10:00 Europe/Paris (CET)".to_string()]
    );
    // Again, and after a "restart" (a new worker): nothing new.
    assert_eq!(worker.pass().await.unwrap(), Pass::default());
    assert_eq!(w.worker().pass().await.unwrap(), Pass::default());

    // The 2-hour reminder.
    w.set(a.start - SignedDuration::from_hours(2) + SignedDuration::from_secs(1));
    assert_eq!(worker.pass().await.unwrap().reminders, 1);
    assert_eq!(w.subjects_to("p0@example.org", "Reminder").len(), 2);
    // The cancelled appointment never got one.
    assert!(w.subjects_to("p1@example.org", "Reminder").is_empty());

    // Moved: reminders follow the new time, none for the old.
    w.set(at("2026-03-04T12:00:00Z"));
    let c = w.book(2, "2026-03-06T09:00:00Z").await;
    w.app
        .reschedule(Some(&w.patients[2]), c.id, &SlotId::new(w.doctor, at("2026-03-07T09:00:00Z")).to_string(), None)
        .await
        .unwrap();
    w.set(at("2026-03-05T09:00:01Z"));
    worker.pass().await.unwrap();
    assert!(w.subjects_to("p2@example.org", "Reminder").is_empty(), "the old time's reminder");
    w.set(at("2026-03-06T09:00:01Z"));
    worker.pass().await.unwrap();
    assert_eq!(
        w.subjects_to("p2@example.org", "Reminder"),
        vec!["Reminder: Dr Camille Martin, Sat 7 Mar 2026, 10:00 Europe/Paris (CET)".to_string()]
    );

    // Booked three hours ahead: the 24-hour reminder would only repeat the
    // confirmation (recorded as skipped); the 2-hour one comes.
    let d = w.book(3, "2026-03-06T12:00:00Z").await;
    worker.pass().await.unwrap();
    w.set(d.start - SignedDuration::from_hours(2) + SignedDuration::from_secs(1));
    worker.pass().await.unwrap();
    assert_eq!(w.subjects_to("p3@example.org", "Reminder").len(), 1);
    let log = w.app.store().deliveries(Some("p3@example.org"), 100).await.unwrap();
    let skipped: Vec<_> = log.iter().filter(|x| x.status == DeliveryStatus::Skipped).collect();
    assert_eq!(skipped.len(), 1, "{log:?}");
    assert_eq!(skipped[0].last_error.as_deref(), Some("booked after the reminder time"));

    // Past appointments get nothing more.
    w.set(at("2026-03-09T00:00:00Z"));
    assert_eq!(worker.pass().await.unwrap(), Pass::default());
}

#[tokio::test]
async fn a_freed_slot_goes_to_the_waitlist_in_order_and_to_the_next_when_an_offer_runs_out() {
    let w = world().await;
    let worker = w.worker();
    let slot_start = "2026-03-03T09:00:00Z";
    let taken = w.book(0, slot_start).await;
    let join = |p: usize| {
        let input = medislot_app::WaitlistInput::default();
        w.app.join_waitlist(Some(&w.patients[p]), w.doctor, input)
    };
    let second = join(1).await.unwrap();
    w.set(at("2026-03-02T08:00:01Z"));
    let third = join(2).await.unwrap();
    // Joining twice is refused.
    assert!(join(1).await.is_err());
    worker.pass().await.unwrap();

    w.app.cancel(Some(&w.patients[0]), taken.id, None, None).await.unwrap();
    let pass = worker.pass().await.unwrap();
    assert_eq!(pass.offers, 1, "{pass:?}");
    let mine = w.app.my_waitlist(Some(&w.patients[1])).await.unwrap();
    assert_eq!(mine[0].status, WaitlistStatus::Offered);
    let hold = w.app.appointment(Some(&w.patients[1]), mine[0].offered_appointment_id.unwrap()).await.unwrap();
    assert_eq!((hold.status, hold.start), (AppointmentStatus::Held, at(slot_start)));
    assert_eq!(hold.hold_expires_at, Some(w.app.now() + SignedDuration::from_mins(30)));
    // Told by e-mail and in the app, with the link to confirm.
    worker.pass().await.unwrap();
    let offers = w.subjects_to("p1@example.org", "is free");
    assert_eq!(
        offers,
        vec!["A slot with Dr Camille Martin is free: Tue 3 Mar 2026, 10:00 Europe/Paris (CET)".to_string()]
    );
    let inbox = w.app.notifications(Some(&w.patients[1]), 10).await.unwrap();
    let offer = inbox.iter().find(|n| n.kind == "waitlist_offer").expect("an in-app offer");
    assert_eq!(offer.link.as_deref(), Some(format!("/holds/{}", hold.id).as_str()));
    assert_eq!(w.app.my_waitlist(Some(&w.patients[2])).await.unwrap()[0].status, WaitlistStatus::Waiting);

    // The offer runs out: the next patient gets the slot; the first waits again.
    w.set(w.app.now() + SignedDuration::from_mins(31));
    assert_eq!(worker.pass().await.unwrap().offers, 1);
    assert_eq!(w.app.my_waitlist(Some(&w.patients[1])).await.unwrap()[0].status, WaitlistStatus::Waiting);
    let entry = &w.app.my_waitlist(Some(&w.patients[2])).await.unwrap()[0];
    assert_eq!((entry.id, entry.status), (third.id, WaitlistStatus::Offered));

    // The third patient confirms the hold like any other: booked, and the entry is done.
    let req = BookRequest {
        slot_id: SlotId::new(w.doctor, at(slot_start)).to_string(),
        mode: None,
        reason: String::new(),
        intake: None,
    };
    let booked = w.app.book(Some(&w.patients[2]), req, None).await.unwrap().appointment;
    assert_eq!((booked.id, booked.status), (entry.offered_appointment_id.unwrap(), AppointmentStatus::Booked));
    worker.pass().await.unwrap();
    assert_eq!(w.app.my_waitlist(Some(&w.patients[2])).await.unwrap()[0].status, WaitlistStatus::Booked);
    // The second patient is not offered the same slot twice.
    assert_eq!(w.app.my_waitlist(Some(&w.patients[1])).await.unwrap()[0].id, second.id);
    assert_eq!(w.app.my_waitlist(Some(&w.patients[1])).await.unwrap()[0].status, WaitlistStatus::Waiting);
    // The doctor sees who waits.
    let queue = w.app.doctor_waitlist(Some(&w.doctor_user), w.doctor).await.unwrap();
    assert_eq!(queue.iter().map(|e| e.id).collect::<Vec<_>>(), vec![second.id]);
}

#[tokio::test]
async fn racing_workers_send_each_message_once_and_notify_each_person_once() {
    let w = world().await;
    let mut starts = Vec::new();
    for i in 0..15 {
        let start = at("2026-03-04T07:00:00Z") + SignedDuration::from_mins(30 * i);
        starts.push(start);
        w.book((i % 4) as usize, &start.to_string()).await;
    }
    let (a, b, c) = (w.worker(), w.worker(), w.worker());
    for _ in 0..3 {
        let (x, y, z) = tokio::join!(a.pass(), b.pass(), c.pass());
        x.unwrap();
        y.unwrap();
        z.unwrap();
    }
    let mails = w.mails();
    // Each booking: one e-mail to its patient, one to the doctor.
    assert_eq!(mails.len(), 30, "{mails:?}");
    let mut ids: Vec<_> = mails.iter().map(|(_, _, id)| id.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 30, "one Message-ID per message");
    let doctor_inbox = w.app.notifications(Some(&w.doctor_user), 100).await.unwrap();
    assert_eq!(doctor_inbox.len(), 15);
}

#[tokio::test]
async fn failing_webhooks_back_off_and_end_in_the_dead_letter_state() {
    let w = world().await;
    // Nothing listens on this port.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let input = medislot_app::WebhookInput { url: format!("http://127.0.0.1:{port}/hook"), events: vec![] };
    let hook = w.app.create_webhook(Some(&w.clinic_admin), w.clinic, input).await.unwrap();
    let config = WorkerConfig {
        max_attempts: 3,
        backoff_base: SignedDuration::from_secs(10),
        allow_private_webhooks: true,
        ..Default::default()
    };
    let worker = w.workers(config);
    w.book(0, "2026-03-03T09:00:00Z").await;
    let log = || w.app.webhook_deliveries(Some(&w.clinic_admin), w.clinic, hook.id, 10);

    worker.pass().await.unwrap();
    let first = log().await.unwrap();
    assert_eq!((first.len(), first[0].attempts, first[0].status), (1, 1, DeliveryStatus::Pending));
    let wait = first[0].next_attempt_at.duration_since(w.app.now());
    assert!(wait >= SignedDuration::from_secs(10) && wait <= SignedDuration::from_secs(12), "{wait:?}");
    // Not before its time.
    w.set(w.app.now() + SignedDuration::from_secs(5));
    worker.pass().await.unwrap();
    assert_eq!(log().await.unwrap()[0].attempts, 1);
    // Second attempt; the third waits twice as long.
    w.set(first[0].next_attempt_at);
    worker.pass().await.unwrap();
    let second = log().await.unwrap();
    assert_eq!(second[0].attempts, 2);
    let wait = second[0].next_attempt_at.duration_since(w.app.now());
    assert!(wait >= SignedDuration::from_secs(20) && wait <= SignedDuration::from_secs(24), "{wait:?}");
    w.set(second[0].next_attempt_at);
    worker.pass().await.unwrap();
    let last = log().await.unwrap();
    assert_eq!((last[0].attempts, last[0].status), (3, DeliveryStatus::Dead), "{last:?}");
    assert!(last[0].last_error.is_some());
    // A dead letter is never tried again.
    w.set(w.app.now() + SignedDuration::from_hours(1));
    worker.pass().await.unwrap();
    assert_eq!(log().await.unwrap()[0].attempts, 3);
}
