//! The directory: clinics, doctor profiles, verification, schedules and time off.

use crate::{
    access::{require, Actor},
    App, AppError,
};
use medislot_domain::{
    contact::{parse_phone, PostalInput},
    error::Errors,
    people::{parse_name, parse_tags},
    schedule::ScheduleInput,
    ClinicId, ClinicRules, Coordinates, DoctorId, Interval, Invalid, Membership, Mode, Policy, PostalAddress, Role,
    Schedule, TimeZoneName, UserId, VerificationState,
};
use medislot_store::{ClinicRecord, DoctorRecord, Place, TimeOffRecord};
use serde::Deserialize;
use std::sync::Arc;

#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClinicInput {
    #[schema(schema_with = medislot_domain::schemas::name)]
    pub name: String,
    /// The street line(s).
    #[schema(schema_with = medislot_domain::schemas::address)]
    pub address: String,
    #[serde(default)]
    #[schema(schema_with = medislot_domain::schemas::place_or_null)]
    pub city: Option<String>,
    /// State, province, county or region, where the country uses one.
    #[serde(default)]
    #[schema(schema_with = medislot_domain::schemas::place_or_null)]
    pub district: Option<String>,
    #[serde(default)]
    #[schema(schema_with = medislot_domain::schemas::postal_code_or_null)]
    pub postal_code: Option<String>,
    /// ISO 3166-1 alpha-2, e.g. FR.
    #[serde(default)]
    #[schema(schema_with = medislot_domain::schemas::country_or_null)]
    pub country: Option<String>,
    /// An international number, e.g. +33 1 42 34 56 78 (kept as E.164).
    #[serde(default)]
    #[schema(schema_with = medislot_domain::schemas::phone_or_null)]
    pub phone: Option<String>,
    #[schema(minimum = -90.0, maximum = 90.0)]
    pub latitude: f64,
    #[schema(minimum = -180.0, maximum = 180.0)]
    pub longitude: f64,
    /// IANA name, e.g. Europe/Paris.
    #[schema(min_length = 1, max_length = 64)]
    pub time_zone: String,
    /// Home region; defaults to this node's region.
    #[schema(pattern = r"^[a-z0-9-]{1,32}$")]
    pub region: Option<String>,
    /// strict (default) | available
    #[schema(schema_with = policy_or_null)]
    pub policy: Option<String>,
    /// How many hours before an appointment's start patients can no longer
    /// cancel or move it online (the clinic's staff still can); 0, the
    /// default: until it starts.
    #[serde(default, deserialize_with = "medislot_domain::whole::optional")]
    #[schema(minimum = 0, maximum = 720)]
    pub cancel_cutoff_hours: Option<i64>,
}

/// The clinic's rules for its patients, as they are set.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClinicRulesInput {
    /// How many hours before an appointment's start patients can no longer
    /// cancel or move it online (the clinic's staff still can); 0: until it starts.
    #[serde(deserialize_with = "medislot_domain::whole::number")]
    #[schema(minimum = 0, maximum = 720)]
    pub cancel_cutoff_hours: i64,
    /// After this many no-shows at the clinic within `noshow_period_days`,
    /// a patient's online booking there is a request the clinic accepts or
    /// declines; 0 (the default): no such rule.
    #[serde(default, deserialize_with = "medislot_domain::whole::optional")]
    #[schema(minimum = 0, maximum = 20)]
    pub noshow_limit: Option<i64>,
    /// The period no-shows are counted over, in days (default 365).
    #[serde(default, deserialize_with = "medislot_domain::whole::optional")]
    #[schema(minimum = 1, maximum = 730)]
    pub noshow_period_days: Option<i64>,
}

/// A platform admin's decisions on a doctor, as the API spells them.
const VERIFICATION_DECISIONS: [(&str, VerificationState); 3] = [
    ("verified", VerificationState::Verified),
    ("rejected", VerificationState::Rejected),
    ("suspended", VerificationState::Suspended),
];

