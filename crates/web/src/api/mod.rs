//! The JSON API under `/api/v1`. Every route authenticates with a bearer API
//! key ([`ApiPrincipal`]) and sees only that key's organization. The
//! `OpenApiRouter` builds the router and the OpenAPI 3.1 document together,
//! so the document cannot drift from the routes.

/// AI agents: registry, heartbeats, pause and resume, interactions, metrics.
pub mod agents;
/// Nudge campaigns, funnels, previews, the outbox and nudge settings.
pub mod campaigns;
/// Channel settings (SMTP, Twilio, the development sink) and opt-outs.
pub mod channels;
/// The Unified Inbox: conversations, their messages, replies, assign,
/// resolve and reopen.
pub mod conversations;
/// Customers (God View): identify, list, one customer, timeline, merges,
/// duplicates, export and erasure.
pub mod customers;
/// Contacts import: upload a CSV, follow it, read its summary.
pub mod imports;
/// Intake administration: delivery log, replay, intent rules, lead settings.
pub mod intake_admin;
mod keys;
/// Leads: the intake feed, one lead with its history, quick actions.
pub mod leads;
mod me;
mod members;
/// Intake sources: Segment write keys and Standard Webhooks secrets.
pub mod sources;

use crate::auth::keys::ApiPrincipal;
use crate::error::AppError;
pub use crate::views::rfc3339;
use crate::AppState;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "BOS API",
        description = "The Business Operating System's HTTP API. Authenticate with an organization API key: `Authorization: Bearer bos_…`. Errors are RFC 9457 problem+json documents with a stable `type`.",
    ),
    modifiers(&BearerAuth),
    security(("api_key" = [])),
    components(schemas(crate::error::Problem, agents::StreamReady)),
    tags(
        (name = "organization", description = "The caller and its organization"),
        (name = "members", description = "People in the organization (admin scope)"),
        (name = "keys", description = "API keys (admin scope)"),
        (name = "customers", description = "God View: one customer across every platform"),
        (name = "sources", description = "Intake sources and their credentials (admin scope)"),
        (name = "leads", description = "Leads: intent, state, history and quick actions"),
        (name = "channels", description = "How nudges are sent (SMTP, Twilio) and who opted out (admin scope)"),
        (name = "campaigns", description = "Nudge campaigns: builder, status, funnels, previews, outbox, settings"),
        (name = "inbox", description = "The Unified Inbox: one conversation per customer across SMS, e-mail, Instagram, Facebook and forms; replies, assignment, resolution"),
        (name = "agents", description = "AI agents as workers: registry, heartbeats, live status, pause and resume, interactions and metrics")
    )
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The API router (paths relative to `/api/v1`) and its OpenAPI document.
pub fn router_and_doc() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, mut doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(me::me))
        .routes(routes!(me::organization))
        .routes(routes!(members::list, members::create))
        .routes(routes!(members::get_one, members::update, members::delete))
        .routes(routes!(members::invitations))
        .routes(routes!(members::revoke_invitation))
        .routes(routes!(keys::list, keys::create))
        .routes(routes!(keys::get_one, keys::revoke))
        .routes(routes!(customers::identify))
        .routes(routes!(customers::list))
        .routes(routes!(customers::get_one, customers::erase))
        .routes(routes!(customers::timeline))
        .routes(routes!(customers::merge))
        .routes(routes!(customers::unmerge))
        .routes(routes!(customers::duplicates))
        .routes(routes!(customers::export))
        .routes(routes!(customers::get_rules, customers::put_rules))
        .routes(routes!(customers::group))
        .routes(routes!(imports::list, imports::create))
        .routes(routes!(imports::get_one))
        .routes(routes!(sources::list, sources::create))
        .routes(routes!(intake_admin::deliveries))
        .routes(routes!(intake_admin::delivery))
        .routes(routes!(intake_admin::replay))
        .routes(routes!(
            intake_admin::get_intent_rules,
            intake_admin::put_intent_rules
        ))
        .routes(routes!(intake_admin::get_leads, intake_admin::put_leads))
        .routes(routes!(leads::list))
        .routes(routes!(leads::get_one))
        .routes(routes!(leads::act))
        .routes(routes!(channels::list))
        .routes(routes!(channels::put))
        .routes(routes!(channels::opt_outs, channels::set_opt_out))
        .routes(routes!(campaigns::list, campaigns::create_one))
        .routes(routes!(campaigns::get_one, campaigns::put_one))
        .routes(routes!(campaigns::set_status))
        .routes(routes!(campaigns::funnel))
        .routes(routes!(campaigns::preview))
        .routes(routes!(campaigns::outbox))
        .routes(routes!(campaigns::get_settings, campaigns::put_settings))
        .routes(routes!(campaigns::customer_nudges))
        .routes(routes!(campaigns::remove_enrollment))
        .routes(routes!(conversations::list))
        .routes(routes!(conversations::get_one))
        .routes(routes!(conversations::reply))
        .routes(routes!(conversations::assign))
        .routes(routes!(conversations::resolve))
        .routes(routes!(conversations::reopen))
        .routes(routes!(conversations::handoff))
        .routes(routes!(conversations::takeover))
        .routes(routes!(conversations::handback))
        .routes(routes!(agents::list, agents::create))
        .routes(routes!(agents::metrics))
        .routes(routes!(agents::get_one))
        .routes(routes!(agents::heartbeat))
        .routes(routes!(agents::pause))
        .routes(routes!(agents::resume))
        .routes(routes!(agents::interactions))
        .routes(routes!(agents::events))
        .split_for_parts();
    doc.servers = Some(vec![utoipa::openapi::Server::new("/api/v1")]);
    let doc = with_error_responses(doc);
    let json = serde_json::to_string_pretty(&doc).unwrap_or_default();
    let router = router.merge(customers::deprecated_aliases()).route(
        "/openapi.json",
        get(move || {
            let json = json.clone();
            async move {
                (
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    json,
                )
            }
        }),
    );
    (router, doc)
}

