//! Search's read model: rows are found by every filter, replaced only by
//! fresher ones, dropped by tombstones, and moved on as time passes.

use super::Fixture;
use jiff::{SignedDuration, Timestamp};
use medislot_domain::{
    free_index::FreeIndex,
    schedule::{RangeInput, ScheduleInput},
    ClinicId, Coordinates, DoctorId, Mode, Schedule, VerificationState,
};
use medislot_store::search::*;
use medislot_store::*;

fn schedule() -> Schedule {
    let input = ScheduleInput {
        weekly: vec![
            RangeInput::weekly("monday", "09:00", "12:00", "in_person", 30),
            RangeInput::weekly("tuesday", "14:00", "15:00", "online", 20),
        ],
        extra: vec![],
        horizon_days: Some(30),
        min_notice_minutes: Some(0),
    };
    Schedule::parse(&input).unwrap()
}

fn doctor(clinic: ClinicId, name: &str, specialty: &str, schedule: Schedule, at: Timestamp) -> DoctorRecord {
    DoctorRecord {
        id: DoctorId::new(),
        user_id: None,
        clinic_id: clinic,
        name: name.into(),
        specialties: vec![specialty.into()],
        languages: vec!["fr".into()],
        modes: vec![Mode::InPerson, Mode::Online],
        licence_number: format!("L-{name}"),
        bio: String::new(),
        verification: VerificationState::Verified,
        verification_reason: None,
        membership: medislot_domain::Membership::Active,
        schedule,
        video_room_url: None,
        version: 1,
        created_at: at,
        updated_at: at,
        visit_types: vec![],
    }
}

fn listing(d: &DoctorRecord, position: Coordinates, at: Timestamp) -> SearchEntry {
    let tz = jiff::tz::TimeZone::get("Europe/Paris").unwrap();
    SearchEntry {
        doctor_id: d.id,
        at,
        listing: Some(SearchListing {
            name: d.name.clone(),
            specialties: d.specialties.clone(),
            languages: d.languages.clone(),
            modes: d.modes.clone(),
            position,
            free: FreeIndex::compute(&d.schedule, d.id, &tz, &[], at),
        }),
    }
}

fn filter(specialty: &str) -> SearchFilter {
    SearchFilter { specialty: specialty.into(), ..Default::default() }
}

async fn found(f: &Fixture, filter: &SearchFilter) -> Vec<DoctorId> {
    f.store.search_candidates(filter, None).await.unwrap().into_iter().map(|r| r.doctor_id).collect()
}