/// The answers to a request to join a clinic (or to its invitation): accept or decline.
pub const MEMBERSHIP_DECISIONS: [(&str, bool); 2] = [("accept", true), ("decline", false)];

fn decision() -> utoipa::openapi::Object {
    medislot_domain::schemas::one_of(&VERIFICATION_DECISIONS.map(|(name, _)| name), false)
}

fn policy_or_null() -> utoipa::openapi::Object {
    medislot_domain::schemas::one_of(&[Policy::Strict.as_str(), Policy::Available.as_str()], true)
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DoctorInput {
    #[schema(value_type = uuid::Uuid)]
    pub clinic_id: ClinicId,
    /// The doctor's account (clinic admins attaching a doctor); defaults to the caller when the caller is a doctor.
    #[schema(value_type = Option<uuid::Uuid>)]
    pub user_id: Option<UserId>,
    #[schema(schema_with = medislot_domain::schemas::name)]
    pub name: String,
    #[schema(schema_with = medislot_domain::schemas::specialties)]
    pub specialties: Vec<String>,
    #[serde(default)]
    #[schema(schema_with = medislot_domain::schemas::languages)]
    pub languages: Vec<String>,
    /// in_person | online
    #[schema(schema_with = medislot_domain::schemas::modes)]
    pub modes: Vec<String>,
    #[schema(schema_with = medislot_domain::schemas::licence)]
    pub licence_number: String,
    #[serde(default)]
    #[schema(max_length = 4000)]
    pub bio: String,
}

#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DoctorPatch {
    #[schema(schema_with = medislot_domain::schemas::name_or_null)]
    pub name: Option<String>,
    #[schema(schema_with = medislot_domain::schemas::tags_or_null)]
    pub specialties: Option<Vec<String>>,
    #[schema(schema_with = medislot_domain::schemas::tags_or_null)]
    pub languages: Option<Vec<String>>,
    #[schema(schema_with = medislot_domain::schemas::modes_or_null)]
    pub modes: Option<Vec<String>>,
    #[schema(schema_with = medislot_domain::schemas::licence_or_null)]
    pub licence_number: Option<String>,
    #[schema(max_length = 4000)]
    pub bio: Option<String>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Verification {
    /// verified | rejected | suspended
    #[schema(schema_with = decision)]
    pub decision: String,
    /// Required when rejecting or suspending.
    #[schema(max_length = 1000)]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TimeOffInput {
    #[schema(schema_with = medislot_domain::schemas::instant)]
    pub start: medislot_domain::instant::Instant,
    /// After `start`.
    #[schema(schema_with = medislot_domain::schemas::instant)]
    pub end: medislot_domain::instant::Instant,
    #[serde(default)]
    pub reason: String,
}

fn parse_modes(field: &str, raw: &[String]) -> Result<Vec<Mode>, Invalid> {
    if raw.is_empty() {
        return Err(Invalid::field(field, "must list at least one of in_person, online"));
    }
    let mut out = Vec::new();
    for (i, m) in raw.iter().enumerate() {
        let m = Mode::parse(&format!("{field}[{i}]"), m)?;
        if !out.contains(&m) {
            out.push(m);
        }
    }
    Ok(out)
}

fn parse_text(field: &str, raw: &str, max: usize) -> Result<String, Invalid> {
    if raw.chars().count() > max {
        return Err(Invalid::field(field, format!("must be at most {max} characters")));
    }
    Ok(raw.trim().to_string())
}

fn parse_region(field: &str, raw: &str) -> Result<String, Invalid> {
    let ok =
        (1..=32).contains(&raw.len()) && raw.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(raw.to_string())
    } else {
        Err(Invalid::field(field, "must be a region name: 1-32 lower-case letters, digits or dashes"))
    }
}

