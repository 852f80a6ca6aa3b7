//! The tenant matrix: no tenant reaches another's data. Built from the router's own route lists — the UI
//! route table and the OpenAPI document — plus the public operational
//! routes. Every route × every role and key of tenant B × tenant A's ids in
//! path and body: anything naming A's objects answers 404, and no response
//! carries a byte of A's canary data. A route that is not classified below
//! fails the test, so nobody can add a route and forget the matrix.

use crate::support::*;
use bos_core::Role;
use reqwest::header::COOKIE;
use reqwest::{Method, StatusCode};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// Names an object by id in the path: must be 404 for another tenant.
    ById,
    /// Names an object by id in the body: must be 404 for another tenant.
    BodyId,
    /// Lists or creates within the caller's own tenant: any status, no canary.
    OwnTenant,
    /// Needs no credentials and holds no tenant data.
    Public,
}

fn classification() -> BTreeMap<(&'static str, &'static str), Expect> {
    use Expect::*;
    BTreeMap::from([
        (("GET", "/login"), Public),
        (("POST", "/login"), Public),
        (("POST", "/logout"), OwnTenant),
        (("GET", "/"), OwnTenant),
        (("POST", "/orgs/switch"), BodyId),
        (("GET", "/settings/members"), OwnTenant),
        (("POST", "/settings/members"), OwnTenant),
        (("POST", "/settings/members/{user_id}/role"), ById),
        (("POST", "/settings/members/{user_id}/remove"), ById),
        (
            (
                "POST",
                "/settings/members/invitations/{invitation_id}/revoke",
            ),
            ById,
        ),
        // The accept page: the link's 256-bit token names the invitation
        // (tests/http/invitations.rs).
        (("GET", "/invitations/{token}"), Public),
        (("POST", "/invitations/{token}"), Public),
        (("GET", "/settings/keys"), OwnTenant),
        (("POST", "/settings/keys"), OwnTenant),
        (("POST", "/settings/keys/{key_id}/revoke"), ById),
        (("GET", "/customers"), OwnTenant),
        (("GET", "/intake"), OwnTenant),
        (("GET", "/intake/stream"), OwnTenant),
        (("POST", "/intake/{customer_id}/action"), ById),
        (("GET", "/inbox"), OwnTenant),
        (("GET", "/inbox/stream"), OwnTenant),
        (("GET", "/inbox/{conversation_id}"), ById),
        (("POST", "/inbox/{conversation_id}/assign"), ById),
        (("POST", "/inbox/{conversation_id}/reply"), ById),
        (("POST", "/inbox/{conversation_id}/resolve"), ById),
        (("POST", "/inbox/{conversation_id}/reopen"), ById),
        (("GET", "/customers/import"), OwnTenant),
        (("POST", "/customers/import"), OwnTenant),
        (("GET", "/customers/imports/{import_id}"), ById),
        (("GET", "/customers/imports/{import_id}/events"), ById),
        (("GET", "/customers/{customer_id}"), ById),
        (("POST", "/customers/{customer_id}/merge"), ById),
        (("GET", "/customers/{customer_id}/export"), ById),
        (("POST", "/customers/{customer_id}/erase"), ById),
        (("POST", "/merges/{merge_id}/undo"), ById),
        (("GET", "/settings/identity"), OwnTenant),
        (("POST", "/settings/identity"), OwnTenant),
        (("GET", "/settings/sources"), OwnTenant),
        (("POST", "/settings/sources"), OwnTenant),
        (("GET", "/settings/sources/{source_id}"), ById),
        (
            (
                "GET",
                "/settings/sources/{source_id}/deliveries/{delivery_id}",
            ),
            ById,
        ),
        (
            (
                "POST",
                "/settings/sources/{source_id}/deliveries/{delivery_id}/replay",
            ),
            ById,
        ),
        (("GET", "/settings/intake/parked"), OwnTenant),
        (("POST", "/settings/intake/parked/retry-all"), OwnTenant),
        (
            ("POST", "/settings/intake/parked/{delivery_id}/retry"),
            ById,
        ),
        (("GET", "/settings/intake"), OwnTenant),
        (("POST", "/settings/intake"), OwnTenant),
        (("POST", "/settings/intake/reset"), OwnTenant),
        (("POST", "/settings/intake/leads"), OwnTenant),
        (("GET", "/campaigns"), OwnTenant),
        (("POST", "/campaigns"), OwnTenant),
        (("GET", "/campaigns/new"), OwnTenant),
        (("POST", "/campaigns/preview"), OwnTenant),
        (("GET", "/campaigns/{campaign_id}"), ById),
        (("POST", "/campaigns/{campaign_id}"), ById),
        (("POST", "/campaigns/{campaign_id}/status"), ById),
        (("POST", "/campaigns/{campaign_id}/preview"), ById),
        (("GET", "/outbox"), OwnTenant),
        (("GET", "/settings/nudges"), OwnTenant),
        (("POST", "/settings/nudges"), OwnTenant),
        (
            (
                "POST",
                "/customers/{customer_id}/enrollments/{enrollment_id}/remove",
            ),
            ById,
        ),
        (("GET", "/account"), OwnTenant),
        (("POST", "/account/password"), OwnTenant),
        (("GET", "/api/v1/me"), OwnTenant),
        (("GET", "/api/v1/organization"), OwnTenant),
        (("GET", "/api/v1/members"), OwnTenant),
        (("POST", "/api/v1/members"), OwnTenant),
        (("GET", "/api/v1/members/{user_id}"), ById),
        (("PATCH", "/api/v1/members/{user_id}"), ById),
        (("DELETE", "/api/v1/members/{user_id}"), ById),
        (("GET", "/api/v1/invitations"), OwnTenant),
        (("DELETE", "/api/v1/invitations/{invitation_id}"), ById),
        (("GET", "/api/v1/keys"), OwnTenant),
        (("POST", "/api/v1/keys"), OwnTenant),
        (("GET", "/api/v1/keys/{key_id}"), ById),
        (("DELETE", "/api/v1/keys/{key_id}"), ById),
        (("POST", "/api/v1/identify"), OwnTenant),
        (("GET", "/api/v1/customers"), OwnTenant),
        (("GET", "/api/v1/customers/{customer_id}"), ById),
        (("DELETE", "/api/v1/customers/{customer_id}"), ById),
        (("GET", "/api/v1/customers/{customer_id}/timeline"), ById),
        (("GET", "/api/v1/groups/{group_id}"), ById),
        (("POST", "/api/v1/customers/{customer_id}/merge"), ById),
        (("GET", "/api/v1/customers/{customer_id}/duplicates"), ById),
        (("GET", "/api/v1/customers/{customer_id}/export"), ById),
        (("POST", "/api/v1/merges/{merge_id}/undo"), ById),
        (("GET", "/api/v1/identity-rules"), OwnTenant),
        (("PUT", "/api/v1/identity-rules"), OwnTenant),
        (("GET", "/api/v1/imports"), OwnTenant),
        (("POST", "/api/v1/imports"), OwnTenant),
        (("GET", "/api/v1/imports/{import_id}"), ById),
        (("GET", "/api/v1/leads"), OwnTenant),
        (("GET", "/api/v1/leads/{customer_id}"), ById),
        (("POST", "/api/v1/leads/{customer_id}/actions"), ById),
        (("GET", "/api/v1/sources"), OwnTenant),
        (("POST", "/api/v1/sources"), OwnTenant),
        (("GET", "/api/v1/sources/{source_id}/deliveries"), ById),
        (("GET", "/api/v1/deliveries/{delivery_id}"), ById),
        (("POST", "/api/v1/deliveries/{delivery_id}/replay"), ById),
        (("GET", "/api/v1/settings/intent-rules"), OwnTenant),
        (("PUT", "/api/v1/settings/intent-rules"), OwnTenant),
        (("GET", "/api/v1/settings/leads"), OwnTenant),
        (("GET", "/api/v1/campaigns"), OwnTenant),
        (("POST", "/api/v1/campaigns"), OwnTenant),
        (("GET", "/api/v1/campaigns/{campaign_id}"), ById),
        (("PUT", "/api/v1/campaigns/{campaign_id}"), ById),
        (("POST", "/api/v1/campaigns/{campaign_id}/status"), ById),
        (("GET", "/api/v1/campaigns/{campaign_id}/funnel"), ById),
        (("POST", "/api/v1/campaigns/{campaign_id}/preview"), ById),
        (("GET", "/api/v1/outbox"), OwnTenant),
        (("GET", "/api/v1/settings/nudges"), OwnTenant),
        (("PUT", "/api/v1/settings/nudges"), OwnTenant),
        (("GET", "/api/v1/customers/{customer_id}/nudges"), ById),
        (("DELETE", "/api/v1/enrollments/{enrollment_id}"), ById),
        (("PUT", "/api/v1/settings/leads"), OwnTenant),
        // The Unified Inbox (tests/http/conversations.rs).
        (("GET", "/api/v1/conversations"), OwnTenant),
        (("GET", "/api/v1/conversations/{conversation_id}"), ById),
        (
            ("POST", "/api/v1/conversations/{conversation_id}/messages"),
            ById,
        ),
        (
            ("POST", "/api/v1/conversations/{conversation_id}/assign"),
            ById,
        ),
        (
            ("POST", "/api/v1/conversations/{conversation_id}/resolve"),
            ById,
        ),
        (
            ("POST", "/api/v1/conversations/{conversation_id}/reopen"),
            ById,
        ),
        // The Command Center and Settings → Agents (tests/http/command_center.rs).
        (("GET", "/command-center"), OwnTenant),
        (("GET", "/command-center/stream"), OwnTenant),
        (("GET", "/command-center/agents/{agent_id}"), ById),
        (("POST", "/command-center/agents/{agent_id}/pause"), ById),
        (("POST", "/command-center/agents/{agent_id}/resume"), ById),
        (
            (
                "POST",
                "/command-center/conversations/{conversation_id}/takeover",
            ),
            ById,
        ),
        (("GET", "/settings/agents"), OwnTenant),
        (("POST", "/settings/agents"), OwnTenant),
        (("POST", "/settings/agents/{agent_id}/key"), ById),
        // AI agents (tests/http/agents.rs).
        (("GET", "/api/v1/agents"), OwnTenant),
        (("POST", "/api/v1/agents"), OwnTenant),
        (("GET", "/api/v1/agents/metrics"), OwnTenant),
        (("GET", "/api/v1/agents/{agent_id}"), ById),
        (("POST", "/api/v1/agents/{agent_id}/heartbeat"), ById),
        (("POST", "/api/v1/agents/{agent_id}/pause"), ById),
        (("POST", "/api/v1/agents/{agent_id}/resume"), ById),
        (("POST", "/api/v1/agents/{agent_id}/interactions"), ById),
        (("GET", "/api/v1/agents/{agent_id}/events"), ById),
        // Hand-offs between agents and members (tests/http/agent_stream.rs).
        (
            ("POST", "/api/v1/conversations/{conversation_id}/handoff"),
            ById,
        ),
        (
            ("POST", "/api/v1/conversations/{conversation_id}/takeover"),
            ById,
        ),
        (
            ("POST", "/api/v1/conversations/{conversation_id}/handback"),
            ById,
        ),
        // Intake: no session or API key; the source's own credential
        // authenticates and names the tenant (tests/http/intake.rs).
        (("POST", "/v1/identify"), Public),
        (("POST", "/v1/track"), Public),
        (("POST", "/v1/page"), Public),
        (("POST", "/v1/screen"), Public),
        (("POST", "/v1/group"), Public),
        (("POST", "/v1/alias"), Public),
        (("POST", "/v1/batch"), Public),
        (("POST", "/hooks/{source_id}"), Public),
        (("POST", "/hooks/shopify/{source_id}"), Public),
        // Public web forms: the form key in the URL is public (it is in
        // the landing page) and names the tenant; nothing is returned but
        // {"success": true} (tests/http/forms.rs).
        (("POST", "/f/{form_key}"), Public),
        (("OPTIONS", "/f/{form_key}"), Public),
        // Channels: settings and opt-outs of the caller's own tenant.
        (("GET", "/settings/channels"), OwnTenant),
        (("POST", "/settings/channels/email"), OwnTenant),
        (("POST", "/settings/channels/sms"), OwnTenant),
        (("GET", "/api/v1/settings/channels"), OwnTenant),
        (("PUT", "/api/v1/settings/channels/{channel}"), OwnTenant),
        (("GET", "/api/v1/opt-outs"), OwnTenant),
        (("POST", "/api/v1/opt-outs"), OwnTenant),
        // Nudge webhooks, tracking and unsubscribe: no session or API key;
        // the hook key or the message's 128-bit token names the tenant, and
        // the provider's signature (or the token) authenticates
        // (tests/http/nudge_hooks.rs).
        (("POST", "/hooks/twilio/{hook_key}/sms"), Public),
        (("POST", "/hooks/twilio/{hook_key}/status"), Public),
        (("POST", "/hooks/mailgun/{hook_key}"), Public),
        (("POST", "/hooks/postmark/{hook_key}"), Public),
        // Meta: the source id names the tenant; the verify token (GET) and
        // the app secret's signature (POST) authenticate
        // (tests/http/inbox_doors.rs).
        (("GET", "/hooks/meta/{source_id}"), Public),
        (("POST", "/hooks/meta/{source_id}"), Public),
        // Voice agents: the agent id names the tenant; the platform's
        // signature with the agent's secret authenticates
        // (tests/http/voice_hooks.rs).
        (("POST", "/hooks/vapi/{agent_id}"), Public),
        (("POST", "/hooks/retell/{agent_id}"), Public),
        (("GET", "/t/o/{token}"), Public),
        (("GET", "/t/c/{token}"), Public),
        (("GET", "/u/{token}"), Public),
        (("POST", "/u/{token}"), Public),
        (("GET", "/api/v1/openapi.json"), Public),
        (("GET", "/healthz"), Public),
        (("GET", "/readyz"), Public),
        (("GET", "/metrics"), Public),
        (("GET", "/assets/{file}"), Public),
    ])
}

