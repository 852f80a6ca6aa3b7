//! What a stored inbound event means for the pipeline: from
//! the raw payload an endpoint stored, the identifiers that say who it is
//! about, the profile fields it carries, the timeline entries it adds, the
//! signals intent scoring reads, and the checkout or order it opens or
//! closes. Pure: the store applies the result inside one transaction.
//!
//! An event that cannot be read is an [`Unreadable`] error: the pipeline
//! parks it with that reason (retrying would not change the bytes).

use super::segment::{self, Call, CallType};
use super::shopify::{self, Topic};
use crate::Millis;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// One entry for the journey timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// A timeline kind (`page_view`, `purchase`, …).
    pub kind: &'static str,
    pub summary: String,
    pub occurred_at: Millis,
    pub data: Value,
    /// The entry's idempotency key, when the provider's object has a better
    /// one than the delivery (an order is one purchase however many of its
    /// webhooks arrive). `None`: the delivery's own key.
    pub key: Option<String>,
    pub revenue_cents: i64,
    pub is_order: bool,
}

/// What intent scoring reads from this event alone; the store adds the
/// profile's running totals (pages viewed, visits).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Signal {
    /// `identify`, `track`, `page` (a screen too), `group`, `alias`, `form_started`,
    /// `form_submitted`, `checkout_started`, `cart_updated`, `order_placed`,
    /// `customer_created`, `webhook`.
    pub event_type: &'static str,
    pub event_name: Option<String>,
    pub cart_value_cents: Option<i64>,
    pub form_fields: BTreeMap<String, String>,
    pub is_page: bool,
    pub utm_source: Option<String>,
    pub utm_medium: Option<String>,
    pub utm_campaign: Option<String>,
    pub ad_click: bool,
    /// A deliberate step (a form sent, a checkout, a cart, an order): it
    /// engages a new lead whatever its score.
    pub strong: bool,
    /// An order or a completed checkout: the lead converted.
    pub purchase: bool,
    /// A cart or checkout with this value is now open (until an order).
    pub opens_cart: bool,
}

/// A checkout as the abandonment timer needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutTouch {
    pub id: String,
    pub token: Option<String>,
    pub cart_token: Option<String>,
    pub completed: bool,
    pub total_cents: Option<i64>,
    pub currency: Option<String>,
    pub url: Option<String>,
    pub items: u64,
}

/// A Segment `group` call: the account the customer belongs to, and the
/// traits the account itself has (kept per organization, by group id).
#[derive(Debug, Clone, PartialEq)]
pub struct GroupTouch {
    pub group_id: String,
    pub traits: BTreeMap<String, Value>,
}

/// An order closes the checkouts it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderTouch {
    pub id: String,
    pub checkout_token: Option<String>,
    pub cart_token: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Interpreted {
    /// Raw `(kind, value)` pairs, normalized later under the tenant's rules.
    pub identifiers: Vec<(String, String)>,
    pub first_name: String,
    pub last_name: String,
    pub company: String,
    /// Custom traits to keep on the profile (see `identity::traits`).
    pub traits: BTreeMap<String, Value>,
    /// The main entry, and any more (an ad click beside a page view).
    pub entries: Vec<Entry>,
    pub signal: Signal,
    pub checkout: Option<CheckoutTouch>,
    pub order: Option<OrderTouch>,
    pub group: Option<GroupTouch>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unreadable(pub String);

/// Reads one stored event. `source_kind` is the source's kind as stored
/// (`segment`, `webhook`, `shopify`, `form`) and `kind` the event's.
pub fn interpret(
    source_kind: &str,
    kind: &str,
    payload: &[u8],
    received_at: Millis,
) -> Result<Interpreted, Unreadable> {
    // Intake removes NUL before storing; events stored before it did are
    // read the same way, so none fails on PostgreSQL for it.
    let payload = &*super::without_nul(payload);
    let mut out = match source_kind {
        "segment" => segment_event(kind, payload, received_at),
        "shopify" => shopify_event(kind, payload, received_at),
        "form" => form_event(payload, received_at),
        "webhook" => webhook_event(kind, payload, received_at),
        other => Err(Unreadable(format!("unknown source kind {other:?}"))),
    }?;
    // A provider's data is not refused for a long name (the event would
    // be lost); the name is cut to what every page can show.
    for n in [&mut out.first_name, &mut out.last_name, &mut out.company] {
        *n = crate::identity::traits::clip_person_name(n);
    }
    Ok(out)
}

fn str_of<'a>(m: &'a Map<String, Value>, keys: &[&str]) -> Option<&'a str> {
    keys.iter()
        .filter_map(|k| m.get(*k).and_then(Value::as_str))
        .map(str::trim)
        .find(|s| !s.is_empty())
}