impl App {
    pub async fn create_clinic(&self, actor: Option<&Actor>, input: ClinicInput) -> Result<ClinicRecord, AppError> {
        let actor = require(actor)?;
        if !matches!(actor.role(), Role::ClinicAdmin | Role::Admin) {
            return Err(AppError::Forbidden("only clinic admins create clinics"));
        }
        let mut errs = Errors::default();
        let name = errs.take(parse_name("name", &input.name, 200));
        let address = errs.take(parse_name("address", &input.address, 500));
        let postal = errs
            .take(PostalAddress::parse(PostalInput {
                city: input.city.as_deref(),
                district: input.district.as_deref(),
                postal_code: input.postal_code.as_deref(),
                country: input.country.as_deref(),
            }))
            .unwrap_or_default();
        let phone = match input.phone.as_deref().map(str::trim).filter(|p| !p.is_empty()) {
            Some(p) => errs.take(parse_phone("phone", p)),
            None => None,
        };
        let position = errs.take(Coordinates::new(input.latitude, input.longitude, ""));
        let time_zone = errs.take(TimeZoneName::parse("time_zone", &input.time_zone));
        let region = errs.take(parse_region("region", input.region.as_deref().unwrap_or(&self.config.region)));
        if region.as_deref().is_some_and(|r| r != self.config.region) {
            // The home region owns the clinic's appointments: it is created there.
            errs.push(
                "region",
                format!("a clinic is created in its home region; this is region {}", self.config.region),
            );
        }
        let policy = errs.take(Policy::parse("policy", input.policy.as_deref().unwrap_or("strict")));
        let rules = errs
            .take(ClinicRules::with_cutoff_hours("cancel_cutoff_hours", input.cancel_cutoff_hours.unwrap_or(0)))
            .unwrap_or_default();
        errs.finish()?;
        let (Some(name), Some(address), Some(position), Some(time_zone), Some(region), Some(policy)) =
            (name, address, position, time_zone, region, policy)
        else {
            return Err(AppError::Internal("validated fields missing".into()));
        };
        let clinic = ClinicRecord {
            id: ClinicId::new(),
            name,
            address,
            postal,
            phone,
            position,
            time_zone,
            region,
            policy,
            rules,
            created_at: self.now(),
        };
        self.store.create_clinic(&clinic, actor.id()).await?;
        Ok(clinic)
    }

    /// A clinic its caller runs: one of its admins, or a platform admin.
    pub async fn clinic_to_run(&self, actor: Option<&Actor>, id: ClinicId) -> Result<ClinicRecord, AppError> {
        let actor = require(actor)?;
        let clinic = self.clinic(id).await?;
        if !actor.is_admin() && !self.administers(actor, clinic.id).await? {
            return Err(AppError::Forbidden("only the clinic's admins set its rules"));
        }
        Ok(clinic)
    }

    /// Sets the clinic's rules (its admins, platform admins); they hold for
    /// changes from now on, appointments already booked included.
    pub async fn set_clinic_rules(
        &self,
        actor: Option<&Actor>,
        id: ClinicId,
        input: ClinicRulesInput,
    ) -> Result<ClinicRecord, AppError> {
        let clinic = self.clinic_to_run(actor, id).await?;
        let cutoff = ClinicRules::with_cutoff_hours("cancel_cutoff_hours", input.cancel_cutoff_hours);
        let both = cutoff.clone().unwrap_or_default().with_noshow_rule(
            input.noshow_limit.unwrap_or(0),
            input.noshow_period_days.unwrap_or(medislot_domain::clinic::DEFAULT_NOSHOW_PERIOD_DAYS),
        );
        // Every wrong field at once.
        let rules = match (cutoff, both) {
            (Ok(_), Ok(rules)) => rules,
            (c, b) => return Err(Invalid(c.err().into_iter().chain(b.err()).flat_map(|e| e.0).collect()).into()),
        };
        self.store.set_clinic_rules(id, rules, self.now()).await?;
        Ok(ClinicRecord { rules, ..clinic })
    }