/// Every route the application serves, from its own lists.
fn all_routes() -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = bos_web::ui::routes()
        .into_iter()
        .map(|r| (r.method.to_string(), r.path.to_string()))
        .collect();
    let doc = serde_json::to_value(bos_web::api::openapi()).unwrap();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for m in ["get", "post", "put", "patch", "delete"] {
            if item.get(m).is_some() {
                out.push((m.to_uppercase(), format!("/api/v1{path}")));
            }
        }
    }
    out.push(("GET".into(), "/api/v1/openapi.json".into()));
    out.extend(
        bos_web::ops::PUBLIC_PATHS
            .iter()
            .map(|p| ("GET".to_string(), p.to_string())),
    );
    out.push(("GET".into(), "/assets/{file}".into()));
    out.extend(
        bos_web::nudge_hooks::ROUTES
            .iter()
            .map(|(m, p)| (m.to_string(), p.to_string())),
    );
    out.extend(
        bos_web::meta_hooks::ROUTES
            .iter()
            .map(|(m, p)| (m.to_string(), p.to_string())),
    );
    out.extend(
        bos_web::voice_hooks::ROUTES
            .iter()
            .map(|(m, p)| (m.to_string(), p.to_string())),
    );
    out.extend(
        bos_web::intake::ROUTES
            .iter()
            .map(|(m, p)| (m.to_string(), p.to_string())),
    );
    out
}