/// Every operation's document lists the errors any route can answer, in
/// the media type they are sent as: the per-handler annotations name the
/// answers particular to a route (a 409, a 202), and this adds what the
/// shared machinery answers — an unreadable request (400), no key (401), a
/// key without the scope (403), no such id (404, routes with a path
/// parameter), a body too large, not JSON or not acceptable (413, 415,
/// 422, routes with a body; 422 also for bad query values), the database
/// unavailable (503) — so that clients and conformance tools see every
/// status the server really sends. Error bodies are problem+json.
fn with_error_responses(mut doc: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    use utoipa::openapi::path::ParameterIn;
    use utoipa::openapi::{Content, Ref, RefOr, Response};
    let problem = || Content::new(Some(Ref::from_schema_name("Problem")));
    for (path, item) in doc.paths.paths.iter_mut() {
        let ops = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.options,
            &mut item.head,
            &mut item.patch,
            &mut item.trace,
        ];
        for op in ops.into_iter().flatten() {
            let has_body = op.request_body.is_some();
            let has_query = op
                .parameters
                .iter()
                .flatten()
                .any(|p| matches!(p.parameter_in, ParameterIn::Query));
            let mut add: Vec<(&str, &str)> = vec![
                ("400", "The request could not be read: a query string, JSON body or NUL character the problem's `detail` names."),
                ("401", "No API key, or one that is unknown or revoked."),
                ("403", "The API key lacks the scope this needs."),
                ("503", "The database cannot be reached; retry after `Retry-After` seconds."),
            ];
            if path.contains('{') {
                add.push(("404", "Nothing with this id in the key's organization."));
            }
            if has_body {
                add.push(("413", "The body is larger than the server accepts."));
                add.push(("415", "The body is not in the media type this takes."));
            }
            if has_body || has_query {
                add.push(("422", "A value is not acceptable; `field` names it."));
            }
            let responses = &mut op.responses.responses;
            for (code, description) in add {
                responses
                    .entry(code.to_string())
                    .or_insert_with(|| RefOr::T(Response::new(description)));
            }
            for (code, r) in responses.iter_mut() {
                if let (true, RefOr::T(r)) = (code.starts_with('4') || code.starts_with('5'), r) {
                    r.content.clear();
                    r.content
                        .insert("application/problem+json".to_string(), problem());
                }
            }
        }
    }
    doc
}

/// The OpenAPI document alone (for `bos openapi` and tests).
pub fn openapi() -> utoipa::openapi::OpenApi {
    router_and_doc().1
}

pub async fn not_found() -> Response {
    AppError::NotFound.into_response()
}