    /// Clinics are public directory data.
    pub async fn clinic(&self, id: ClinicId) -> Result<ClinicRecord, AppError> {
        self.store.clinic(id).await?.ok_or(AppError::NotFound("clinic"))
    }

    pub async fn create_doctor(&self, actor: Option<&Actor>, input: DoctorInput) -> Result<DoctorRecord, AppError> {
        let actor = require(actor)?;
        let mut errs = Errors::default();
        let name = errs.take(parse_name("name", &input.name, 200));
        let specialties = errs.take(parse_tags("specialties", &input.specialties, 1));
        let languages = errs.take(parse_tags("languages", &input.languages, 0));
        let modes = errs.take(parse_modes("modes", &input.modes));
        let licence = errs.take(parse_name("licence_number", &input.licence_number, 64));
        let bio = errs.take(parse_text("bio", &input.bio, 4000));
        errs.finish()?;
        let clinic = self.store.clinic(input.clinic_id).await?;
        if actor.role() == Role::Doctor {
            if let Some(mine) = self.store.doctor_of_user(actor.id()).await? {
                return Err(if mine.membership == Membership::Invited {
                    AppError::Conflict("a clinic has invited your account: accept or decline its invitation (POST /doctors/{id}/membership) first")
                } else {
                    AppError::Taken { field: "user_id" }
                });
            }
        }
        let user_id = match actor.role() {
            Role::Doctor => {
                if input.user_id.is_some_and(|u| u != actor.id()) {
                    return Err(AppError::Forbidden("a doctor can only create their own profile"));
                }
                if clinic.is_none() {
                    return Err(Invalid::field("clinic_id", "no such clinic").into());
                }
                Some(actor.id())
            }
            Role::ClinicAdmin | Role::Admin => {
                let Some(clinic) = &clinic else {
                    return Err(Invalid::field("clinic_id", "no such clinic").into());
                };
                if !actor.is_admin() && !self.administers(actor, clinic.id).await? {
                    return Err(AppError::Forbidden("you do not administer this clinic"));
                }
                if let Some(u) = input.user_id {
                    match self.store.user_by_id(u).await? {
                        Some(user) if user.role == Role::Doctor => {}
                        _ => return Err(Invalid::field("user_id", "must be the id of a doctor account").into()),
                    }
                }
                input.user_id
            }
            Role::Patient => return Err(AppError::Forbidden("patients cannot create doctor profiles")),
        };
        let (Some(name), Some(specialties), Some(languages), Some(modes), Some(licence_number), Some(bio)) =
            (name, specialties, languages, modes, licence, bio)
        else {
            return Err(AppError::Internal("validated fields missing".into()));
        };
        // One active profile per licence: a second one is refused (a rejected one does not count).
        if self.licence_holder(&licence_number, DoctorId::new()).await?.is_some() {
            return Err(AppError::Taken { field: "licence_number" });
        }
        // Joining a clinic needs both sides: a doctor's own profile waits for the
        // clinic to accept it; a profile a clinic makes for someone's account waits
        // for that doctor; a profile a clinic keeps for itself is its own business.
        let membership = match (actor.role(), user_id) {
            (Role::Doctor, _) => Membership::Requested,
            (_, Some(_)) => Membership::Invited,
            (_, None) => Membership::Active,
        };
        let now = self.now();
        let doctor = DoctorRecord {
            id: DoctorId::new(),
            user_id,
            clinic_id: input.clinic_id,
            name,
            specialties,
            languages,
            modes,
            licence_number,
            bio,
            verification: VerificationState::Pending,
            verification_reason: None,
            membership,
            schedule: Schedule::default(),
            video_room_url: None,
            visit_types: vec![],
            version: 1,
            created_at: now,
            updated_at: now,
        };
        self.store.create_doctor(&doctor).await?;
        Ok(doctor)
    }

