//! Users and their tokens.

use super::rows::*;
use super::values::*;
use crate::columns::*;
use crate::*;
use rusqlite::{params, Connection};

pub(super) fn insert_user(c: &Connection, u: &UserRecord) -> Result<()> {
    exec(
        c,
        "INSERT INTO users (id, email, password_hash, role, name, created_at) VALUES (?, ?, ?, ?, ?, ?)",
        params![u.id.to_string(), u.email, u.password_hash, u.role.as_str(), u.name, u.created_at.to_string()],
    )?;
    Ok(())
}

/// A user of another region, copied here the first time they book through it.
pub(super) fn insert_user_if_new(c: &Connection, u: &UserRecord) -> Result<()> {
    exec(
        c,
        "INSERT INTO users (id, email, password_hash, role, name, created_at) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (id) DO NOTHING",
        params![u.id.to_string(), u.email, u.password_hash, u.role.as_str(), u.name, u.created_at.to_string()],
    )?;
    Ok(())
}

pub(super) fn user_by_email(c: &Connection, email: &str) -> Result<Option<UserRecord>> {
    one(c, &format!("SELECT {USER_COLS} FROM users u WHERE u.email = ?"), [email], user_row)
}

pub(super) fn user_by_id(c: &Connection, id: UserId) -> Result<Option<UserRecord>> {
    one(c, &format!("SELECT {USER_COLS} FROM users u WHERE u.id = ?"), [id.to_string()], user_row)
}

pub(super) fn insert_token(c: &Connection, hash: &str, user: UserId, expires_at: Timestamp) -> Result<()> {
    exec(
        c,
        "INSERT INTO tokens (token_hash, user_id, expires_at, created_at) VALUES (?, ?, ?, ?)",
        params![hash, user.to_string(), secs(expires_at), Timestamp::now().to_string()],
    )?;
    Ok(())
}

pub(super) fn user_by_token(c: &Connection, hash: &str, now: Timestamp) -> Result<Option<UserRecord>> {
    one(
        c,
        &format!(
            "SELECT {USER_COLS} FROM tokens t JOIN users u ON u.id = t.user_id
             WHERE t.token_hash = ? AND t.revoked = 0 AND t.expires_at > ?"
        ),
        params![hash, secs(now)],
        user_row,
    )
}

pub(super) fn revoke_token(c: &Connection, hash: &str) -> Result<()> {
    exec(c, "UPDATE tokens SET revoked = 1 WHERE token_hash = ?", [hash])?;
    Ok(())
}

pub(super) fn erase_user(c: &Connection, u: &UserRecord, email: &str) -> Result<()> {
    let id = u.id.to_string();
    for sql in [
        "DELETE FROM tokens WHERE user_id = ?",
        "DELETE FROM notifications WHERE user_id = ?",
        "DELETE FROM waitlist_offers WHERE entry_id IN (SELECT id FROM waitlist WHERE patient_id = ?)",
        "DELETE FROM waitlist WHERE patient_id = ?",
        "DELETE FROM idempotency_keys WHERE user_id = ?",
    ] {
        exec(c, sql, [&id])?;
    }
    exec(c, "DELETE FROM deliveries WHERE channel = 'email' AND lower(recipient) = lower(?)", [email])?;
    let done = exec(
        c,
        "UPDATE users SET email = ?, name = ?, password_hash = ? WHERE id = ?",
        params![u.email, u.name, u.password_hash, id],
    )?;
    if done == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}
