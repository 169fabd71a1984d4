//! RFC 9457 problem details: every error the API returns goes through here.

use axum::{
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use medislot_app::{AppError, BusyWith, SlotView};
use medislot_domain::FieldError;
use serde::Serialize;

pub const PROBLEM_JSON: &str = "application/problem+json";
const TYPE_BASE: &str = "https://medislot.dev/problems/";

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem, e.g. `https://medislot.dev/problems/slot-taken`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// For validation problems: each wrong field and what is wrong with it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// For `slot-taken`: free slots to offer instead.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub alternatives: Option<Vec<SlotView>>,
    /// For `precondition-failed`: the appointment's current version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_version: Option<i64>,
    /// For `patient-busy`: the appointment the patient already has at that time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conflicting_appointment: Option<BusyWith>,
}

/// An error on its way out as problem+json.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub slug: &'static str,
    pub title: std::borrow::Cow<'static, str>,
    pub detail: String,
    pub errors: Vec<FieldError>,
    pub alternatives: Option<Vec<SlotView>>,
    pub current_version: Option<i64>,
    pub conflicting_appointment: Option<BusyWith>,
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, slug: &'static str, title: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            slug,
            title: title.into(),
            detail: detail.into(),
            errors: vec![],
            alternatives: None,
            current_version: None,
            conflicting_appointment: None,
            retry_after: None,
        }
    }

    /// A malformed request (JSON syntax, a path id that is not a UUID…), naming the field.
    pub fn bad_request(field: impl Into<String>, message: impl Into<String>) -> Self {
        let message = message.into();
        let mut e = Self::new(StatusCode::BAD_REQUEST, "bad-request", "Malformed request", message.clone());
        e.errors.push(FieldError::new(field, message));
        e
    }

    /// Well-formed but invalid input, naming the field.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        AppError::Invalid(medislot_domain::Invalid::field(field, message)).into()
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", "Not found", format!("{what} not found"))
    }
}

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        use StatusCode as S;
        let detail = e.to_string();
        match e {
            AppError::Invalid(inv) => {
                let mut a = Self::new(S::UNPROCESSABLE_ENTITY, "validation", "Invalid input", detail);
                a.errors = inv.0;
                a
            }
            AppError::Unauthenticated => Self::new(
                S::UNAUTHORIZED,
                "unauthenticated",
                "Authentication required",
                "log in and send Authorization: Bearer <token>",
            ),
            AppError::BadCredentials => {
                Self::new(S::UNAUTHORIZED, "bad-credentials", "Wrong e-mail or password", detail)
            }
            AppError::Forbidden(why) => Self::new(S::FORBIDDEN, "forbidden", "Forbidden", why),
            AppError::VisitRestricted(why) => {
                let mut a = Self::new(S::FORBIDDEN, "visit-type-restricted", "Not bookable online by you", why);
                a.errors.push(FieldError::new("slot_id", why));
                a
            }
            AppError::NotFound(_) => Self::new(S::NOT_FOUND, "not-found", "Not found", detail),
            AppError::Taken { field } => {
                let mut a = Self::new(S::CONFLICT, "already-exists", "Already exists", detail.clone());
                a.errors.push(FieldError::new(field, detail));
                a
            }
            AppError::SlotTaken { alternatives } => {
                let mut a = Self::new(
                    S::CONFLICT,
                    "slot-taken",
                    "This slot was just taken",
                    "this slot was just taken — here are the nearest free ones",
                );
                a.errors.push(FieldError::new("slot_id", "this slot is no longer free"));
                a.alternatives = Some(alternatives);
                a
            }
            AppError::PatientBusy { other } => {
                let detail = match &other {
                    Some(o) => format!(
                        "you already have an appointment from {} to {} (appointment {}): cancel or move it first",
                        o.start, o.end, o.id
                    ),
                    None => "you already have an appointment at that time: cancel or move it first".into(),
                };
                let mut a = Self::new(S::CONFLICT, "patient-busy", "You already have an appointment then", detail);
                a.errors.push(FieldError::new("slot_id", "you already have an appointment at that time"));
                a.conflicting_appointment = other;
                a
            }
            AppError::PreconditionFailed { current } => {
                let mut a = Self::new(S::PRECONDITION_FAILED, "precondition-failed", "The resource changed", detail);
                a.errors.push(FieldError::new("If-Match", format!("the current version is {current}")));
                a.current_version = Some(current);
                a
            }
            AppError::IdempotencyMismatch => {
                let mut a = Self::new(
                    S::UNPROCESSABLE_ENTITY,
                    "idempotency-key-reused",
                    "Idempotency-Key reused",
                    detail.clone(),
                );
                a.errors.push(FieldError::new("Idempotency-Key", detail));
                a
            }
            AppError::TooManyHolds(_) => Self::new(S::CONFLICT, "too-many-holds", "Too many holds", detail),
            AppError::ChangesClosed { .. } => {
                Self::new(S::CONFLICT, "changes-closed", "Too late to change it online", detail)
            }
            AppError::Transition(_) | AppError::Conflict(_) | AppError::TooEarly { .. } => {
                Self::new(S::CONFLICT, "invalid-state", "Not possible in this state", detail)
            }
            AppError::Unavailable(_) => {
                let mut a = Self::new(
                    S::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "Temporarily unavailable",
                    "the database is busy or unreachable; retry shortly",
                );
                a.retry_after = Some(2);
                a
            }
            AppError::OutcomeUnknown(_) => {
                let mut a = Self::new(
                    S::SERVICE_UNAVAILABLE,
                    "outcome-unknown",
                    "Outcome unknown",
                    "the database did not confirm the change; it may or may not have been made: \
                     retry with the same Idempotency-Key to find out",
                );
                a.retry_after = Some(2);
                a
            }
            AppError::HomeRegionUnreachable { .. } => {
                let mut a =
                    Self::new(S::SERVICE_UNAVAILABLE, "home-region-unreachable", "Home region unreachable", detail);
                a.retry_after = Some(5);
                a
            }
            AppError::HomeRegionNoAnswer { .. } => {
                let mut a = Self::new(
                    S::SERVICE_UNAVAILABLE,
                    "home-region-no-answer",
                    "No answer from the home region",
                    detail,
                );
                a.retry_after = Some(2);
                a
            }
            AppError::Remote { status, .. } => Self::new(
                S::from_u16(status).unwrap_or(S::BAD_GATEWAY),
                "home-region-refused",
                "Refused by the home region",
                detail,
            ),
            AppError::Internal(m) => {
                tracing::error!(error = %m, "internal error");
                Self::new(
                    S::INTERNAL_SERVER_ERROR,
                    "internal",
                    "Internal error",
                    "something went wrong on our side; it has been logged",
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Problem {
            kind: format!("{TYPE_BASE}{}", self.slug),
            title: self.title.to_string(),
            status: self.status.as_u16(),
            detail: self.detail,
            errors: self.errors,
            alternatives: self.alternatives,
            current_version: self.current_version,
            conflicting_appointment: self.conflicting_appointment,
        };
        let json = serde_json::to_vec(&body).unwrap_or_else(|_| b"{}".to_vec());
        let mut resp = (self.status, json).into_response();
        resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(secs) = self.retry_after {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