pub async fn search_rows_are_found_by_every_filter_and_only_fresher_ones_replace_them(f: &Fixture) {
    let clinic = f.store.doctor(f.doctor).await.unwrap().unwrap().clinic_id;
    let place = f.store.clinic(clinic).await.unwrap().unwrap().position;
    // A Sunday evening: Monday 09:00 Paris is the next slot.
    let at: Timestamp = "2030-01-06T18:00:00Z".parse().unwrap();
    let d = DoctorRecord {
        id: DoctorId::new(),
        user_id: None,
        clinic_id: clinic,
        // What a CSV or array literal would trip on.
        name: "Dr \"Quote\", Comma\\Back {x}".into(),
        specialties: vec!["dermatology".into(), "pediatrics".into()],
        languages: vec!["fr".into(), "en".into()],
        modes: vec![Mode::InPerson, Mode::Online],
        licence_number: "S-1".into(),
        bio: String::new(),
        verification: VerificationState::Verified,
        verification_reason: None,
        membership: medislot_domain::Membership::Active,
        schedule: schedule(),
        video_room_url: None,
        version: 1,
        created_at: at,
        updated_at: at,
        visit_types: vec![],
    };
    let entry = listing(&d, place, at);
    f.store
        .bulk_load(&BulkLoad { doctors: vec![d.clone()], search: vec![entry.clone()], ..Default::default() })
        .await
        .unwrap();
    let rows = f.store.search_candidates(&filter("dermatology"), None).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].name, d.name);
    assert_eq!(rows[0].free.as_ref(), entry.listing.as_ref().map(|l| &l.free), "free times read back as written");
    let monday: Timestamp = "2030-01-07T08:00:00Z".parse().unwrap();
    assert_eq!(rows[0].next, Some(monday));
    for (what, filter, hit) in [
        ("its other specialty", filter("pediatrics"), true),
        ("no specialty", filter(""), true),
        ("another specialty", filter("cardiology"), false),
        ("a language it speaks", SearchFilter { language: Some("en".into()), ..filter("dermatology") }, true),
        ("a language it does not", SearchFilter { language: Some("de".into()), ..filter("dermatology") }, false),
        ("a mode it offers", SearchFilter { mode: Some(Mode::Online), ..filter("dermatology") }, true),
        ("near its clinic", SearchFilter { near: Some((place, 5.0)), ..filter("dermatology") }, true),
        (
            "far from it",
            SearchFilter { near: Some((Coordinates { lat: 40.7, lon: -74.0 }, 50.0)), ..filter("dermatology") },
            false,
        ),
        ("near, another specialty", SearchFilter { near: Some((place, 5.0)), ..filter("cardiology") }, false),
    ] {
        assert_eq!(found(f, &filter).await.contains(&d.id), hit, "{what}");
    }
    let online = SearchFilter { mode: Some(Mode::Online), ..filter("dermatology") };
    let indexed = f
        .store
        .search_indexed(&online, at, at + SignedDuration::from_hours(24 * 14), 10, Some(10), None)
        .await
        .unwrap();
    assert_eq!(
        indexed.soonest.iter().map(|r| (r.doctor_id, r.next)).collect::<Vec<_>>(),
        vec![(d.id, Some("2030-01-08T13:00:00Z".parse().unwrap()))]
    );
    assert_eq!(indexed.total, 1);
    let window_asked =
        f.store.search_indexed(&online, at, at + SignedDuration::from_hours(24 * 14), 10, None, None).await.unwrap();
    assert_eq!(window_asked.soonest_count, 1, "with a window asked for, the matches are those with a slot");
    assert!(indexed.stale.is_empty() && indexed.without_slot.is_empty());

    // Time passes: once Monday 09:00 is gone, the row is stale, then due.
    let later = monday + SignedDuration::from_mins(1);
    let stale = f
        .store
        .search_indexed(&filter("dermatology"), later, later + SignedDuration::from_hours(48), 10, None, None)
        .await
        .unwrap();
    assert!(stale.soonest.is_empty());
    assert_eq!(stale.stale.iter().map(|r| r.doctor_id).collect::<Vec<_>>(), vec![d.id]);
    assert!(stale.stale[0].free.is_some(), "stale rows come with their free times");
    // Candidates for a window starting then: free times for the stale rows only.
    let fresh = f.store.search_candidates(&filter("dermatology"), Some(at)).await.unwrap();
    assert_eq!(
        fresh.iter().map(|r| (r.doctor_id, r.stale, r.free.is_some())).collect::<Vec<_>>(),
        vec![(d.id, false, false)]
    );
    assert_eq!(fresh[0].next, Some(monday));
    let passed = f.store.search_candidates(&filter("dermatology"), Some(later)).await.unwrap();
    assert_eq!(passed.iter().map(|r| (r.stale, r.free.is_some())).collect::<Vec<_>>(), vec![(true, true)]);
    let due = f.store.search_entries_due(later, 100).await.unwrap();
    let mine = due.iter().find(|e| e.doctor_id == d.id).expect("due once its next start passed");
    let medislot_domain::free_index::Known::Yes(next) = mine.free.next_at(later) else {
        panic!("the next start is listed")
    };
    f.store
        .advance_search_entries(&[Advance {
            doctor_id: d.id,
            computed_at: mine.free.computed_at,
            next,
            refresh_at: mine.free.refresh_at(later),
            notice: mine.free.notice,
        }])
        .await
        .unwrap();
    let moved = f
        .store
        .search_indexed(&filter("dermatology"), later, later + SignedDuration::from_hours(48), 10, None, None)
        .await
        .unwrap();
    assert_eq!(
        moved.soonest.iter().map(|r| r.next).collect::<Vec<_>>(),
        vec![Some("2030-01-07T08:30:00Z".parse().unwrap())]
    );
    assert!(f.store.search_entries_due(later, 100).await.unwrap().iter().all(|e| e.doctor_id != d.id));

    // An entry computed earlier than the stored one changes nothing; a later one replaces it.
    let mut older = listing(&d, Coordinates { lat: 10.0, lon: 10.0 }, at - SignedDuration::from_hours(1));
    f.store.put_search_entries(std::slice::from_ref(&older)).await.unwrap();
    assert!(found(f, &SearchFilter { near: Some((place, 5.0)), ..filter("dermatology") }).await.contains(&d.id));
    older.at = at + SignedDuration::from_hours(2);
    if let Some(l) = &mut older.listing {
        l.free = FreeIndex::compute(&d.schedule, d.id, &jiff::tz::TimeZone::UTC, &[], older.at);
        l.specialties = vec!["cardiology".into()];
    }
    f.store.put_search_entries(&[older.clone()]).await.unwrap();
    assert!(!found(f, &filter("dermatology")).await.contains(&d.id), "the specialty it lost");
    assert!(found(
        f,
        &SearchFilter { near: Some((Coordinates { lat: 10.0, lon: 10.0 }, 5.0)), ..filter("cardiology") }
    )
    .await
    .contains(&d.id));

    // A tombstone drops the rows, and a late put computed before it does not bring them back.
    let gone = SearchEntry { doctor_id: d.id, at: at + SignedDuration::from_hours(3), listing: None };
    f.store.put_search_entries(&[gone]).await.unwrap();
    assert!(!found(f, &filter("")).await.contains(&d.id));
    f.store.put_search_entries(&[older]).await.unwrap();
    assert!(!found(f, &filter("")).await.contains(&d.id), "a stale put after the tombstone");
    assert!(!f.store.doctors_missing_from_search(1000).await.unwrap().contains(&d.id), "a tombstone is not missing");
    assert!(
        f.store.doctors_missing_from_search(1000).await.unwrap().contains(&f.doctor),
        "the fixture's doctor has no rows"
    );
    assert!(f.store.search_entries_as_of().await.unwrap() >= Some(at + SignedDuration::from_hours(3)));
}

