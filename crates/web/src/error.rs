//! One error type for every handler. The API renders it as RFC 9457
//! `application/problem+json` with a stable `type`; the UI wraps it in
//! [`PageError`] and renders a page that says what to do. Internal causes
//! are logged, never sent to the client.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bos_store::StoreError;
use serde::Serialize;

#[derive(Debug)]
pub enum AppError {
    NotFound,
    /// Input that parsed but is not acceptable (422), naming the field.
    Invalid {
        field: Option<&'static str>,
        detail: String,
    },
    /// Input that could not be parsed at all (400).
    BadRequest(String),
    Unauthorized(String),
    Forbidden(String),
    Csrf,
    Conflict(String),
    TooManyRequests {
        retry_after_s: u64,
        detail: String,
    },
    /// The body is over a limit; the text says which and what to do.
    PayloadTooLarge(String),
    UnsupportedMediaType(String),
    MethodNotAllowed,
    Unavailable,
    Internal(String),
}

impl AppError {
    pub fn invalid(field: &'static str, detail: impl Into<String>) -> AppError {
        AppError::Invalid {
            field: Some(field),
            detail: detail.into(),
        }
    }

    /// The request body is over the server's general limit.
    pub fn body_too_large() -> AppError {
        AppError::PayloadTooLarge(
            "The request body is larger than this server accepts. Send less data per request."
                .into(),
        )
    }

    pub fn status(&self) -> StatusCode {
        match self {
            AppError::NotFound => StatusCode::NOT_FOUND,
            AppError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            AppError::Forbidden(_) | AppError::Csrf => StatusCode::FORBIDDEN,
            AppError::Conflict(_) => StatusCode::CONFLICT,
            AppError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            AppError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            AppError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            AppError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable problem type slug (the `type` member is `urn:bos:problem:<slug>`).
    pub fn slug(&self) -> &'static str {
        match self {
            AppError::NotFound => "not-found",
            AppError::Invalid { .. } => "invalid-input",
            AppError::BadRequest(_) => "bad-request",
            AppError::Unauthorized(_) => "unauthorized",
            AppError::Forbidden(_) => "forbidden",
            AppError::Csrf => "csrf-rejected",
            AppError::Conflict(_) => "conflict",
            AppError::TooManyRequests { .. } => "too-many-requests",
            AppError::PayloadTooLarge(_) => "payload-too-large",
            AppError::UnsupportedMediaType(_) => "unsupported-media-type",
            AppError::MethodNotAllowed => "method-not-allowed",
            AppError::Unavailable => "unavailable",
            AppError::Internal(_) => "internal",
        }
    }

    pub fn title(&self) -> &'static str {
        match self {
            AppError::NotFound => "Not found",
            AppError::Invalid { .. } => "Invalid input",
            AppError::BadRequest(_) => "Bad request",
            AppError::Unauthorized(_) => "Authentication required",
            AppError::Forbidden(_) => "Not allowed",
            AppError::Csrf => "Request rejected",
            AppError::Conflict(_) => "Conflict",
            AppError::TooManyRequests { .. } => "Too many requests",
            AppError::PayloadTooLarge(_) => "Request body too large",
            AppError::UnsupportedMediaType(_) => "Unsupported media type",
            AppError::MethodNotAllowed => "Method not allowed",
            AppError::Unavailable => "Temporarily unavailable",
            AppError::Internal(_) => "Something went wrong on our side",
        }
    }

    /// What the person (or script) can do about it.
    pub fn detail(&self) -> String {
        match self {
            AppError::NotFound => "Nothing exists at this address, or it belongs to another organization. Check the id or go back.".into(),
            AppError::Invalid { detail, .. }
            | AppError::BadRequest(detail)
            | AppError::Unauthorized(detail)
            | AppError::Forbidden(detail)
            | AppError::Conflict(detail)
            | AppError::TooManyRequests { detail, .. }
            | AppError::PayloadTooLarge(detail)
            | AppError::UnsupportedMediaType(detail) => detail.clone(),
            AppError::Csrf => "This form expired or was sent from another site. Reload the page and submit it again.".into(),
            AppError::MethodNotAllowed => "This address does not accept that HTTP method. See /api/v1/openapi.json.".into(),
            AppError::Unavailable => "The database cannot be reached right now. Retry after a few seconds.".into(),
            AppError::Internal(_) => "The error was logged. Try again; if it keeps happening, tell your administrator.".into(),
        }
    }