/// `Json<T>` whose rejections are problem+json with an actionable message.
///
/// Handlers that check a scope take it as `Result<ApiJson<T>, AppError>`
/// and unwrap it only after the check, so a key without the scope is told
/// 403 whatever body it sent (the body's errors are for those allowed).
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(ApiJson(v)),
            Err(JsonRejection::JsonDataError(e)) => Err(AppError::Invalid {
                field: None,
                detail: e.body_text(),
            }),
            Err(JsonRejection::JsonSyntaxError(e)) => Err(AppError::BadRequest(format!(
                "The body is not valid JSON: {}",
                e.body_text()
            ))),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(AppError::UnsupportedMediaType(
                "Send the body as JSON with 'Content-Type: application/json'.".into(),
            )),
            Err(JsonRejection::BytesRejection(e))
                if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE =>
            {
                Err(AppError::body_too_large())
            }
            Err(e) => Err(AppError::BadRequest(e.body_text())),
        }
    }
}

/// A path id. One that does not parse names nothing that exists: 404.
pub struct Id(pub uuid::Uuid);

impl<S: Send + Sync> FromRequestParts<S> for Id {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<uuid::Uuid>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(id)) => Ok(Id(id)),
            Err(PathRejection::FailedToDeserializePathParams(_)) => Err(AppError::NotFound),
            Err(e) => Err(AppError::Internal(e.body_text())),
        }
    }
}

/// The acting principal as an admin-layer actor. API keys act with admin
/// power at most (never owner), and only with the `admin` scope.
pub(crate) fn admin_actor(p: &ApiPrincipal) -> Result<bos_engine::admin::Actor, AppError> {
    p.require(bos_core::Scope::Admin)?;
    Ok(bos_engine::admin::Actor {
        org_id: p.org.id,
        role: bos_core::Role::Admin,
        user_id: None,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::Value;
    use std::collections::BTreeSet;

    /// The document is true to the routes: every `{name}` in a path template
    /// is declared once as a path parameter of every operation on it, and
    /// nothing else is a path parameter (a query parameter declared `in:
    /// path` breaks generated clients and conformance tools).
    #[test]
    fn path_parameters_are_exactly_the_templates_names() {
        let doc = serde_json::to_value(super::openapi()).unwrap();
        let mut problems = Vec::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            let in_template: BTreeSet<String> = path
                .split('/')
                .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
                .map(str::to_string)
                .collect();
            for (method, op) in item.as_object().unwrap() {
                let params = op["parameters"].as_array().cloned().unwrap_or_default();
                let declared: Vec<String> = params
                    .iter()
                    .filter(|p| p["in"] == "path")
                    .map(|p| p["name"].as_str().unwrap_or("").to_string())
                    .collect();
                let set: BTreeSet<String> = declared.iter().cloned().collect();
                if set.len() != declared.len() {
                    problems.push(format!(
                        "{method} {path}: a path parameter is declared twice"
                    ));
                }
                for extra in set.difference(&in_template) {
                    problems.push(format!(
                        "{method} {path}: '{extra}' is declared in: path but is not in the template"
                    ));
                }
                for missing in in_template.difference(&set) {
                    problems.push(format!(
                        "{method} {path}: '{{{missing}}}' is in the template but not declared"
                    ));
                }
                for p in &params {
                    if p["in"] == "path" && p["required"] != Value::Bool(true) {
                        problems.push(format!(
                            "{method} {path}: path parameter {} must be required",
                            p["name"]
                        ));
                    }
                }
            }
        }
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }

    /// Every operation declares the shared errors, and every error is
    /// declared as the problem+json it is sent as.
    #[test]
    fn every_operation_declares_its_errors_as_problem_json() {
        let doc = serde_json::to_value(super::openapi()).unwrap();
        let mut n = 0;
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let responses = op["responses"].as_object().unwrap();
                for code in ["400", "401", "403", "503"] {
                    assert!(responses.contains_key(code), "{method} {path} lacks {code}");
                }
                for (code, r) in responses {
                    if code.starts_with('4') || code.starts_with('5') {
                        assert!(
                            r["content"]["application/problem+json"].is_object()
                                && r["content"].as_object().unwrap().len() == 1,
                            "{method} {path} {code}: {}",
                            r["content"]
                        );
                    }
                }
                n += 1;
            }
        }
        assert!(n > 40, "{n} operations");
    }
}