/// Paging by keyset: each page starts right after the previous page's last
/// row, in the index's order (next start, name, id; rows without a start in
/// the window after those with one), and the pages together are the whole.
pub async fn indexed_pages_by_keyset_add_up_to_the_whole_order(f: &Fixture) {
    let clinic = f.store.doctor(f.doctor).await.unwrap().unwrap().clinic_id;
    let place = f.store.clinic(clinic).await.unwrap().unwrap().position;
    let at: Timestamp = "2030-01-06T18:00:00Z".parse().unwrap();
    let tuesday_only = Schedule::parse(&ScheduleInput {
        weekly: vec![RangeInput::weekly("tuesday", "14:00", "15:00", "online", 20)],
        extra: vec![],
        horizon_days: Some(30),
        min_notice_minutes: Some(0),
    })
    .unwrap();
    // Ties on the start and on the name: only the id tells them apart.
    let names = ["Dr Zed", "Dr Abel", "Dr Abel", "Dr Mia", "Dr Abel", "Dr Bo", "Dr Bo"];
    let doctors: Vec<DoctorRecord> = names
        .iter()
        .enumerate()
        .map(|(i, n)| doctor(clinic, n, "keyset", if i % 3 == 2 { tuesday_only.clone() } else { schedule() }, at))
        .collect();
    let search = doctors.iter().map(|d| listing(d, place, at)).collect();
    f.store.bulk_load(&BulkLoad { doctors: doctors.clone(), search, ..Default::default() }).await.unwrap();
    // Until Monday night: the Tuesday doctors have no start in the window.
    let to: Timestamp = "2030-01-07T23:00:00Z".parse().unwrap();
    let filter = filter("keyset");
    let whole = f.store.search_indexed(&filter, at, to, 100, Some(100), None).await.unwrap();
    let order =
        |r: &IndexedSearch| -> Vec<DoctorId> { r.soonest.iter().chain(&r.without_slot).map(|r| r.doctor_id).collect() };
    let all = order(&whole);
    assert_eq!(all.len(), doctors.len(), "every doctor once");
    assert_eq!((whole.soonest.len(), whole.without_slot.len()), (5, 2));
    let mut paged = vec![];
    let mut after: Option<SearchAfter> = None;
    for _ in 0..doctors.len() {
        let page = f.store.search_indexed(&filter, at, to, 2, Some(2), after.as_ref()).await.unwrap();
        assert_eq!(page.total, 7, "the count is of the whole search");
        let rows: Vec<&SearchRow> = page.soonest.iter().chain(&page.without_slot).take(2).collect();
        let Some(last) = rows.last() else { break };
        after = Some(SearchAfter {
            next: last.next.filter(|t| *t < to),
            name: last.name.clone(),
            doctor_id: last.doctor_id,
        });
        paged.extend(rows.iter().map(|r| r.doctor_id));
    }
    assert_eq!(paged, all, "the pages, one after another, are the whole order");
}

/// Counts stop just past the cap: a broad search at scale does not read every row.
pub async fn indexed_counts_stop_past_the_cap(f: &Fixture) {
    let clinic = f.store.doctor(f.doctor).await.unwrap().unwrap().clinic_id;
    let place = f.store.clinic(clinic).await.unwrap().unwrap().position;
    let at: Timestamp = "2030-01-06T18:00:00Z".parse().unwrap();
    let n = COUNT_CAP as usize + 5;
    let doctors: Vec<DoctorRecord> =
        (0..n).map(|i| doctor(clinic, &format!("Dr {i}"), "capped", schedule(), at)).collect();
    let search = doctors.iter().map(|d| listing(d, place, at)).collect();
    f.store.bulk_load(&BulkLoad { doctors, search, ..Default::default() }).await.unwrap();
    let to = at + SignedDuration::from_hours(24 * 14);
    let r = f.store.search_indexed(&filter("capped"), at, to, 10, Some(10), None).await.unwrap();
    assert_eq!(r.total, COUNT_CAP + 1, "counted to one past the cap");
    let with_slot = f.store.search_indexed(&filter("capped"), at, to, 10, None, None).await.unwrap();
    assert_eq!(with_slot.soonest_count, COUNT_CAP + 1, "counted to one past the cap");
    assert_eq!(r.soonest.len(), 10);
    assert!(r.without_slot.is_empty(), "a full page of soonest rows needs no rows without a slot");
    let few = f
        .store
        .search_indexed(&filter("capped"), at, at + SignedDuration::from_hours(13), 10, None, None)
        .await
        .unwrap();
    assert_eq!(few.soonest_count, 0, "before Monday 09:00 Paris, nothing: {few:?}");
}