    /// A doctor's profile: public once verified, otherwise only for those who manage it.
    pub async fn doctor(&self, actor: Option<&Actor>, id: DoctorId) -> Result<DoctorRecord, AppError> {
        let doctor = self.store.doctor(id).await?.ok_or(AppError::NotFound("doctor"))?;
        if doctor.verification == VerificationState::Verified {
            return Ok(doctor);
        }
        match actor {
            // The doctor named by a clinic's invitation sees it, to answer it.
            Some(a) if doctor.user_id == Some(a.id()) || self.manages_doctor(a, &doctor).await? => Ok(doctor),
            _ => Err(AppError::NotFound("doctor")),
        }
    }

    /// Loads a doctor the caller may change: 404 when hidden, 403 when visible but not theirs.
    async fn doctor_to_manage(&self, actor: Option<&Actor>, id: DoctorId) -> Result<(DoctorRecord, Actor), AppError> {
        let actor = require(actor)?;
        let doctor = self.doctor(Some(actor), id).await?;
        if !self.manages_doctor(actor, &doctor).await? {
            return Err(AppError::Forbidden("this is not your doctor profile"));
        }
        Ok((doctor, actor.clone()))
    }

    pub async fn update_doctor(
        &self,
        actor: Option<&Actor>,
        id: DoctorId,
        patch: DoctorPatch,
        if_match: Option<i64>,
    ) -> Result<DoctorRecord, AppError> {
        let (mut d, _) = self.doctor_to_manage(actor, id).await?;
        if if_match.is_some_and(|v| v != d.version) {
            return Err(AppError::PreconditionFailed { current: d.version });
        }
        let verified = (d.name.clone(), d.specialties.clone(), d.licence_number.clone());
        let mut errs = Errors::default();
        if let Some(n) = &patch.name {
            d.name = errs.take(parse_name("name", n, 200)).unwrap_or_default();
        }
        if let Some(s) = &patch.specialties {
            d.specialties = errs.take(parse_tags("specialties", s, 1)).unwrap_or_default();
        }
        if let Some(l) = &patch.languages {
            d.languages = errs.take(parse_tags("languages", l, 0)).unwrap_or_default();
        }
        if let Some(m) = &patch.modes {
            d.modes = errs.take(parse_modes("modes", m)).unwrap_or_default();
        }
        if let Some(l) = &patch.licence_number {
            d.licence_number = errs.take(parse_name("licence_number", l, 64)).unwrap_or_default();
        }
        if let Some(b) = &patch.bio {
            d.bio = errs.take(parse_text("bio", b, 4000)).unwrap_or_default();
        }
        errs.finish()?;
        if d.licence_number != verified.2 && self.licence_holder(&d.licence_number, d.id).await?.is_some() {
            return Err(AppError::Taken { field: "licence_number" });
        }
        // What the admin verified (who the doctor is, what they practise, their
        // licence) changed: the profile goes back to review and is unlisted until
        // approved again. Bookings already made stay.
        let changed: Vec<&str> = [
            (d.name != verified.0, "name"),
            (d.specialties != verified.1, "specialties"),
            (d.licence_number != verified.2, "licence_number"),
        ]
        .into_iter()
        .filter_map(|(c, f)| c.then_some(f))
        .collect();
        if !changed.is_empty() && matches!(d.verification, VerificationState::Verified | VerificationState::Suspended) {
            d.verification = VerificationState::Pending;
            d.verification_reason = Some(format!("changed after verification: {}", changed.join(", ")));
        }
        self.save_doctor(d).await
    }

    /// Another active (not rejected) profile holding this licence number, if any.
    pub async fn licence_holder(&self, licence: &str, except: DoctorId) -> Result<Option<DoctorRecord>, AppError> {
        Ok(self
            .store
            .doctors_with_licence(licence)
            .await?
            .into_iter()
            .find(|d| d.id != except && d.verification != VerificationState::Rejected))
    }