/// Name and company from a traits-like object (Segment spec names and the
/// common snake/camel variants; `name` is split when no parts are given).
fn names(out: &mut Interpreted, m: &Map<String, Value>) {
    let first = str_of(m, &["first_name", "firstName"]);
    let last = str_of(m, &["last_name", "lastName"]);
    match (first, last, str_of(m, &["name"])) {
        (None, None, Some(full)) => {
            let mut parts = full.splitn(2, ' ');
            out.first_name = parts.next().unwrap_or("").trim().to_string();
            out.last_name = parts.next().unwrap_or("").trim().to_string();
        }
        (f, l, _) => {
            out.first_name = f.unwrap_or("").to_string();
            out.last_name = l.unwrap_or("").to_string();
        }
    }
    out.company = match m.get("company") {
        Some(Value::String(s)) => s.trim().to_string(),
        Some(Value::Object(c)) => str_of(c, &["name"]).unwrap_or("").to_string(),
        _ => String::new(),
    };
}

fn contact_ids(out: &mut Interpreted, m: &Map<String, Value>) {
    if let Some(e) = str_of(m, &["email", "Email", "e-mail"]) {
        out.identifiers.push(("email".into(), e.to_string()));
    }
    if let Some(p) = str_of(m, &["phone", "Phone", "phone_number", "mobile"]) {
        out.identifiers.push(("phone".into(), p.to_string()));
    }
}

/// A JSON money amount in major units (a number or a decimal string) as
/// integer cents; `None` when absent or not a plain non-negative amount.
fn money(v: Option<&Value>) -> Option<i64> {
    let s = match v? {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.trim().to_string(),
        _ => return None,
    };
    use rust_decimal::prelude::ToPrimitive;
    let d: rust_decimal::Decimal = s.parse().ok()?;
    if d.is_sign_negative() {
        return None;
    }
    // Amounts past i64 cents are not money anyone owes; drop them.
    d.checked_mul(rust_decimal::Decimal::from(100))?
        .round()
        .to_i64()
}

fn fmt_cents(c: i64, currency: Option<&str>) -> String {
    let s = format!("{}.{:02}", c / 100, c % 100);
    match currency {
        Some(cur) if !cur.is_empty() => format!("{s} {cur}"),
        _ => s,
    }
}