    fn log(&self) {
        match self {
            AppError::Internal(cause) => tracing::error!(%cause, "internal error"),
            AppError::Unavailable => tracing::warn!("database unavailable"),
            _ => {}
        }
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => AppError::NotFound,
            StoreError::Conflict(c) => {
                AppError::Conflict(format!("That conflicts with existing data ({c})."))
            }
            StoreError::Unavailable(cause) => {
                tracing::warn!(%cause, "database unavailable");
                AppError::Unavailable
            }
            StoreError::Invalid(detail) => AppError::Invalid {
                field: None,
                detail,
            },
            StoreError::Other(cause) => AppError::Internal(cause),
        }
    }
}

// The services' errors, mapped here and nowhere else: each capability
// says what went wrong in its own words, the HTTP layer decides the status.

impl From<bos_engine::admin::AdminError> for AppError {
    fn from(e: bos_engine::admin::AdminError) -> Self {
        use bos_engine::admin::AdminError as E;
        match e {
            E::Forbidden(d) => AppError::Forbidden(d),
            E::Conflict(d) => AppError::Conflict(d),
            E::Invalid { field, detail } => AppError::invalid(field, detail),
            E::Store(e) => e.into(),
        }
    }
}

impl From<bos_engine::identity::IdentityError> for AppError {
    fn from(e: bos_engine::identity::IdentityError) -> Self {
        use bos_engine::identity::IdentityError as E;
        match e {
            E::NoUsableIdentifier(why) => AppError::invalid("identifiers", why),
            E::SameProfile => AppError::Conflict("These are already one customer.".into()),
            E::CannotUnmerge(m) => AppError::Conflict(format!("This merge cannot be undone: {m}.")),
            E::InvalidRules { field, detail } => AppError::invalid(field, detail),
            E::Store(e) => e.into(),
        }
    }
}

impl From<bos_engine::leads::LeadError> for AppError {
    fn from(e: bos_engine::leads::LeadError) -> Self {
        use bos_engine::leads::LeadError as E;
        match e {
            E::Invalid { field, detail } => AppError::invalid(field, detail),
            E::Store(e) => e.into(),
        }
    }
}

impl From<bos_engine::sources::SourceError> for AppError {
    fn from(e: bos_engine::sources::SourceError) -> Self {
        use bos_engine::sources::SourceError as E;
        match e {
            E::Invalid { field, detail } => AppError::invalid(field, detail),
            E::Secret(cause) => AppError::Internal(cause),
            E::Store(e) => e.into(),
        }
    }
}

impl From<bos_engine::rules::RulesError> for AppError {
    fn from(e: bos_engine::rules::RulesError) -> Self {
        use bos_engine::rules::RulesError as E;
        match e {
            E::Invalid { field, detail } => AppError::invalid(field, detail),
            E::Store(e) => e.into(),
        }
    }
}

impl From<bos_engine::campaigns::CampaignError> for AppError {
    fn from(e: bos_engine::campaigns::CampaignError) -> Self {
        use bos_engine::campaigns::CampaignError as E;
        match e {
            E::Invalid { field, detail } => AppError::invalid(field, detail),
            E::Store(e) => e.into(),
        }
    }
}

/// The inbox's refusals, in the one place they become HTTP: a refused
/// input is 422 naming the field, a closed channel or a move that does not
/// apply is 409 with the sentence the composer shows.
impl From<bos_engine::inbox::InboxError> for AppError {
    fn from(e: bos_engine::inbox::InboxError) -> Self {
        use bos_engine::inbox::InboxError as E;
        match e {
            E::Invalid { field, detail } => AppError::invalid(field, detail),
            E::NotFound => AppError::NotFound,
            E::Conflict(why) => {
                let mut s = why;
                if let Some(first) = s.get(..1) {
                    s = first.to_uppercase() + &s[1..];
                }
                AppError::Conflict(format!("{s}; nothing was changed."))
            }
            E::CannotSend(why) => AppError::Conflict(why),
            E::Store(e) => e.into(),
        }
    }
}

