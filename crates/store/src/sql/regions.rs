//! [`RegionStore`] over both SQL backends.

use super::*;

fn forward_row(r: &AnyRow) -> Result<ForwardRecord> {
    let internal = |e: medislot_domain::Invalid| StoreError::Internal(e.to_string());
    let status: String = get(r, "status")?;
    let detail: Option<String> = get(r, "detail")?;
    let resolved: Option<String> = get(r, "resolved_at")?;
    Ok(ForwardRecord {
        id: AppointmentId(uuid(&get::<String>(r, "id")?)?),
        region: get(r, "region")?,
        patient_id: UserId(uuid(&get::<String>(r, "patient_id")?)?),
        doctor_id: DoctorId(uuid(&get::<String>(r, "doctor_id")?)?),
        start: from_secs(get(r, "start_at")?)?,
        end: from_secs(get(r, "end_at")?)?,
        mode: Mode::parse("mode", &get::<String>(r, "mode")?).map_err(internal)?,
        reason: get(r, "reason")?,
        idempotency_key: get(r, "idempotency_key")?,
        fingerprint: get(r, "fingerprint")?,
        status: ForwardStatus::parse(&status)
            .ok_or_else(|| StoreError::Internal(format!("bad forward status {status:?}")))?,
        detail: detail.as_deref().map(json).transpose()?,
        attempts: u32::try_from(get::<i64>(r, "attempts")?).unwrap_or(0),
        created_at: text_ts(&get::<String>(r, "created_at")?)?,
        resolved_at: resolved.as_deref().map(text_ts).transpose()?,
    })
}

impl SqlStore {
    async fn forwards_where(&self, filter: &str, bind: Option<String>, limit: u32) -> Result<Vec<ForwardRecord>> {
        let sql =
            self.d.sql(&format!("SELECT {FORWARD_COLS} FROM forwards WHERE {filter} ORDER BY created_at, id LIMIT ?"));
        let mut q = sqlx::query(&sql);
        if let Some(b) = bind {
            q = q.bind(b);
        }
        let rows = q.bind(i64::from(limit)).fetch_all(&self.pool).await.map_err(map_err)?;
        rows.iter().map(forward_row).collect()
    }