    pub(crate) async fn save_doctor(&self, mut d: DoctorRecord) -> Result<DoctorRecord, AppError> {
        let expected = d.version;
        d.updated_at = self.now();
        self.store.update_doctor(&d, expected).await?;
        d.version = expected + 1;
        self.availability_changed(d.id);
        self.directory_changed(&d).await;
        Ok(d)
    }

    /// Platform admins verify, reject (with a reason) or suspend doctors.
    pub async fn verify_doctor(
        &self,
        actor: Option<&Actor>,
        id: DoctorId,
        v: Verification,
    ) -> Result<DoctorRecord, AppError> {
        let actor = require(actor)?;
        if !actor.is_admin() {
            return Err(AppError::Forbidden("only platform admins verify doctors"));
        }
        let mut d = self.store.doctor(id).await?.ok_or(AppError::NotFound("doctor"))?;
        let state = VERIFICATION_DECISIONS
            .iter()
            .find(|(name, _)| *name == v.decision)
            .map(|(_, state)| *state)
            .ok_or_else(|| Invalid::field("decision", "must be verified, rejected or suspended"))?;
        let reason = v.reason.as_deref().map(str::trim).filter(|r| !r.is_empty()).map(str::to_string);
        if state != VerificationState::Verified && reason.is_none() {
            return Err(Invalid::field("reason", "is required when rejecting or suspending").into());
        }
        if let Some(r) = &reason {
            parse_text("reason", r, 1000)?;
        }
        if state == VerificationState::Verified && d.membership != Membership::Active {
            let why = match d.membership {
                Membership::Invited => "the doctor has not accepted the clinic's invitation yet",
                Membership::Declined => "the clinic declined this doctor",
                _ => "the clinic has not accepted this doctor yet",
            };
            return Err(Invalid::field("decision", why).into());
        }
        if state == VerificationState::Verified {
            if let Some(other) = self.licence_holder(&d.licence_number, d.id).await? {
                if other.verification == VerificationState::Verified {
                    return Err(Invalid::field(
                        "decision",
                        format!(
                            "licence number {} is already held by the verified profile of {}",
                            d.licence_number, other.name
                        ),
                    )
                    .into());
                }
            }
        }
        d.verification = state;
        d.verification_reason = reason;
        self.save_doctor(d).await
    }

    /// The other side's answer to a request to join a clinic (the clinic's
    /// admins decide) or to a clinic's invitation (the invited doctor decides).
    pub async fn decide_membership(
        &self,
        actor: Option<&Actor>,
        id: DoctorId,
        decision: &str,
    ) -> Result<DoctorRecord, AppError> {
        let actor = require(actor)?;
        let accept = MEMBERSHIP_DECISIONS
            .iter()
            .find(|(name, _)| *name == decision)
            .map(|(_, accept)| *accept)
            .ok_or_else(|| Invalid::field("decision", "must be accept or decline"))?;
        let mut d = self.store.doctor(id).await?.ok_or(AppError::NotFound("doctor"))?;
        match d.membership {
            Membership::Requested => {
                if !actor.is_admin() && !self.administers(actor, d.clinic_id).await? {
                    return Err(if self.manages_doctor(actor, &d).await? {
                        AppError::Forbidden("the clinic decides on a request to join it")
                    } else {
                        AppError::NotFound("doctor")
                    });
                }
                d.membership = if accept { Membership::Active } else { Membership::Declined };
            }
            Membership::Invited => {
                if d.user_id != Some(actor.id()) {
                    return Err(if self.manages_doctor(actor, &d).await? {
                        AppError::Forbidden("the invited doctor decides on an invitation")
                    } else {
                        AppError::NotFound("doctor")
                    });
                }
                if !accept {
                    // The clinic keeps its profile, without the account it named.
                    d.user_id = None;
                }
                d.membership = Membership::Active;
            }
            Membership::Active | Membership::Declined => {
                if !self.manages_doctor(actor, &d).await? {
                    return Err(AppError::NotFound("doctor"));
                }
                return Err(AppError::Conflict("there is no request or invitation waiting for an answer"));
            }
        }
        self.save_doctor(d).await
    }