impl From<bos_engine::channels::ChannelError> for AppError {
    fn from(e: bos_engine::channels::ChannelError) -> Self {
        use bos_engine::channels::ChannelError as E;
        match e {
            E::Invalid { field, detail } => AppError::invalid(field, detail),
            E::Store(e) => e.into(),
        }
    }
}

impl From<bos_engine::imports::UploadError> for AppError {
    fn from(e: bos_engine::imports::UploadError) -> Self {
        use bos_engine::imports::UploadError as E;
        match e {
            E::TooLarge { .. } => AppError::PayloadTooLarge(e.to_string()),
            E::Cut(_) => AppError::BadRequest(e.to_string()),
            E::Io(e) => AppError::Internal(format!("import spool: {e}")),
            e => AppError::invalid("file", e.to_string()),
        }
    }
}

impl From<bos_engine::imports::RunError> for AppError {
    fn from(e: bos_engine::imports::RunError) -> Self {
        use bos_engine::imports::RunError as E;
        match e {
            E::Upload(e) => e.into(),
            e @ E::AlreadyRunning { .. } => AppError::Conflict(e.to_string()),
            E::Spool(cause) => AppError::Internal(format!("import spool task: {cause}")),
            E::Store(e) => e.into(),
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// Stable identifier of the kind of problem, e.g. `urn:bos:problem:not-found`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    /// What to do about it.
    pub detail: String,
    /// The request field at fault, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl AppError {
    fn problem(&self) -> Problem {
        Problem {
            kind: format!("urn:bos:problem:{}", self.slug()),
            title: self.title().into(),
            status: self.status().as_u16(),
            detail: self.detail(),
            field: match self {
                AppError::Invalid { field, .. } => field.map(str::to_string),
                _ => None,
            },
        }
    }

    fn respond(self, body: String) -> Response {
        self.log();
        let mut res = (self.status(), body).into_response();
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        add_retry_after(&self, &mut res);
        if matches!(self, AppError::Unauthorized(_)) {
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"bos\""),
            );
        }
        res
    }

    /// The problem, plus the `code` and `message` members Segment and
    /// RudderStack SDKs read from an error answer (rudder-sdk-python fails
    /// with a KeyError without them, instead of logging the reason).
    pub fn into_sdk_response(self) -> Response {
        let body = SdkProblem {
            code: self.slug(),
            message: self.detail(),
            problem: self.problem(),
        };
        let text = serde_json::to_string(&body).unwrap_or_default();
        self.respond(text)
    }
}

/// A problem as the Segment-compatible endpoints answer it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SdkProblem {
    #[serde(flatten)]
    pub problem: Problem,
    /// The problem's slug (`payload-too-large`, `unauthorized`…).
    pub code: &'static str,
    /// The same text as `detail`.
    pub message: String,
}

impl AppError {
    /// The status and problem+json body this error answers with (logged
    /// as an answer would be), for answers that are stored and given again
    /// (a reply's idempotency key).
    pub(crate) fn status_and_body(&self) -> (StatusCode, String) {
        self.log();
        (
            self.status(),
            serde_json::to_string(&self.problem()).unwrap_or_default(),
        )
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let text = serde_json::to_string(&self.problem()).unwrap_or_default();
        self.respond(text)
    }
}

pub(crate) fn add_retry_after(e: &AppError, res: &mut Response) {
    let secs = match e {
        AppError::TooManyRequests { retry_after_s, .. } => Some(*retry_after_s),
        AppError::Unavailable => Some(5),
        _ => None,
    };
    if let Some(s) = secs {
        if let Ok(v) = HeaderValue::from_str(&s.to_string()) {
            res.headers_mut().insert(header::RETRY_AFTER, v);
        }
    }
}

/// The UI's rendering of an [`AppError`]: a full HTML page.
#[derive(Debug)]
pub struct PageError(pub AppError);

impl<E: Into<AppError>> From<E> for PageError {
    fn from(e: E) -> Self {
        PageError(e.into())
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        self.0.log();
        crate::ui::error_page(&self.0)
    }
}

pub type ApiResult<T> = Result<T, AppError>;
pub type PageResult<T> = Result<T, PageError>;
