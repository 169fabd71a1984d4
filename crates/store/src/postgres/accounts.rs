//! Users and their tokens.

use super::rows::*;
use super::{map_err, Tx};
use crate::columns::USER_COLS;
use crate::*;
use sqlx::{PgExecutor, PgPool};

pub(super) async fn insert_user(tx: &mut Tx, u: &UserRecord) -> Result<()> {
    insert(&mut **tx, u, "").await
}

/// A user of another region, copied here the first time they book through it.
pub(super) async fn insert_user_if_new(e: impl PgExecutor<'_>, u: &UserRecord) -> Result<()> {
    insert(e, u, "ON CONFLICT (id) DO NOTHING").await
}

async fn insert(e: impl PgExecutor<'_>, u: &UserRecord, on_conflict: &str) -> Result<()> {
    sqlx::query(&format!(
        "INSERT INTO users (id, email, password_hash, role, name, created_at) VALUES ($1, $2, $3, $4, $5, $6) {on_conflict}"
    ))
    .bind(u.id.0)
    .bind(&u.email)
    .bind(&u.password_hash)
    .bind(u.role.as_str())
    .bind(&u.name)
    .bind(ts(u.created_at))
    .execute(e)
    .await
    .map_err(map_err)?;
    Ok(())
}

pub(super) async fn user_by_email(pool: &PgPool, email: &str) -> Result<Option<UserRecord>> {
    // Unique whatever the case (the index is on lower(email)).
    let row = sqlx::query(&format!("SELECT {USER_COLS} FROM users u WHERE lower(u.email) = lower($1)"))
        .bind(email)
        .fetch_optional(pool)
        .await
        .map_err(map_err)?;
    row.as_ref().map(user_row).transpose()
}

pub(super) async fn user_by_id(pool: &PgPool, id: UserId) -> Result<Option<UserRecord>> {
    let row = sqlx::query(&format!("SELECT {USER_COLS} FROM users u WHERE u.id = $1"))
        .bind(id.0)
        .fetch_optional(pool)
        .await
        .map_err(map_err)?;
    row.as_ref().map(user_row).transpose()
}

pub(super) async fn insert_token(pool: &PgPool, hash: &str, user: UserId, expires_at: Timestamp) -> Result<()> {
    sqlx::query("INSERT INTO tokens (token_hash, user_id, expires_at, created_at) VALUES ($1, $2, $3, now())")
        .bind(hash)
        .bind(user.0)
        .bind(ts(expires_at))
        .execute(pool)
        .await
        .map_err(map_err)?;
    Ok(())
}

pub(super) async fn user_by_token(pool: &PgPool, hash: &str, now: Timestamp) -> Result<Option<UserRecord>> {
    let row = sqlx::query(&format!(
        "SELECT {USER_COLS} FROM tokens t JOIN users u ON u.id = t.user_id
         WHERE t.token_hash = $1 AND NOT t.revoked AND t.expires_at > $2"
    ))
    .bind(hash)
    .bind(ts(now))
    .fetch_optional(pool)
    .await
    .map_err(map_err)?;
    row.as_ref().map(user_row).transpose()
}

pub(super) async fn revoke_token(pool: &PgPool, hash: &str) -> Result<()> {
    sqlx::query("UPDATE tokens SET revoked = true WHERE token_hash = $1")
        .bind(hash)
        .execute(pool)
        .await
        .map_err(map_err)?;
    Ok(())
}

pub(super) async fn erase_user(tx: &mut Tx, u: &UserRecord, email: &str) -> Result<()> {
    let id = u.id.0;
    for sql in [
        "DELETE FROM tokens WHERE user_id = $1",
        "DELETE FROM notifications WHERE user_id = $1",
        "DELETE FROM waitlist_offers WHERE entry_id IN (SELECT id FROM waitlist WHERE patient_id = $1)",
        "DELETE FROM waitlist WHERE patient_id = $1",
        "DELETE FROM idempotency_keys WHERE user_id = $1",
    ] {
        sqlx::query(sql).bind(id).execute(&mut **tx).await.map_err(map_err)?;
    }
    sqlx::query("DELETE FROM deliveries WHERE channel = 'email' AND lower(recipient) = lower($1)")
        .bind(email)
        .execute(&mut **tx)
        .await
        .map_err(map_err)?;
    let done = sqlx::query("UPDATE users SET email = $2, name = $3, password_hash = $4 WHERE id = $1")
        .bind(id)
        .bind(&u.email)
        .bind(&u.name)
        .bind(&u.password_hash)
        .execute(&mut **tx)
        .await
        .map_err(map_err)?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}
