//! Accounts: registration, argon2id passwords, bearer tokens stored as hashes.

use crate::{access::Actor, App, AppError};
use argon2::{
    password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString},
    Argon2,
};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use medislot_domain::{error::Errors, people::parse_name, Email, Role, UserId};
use medislot_store::UserRecord;
use rand::RngCore;
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    #[schema(schema_with = medislot_domain::schemas::email)]
    pub email: String,
    #[schema(schema_with = medislot_domain::schemas::password)]
    pub password: String,
    #[schema(schema_with = medislot_domain::schemas::name)]
    pub name: String,
    /// patient | doctor | clinic_admin
    #[schema(schema_with = sign_up_role)]
    pub role: String,
}

/// The roles one signs up for (platform admins are made by operators).
const SIGN_UP_ROLES: [Role; 3] = [Role::Patient, Role::Doctor, Role::ClinicAdmin];

fn sign_up_role() -> utoipa::openapi::Object {
    medislot_domain::schemas::one_of(&SIGN_UP_ROLES.map(Role::as_str), false)
}

#[derive(Debug, Clone)]
pub struct LoginOutcome {
    /// The secret: shown once, stored only as a hash.
    pub token: String,
    pub expires_at: jiff::Timestamp,
    pub user: UserRecord,
}

/// A password hash that costs as much to compare as a real one, so that
/// "no such user" takes as long as "wrong password".
static DUMMY_HASH: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();

/// Argon2 costs ~19 MiB and tens of milliseconds of one core per hash. A burst of
/// sign-ups or log-ins hashes at most one password per core at a time, so that the
/// burst neither takes memory without bound nor starves the threads serving the
/// database and the other requests; the rest wait their turn here.
static HASHING: std::sync::LazyLock<tokio::sync::Semaphore> = std::sync::LazyLock::new(|| {
    tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get()))
});

/// Runs one password hash or check off the async threads, in its turn.
async fn hashing<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, AppError> {
    let _turn = HASHING.acquire().await.map_err(|e| AppError::Internal(e.to_string()))?;
    tokio::task::spawn_blocking(work).await.map_err(|e| AppError::Internal(e.to_string()))
}

fn check_password(field: &str, password: &str, errs: &mut Errors) {
    let n = password.chars().count();
    if n < 10 {
        errs.push(field, "must be at least 10 characters");
    } else if n > 256 {
        errs.push(field, "must be at most 256 characters");
    }
}

async fn hash_password(password: String) -> Result<String, AppError> {
    hashing(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default().hash_password(password.as_bytes(), &salt).map(|h| h.to_string())
    })
    .await?
    .map_err(|e| AppError::Internal(format!("password hashing failed: {e}")))
}

pub(crate) async fn verify_password(password: String, hash: String) -> bool {
    hashing(move || {
        PasswordHash::new(&hash).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
    })
    .await
    .unwrap_or(false)
}

/// Tokens are looked up by their SHA-256: a leaked database holds no usable token.
pub fn token_hash(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

impl App {
    /// Self-service sign-up as patient, doctor or clinic admin (never platform admin).
    pub async fn register(&self, r: Registration) -> Result<UserRecord, AppError> {
        let mut errs = Errors::default();
        let email = errs.take(Email::parse("email", &r.email));
        let name = errs.take(parse_name("name", &r.name, 200));
        check_password("password", &r.password, &mut errs);
        let role = SIGN_UP_ROLES.into_iter().find(|role| role.as_str() == r.role);
        if role.is_none() {
            errs.push("role", "must be patient, doctor or clinic_admin");
        }
        errs.finish()?;
        let (Some(email), Some(name), Some(role)) = (email, name, role) else {
            return Err(AppError::Internal("validated fields missing".into()));
        };
        self.create_user(email, r.password, name, role).await
    }

    /// Creates a platform admin (command line only).
    pub async fn create_admin(&self, email: &str, password: &str, name: &str) -> Result<UserRecord, AppError> {
        let mut errs = Errors::default();
        let email = errs.take(Email::parse("email", email));
        let name = errs.take(parse_name("name", name, 200));
        check_password("password", password, &mut errs);
        errs.finish()?;
        let (Some(email), Some(name)) = (email, name) else {
            return Err(AppError::Internal("validated fields missing".into()));
        };
        self.create_user(email, password.to_string(), name, Role::Admin).await
    }

    async fn create_user(
        &self,
        email: Email,
        password: String,
        name: String,
        role: Role,
    ) -> Result<UserRecord, AppError> {
        let user = UserRecord {
            id: UserId::new(),
            email: email.as_str().to_string(),
            password_hash: hash_password(password).await?,
            role,
            name,
            created_at: self.now(),
        };
        self.store.create_user(&user).await?;
        Ok(user)
    }

    pub async fn login(&self, email: &str, password: &str) -> Result<LoginOutcome, AppError> {
        let email = Email::parse("email", email)?;
        let user = self.store.user_by_email(email.as_str()).await?;
        let hash = match &user {
            Some(u) => u.password_hash.clone(),
            None => DUMMY_HASH.get_or_try_init(|| hash_password("not a real password".into())).await?.clone(),
        };
        let ok = verify_password(password.to_string(), hash).await;
        let Some(user) = user.filter(|_| ok) else {
            return Err(AppError::BadCredentials);
        };
        let mut secret = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut secret);
        let token = format!("ms_{}", URL_SAFE_NO_PAD.encode(secret));
        let expires_at = self.now() + self.config.token_ttl;
        self.store.create_token(&token_hash(&token), user.id, expires_at).await?;
        Ok(LoginOutcome { token, expires_at, user })
    }

    /// An argon2id hash of `password`, for accounts generated in bulk (`medislot seed`).
    pub async fn password_hash(&self, password: &str) -> Result<String, AppError> {
        hash_password(password.to_string()).await
    }

    pub async fn logout(&self, token: &str) -> Result<(), AppError> {
        let hash = token_hash(token);
        self.tokens.forget(&hash);
        self.store.revoke_token(&hash).await?;
        // Again: a request that read the token meanwhile may have cached it.
        self.tokens.forget(&hash);
        Ok(())
    }

    /// The caller a token stands for; `None` when unknown, expired or revoked
    /// (a revocation through another node counts within
    /// [`cache::TOKEN_CACHE_TTL`](crate::cache::TOKEN_CACHE_TTL)).
    pub async fn authenticate(&self, token: &str) -> Result<Option<Actor>, AppError> {
        let hash = token_hash(token);
        if let Some(user) = self.tokens.get(&hash) {
            return Ok(Some(Actor { user }));
        }
        let user = self.store.user_by_token(&hash, self.now()).await?;
        if let Some(user) = &user {
            self.tokens.put(&hash, user);
        }
        Ok(user.map(|user| Actor { user }))
    }
}