    /// Replaces the weekly schedule. Existing appointments are untouched: slots
    /// are computed from the rules minus busy time, so a booked appointment
    /// keeps its time even when the new rules would not offer it.
    pub async fn put_schedule(
        &self,
        actor: Option<&Actor>,
        id: DoctorId,
        input: ScheduleInput,
    ) -> Result<DoctorRecord, AppError> {
        let schedule = Schedule::parse(&input)?;
        let (mut d, _) = self.doctor_to_manage(actor, id).await?;
        d.schedule = schedule;
        self.save_doctor(d).await
    }

    pub async fn add_time_off(
        &self,
        actor: Option<&Actor>,
        id: DoctorId,
        input: TimeOffInput,
    ) -> Result<TimeOffRecord, AppError> {
        let (start, end) = (input.start.0, input.end.0);
        if end <= start {
            return Err(Invalid::field("end", "must be after start").into());
        }
        if end.duration_since(start) > jiff::SignedDuration::from_hours(24 * 366) {
            return Err(Invalid::field("end", "time off is at most 366 days at once").into());
        }
        let reason = parse_text("reason", &input.reason, 500)?;
        let (d, _) = self.doctor_to_manage(actor, id).await?;
        let t = TimeOffRecord { id: uuid::Uuid::now_v7(), doctor_id: d.id, interval: Interval { start, end }, reason };
        self.store.add_time_off(&t).await?;
        self.changed_here(d.id);
        self.cache.invalidate(d.id);
        self.index_now(d.id).await;
        Ok(t)
    }

    /// A doctor's time off from now on, for whoever manages the doctor.
    pub async fn time_off(&self, actor: Option<&Actor>, id: DoctorId) -> Result<Vec<TimeOffRecord>, AppError> {
        let (d, _) = self.doctor_to_manage(actor, id).await?;
        Ok(self.store.time_off_of(d.id, self.now()).await?)
    }

    /// Removes one of a doctor's time off: its hours are bookable again.
    pub async fn remove_time_off(
        &self,
        actor: Option<&Actor>,
        id: DoctorId,
        time_off: uuid::Uuid,
    ) -> Result<(), AppError> {
        let (d, _) = self.doctor_to_manage(actor, id).await?;
        self.store.remove_time_off(d.id, time_off, self.now()).await.map_err(|e| match e {
            medislot_store::StoreError::NotFound => AppError::NotFound("time off"),
            other => other.into(),
        })?;
        self.changed_here(d.id);
        self.cache.invalidate(d.id);
        self.index_now(d.id).await;
        Ok(())
    }
}

impl App {
    /// Each of these doctors with their clinic, loaded once per doctor
    /// (to show appointments); doctors that no longer exist are left out.
    pub async fn doctors_with_clinics(
        &self,
        doctors: impl IntoIterator<Item = DoctorId>,
    ) -> Result<std::collections::HashMap<DoctorId, (DoctorRecord, ClinicRecord)>, AppError> {
        let mut out = std::collections::HashMap::new();
        for id in doctors {
            if out.contains_key(&id) {
                continue;
            }
            if let Some(d) = self.store.doctor(id).await? {
                if let Some(c) = self.store.clinic(d.clinic_id).await? {
                    out.insert(id, (d, c));
                }
            }
        }
        Ok(out)
    }
}

/// What staff pages list.
impl App {
    /// Every clinic (public: name, address, zone), for doctors choosing theirs.
    pub async fn clinics(&self) -> Result<Vec<ClinicRecord>, AppError> {
        Ok(self.store.list_clinics().await?)
    }