fn clip(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

fn segment_event(
    kind: &str,
    payload: &[u8],
    received_at: Millis,
) -> Result<Interpreted, Unreadable> {
    let call = CallType::parse(kind).map_err(|e| Unreadable(e.to_string()))?;
    let m = segment::parse_call(call, payload, received_at)
        .map_err(|e| Unreadable(e.to_string()))?
        .message;
    let mut out = Interpreted::default();
    if let Some(u) = &m.user_id {
        out.identifiers.push(("segment_user_id".into(), u.clone()));
    }
    if let Some(a) = &m.anonymous_id {
        out.identifiers.push(("anonymous_id".into(), a.clone()));
    }
    // An identify's traits are its own `traits` over `context.traits`:
    // RudderStack's SDKs send an identify's traits only in the context.
    let identify_traits = match &m.call {
        Call::Identify { traits } => {
            let mut t = m.context.traits.clone();
            t.extend(traits.iter().map(|(k, v)| (k.clone(), v.clone())));
            Some(t)
        }
        _ => None,
    };
    let traits = identify_traits.as_ref().unwrap_or(&m.context.traits);
    contact_ids(&mut out, traits);
    names(&mut out, traits);
    // What cannot be kept is dropped quietly here: a tracking call is not
    // refused for an `address` object (the timeline entry keeps it all).
    out.traits = crate::identity::custom_traits(traits).0;
    if let Some(tz) = m.context.timezone.as_deref().map(str::trim) {
        if !tz.is_empty() && !out.traits.contains_key("timezone") {
            out.traits
                .insert("timezone".into(), Value::from(clip(tz, 64)));
        }
    }
    let at = m.timestamp;
    let mut sig = Signal::default();
    if let Some(c) = &m.context.campaign {
        sig.utm_source = c.source.clone();
        sig.utm_medium = c.medium.clone();
        sig.utm_campaign = c.name.clone();
    }
    sig.ad_click = m.context.ad_click.is_some();
    let page = json!({
        "url": m.context.page_url, "path": m.context.page_path, "referrer": m.context.page_referrer,
    });
    let main = match &m.call {
        Call::Identify { .. } => {
            sig.event_type = "identify";
            Entry {
                kind: "identify",
                summary: "Identified on the website".into(),
                occurred_at: at,
                data: json!({ "traits": traits }),
                key: None,
                revenue_cents: 0,
                is_order: false,
            }
        }
        Call::Alias { previous_id } => {
            sig.event_type = "alias";
            out.identifiers
                .push(("anonymous_id".into(), previous_id.clone()));
            Entry {
                kind: "identify",
                summary: "Linked an earlier anonymous visit".into(),
                occurred_at: at,
                data: json!({ "previous_id": previous_id }),
                key: None,
                revenue_cents: 0,
                is_order: false,
            }
        }
        Call::Page {
            name, properties, ..
        } => {
            sig.event_type = "page";
            sig.is_page = true;
            let what = name
                .clone()
                .or_else(|| m.context.page_path.clone())
                .or_else(|| m.context.page_url.clone())
                .unwrap_or_else(|| "a page".into());
            Entry {
                kind: "page_view",
                summary: format!("Viewed {}", clip(&what, 200)),
                occurred_at: at,
                data: json!({ "page": page, "properties": properties }),
                key: None,
                revenue_cents: 0,
                is_order: false,
            }
        }
        // A mobile app's page view: counted for intent exactly as a page
        // (the same signal, so the tenant's page rules apply to apps too),
        // and shown as a screen on the timeline.
        Call::Screen {
            name,
            category,
            properties,
        } => {
            sig.event_type = "page";
            sig.is_page = true;
            let what = name
                .clone()
                .or_else(|| category.clone())
                .unwrap_or_else(|| "a screen".into());
            Entry {
                kind: "screen_view",
                summary: format!("Viewed the {} screen", clip(&what, 200)),
                occurred_at: at,
                data: json!({ "screen": name, "category": category, "properties": properties }),
                key: None,
                revenue_cents: 0,
                is_order: false,
            }
        }
        Call::Group { group_id, traits } => {
            sig.event_type = "group";
            let group_name = str_of(traits, &["name"]).map(|n| clip(n, 200));
            // The account is the customer's company, unless the call's own
            // user traits (`context.traits`) name one.
            if out.company.is_empty() {
                out.company = group_name.clone().unwrap_or_default();
            }
            out.traits
                .insert("group_id".into(), Value::from(clip(group_id, 200)));
            out.group = Some(GroupTouch {
                group_id: clip(group_id, 200),
                traits: group_traits(traits),
            });
            Entry {
                kind: "group",
                summary: match &group_name {
                    Some(n) => format!("Belongs to the account {n}"),
                    None => format!("Belongs to the account {}", clip(group_id, 200)),
                },
                occurred_at: at,
                data: json!({ "group_id": group_id, "traits": traits }),
                key: None,
                revenue_cents: 0,
                is_order: false,
            }
        }
        Call::Track { event, properties } => {
            sig.event_type = "track";
            sig.event_name = Some(event.clone());
            let value = money(properties.get("revenue"))
                .or_else(|| money(properties.get("total")))
                .or_else(|| money(properties.get("value")));
            let currency = str_of(properties, &["currency"]).map(str::to_string);
            let (kind, summary, revenue, is_order) = match event.to_ascii_lowercase().as_str() {
                "order completed" => {
                    sig.purchase = true;
                    sig.strong = true;
                    let r = value.unwrap_or(0);
                    (
                        "purchase",
                        format!("Ordered: {}", fmt_cents(r, currency.as_deref())),
                        r,
                        true,
                    )
                }
                "product added" => {
                    sig.strong = true;
                    (
                        "cart_add",
                        format!(
                            "Added {} to the cart",
                            str_of(properties, &["name", "product"]).unwrap_or("a product")
                        ),
                        0,
                        false,
                    )
                }
                "checkout started" => {
                    sig.strong = true;
                    sig.opens_cart = true;
                    ("checkout_started", "Started checkout".to_string(), 0, false)
                }
                _ => ("track", clip(event, 200), 0, false),
            };
            sig.cart_value_cents = value;
            Entry {
                kind,
                summary,
                occurred_at: at,
                data: json!({ "event": event, "properties": properties, "page": page }),
                key: None,
                revenue_cents: revenue,
                is_order,
            }
        }
    };
    out.entries.push(main);
    if m.context.campaign.is_some() || m.context.ad_click.is_some() {
        let c = m.context.campaign.clone().unwrap_or_default();
        let network = m.context.ad_click.as_ref().map(|a| a.network.param());
        let from = match (network, &c.source) {
            (Some("gclid"), _) => "a Google ad".to_string(),
            (Some("fbclid"), _) => "a Meta ad".to_string(),
            (Some("ttclid"), _) => "a TikTok ad".to_string(),
            (Some("msclkid"), _) => "a Microsoft ad".to_string(),
            (_, Some(s)) => clip(s, 80),
            _ => "a campaign link".to_string(),
        };
        let campaign = c
            .name
            .as_deref()
            .map(|n| format!(" ({})", clip(n, 80)))
            .unwrap_or_default();
        out.entries.push(Entry {
            kind: "ad_click",
            summary: format!("Arrived from {from}{campaign}"),
            occurred_at: at,
            data: json!({
                "utm_source": c.source, "utm_medium": c.medium, "utm_campaign": c.name,
                "utm_term": c.term, "utm_content": c.content,
                "click_id": m.context.ad_click.as_ref().map(|a| &a.click_id),
                "network": network, "landing_url": m.context.page_url,
            }),
            key: Some("ad".into()),
            revenue_cents: 0,
            is_order: false,
        });
    }
    out.signal = sig;
    Ok(out)
}

/// What is kept of a group's traits: the profile's trait rules (scalar
/// values, names of letters, digits and `_`, at most 64) without the
/// profile's reserved names, since `name`, `email` or `phone` of an
/// account are the account's own.
fn group_traits(m: &Map<String, Value>) -> BTreeMap<String, Value> {
    use crate::identity::traits::{valid_name, MAX_TRAITS, MAX_VALUE_CHARS};
    let mut kept = BTreeMap::new();
    for (k, v) in m {
        if kept.len() == MAX_TRAITS || !valid_name(k) {
            continue;
        }
        let v = match v {
            Value::String(s) if !s.trim().is_empty() => {
                Value::from(clip(s.trim(), MAX_VALUE_CHARS))
            }
            Value::Number(_) | Value::Bool(_) => v.clone(),
            _ => continue,
        };
        kept.insert(k.clone(), v);
    }
    kept
}

fn shopify_ids(out: &mut Interpreted, id: &shopify::Identity) {
    if let Some(c) = &id.customer_id {
        out.identifiers
            .push(("shopify_customer_id".into(), c.clone()));
    }
    if let Some(e) = &id.email {
        out.identifiers.push(("email".into(), e.clone()));
    }
    for p in [&id.phone, &id.billing_phone, &id.shipping_phone]
        .into_iter()
        .flatten()
    {
        if !out.identifiers.iter().any(|(k, v)| k == "phone" && v == p) {
            out.identifiers.push(("phone".into(), p.clone()));
        }
    }
    out.first_name = id.first_name.clone().unwrap_or_default();
    out.last_name = id.last_name.clone().unwrap_or_default();
}

fn items_text(n: u64) -> String {
    if n == 1 {
        "1 item".into()
    } else {
        format!("{n} items")
    }
}

fn shopify_event(
    kind: &str,
    payload: &[u8],
    received_at: Millis,
) -> Result<Interpreted, Unreadable> {
    let topic = Topic::parse(kind).map_err(|e| Unreadable(e.to_string()))?;
    let ev = shopify::parse(topic, payload).map_err(|e| Unreadable(format!("{topic:?}: {e}")))?;
    let mut out = Interpreted::default();
    let mut sig = Signal::default();
    match ev {
        shopify::Event::Checkout(c) => {
            shopify_ids(&mut out, &c.identity);
            let items = shopify::item_count(&c.line_items);
            let total = c.total_price_minor.or(c.subtotal_price_minor);
            sig.event_type = "checkout_started";
            sig.strong = true;
            sig.cart_value_cents = total;
            let at = c.updated_at.or(c.created_at).unwrap_or(received_at);
            let lines: Vec<Value> = c.line_items.iter().map(|l| json!({"title": l.title, "quantity": l.quantity, "price_cents": l.price_minor})).collect();
            out.entries.push(Entry {
                kind: "checkout_started",
                summary: format!(
                    "Started checkout: {}{}",
                    items_text(items),
                    total.map(|t| format!(", {}", fmt_cents(t, c.currency.as_deref()))).unwrap_or_default()
                ),
                occurred_at: c.created_at.unwrap_or(at),
                data: json!({"checkout_id": c.id, "total_cents": total, "currency": c.currency, "items": lines, "url": c.abandoned_checkout_url}),
                key: Some(format!("shopify:checkout:{}", c.id)),
                revenue_cents: 0,
                is_order: false,
            });
            out.checkout = Some(CheckoutTouch {
                id: c.id,
                token: c.token,
                cart_token: c.cart_token,
                completed: c.completed_at.is_some(),
                total_cents: total,
                currency: c.currency,
                url: c.abandoned_checkout_url,
                items,
            });
        }
        shopify::Event::Cart(c) => {
            // A cart names nobody; the store links it through a checkout
            // with the same cart token when there is one.
            let items = shopify::item_count(&c.line_items);
            let total: i64 = c
                .line_items
                .iter()
                .map(|l| {
                    l.price_minor
                        .unwrap_or(0)
                        .saturating_mul(i64::from(l.quantity))
                })
                .fold(0i64, i64::saturating_add);
            sig.event_type = "cart_updated";
            sig.strong = true;
            sig.opens_cart = true;
            sig.cart_value_cents = Some(total);
            out.entries.push(Entry {
                kind: "cart_add",
                summary: format!(
                    "Cart updated: {}, {}",
                    items_text(items),
                    fmt_cents(total, None)
                ),
                occurred_at: c.updated_at.or(c.created_at).unwrap_or(received_at),
                data: json!({"cart_token": c.id, "total_cents": total}),
                key: None,
                revenue_cents: 0,
                is_order: false,
            });
        }
        shopify::Event::Order(o) => {
            shopify_ids(&mut out, &o.identity);
            let total = o.total_price_minor.unwrap_or(0);
            sig.event_type = "order_placed";
            sig.strong = true;
            sig.purchase = true;
            sig.cart_value_cents = Some(total);
            let name = o.name.clone().unwrap_or_else(|| format!("order {}", o.id));
            out.entries.push(Entry {
                kind: "purchase",
                summary: format!("Ordered {}: {}", clip(&name, 40), fmt_cents(total, o.currency.as_deref())),
                occurred_at: o.processed_at.or(o.created_at).unwrap_or(received_at),
                data: json!({"order_id": o.id, "name": o.name, "total_cents": total, "currency": o.currency,
                             "financial_status": o.financial_status, "checkout_token": o.checkout_token,
                             "items": shopify::item_count(&o.line_items)}),
                key: Some(format!("shopify:order:{}", o.id)),
                revenue_cents: total,
                is_order: true,
            });
            out.order = Some(OrderTouch {
                id: o.id,
                checkout_token: o.checkout_token,
                cart_token: o.cart_token,
            });
        }
        shopify::Event::Customer(c) => {
            shopify_ids(&mut out, &c.identity);
            sig.event_type = "customer_created";
            out.entries.push(Entry {
                kind: "identify",
                summary: "Became a Shopify customer".into(),
                occurred_at: c.created_at.unwrap_or(received_at),
                data: json!({"email_marketing": c.email_marketing, "sms_marketing": c.sms_marketing}),
                key: c.identity.customer_id.as_ref().map(|id| format!("shopify:customer:{id}")),
                revenue_cents: 0,
                is_order: false,
            });
        }
    }
    out.signal = sig;
    Ok(out)
}

/// The stored form payload (see the web form endpoint):
/// `{"type", "fields", "session_id", "page_url", "referrer", "ip", "user_agent"}`.
fn form_event(payload: &[u8], received_at: Millis) -> Result<Interpreted, Unreadable> {
    let v: Value =
        serde_json::from_slice(payload).map_err(|e| Unreadable(format!("form payload: {e}")))?;
    let o = v
        .as_object()
        .ok_or_else(|| Unreadable("form payload is not an object".into()))?;
    let started = match o.get("type").and_then(Value::as_str) {
        Some("form_started") => true,
        Some("form_submitted") => false,
        other => return Err(Unreadable(format!("form payload type {other:?}"))),
    };
    let empty = Map::new();
    let fields = o.get("fields").and_then(Value::as_object).unwrap_or(&empty);
    let mut out = Interpreted::default();
    contact_ids(&mut out, fields);
    names(&mut out, fields);
    if let Some(sid) = o
        .get("session_id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    {
        out.identifiers
            .push(("anonymous_id".into(), format!("form:{sid}")));
    }
    let flat: BTreeMap<String, String> = fields
        .iter()
        .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
        .collect();
    let page = o.get("page_url").and_then(Value::as_str).unwrap_or("");
    let on = if page.is_empty() {
        String::new()
    } else {
        format!(" on {}", clip(page, 120))
    };
    let (kind, summary) = if started {
        ("form_started", format!("Started a form{on}"))
    } else {
        let shown: Vec<&str> = flat.keys().map(String::as_str).take(6).collect();
        (
            "form_submit",
            format!("Submitted a form{on} ({})", shown.join(", ")),
        )
    };
    out.entries.push(Entry {
        kind,
        summary,
        occurred_at: received_at,
        data: json!({"fields": fields, "page_url": page, "referrer": o.get("referrer")}),
        key: None,
        revenue_cents: 0,
        is_order: false,
    });
    out.signal = Signal {
        event_type: if started {
            "form_started"
        } else {
            "form_submitted"
        },
        form_fields: flat,
        strong: !started,
        ..Signal::default()
    };
    Ok(out)
}

/// A Standard Webhooks delivery `{type, timestamp, data}`. `data` names the
/// person with `email`, `phone`, `user_id`, or an `identifiers` object of
/// kind → value, and may carry `first_name`, `last_name`, `company`,
/// `summary` and `amount` (major units).
fn webhook_event(
    kind: &str,
    payload: &[u8],
    received_at: Millis,
) -> Result<Interpreted, Unreadable> {
    let v: Value =
        serde_json::from_slice(payload).map_err(|e| Unreadable(format!("webhook payload: {e}")))?;
    let empty = Map::new();
    let data = v
        .get("data")
        .and_then(Value::as_object)
        .or(v.as_object())
        .unwrap_or(&empty);
    let mut out = Interpreted::default();
    contact_ids(&mut out, data);
    if let Some(u) = str_of(data, &["user_id", "userId"]) {
        out.identifiers
            .push(("segment_user_id".into(), u.to_string()));
    }
    if let Some(ids) = data.get("identifiers").and_then(Value::as_object) {
        for (k, v) in ids {
            if let Some(s) = v.as_str() {
                out.identifiers.push((k.clone(), s.to_string()));
            }
        }
    }
    names(&mut out, data);
    let amount = money(data.get("amount"));
    let summary = str_of(data, &["summary"])
        .map(|s| clip(s, 200))
        .unwrap_or_else(|| clip(kind, 200));
    let at = v
        .get("timestamp")
        .and_then(Value::as_str)
        .and_then(super::parse_rfc3339_millis)
        .unwrap_or(received_at);
    out.entries.push(Entry {
        kind: "track",
        summary,
        occurred_at: at,
        data: json!({"type": kind, "data": data}),
        key: None,
        revenue_cents: 0,
        is_order: false,
    });
    out.signal = Signal {
        event_type: "webhook",
        event_name: Some(kind.to_string()),
        cart_value_cents: amount,
        ..Signal::default()
    };
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_identify_keeps_custom_traits_and_the_browser_time_zone() {
        let body = br#"{"type":"identify","userId":"u1","messageId":"m1",
            "traits":{"email":"ann@b.co","firstName":"Ann","plan":"gold","seats":3,"address":{"city":"Lyon"}},
            "context":{"timezone":"Europe/Paris"}}"#;
        let i = interpret("segment", "identify", body, 0).unwrap();
        assert_eq!(i.first_name, "Ann");
        assert_eq!(
            i.traits,
            BTreeMap::from([
                ("plan".to_string(), json!("gold")),
                ("seats".to_string(), json!(3)),
                ("timezone".to_string(), json!("Europe/Paris")),
            ])
        );
        // A time zone the caller set itself wins over the browser's.
        let body = br#"{"type":"track","userId":"u1","event":"Viewed","messageId":"m2",
            "context":{"timezone":"Europe/Paris","traits":{"timezone":"Asia/Tokyo"}}}"#;
        let i = interpret("segment", "track", body, 0).unwrap();
        assert_eq!(i.traits.get("timezone"), Some(&json!("Asia/Tokyo")));
    }

    #[test]
    fn segment_page_with_utm_gives_a_page_view_and_an_ad_click() {
        let body = br#"{"type":"page","anonymousId":"a1","messageId":"m1","timestamp":"2026-01-01T00:00:00Z",
            "name":"Pricing","context":{"page":{"url":"https://shop.test/pricing?gclid=xyz","path":"/pricing"},
            "campaign":{"source":"google","medium":"cpc","name":"spring"}}}"#;
        let i = interpret("segment", "page", body, 0).unwrap();
        assert_eq!(
            i.identifiers,
            vec![("anonymous_id".to_string(), "a1".to_string())]
        );
        assert_eq!(i.entries.len(), 2);
        assert_eq!(i.entries[0].kind, "page_view");
        assert_eq!(i.entries[0].summary, "Viewed Pricing");
        assert_eq!(i.entries[1].kind, "ad_click");
        assert!(
            i.entries[1].summary.contains("Google ad"),
            "{}",
            i.entries[1].summary
        );
        assert!(i.signal.is_page && i.signal.ad_click);
        assert_eq!(i.signal.utm_medium.as_deref(), Some("cpc"));
    }

    #[test]
    fn segment_order_completed_is_a_purchase_in_cents() {
        let body = br#"{"type":"track","userId":"u1","event":"Order Completed","messageId":"m2",
            "properties":{"revenue":149.9,"currency":"USD"},"context":{"traits":{"email":"A@B.co","name":"Ann Lee"}}}"#;
        let i = interpret("segment", "track", body, 0).unwrap();
        let e = &i.entries[0];
        assert_eq!(
            (e.kind, e.revenue_cents, e.is_order),
            ("purchase", 14990, true)
        );
        assert!(i.signal.purchase);
        assert_eq!(
            (i.first_name.as_str(), i.last_name.as_str()),
            ("Ann", "Lee")
        );
        assert!(i.identifiers.contains(&("email".into(), "A@B.co".into())));
    }

    #[test]
    fn form_submission_and_partial() {
        let p = br#"{"type":"form_submitted","fields":{"email":"x@y.co","first_name":"Xi","message":"hi"},"session_id":"s1","page_url":"https://l.test/"}"#;
        let i = interpret("form", "form_submitted", p, 5).unwrap();
        assert_eq!(i.entries[0].kind, "form_submit");
        assert!(i.signal.strong);
        assert!(i
            .identifiers
            .contains(&("anonymous_id".into(), "form:s1".into())));
        let p = br#"{"type":"form_started","fields":{"first_name":"Xi"},"session_id":"s1"}"#;
        let i = interpret("form", "form_started", p, 5).unwrap();
        assert_eq!(i.entries[0].kind, "form_started");
        assert!(!i.signal.strong);
    }

    #[test]
    fn money_is_exact_and_refuses_negatives() {
        assert_eq!(money(Some(&json!(19.99))), Some(1999));
        assert_eq!(money(Some(&json!("5"))), Some(500));
        assert_eq!(money(Some(&json!(-1))), None);
        assert_eq!(money(Some(&json!("abc"))), None);
    }

    #[test]
    fn an_identify_reads_context_traits_as_rudderstack_sends_them() {
        // rudder-sdk-python 2.1.9 puts an identify's traits only here.
        let body = br#"{"type":"identify","userId":"u1","messageId":"m1",
            "context":{"traits":{"email":"ann@b.co","name":"Ann Lee","plan":"gold"}}}"#;
        let i = interpret("segment", "identify", body, 0).unwrap();
        assert!(i.identifiers.contains(&("email".into(), "ann@b.co".into())));
        assert_eq!(
            (i.first_name.as_str(), i.last_name.as_str()),
            ("Ann", "Lee")
        );
        assert_eq!(i.traits.get("plan"), Some(&json!("gold")));
        assert_eq!(i.entries[0].data["traits"]["email"], "ann@b.co");
        // Both: the call's own traits win, name by name.
        let body =
            br#"{"type":"identify","userId":"u1","messageId":"m2","traits":{"plan":"silver"},
            "context":{"traits":{"email":"ann@b.co","plan":"gold"}}}"#;
        let i = interpret("segment", "identify", body, 0).unwrap();
        assert_eq!(i.traits.get("plan"), Some(&json!("silver")));
        assert!(i.identifiers.contains(&("email".into(), "ann@b.co".into())));
    }

    #[test]
    fn segment_screen_is_a_page_for_intent_and_a_screen_on_the_timeline() {
        let body = br#"{"type":"screen","userId":"u1","messageId":"m1","name":"Checkout",
            "properties":{"step":2}}"#;
        let i = interpret("segment", "screen", body, 0).unwrap();
        assert_eq!(i.entries[0].kind, "screen_view");
        assert_eq!(i.entries[0].summary, "Viewed the Checkout screen");
        assert_eq!(i.signal.event_type, "page");
        assert!(i.signal.is_page);
    }

    #[test]
    fn segment_group_sets_the_account_on_the_profile_and_keeps_its_traits() {
        let body = br#"{"type":"group","userId":"u1","messageId":"m1","groupId":"acct-9",
            "traits":{"name":"Acme Inc","plan":"pro","employees":40,"address":{"city":"Lyon"},"bad name":1},
            "context":{"traits":{"email":"ann@acme.test"}}}"#;
        let i = interpret("segment", "group", body, 0).unwrap();
        assert_eq!(i.entries[0].kind, "group");
        assert_eq!(i.entries[0].summary, "Belongs to the account Acme Inc");
        assert_eq!(i.signal.event_type, "group");
        assert_eq!(i.traits.get("group_id"), Some(&json!("acct-9")));
        assert_eq!(i.company, "Acme Inc");
        assert_eq!(i.first_name, "", "the account's name is not the person's");
        assert!(i
            .identifiers
            .contains(&("email".into(), "ann@acme.test".into())));
        let g = i.group.expect("group touch");
        assert_eq!(g.group_id, "acct-9");
        assert_eq!(
            g.traits,
            BTreeMap::from([
                ("employees".to_string(), json!(40)),
                ("name".to_string(), json!("Acme Inc")),
                ("plan".to_string(), json!("pro")),
            ])
        );
    }

    #[test]
    fn nul_in_a_stored_payload_is_read_without_it() {
        let body = br#"{"type":"track","userId":"u\u00001","event":"Sign\u0000ed up","messageId":"m\u00001"}"#;
        let i = interpret("segment", "track", body, 0).unwrap();
        assert_eq!(i.entries[0].summary, "Signed up");
        assert_eq!(
            i.identifiers,
            vec![("segment_user_id".to_string(), "u1".to_string())]
        );
    }

    #[test]
    fn unreadable_is_an_error_not_a_panic() {
        assert!(interpret("segment", "track", b"{", 0).is_err());
        assert!(interpret("shopify", "orders/create", b"[]", 0).is_err());
        assert!(interpret("form", "x", b"{\"type\":\"nope\"}", 0).is_err());
        assert!(interpret("elsewhere", "x", b"{}", 0).is_err());
    }
}