    async fn apply_once(&self, own_region: &str, snap: &RegionSnapshot, now: Timestamp) -> Result<()> {
        if snap.region == own_region {
            return Ok(());
        }
        let mut tx = self.write_tx().await?;
        for c in snap.clinics.iter().filter(|c| c.region == snap.region) {
            sqlx::query(&self.d.sql(
                "INSERT INTO clinics (id, name, address, city, district, postal_code, country, phone, latitude, longitude,
                                      time_zone, region, policy, created_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                 ON CONFLICT (id) DO UPDATE SET name = excluded.name, address = excluded.address,
                     city = excluded.city, district = excluded.district, postal_code = excluded.postal_code,
                     country = excluded.country, phone = excluded.phone,
                     latitude = excluded.latitude, longitude = excluded.longitude, time_zone = excluded.time_zone,
                     policy = excluded.policy
                 WHERE clinics.region = excluded.region",
            ))
            .bind(c.id.to_string())
            .bind(&c.name)
            .bind(&c.address)
            .bind(&c.postal.city)
            .bind(&c.postal.district)
            .bind(&c.postal.postal_code)
            .bind(&c.postal.country)
            .bind(&c.phone)
            .bind(c.position.lat)
            .bind(c.position.lon)
            .bind(c.time_zone.as_str())
            .bind(&c.region)
            .bind(c.policy.as_str())
            .bind(c.created_at.to_string())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        }
        let owned: std::collections::HashSet<ClinicId> =
            snap.clinics.iter().filter(|c| c.region == snap.region).map(|c| c.id).collect();
        let mut doctors = Vec::new();
        for d in snap.doctors.iter().filter(|d| owned.contains(&d.clinic_id)) {
            // Accounts stay in their region: a replicated doctor has no user here.
            let d = DoctorRecord { user_id: None, ..d.clone() };
            let sql = self.d.sql(
                "INSERT INTO doctors (id, user_id, clinic_id, name, specialties, languages, modes, licence_number, bio,
                                      verification, verification_reason, membership, schedule, version, created_at, updated_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                 ON CONFLICT (id) DO UPDATE SET clinic_id = excluded.clinic_id, name = excluded.name,
                     specialties = excluded.specialties, languages = excluded.languages, modes = excluded.modes,
                     licence_number = excluded.licence_number, bio = excluded.bio, verification = excluded.verification,
                     verification_reason = excluded.verification_reason, membership = excluded.membership,
                     schedule = excluded.schedule,
                     version = excluded.version, updated_at = excluded.updated_at",
            );
            bind_profile(sqlx::query(&sql).bind(d.id.to_string()), &d)
                .bind(d.version)
                .bind(d.created_at.to_string())
                .bind(d.updated_at.to_string())
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            doctors.push(d);
        }
        for d in &doctors {
            self.write_tags(&mut tx, d).await?;
        }
        if snap.full {
            sqlx::query(&self.d.sql("DELETE FROM replica_busy WHERE region = ?"))
                .bind(&snap.region)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
        } else {
            for d in &doctors {
                sqlx::query(&self.d.sql("DELETE FROM replica_busy WHERE region = ? AND doctor_id = ?"))
                    .bind(&snap.region)
                    .bind(d.id.to_string())
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
            }
        }
        let replicated: std::collections::HashSet<DoctorId> = doctors.iter().map(|d| d.id).collect();
        for (doctor, iv) in snap.busy.iter().filter(|(d, _)| replicated.contains(d)) {
            sqlx::query(
                &self.d.sql("INSERT INTO replica_busy (region, doctor_id, start_at, end_at) VALUES (?, ?, ?, ?)"),
            )
            .bind(&snap.region)
            .bind(doctor.to_string())
            .bind(secs(iv.start))
            .bind(secs(iv.end))
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        }
        // The home's word on what was forwarded from here: a pending one it
        // has booked is settled by the forwarder; here its current state is kept.
        for a in &snap.forwarded {
            let detail = serde_json::json!({
                "appointment": {
                    "id": a.id, "status": a.status.as_str(), "start": a.start.to_string(), "end": a.end.to_string(),
                    "version": a.version, "cancel_reason": a.cancel_reason,
                }
            });
            sqlx::query(
                &self
                    .d
                    .sql("UPDATE forwards SET detail = ?, start_at = ?, end_at = ? WHERE id = ? AND status = 'booked'"),
            )
            .bind(detail.to_string())
            .bind(secs(a.start))
            .bind(secs(a.end))
            .bind(a.id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        }
        sqlx::query(&self.d.sql(
            "INSERT INTO replicas (region, as_of, synced_at) VALUES (?, ?, ?)
             ON CONFLICT (region) DO UPDATE SET as_of = excluded.as_of, synced_at = excluded.synced_at",
        ))
        .bind(&snap.region)
        .bind(snap.as_of.to_string())
        .bind(now.to_string())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        self.commit(tx).await
    }
}

#[async_trait]
impl RegionStore for SqlStore {
    async fn region_snapshot(
        &self,
        region: &str,
        peer: &str,
        since: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<RegionSnapshot> {
        let changed: Option<std::collections::HashSet<DoctorId>> = match since {
            Some(t) => Some(self.doctors_changed_since(t, now).await?.into_iter().collect()),
            None => None,
        };
        // Incremental: only the changed doctors, read one by one, and their clinics.
        let (clinics, doctors): (Vec<ClinicRecord>, Vec<DoctorRecord>) = match &changed {
            None => {
                let clinics: Vec<ClinicRecord> =
                    self.list_clinics().await?.into_iter().filter(|c| c.region == region).collect();
                let ids: std::collections::HashSet<ClinicId> = clinics.iter().map(|c| c.id).collect();
                let doctors = self
                    .list_doctors(None, None)
                    .await?
                    .into_iter()
                    .filter(|(_, c)| ids.contains(&c.id))
                    .map(|(d, _)| d)
                    .collect();
                (clinics, doctors)
            }
            Some(ids) => {
                let mut clinics: Vec<ClinicRecord> = Vec::new();
                let mut doctors = Vec::new();
                for id in ids {
                    let Some(d) = self.doctor(*id).await? else { continue };
                    let clinic = match clinics.iter().find(|c| c.id == d.clinic_id) {
                        Some(c) => Some(c.clone()),
                        None => self.clinic(d.clinic_id).await?,
                    };
                    if let Some(c) = clinic.filter(|c| c.region == region) {
                        if !clinics.iter().any(|x| x.id == c.id) {
                            clinics.push(c);
                        }
                        doctors.push(d);
                    }
                }
                (clinics, doctors)
            }
        };
        let doctor_ids: Vec<DoctorId> = doctors.iter().map(|d| d.id).collect();
        let recent = now - jiff::SignedDuration::from_hours(1);
        let window = Interval { start: recent, end: now + jiff::SignedDuration::from_hours(24 * 400) };
        // Only the home's own appointments and time off (never its replicas).
        let busy = self.own_busy(&doctor_ids, window, now).await?;
        let rows = sqlx::query(&self.d.sql(&format!(
            "SELECT {APPT_COLS} FROM appointments a WHERE a.origin_region = ? AND a.end_at > ? ORDER BY a.start_at"
        )))
        .bind(peer)
        .bind(secs(now - jiff::SignedDuration::from_hours(24)))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        let forwarded = rows.iter().map(appointment_row).collect::<Result<Vec<_>>>()?;
        Ok(RegionSnapshot {
            region: region.to_string(),
            as_of: now,
            full: since.is_none(),
            clinics,
            doctors,
            busy,
            forwarded,
        })
    }

    async fn apply_replica(&self, own_region: &str, snap: &RegionSnapshot, now: Timestamp) -> Result<()> {
        retrying(|| self.apply_once(own_region, snap, now)).await
    }

    async fn replicas(&self) -> Result<Vec<ReplicaState>> {
        let rows = sqlx::query("SELECT region, as_of, synced_at FROM replicas ORDER BY region")
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        rows.iter()
            .map(|r| {
                Ok(ReplicaState {
                    region: get(r, "region")?,
                    as_of: text_ts(&get::<String>(r, "as_of")?)?,
                    synced_at: text_ts(&get::<String>(r, "synced_at")?)?,
                })
            })
            .collect()
    }

    async fn ensure_remote_user(&self, u: &UserRecord) -> Result<()> {
        if self.user_by_id(u.id).await?.is_some() {
            return Ok(());
        }
        let mut tx = self.write_tx().await?;
        let inserted = sqlx::query(&self.d.sql(
            "INSERT INTO users (id, email, password_hash, role, name, created_at) VALUES (?, ?, ?, ?, ?, ?)
             ON CONFLICT (id) DO NOTHING",
        ))
        .bind(u.id.to_string())
        .bind(&u.email)
        .bind(&u.password_hash)
        .bind(u.role.as_str())
        .bind(&u.name)
        .bind(u.created_at.to_string())
        .execute(&mut *tx)
        .await;
        inserted.map_err(map_err)?;
        self.commit(tx).await
    }

    async fn create_forward(&self, f: &ForwardRecord) -> Result<ForwardRecord> {
        // The check for an earlier request with the key and the insert, in one write.
        let mut tx = self.write_tx().await?;
        if let Some(key) = &f.idempotency_key {
            let sql = self
                .d
                .sql(&format!("SELECT {FORWARD_COLS} FROM forwards WHERE patient_id = ? AND idempotency_key = ?"));
            let row = sqlx::query(&sql)
                .bind(f.patient_id.to_string())
                .bind(key)
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?;
            if let Some(existing) = row.as_ref().map(forward_row).transpose()? {
                if existing.fingerprint != f.fingerprint {
                    return Err(StoreError::IdempotencyMismatch);
                }
                return Ok(existing);
            }
        }
        let sql = self.d.sql(
            "INSERT INTO forwards (id, region, patient_id, doctor_id, start_at, end_at, mode, reason, idempotency_key,
                                   fingerprint, status, detail, attempts, created_at, resolved_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?)",
        );
        sqlx::query(&sql)
            .bind(f.id.to_string())
            .bind(&f.region)
            .bind(f.patient_id.to_string())
            .bind(f.doctor_id.to_string())
            .bind(secs(f.start))
            .bind(secs(f.end))
            .bind(f.mode.as_str())
            .bind(&f.reason)
            .bind(&f.idempotency_key)
            .bind(&f.fingerprint)
            .bind(f.status.as_str())
            .bind(f.detail.as_ref().map(|d| d.to_string()))
            .bind(f.created_at.to_string())
            .bind(f.resolved_at.map(|t| t.to_string()))
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        self.commit(tx).await?;
        Ok(f.clone())
    }

