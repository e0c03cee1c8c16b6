//! The relay's one HTTP error type: every refusal is a status code and a JSON body
//! `{"code": "...", "detail": "..."}` that tells the client what to fix. Internal failures are
//! logged in full and answered with a generic detail, so no internal text reaches a client.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::store::StoreError;

/// A refusal, as the client sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A stable machine-readable code.
    pub code: &'static str,
    /// What went wrong, for a person; never holds secrets or internal errors.
    pub detail: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            code,
            detail: detail.into(),
        }
    }

    /// 400: the request is malformed.
    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, detail)
    }

    /// 401: missing or wrong credentials.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
    }

    /// 403: valid credentials that are not allowed here.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }

    /// 404: no such slot.
    pub fn no_slot() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "slot_not_found",
            "no such slot (it never existed, or it expired and was removed)",
        )
    }

    /// 408: the body did not arrive in time.
    pub fn body_timeout(deadline: std::time::Duration) -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            "body_timeout",
            format!(
                "the body did not arrive within {} seconds of the request",
                deadline.as_secs()
            ),
        )
    }

    /// 409: the slot holds as many callbacks as it may.
    pub fn slot_full(max: u64) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "slot_full",
            format!(
                "the slot already holds its maximum of {max} callbacks; this one was not stored"
            ),
        )
    }

    /// 410: past the slot's deadline.
    pub fn past_deadline() -> Self {
        Self::new(
            StatusCode::GONE,
            "past_deadline",
            "the slot's deadline has passed; it takes no more callbacks",
        )
    }

    /// 413: the body is over the limit.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the body is larger than the relay's limit of {limit} bytes"),
        )
    }

    /// 503: the OIDC issuer's keys cannot be fetched, so no job's token can be checked now.
    pub fn oidc_keys_unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "oidc_keys_unavailable",
            "the relay cannot fetch the OIDC issuer's keys to check the token; try again",
        )
    }

    /// 503: the store cannot be used right now; the client should retry.
    pub fn unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            "the relay cannot use its store right now; try again",
        )
    }

    /// 500: a failure inside the relay (already logged).
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error in the relay",
        )
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        tracing::error!(error = %err, "store operation failed");
        Self::unavailable()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = hookgate_protocol::ErrorAnswer {
            code: self.code.to_owned(),
            detail: self.detail,
        };
        (self.status, Json(body)).into_response()
    }
}