    /// The cities where doctors can be booked, the busiest first (at most
    /// 100), for search "near": computed once per directory cache period and
    /// shared. Unreadable, there are none for that period (search still works
    /// anywhere and "near me").
    pub async fn places(&self) -> Arc<Vec<Place>> {
        self.places
            .get_or_compute((), || async {
                match self.store.places(100).await {
                    Ok(places) => Arc::new(places),
                    Err(e) => {
                        tracing::warn!(error = %e, "could not list the places with doctors");
                        Arc::default()
                    }
                }
            })
            .await
    }

    /// Doctors waiting for a platform admin's decision (admins only).
    pub async fn verification_queue(
        &self,
        actor: Option<&Actor>,
    ) -> Result<Vec<(DoctorRecord, ClinicRecord)>, AppError> {
        let actor = require(actor)?;
        if !actor.is_admin() {
            return Err(AppError::Forbidden("only platform admins verify doctors"));
        }
        Ok(self.store.list_doctors(None, Some(VerificationState::Pending)).await?)
    }

    /// A clinic's doctors, verified or not (its clinic admins and platform admins).
    pub async fn clinic_doctors(&self, actor: Option<&Actor>, clinic: ClinicId) -> Result<Vec<DoctorRecord>, AppError> {
        let actor = require(actor)?;
        if !(actor.is_admin() || self.administers(actor, clinic).await?) {
            return Err(AppError::Forbidden("this is not your clinic"));
        }
        Ok(self.store.list_doctors(Some(clinic), None).await?.into_iter().map(|(d, _)| d).collect())
    }

    /// The clinics the caller administers.
    pub async fn my_clinics(&self, actor: Option<&Actor>) -> Result<Vec<ClinicRecord>, AppError> {
        let actor = require(actor)?;
        let mut out = vec![];
        for id in self.store.clinics_administered_by(actor.id()).await? {
            out.push(self.clinic(id).await?);
        }
        Ok(out)
    }

    /// The caller's own doctor profile, if they have one (any verification state).
    pub async fn my_doctor_profile(&self, actor: Option<&Actor>) -> Result<Option<DoctorRecord>, AppError> {
        let actor = require(actor)?;
        Ok(self.store.doctor_of_user(actor.id()).await?)
    }
}

/// What the operations page shows.
#[derive(Debug, Clone)]
pub struct Operations {
    /// Whose figures: "all clinics" or the admin's clinics by name.
    pub scope: String,
    pub activity: medislot_store::Activity,
    /// This node's booking attempts since it started, by outcome.
    pub node_booked: u64,
    pub node_slot_taken: u64,
    pub node_unavailable: u64,
    /// Messages (e-mail, webhooks) waiting to be sent, and the oldest one's time.
    pub deliveries_pending: u64,
    pub deliveries_oldest: Option<jiff::Timestamp>,
}

impl App {
    /// Key figures for clinic admins (their clinics) and platform admins (everything).
    pub async fn operations(&self, actor: Option<&Actor>) -> Result<Operations, AppError> {
        let actor = require(actor)?;
        let since = self.now() - jiff::SignedDuration::from_hours(24);
        let (scope, activity) = match actor.role() {
            Role::Admin => ("All clinics".to_string(), self.store.activity_since(since, None).await?),
            Role::ClinicAdmin => {
                let ids = self.store.clinics_administered_by(actor.id()).await?;
                let mut names = vec![];
                for id in &ids {
                    names.push(self.clinic(*id).await?.name);
                }
                let scope = if names.is_empty() { "No clinics yet".to_string() } else { names.join(", ") };
                (scope, self.store.activity_since(since, Some(&ids)).await?)
            }
            _ => return Err(AppError::Forbidden("operations figures are for clinic and platform admins")),
        };
        let region = &self.config.region;
        let (deliveries_pending, deliveries_oldest) = self.store.delivery_backlog().await?;
        Ok(Operations {
            deliveries_pending,
            deliveries_oldest,
            scope,
            activity,
            node_booked: self.metrics.booking_count("booked", region),
            node_slot_taken: self.metrics.booking_count("slot_taken", region),
            node_unavailable: self.metrics.booking_count("unavailable", region),
        })
    }
}