    async fn forward(&self, id: AppointmentId) -> Result<Option<ForwardRecord>> {
        Ok(self.forwards_where("id = ?", Some(id.to_string()), 1).await?.into_iter().next())
    }

    async fn forwards_of_patient(&self, patient: UserId) -> Result<Vec<ForwardRecord>> {
        self.forwards_where("patient_id = ?", Some(patient.to_string()), 500).await
    }

    async fn pending_forwards(&self, limit: u32) -> Result<Vec<ForwardRecord>> {
        self.forwards_where("status = 'pending'", None, limit).await
    }

    async fn count_forward_attempt(&self, id: AppointmentId) -> Result<()> {
        self.execute_write(
            sqlx::query(&self.d.sql("UPDATE forwards SET attempts = attempts + 1 WHERE id = ?")).bind(id.to_string()),
        )
        .await?;
        Ok(())
    }

    async fn record_forward_state(&self, id: AppointmentId, detail: &serde_json::Value) -> Result<()> {
        self.execute_write(
            sqlx::query(&self.d.sql("UPDATE forwards SET detail = ? WHERE id = ? AND status = 'booked'"))
                .bind(detail.to_string())
                .bind(id.to_string()),
        )
        .await?;
        Ok(())
    }

    async fn resolve_forward(
        &self,
        id: AppointmentId,
        status: ForwardStatus,
        detail: &serde_json::Value,
        event: Option<(&str, serde_json::Value)>,
        now: Timestamp,
    ) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let done =
            sqlx::query(&self.d.sql(
                "UPDATE forwards SET status = ?, detail = ?, resolved_at = ? WHERE id = ? AND status = 'pending'",
            ))
            .bind(status.as_str())
            .bind(detail.to_string())
            .bind(now.to_string())
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        if let Some((topic, payload)) = event {
            let event_id = Uuid::now_v7();
            let mut payload = payload;
            payload["event_id"] = event_id.to_string().into();
            sqlx::query(&self.d.sql("INSERT INTO outbox (event_id, topic, payload, created_at) VALUES (?, ?, ?, ?)"))
                .bind(event_id.to_string())
                .bind(topic)
                .bind(payload.to_string())
                .bind(now.to_string())
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
        }
        self.commit(tx).await?;
        Ok(true)
    }

    async fn forwarding_backlog(&self) -> Result<(u64, Option<Timestamp>)> {
        let row = sqlx::query("SELECT count(*) AS n, min(created_at) AS oldest FROM forwards WHERE status = 'pending'")
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)?;
        let n: i64 = get(&row, "n")?;
        let oldest: Option<String> = get(&row, "oldest")?;
        Ok((u64::try_from(n).unwrap_or(0), oldest.as_deref().map(text_ts).transpose()?))
    }
}