#[test]
fn every_route_is_in_the_matrix() {
    let known = classification();
    for (m, p) in all_routes() {
        assert!(
            known.contains_key(&(m.as_str(), p.as_str())),
            "route {m} {p} is not in the tenant matrix: classify it in tests/http/tenant_matrix.rs"
        );
    }
}

#[tokio::test]
async fn tenant_b_never_reaches_tenant_a() {
    let app = spawn_app().await;
    // Tenant A, full of canaries.
    let a = app.org("Canary A7x9 Org").await;
    let a_owner = app.user("owner@canary-a.example", &a, Role::Owner).await;
    let a_member = app.user("member@canary-a.example", &a, Role::Member).await;
    let a_key_secret = app.key(&a, "admin").await;
    let a_key = app.store().api_keys(a.id).await.unwrap()[0].clone();
    // A's customers: two profiles merged through a phone, with canary names.
    let rules = bos_core::identity::IdentityRules::default();
    let ident =
        |k: bos_core::identity::IdentifierKind, v: &str| bos_core::identity::Identifier::new(k, v);
    let mk = |ids: Vec<bos_core::identity::Identifier>, first: &str| {
        bos_store::identity::IdentifyInput {
            identifiers: ids,
            traits: bos_store::identity::Traits {
                first_name: first.into(),
                last_name: "Canaryson".into(),
                company: "Canary A7x9 Inc".into(),
                custom: Default::default(),
            },
            source: "test".into(),
            event: None,
            now: T0,
        }
    };
    use bos_core::identity::IdentifierKind::{Email as E, Phone as P};
    let c1 = app
        .store()
        .identify(
            a.id,
            &rules,
            &mk(vec![ident(E, "cust@canary-a7x9.example")], "Cnry"),
        )
        .await
        .unwrap();
    app.store()
        .identify(a.id, &rules, &mk(vec![ident(P, "+14155550199")], "Cnry"))
        .await
        .unwrap();
    app.store()
        .identify(
            a.id,
            &rules,
            &mk(
                vec![
                    ident(E, "cust@canary-a7x9.example"),
                    ident(P, "+14155550199"),
                ],
                "",
            ),
        )
        .await
        .unwrap();
    let a_profile = c1.profile_id;
    let a_merge = app.store().profile_merges(a.id, a_profile).await.unwrap()[0].id;
    // A's import of a canary file, finished, with a canary rejection.
    let a_import = app
        .store()
        .create_import(
            a.id,
            &bos_store::import::NewImport {
                file_name: "canary-a7x9-contacts.csv".into(),
                digest: "c4a7a9".into(),
                source: "canary-a7x9".into(),
                total_rows: 1,
                ignored_columns: vec![],
                started_by: "owner@canary-a.example".into(),
                user_id: Some(a_owner.id),
            },
            T0,
        )
        .await
        .unwrap()
        .id;
    app.store().start_import(a.id, a_import, T0).await.unwrap();
    let mut tally = bos_store::import::ImportTally::default();
    tally.reject([bos_core::identity::import::Rejection {
        line: 2,
        reason: "Canaryson has no identifier".into(),
    }]);
    app.store()
        .finish_import(a.id, a_import, &tally, None, T0)
        .await
        .unwrap();
    // A's intake source and one delivery carrying a canary.
    let a_source = app
        .store()
        .create_source(
            a.id,
            bos_store::intake::NewSource {
                kind: bos_store::intake::SourceKind::Webhook,
                name: "Canary A7x9 Hooks".into(),
                secret: Some("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into()),
                key_hash: None,
                config: None,
            },
            T0,
        )
        .await
        .unwrap()
        .id;
    app.store()
        .ingest(
            a.id,
            a_source,
            vec![bos_store::intake::NewInbound {
                external_id: "canary-a7x9-msg".into(),
                kind: "form.submitted".into(),
                payload: r#"{"email":"cust@canary-a7x9.example"}"#.into(),
            }],
            T0,
        )
        .await
        .unwrap();
    let a_delivery = app
        .store()
        .deliveries(a.id, Some(a_source), None, 1)
        .await
        .unwrap()[0]
        .id;
    // A's account, from a Segment group call through the pipeline.
    let a_segment = app
        .store()
        .create_source(
            a.id,
            bos_store::intake::NewSource {
                kind: bos_store::intake::SourceKind::Segment,
                name: "Canary A7x9 Site".into(),
                secret: None,
                key_hash: Some(bos_web::auth::sha256("wk_canary_a7x9")),
                config: None,
            },
            T0,
        )
        .await
        .unwrap()
        .id;
    app.store()
        .ingest(
            a.id,
            a_segment,
            vec![bos_store::intake::NewInbound {
                external_id: "canary-a7x9-group".into(),
                kind: "group".into(),
                payload: r#"{"type":"group","userId":"canary-a7x9-user","groupId":"canary-a7x9-acct","traits":{"name":"Canary A7x9 Account"}}"#.into(),
            }],
            T0,
        )
        .await
        .unwrap();
    app.state.pipeline.drain().await.unwrap();
    assert!(app
        .store()
        .customer_group(a.id, "canary-a7x9-acct")
        .await
        .unwrap()
        .is_some());
    // A's channel settings: a canary SMTP host and its webhook key.
    let a_hook = app
        .store()
        .put_channel_config(
            a.id,
            bos_core::nudge::Channel::Email,
            &bos_store::nudge::ChannelConfig::Smtp {
                host: "smtp.canary-a7x9.example".into(),
                port: 587,
                tls: "starttls".into(),
                username: Some("canary-a7x9-user".into()),
                password: Some("canary-a7x9-password".into()),
                from: "Canary A7x9 <shop@canary-a7x9.example>".into(),
                mailgun_signing_key: None,
                postmark_password: None,
            },
            T0,
        )
        .await
        .unwrap();
    // A's campaign with a canary name, and an enrollment id of A's shape
    // (enrollments come from the pipeline; campaigns.rs covers real ones).
    let a_campaign: bos_core::nudge::Campaign = serde_json::from_value(serde_json::json!({
        "name": "Canary A7x9 Cart", "trigger": {"kind": "checkout_abandoned"},
        "steps": [{"delay_ms": 3_600_000, "channel": "email", "variants": [
            {"name": "A", "weight": 1, "subject": "Canary A7x9 subject", "body": "Hi {{ first_name }}"}]}],
        "stop": {"converted": true, "replied": true, "opted_out": true},
        "quiet_hours": null, "max_attempts": 3, "reentry_cooldown_ms": 0
    }))
    .unwrap();
    let a_campaign = app
        .store()
        .create_campaign(
            a.id,
            &a_campaign,
            bos_store::nudge::CampaignStatus::Active,
            T0,
        )
        .await
        .unwrap();
    let a_enrollment = uuid::Uuid::now_v7();
    // A's pending invitation of a canary address.
    let a_invitation = app
        .store()
        .create_invitation(
            a.id,
            &bos_core::Email::parse("invitee@canary-a7x9.example").unwrap(),
            Role::Member,
            b"canary-a7x9-token-hash",
            Some(a_owner.id),
            T0,
            T0 + bos_core::INVITATION_TTL_MS,
        )
        .await
        .unwrap()
        .id;
    // A's conversation: a canary message from the merged customer.
    let a_conversation = app
        .state
        .inbox
        .record_inbound(
            a.id,
            bos_engine::inbox::Inbound::text(
                a_profile,
                bos_core::inbox::Channel::Sms,
                "Canary A7x9 message text",
            ),
            T0,
        )
        .await
        .unwrap()
        .conversation_id();
    // A's agent with a canary name, its key, and an interaction with a
    // canary summary.
    let (a_agent, a_agent_key) = app
        .state
        .agents
        .create(
            a.id,
            Some(a_owner.id),
            bos_engine::agents::CreateAgent {
                name: "Canary A7x9 Agent".into(),
                kind: "chat".into(),
                provider: "api".into(),
                platform_agent_id: None,
                webhook_secret: None,
            },
            T0,
        )
        .await
        .unwrap();
    let a_agent = a_agent.agent.id;
    app.state
        .agents
        .record(
            a.id,
            a_agent,
            bos_engine::agents::InteractionInput {
                conversation_id: Some(a_conversation),
                outcome: "success".into(),
                started_at: T0,
                summary: Some("Canary A7x9 interaction".into()),
                ..Default::default()
            },
            T0,
        )
        .await
        .unwrap();
    let canaries = [
        &a_agent.to_string(),
        &a_agent_key.key.display_prefix,
        &a_hook,
        &a_conversation.to_string(),
        "Canary A7x9",
        "canary-a7x9",
        "Canaryson",
        "+14155550199",
        &a.id.to_string(),
        &a_key.id.to_string(),
        &a_key.display_prefix,
        &a_profile.to_string(),
        &a_merge.to_string(),
        &a_import.to_string(),
        &a_source.to_string(),
        &a_delivery.to_string(),
        &a_campaign.to_string(),
        &a_invitation.to_string(),
        &a_owner.id.to_string(),
        &a_conversation.to_string(),
    ];
    let a_keys_before = app.store().api_keys(a.id).await.unwrap();
    let a_members_before = app.store().members(a.id).await.unwrap();

    // Tenant B: every role, every scope.
    let b = app.org("Beta").await;
    let mut sessions = Vec::new();
    for (i, role) in [Role::Owner, Role::Admin, Role::Member]
        .into_iter()
        .enumerate()
    {
        app.user(&format!("u{i}@beta.example"), &b, role).await;
        sessions.push(app.login(&format!("u{i}@beta.example")).await);
    }
    let mut keys = Vec::new();
    for scopes in ["admin", "agent", "ingest", "ingest,agent,admin"] {
        keys.push(app.key(&b, scopes).await);
    }

    let fill = |p: &str| {
        p.replace("{user_id}", &a_member.id.to_string())
            .replace("{key_id}", &a_key.id.to_string())
            .replace("{group_id}", "canary-a7x9-acct")
            .replace("{import_id}", &a_import.to_string())
            .replace("{customer_id}", &a_profile.to_string())
            .replace("{merge_id}", &a_merge.to_string())
            .replace("{source_id}", &a_source.to_string())
            .replace("{delivery_id}", &a_delivery.to_string())
            .replace("{campaign_id}", &a_campaign.to_string())
            .replace("{enrollment_id}", &a_enrollment.to_string())
            .replace("{invitation_id}", &a_invitation.to_string())
            .replace("{conversation_id}", &a_conversation.to_string())
            .replace("{agent_id}", &a_agent.to_string())
    };
    let classes = classification();
    let mut checked = 0;
    for (method, path) in all_routes() {
        let expect = classes[&(method.as_str(), path.as_str())];
        if expect == Expect::Public || path == "/logout" {
            continue;
        }
        let url = fill(&path);
        let m: Method = method.parse().unwrap();
        let mut responses = Vec::new();
        if path.starts_with("/api/") {
            // A well-formed body for the route, naming A's people where the schema names people.
            let body = match (method.as_str(), path.as_str()) {
                ("POST", "/api/v1/sources") => {
                    serde_json::json!({"kind": "segment", "name": "probe"})
                }
                ("POST", "/api/v1/keys") => {
                    serde_json::json!({"name": "probe", "scopes": ["ingest"]})
                }
                // (Inviting an existing account by email is legitimate; it must not be the id under test.)
                ("POST", "/api/v1/members") => {
                    serde_json::json!({"email": "owner@canary-a.example", "role": "member"})
                }
                ("POST", "/api/v1/customers/{customer_id}/merge") => {
                    serde_json::json!({"other_profile_id": a_profile})
                }
                ("POST", "/api/v1/conversations/{conversation_id}/messages") => {
                    serde_json::json!({"channel": "sms", "text": "probe"})
                }
                ("POST", "/api/v1/agents") => {
                    serde_json::json!({"name": "probe", "kind": "chat", "provider": "api"})
                }
                ("POST", "/api/v1/agents/{agent_id}/heartbeat") => {
                    serde_json::json!({"status": "idle"})
                }
                ("POST", "/api/v1/agents/{agent_id}/interactions") => {
                    serde_json::json!({"outcome": "success", "started_at": "2026-05-28T00:00:00Z"})
                }
                ("POST", "/api/v1/conversations/{conversation_id}/handoff") => {
                    serde_json::json!({"reason": "probe"})
                }
                ("POST", "/api/v1/conversations/{conversation_id}/assign") => {
                    serde_json::json!({"member_id": a_member.id})
                }
                _ => serde_json::json!({"role": "member"}),
            };
            for key in &keys {
                let mut req = app
                    .http
                    .request(m.clone(), app.url(&format!("{url}?org_id={}", a.id)))
                    .bearer_auth(key);
                if m != Method::GET && m != Method::DELETE {
                    req = req.json(&body);
                }
                responses.push(req.send().await.unwrap());
            }
        } else {
            for s in &sessions {
                let form = [
                    ("_csrf", s.csrf.as_str()),
                    ("org_id", &a.id.to_string()),
                    ("role", "member"),
                    ("name", "probe"),
                    ("scope", "ingest"),
                    ("other_id", &a_profile.to_string()),
                ];
                let mut req = app
                    .http
                    .request(m.clone(), app.url(&format!("{url}?org_id={}", a.id)))
                    .header(COOKIE, format!("__Host-bos_session={}", s.cookie));
                if m == Method::POST {
                    req = req.form(&form);
                }
                responses.push(req.send().await.unwrap());
            }
        }
        for mut res in responses {
            let status = res.status();
            // The live stream never ends: its first event is what it says at once.
            let body = if path == "/intake/stream"
                || path == "/inbox/stream"
                || path == "/command-center/stream"
            {
                let first = tokio::time::timeout(std::time::Duration::from_secs(10), res.chunk())
                    .await
                    .expect("the stream answers at once");
                String::from_utf8_lossy(&first.unwrap().unwrap_or_default()).to_string()
            } else {
                res.text().await.unwrap()
            };
            if matches!(expect, Expect::ById | Expect::BodyId) {
                assert_eq!(
                    status,
                    StatusCode::NOT_FOUND,
                    "{method} {path} with tenant A's id answered {status}"
                );
            }
            assert!(
                status != StatusCode::INTERNAL_SERVER_ERROR,
                "{method} {path}: 500"
            );
            for c in &canaries {
                assert!(
                    !body.contains(c),
                    "{method} {path} leaked tenant A's data ({c})"
                );
            }
            checked += 1;
        }
    }
    assert!(checked > 60, "the matrix ran {checked} requests");
    // Nothing of A changed: keys, members and roles are as they were.
    assert_eq!(app.store().api_keys(a.id).await.unwrap(), a_keys_before);
    assert_eq!(app.store().members(a.id).await.unwrap(), a_members_before);
    // B's invitations of A's owner added nobody to B.
    assert_eq!(
        app.store().membership(b.id, a_owner.id).await.unwrap(),
        None
    );
    assert_eq!(
        app.store().open_invitations(a.id).await.unwrap()[0].id,
        a_invitation
    );
    let c = app
        .store()
        .campaign(a.id, a_campaign)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (c.campaign.name.as_str(), c.status.as_str()),
        ("Canary A7x9 Cart", "active")
    );
    assert_eq!(
        app.store().membership(a.id, a_owner.id).await.unwrap(),
        Some(Role::Owner)
    );
    // A's conversation: still open, nobody's, its one message alone.
    let conv = app
        .state
        .inbox
        .get(a.id, a_conversation, None)
        .await
        .unwrap();
    assert_eq!(conv.conversation.status, bos_core::inbox::Status::Open);
    assert_eq!(conv.conversation.assignee_id, None);
    assert_eq!(conv.messages.len(), 1);
    // And A's key still works for A only.
    let v: serde_json::Value = app.read(Method::GET, "/me", &a_key_secret).await;
    assert_eq!(v["organization"]["id"], a.id.to_string());
}
