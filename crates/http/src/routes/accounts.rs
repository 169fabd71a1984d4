//! Accounts: register, log in (rate-limited), log out.

use crate::{
    extract::{bearer, ApiJson},
    problem::ApiResult,
    throttle::ClientAddr,
    views::{LoginView, UserView},
    AppState,
};
use axum::{
    extract::State,
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use medislot_app::Registration;
use serde::Deserialize;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(register)).routes(routes!(login)).routes(routes!(logout))
}

/// Create an account (patient, doctor or clinic admin).
#[utoipa::path(post, path = "/auth/register", request_body = Registration,
    responses((status = 201, body = UserView), (status = 409, description = "e-mail taken"), (status = 422, description = "invalid field"),
               (status = 429, description = "too many sign-ups from this client")))]
async fn register(
    State(s): State<AppState>,
    ClientAddr(client): ClientAddr,
    ApiJson(r): ApiJson<Registration>,
) -> ApiResult<(StatusCode, Json<UserView>)> {
    s.throttle.register(client)?;
    let user = s.app.register(r).await?;
    Ok((StatusCode::CREATED, Json((&user).into())))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    #[schema(schema_with = medislot_domain::schemas::email)]
    email: String,
    password: String,
}

/// Log in: returns a bearer token and sets the web session cookie.
#[utoipa::path(post, path = "/auth/login", request_body = LoginBody,
    responses((status = 200, body = LoginView), (status = 401, description = "wrong e-mail or password"), (status = 429, description = "too many attempts")))]
async fn login(
    State(s): State<AppState>,
    ClientAddr(client): ClientAddr,
    ApiJson(b): ApiJson<LoginBody>,
) -> ApiResult<Response> {
    let (out, cookie) = rate_limited_login(&s, client, &b.email, &b.password).await?;
    let body = LoginView {
        token: out.token,
        token_type: "Bearer",
        expires_at: out.expires_at.to_string(),
        user: (&out.user).into(),
    };
    let mut resp = Json(body).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(resp)
}

/// Logs in, within the client's attempt limits (429 with Retry-After beyond
/// them, before any password is hashed); returns the outcome and the session
/// cookie to set.
pub(crate) async fn rate_limited_login(
    s: &AppState,
    client: std::net::IpAddr,
    email: &str,
    password: &str,
) -> ApiResult<(medislot_app::LoginOutcome, String)> {
    s.throttle.login(client, email)?;
    let out = s.app.login(email, password).await?;
    let max_age = out.expires_at.duration_since(s.app.now()).as_secs().max(0);
    let cookie = s.cookies.session_cookie(&out.token, max_age);
    Ok((out, cookie))
}

/// Log out: revokes the token (or session) used for this request.
#[utoipa::path(post, path = "/auth/logout", responses((status = 204), (status = 401)), security(("bearer" = [])))]
async fn logout(State(s): State<AppState>, headers: HeaderMap) -> ApiResult<Response> {
    let Some(token) = bearer(&headers).or_else(|| s.cookies.read_session(&headers)) else {
        return Err(medislot_app::AppError::Unauthenticated.into());
    };
    if s.app.authenticate(&token).await?.is_none() {
        return Err(medislot_app::AppError::Unauthenticated.into());
    }
    s.app.logout(&token).await?;
    let mut resp = StatusCode::NO_CONTENT.into_response();
    if let Ok(v) = HeaderValue::from_str(&s.cookies.session_cookie("", 0)) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(resp)
}
