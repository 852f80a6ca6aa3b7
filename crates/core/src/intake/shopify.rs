//! Shopify webhooks: the `X-Shopify-Hmac-Sha256` check over
//! the raw body (several secrets, because Shopify keeps signing with the old
//! one for up to an hour after a rotation), the topics BOS subscribes to, the
//! dedupe key, and typed payloads for checkouts, carts, orders and customers.
//!
//! Payloads are the REST resources. Only what intake needs is kept: identity
//! (customer id, email, phones including the billing and shipping address
//! phones, names), money in integer minor units of the payload's currency,
//! the tokens that tie carts, checkouts and orders together, and timestamps
//! as Millis. Unknown fields are ignored, so a newer API version still parses.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

use super::{currency_exponent, parse_minor_units, parse_rfc3339_millis, MoneyError};
use crate::Millis;

type HmacSha256 = Hmac<Sha256>;

/// Why a delivery's signature was refused (401 at the edge).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("missing header X-Shopify-Hmac-Sha256")]
    MissingHmac,
    #[error("X-Shopify-Hmac-Sha256 is not the base64 of a 32-byte HMAC")]
    MalformedHmac,
    #[error("X-Shopify-Hmac-Sha256 matches none of the app's secrets")]
    Mismatch,
}

/// Why a verified delivery could not be read (400 at the edge, kept for audit).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("unsupported Shopify topic {0:?}; BOS takes checkouts/create|update, carts/create|update, orders/create|paid, customers/create")]
    UnknownTopic(String),
    #[error("neither X-Shopify-Event-Id nor X-Shopify-Webhook-Id is present, so the delivery cannot be deduplicated")]
    MissingDeliveryId,
    #[error("the body is not the expected JSON: {0}")]
    Json(String),
    #[error("the payload has no {0}")]
    MissingField(&'static str),
    #[error("{field}: {source}")]
    Money {
        field: &'static str,
        source: MoneyError,
    },
    #[error("{0} is not an RFC 3339 timestamp")]
    Timestamp(&'static str),
}

/// `base64(HMAC-SHA256(secret, body))`: the header value Shopify sends.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    STANDARD.encode(mac(secret, body).finalize().into_bytes())
}

fn mac(secret: &[u8], body: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length; the fallback only keeps this total.
    let mut m = <HmacSha256 as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| <HmacSha256 as Mac>::new_from_slice(&[]).expect("empty key"));
    m.update(body);
    m
}

/// Checks the header against each secret in constant time. Pass the current
/// secret and, during a rotation, the previous one.
pub fn verify(secrets: &[&[u8]], header: Option<&str>, body: &[u8]) -> Result<(), VerifyError> {
    let header = header.ok_or(VerifyError::MissingHmac)?;
    let tag = STANDARD
        .decode(header.trim())
        .map_err(|_| VerifyError::MalformedHmac)?;
    if tag.len() != 32 {
        return Err(VerifyError::MalformedHmac);
    }
    if secrets
        .iter()
        .any(|s| mac(s, body).verify_slice(&tag).is_ok())
    {
        Ok(())
    } else {
        Err(VerifyError::Mismatch)
    }
}

/// The `X-Shopify-Topic` values BOS subscribes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Topic {
    CheckoutsCreate,
    CheckoutsUpdate,
    CartsCreate,
    CartsUpdate,
    OrdersCreate,
    OrdersPaid,
    CustomersCreate,
}

impl Topic {
    pub const ALL: [Topic; 7] = [
        Topic::CheckoutsCreate,
        Topic::CheckoutsUpdate,
        Topic::CartsCreate,
        Topic::CartsUpdate,
        Topic::OrdersCreate,
        Topic::OrdersPaid,
        Topic::CustomersCreate,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Topic::CheckoutsCreate => "checkouts/create",
            Topic::CheckoutsUpdate => "checkouts/update",
            Topic::CartsCreate => "carts/create",
            Topic::CartsUpdate => "carts/update",
            Topic::OrdersCreate => "orders/create",
            Topic::OrdersPaid => "orders/paid",
            Topic::CustomersCreate => "customers/create",
        }
    }

    pub fn parse(s: &str) -> Result<Topic, ParseError> {
        Topic::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| ParseError::UnknownTopic(s.chars().take(64).collect()))
    }
}

/// The dedupe key within one shop (the store adds tenant and provider):
/// `topic|event:<X-Shopify-Event-Id>`, or `topic|webhook:<X-Shopify-Webhook-Id>`
/// when the event id is absent. Event-Id is shared by every delivery from one
/// merchant action (Shopify's duplicates guide); the prefixes keep the two
/// id spaces from colliding. Empty values count as absent.
pub fn dedupe_key(
    topic: Topic,
    event_id: Option<&str>,
    webhook_id: Option<&str>,
) -> Result<String, ParseError> {
    fn present(v: Option<&str>) -> Option<&str> {
        v.map(str::trim).filter(|v| !v.is_empty())
    }
    if let Some(e) = present(event_id) {
        Ok(format!("{}|event:{e}", topic.as_str()))
    } else if let Some(w) = present(webhook_id) {
        Ok(format!("{}|webhook:{w}", topic.as_str()))
    } else {
        Err(ParseError::MissingDeliveryId)
    }
}

/// Who a payload is about. Every field may be missing or redacted (protected
/// customer data), so all are optional; empty strings become `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    pub customer_id: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub billing_phone: Option<String>,
    pub shipping_phone: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineItem {
    pub product_id: Option<String>,
    pub variant_id: Option<String>,
    pub sku: Option<String>,
    pub title: Option<String>,
    pub quantity: u32,
    /// Unit price in minor units of the payload's currency.
    pub price_minor: Option<i64>,
}

/// Sum of quantities across lines (what "3 items in your cart" means).
pub fn item_count(lines: &[LineItem]) -> u64 {
    lines.iter().map(|l| u64::from(l.quantity)).sum()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkout {
    pub id: String,
    pub token: Option<String>,
    pub cart_token: Option<String>,
    pub identity: Identity,
    pub currency: Option<String>,
    pub total_price_minor: Option<i64>,
    pub subtotal_price_minor: Option<i64>,
    pub line_items: Vec<LineItem>,
    pub abandoned_checkout_url: Option<String>,
    /// `None` until an order exists; "abandoned" is this staying `None`.
    pub completed_at: Option<Millis>,
    pub created_at: Option<Millis>,
    pub updated_at: Option<Millis>,
}

/// A cart carries no identity; it links to a checkout via `cart_token`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cart {
    /// The cart token (Shopify's `id` for carts).
    pub id: String,
    pub token: Option<String>,
    pub line_items: Vec<LineItem>,
    pub note: Option<String>,
    pub created_at: Option<Millis>,
    pub updated_at: Option<Millis>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    pub id: String,
    /// "#1001".
    pub name: Option<String>,
    pub order_number: Option<u64>,
    /// `email`, else `contact_email`.
    pub identity: Identity,
    pub currency: Option<String>,
    pub total_price_minor: Option<i64>,
    pub financial_status: Option<String>,
    pub checkout_token: Option<String>,
    pub cart_token: Option<String>,
    pub line_items: Vec<LineItem>,
    pub created_at: Option<Millis>,
    pub processed_at: Option<Millis>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Customer {
    pub identity: Identity,
    /// `email_marketing_consent.state` ("subscribed", "not_subscribed", ...).
    pub email_marketing: Option<String>,
    /// `sms_marketing_consent.state`.
    pub sms_marketing: Option<String>,
    pub created_at: Option<Millis>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Checkout(Checkout),
    Cart(Cart),
    Order(Order),
    Customer(Customer),
}

/// Parses a verified body for `topic`.
pub fn parse(topic: Topic, body: &[u8]) -> Result<Event, ParseError> {
    match topic {
        Topic::CheckoutsCreate | Topic::CheckoutsUpdate => {
            let w: CheckoutWire = json(body)?;
            let exp = exponent(&w.currency);
            Ok(Event::Checkout(Checkout {
                id: w.id.ok_or(ParseError::MissingField("id"))?.0,
                token: clean(w.token),
                cart_token: clean(w.cart_token),
                identity: identity(
                    w.email,
                    w.phone,
                    w.customer,
                    w.billing_address,
                    w.shipping_address,
                ),
                total_price_minor: money("total_price", w.total_price, exp)?,
                subtotal_price_minor: money("subtotal_price", w.subtotal_price, exp)?,
                currency: clean(w.currency),
                line_items: lines(w.line_items, exp)?,
                abandoned_checkout_url: clean(w.abandoned_checkout_url),
                completed_at: ts("completed_at", w.completed_at)?,
                created_at: ts("created_at", w.created_at)?,
                updated_at: ts("updated_at", w.updated_at)?,
            }))
        }
        Topic::CartsCreate | Topic::CartsUpdate => {
            let w: CartWire = json(body)?;
            // Cart payloads carry no currency; their prices are in the shop's
            // currency, read here with the common two decimal places.
            let exp = exponent(&w.currency);
            let id =
                w.id.map(|i| i.0)
                    .or_else(|| w.token.clone())
                    .filter(|s| !s.is_empty())
                    .ok_or(ParseError::MissingField("id"))?;
            Ok(Event::Cart(Cart {
                id,
                token: clean(w.token),
                line_items: lines(w.line_items, exp)?,
                note: clean(w.note),
                created_at: ts("created_at", w.created_at)?,
                updated_at: ts("updated_at", w.updated_at)?,
            }))
        }
        Topic::OrdersCreate | Topic::OrdersPaid => {
            let w: OrderWire = json(body)?;
            let exp = exponent(&w.currency);
            let email = clean(w.email).or(w.contact_email);
            Ok(Event::Order(Order {
                id: w.id.ok_or(ParseError::MissingField("id"))?.0,
                name: clean(w.name),
                order_number: w.order_number,
                identity: identity(
                    email,
                    w.phone,
                    w.customer,
                    w.billing_address,
                    w.shipping_address,
                ),
                total_price_minor: money("total_price", w.total_price, exp)?,
                currency: clean(w.currency),
                financial_status: clean(w.financial_status),
                checkout_token: clean(w.checkout_token),
                cart_token: clean(w.cart_token),
                line_items: lines(w.line_items, exp)?,
                created_at: ts("created_at", w.created_at)?,
                processed_at: ts("processed_at", w.processed_at)?,
            }))
        }
        Topic::CustomersCreate => {
            let w: CustomerWire = json(body)?;
            let id = w.id.clone().ok_or(ParseError::MissingField("id"))?;
            let created_at = ts("created_at", w.created_at.clone())?;
            let email_marketing = w
                .email_marketing_consent
                .as_ref()
                .and_then(|c| c.state.clone());
            let sms_marketing = w
                .sms_marketing_consent
                .as_ref()
                .and_then(|c| c.state.clone());
            let mut identity = identity(None, None, Some(w), None, None);
            identity.customer_id = Some(id.0);
            Ok(Event::Customer(Customer {
                identity,
                email_marketing: clean(email_marketing),
                sms_marketing: clean(sms_marketing),
                created_at,
            }))
        }
    }
}

fn json<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, ParseError> {
    serde_json::from_slice(body).map_err(|e| ParseError::Json(e.to_string()))
}

fn clean(s: Option<String>) -> Option<String> {
    s.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

fn exponent(currency: &Option<String>) -> u32 {
    currency.as_deref().map_or(2, currency_exponent)
}

fn money(field: &'static str, v: Option<String>, exp: u32) -> Result<Option<i64>, ParseError> {
    v.map(|s| parse_minor_units(&s, exp).map_err(|source| ParseError::Money { field, source }))
        .transpose()
}

fn ts(field: &'static str, v: Option<String>) -> Result<Option<Millis>, ParseError> {
    v.map(|s| parse_rfc3339_millis(&s).ok_or(ParseError::Timestamp(field)))
        .transpose()
}

fn lines(v: Option<Vec<LineItemWire>>, exp: u32) -> Result<Vec<LineItem>, ParseError> {
    v.unwrap_or_default()
        .into_iter()
        .map(|l| {
            Ok(LineItem {
                product_id: l.product_id.map(|i| i.0),
                variant_id: l.variant_id.map(|i| i.0),
                sku: clean(l.sku),
                title: clean(l.title),
                quantity: l.quantity.unwrap_or(0),
                price_minor: money("line_items.price", l.price, exp)?,
            })
        })
        .collect()
}

fn identity(
    email: Option<String>,
    phone: Option<String>,
    customer: Option<CustomerWire>,
    billing: Option<AddressWire>,
    shipping: Option<AddressWire>,
) -> Identity {
    let c = customer.unwrap_or_default();
    let (b, s) = (billing.unwrap_or_default(), shipping.unwrap_or_default());
    Identity {
        customer_id: c.id.map(|i| i.0),
        email: clean(email).or(clean(c.email)),
        phone: clean(phone).or(clean(c.phone)),
        billing_phone: clean(b.phone),
        shipping_phone: clean(s.phone),
        first_name: clean(c.first_name)
            .or(clean(b.first_name))
            .or(clean(s.first_name)),
        last_name: clean(c.last_name)
            .or(clean(b.last_name))
            .or(clean(s.last_name)),
    }
}

/// Shopify ids are JSON numbers in REST payloads and strings elsewhere (cart
/// tokens, GraphQL ids); both become a string.
#[derive(Debug, Clone, Default)]
struct Id(String);

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Id, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            U(u64),
            I(i64),
            S(String),
        }
        Ok(Id(match Raw::deserialize(d)? {
            Raw::U(n) => n.to_string(),
            Raw::I(n) => n.to_string(),
            Raw::S(s) => s,
        }))
    }
}

#[derive(Deserialize, Default)]
struct CustomerWire {
    id: Option<Id>,
    email: Option<String>,
    phone: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    created_at: Option<String>,
    email_marketing_consent: Option<ConsentWire>,
    sms_marketing_consent: Option<ConsentWire>,
}

#[derive(Deserialize)]
struct ConsentWire {
    state: Option<String>,
}

#[derive(Deserialize, Default)]
struct AddressWire {
    phone: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
}

#[derive(Deserialize)]
struct LineItemWire {
    product_id: Option<Id>,
    variant_id: Option<Id>,
    sku: Option<String>,
    title: Option<String>,
    quantity: Option<u32>,
    price: Option<String>,
}

#[derive(Deserialize)]
struct CheckoutWire {
    id: Option<Id>,
    token: Option<String>,
    cart_token: Option<String>,
    email: Option<String>,
    phone: Option<String>,
    customer: Option<CustomerWire>,
    billing_address: Option<AddressWire>,
    shipping_address: Option<AddressWire>,
    total_price: Option<String>,
    subtotal_price: Option<String>,
    currency: Option<String>,
    line_items: Option<Vec<LineItemWire>>,
    abandoned_checkout_url: Option<String>,
    completed_at: Option<String>,
    created_at: Option<String>,
    updated_at: Option<String>,
}

#[derive(Deserialize)]
struct CartWire {
    id: Option<Id>,
    token: Option<String>,
    currency: Option<String>,
    line_items: Option<Vec<LineItemWire>>,
    note: Option<String>,
    created_at: Option<String>,
    updated_at: Option<String>,
}

#[derive(Deserialize)]
struct OrderWire {
    id: Option<Id>,
    name: Option<String>,
    order_number: Option<u64>,
    email: Option<String>,
    contact_email: Option<String>,
    phone: Option<String>,
    customer: Option<CustomerWire>,
    billing_address: Option<AddressWire>,
    shipping_address: Option<AddressWire>,
    total_price: Option<String>,
    currency: Option<String>,
    financial_status: Option<String>,
    checkout_token: Option<String>,
    cart_token: Option<String>,
    line_items: Option<Vec<LineItemWire>>,
    created_at: Option<String>,
    processed_at: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const CHECKOUT: &str = r#"{
      "id": 35227326660789,
      "token": "0c8e5b0d3a2f4b8e9c1d7a6f5e4d3c2b",
      "cart_token": "Z2NwLXVzLWVhc3QxOjAxSE",
      "email": "jane@example.com",
      "gateway": null,
      "buyer_accepts_marketing": false,
      "created_at": "2024-03-05T10:12:33-05:00",
      "updated_at": "2024-03-05T10:14:01-05:00",
      "landing_site": "/?utm_source=google",
      "note": null,
      "currency": "USD",
      "presentment_currency": "USD",
      "completed_at": null,
      "phone": null,
      "subtotal_price": "39.98",
      "total_tax": "3.20",
      "total_price": "43.18",
      "total_discounts": "0.00",
      "line_items": [
        {"product_id": 7513594, "variant_id": 42147, "sku": "TEE-M", "title": "Tee", "quantity": 2, "price": "19.99", "vendor": "Acme"},
        {"product_id": null, "variant_id": null, "sku": "", "title": "Gift wrap", "quantity": 1, "price": "0.00"}
      ],
      "billing_address": {"first_name": "Jane", "last_name": "Doe", "phone": "+1 555 010 0001", "city": "Ottawa"},
      "shipping_address": {"first_name": "Jane", "last_name": "Doe", "phone": "555-010-0002"},
      "customer": {"id": 6206, "email": "jane@example.com", "phone": "+15550100003", "first_name": "Jane", "last_name": "Doe", "tags": ""},
      "abandoned_checkout_url": "https://shop.example.com/123/checkouts/0c8e/recover?key=abc"
    }"#;

    const ORDER: &str = r##"{
      "id": 820982911946154508, "name": "#1001", "order_number": 1001,
      "email": "", "contact_email": "jon@example.com", "phone": "+15550100009",
      "currency": "JPY", "total_price": "1500", "financial_status": "paid",
      "checkout_token": "0c8e5b0d3a2f4b8e9c1d7a6f5e4d3c2b", "cart_token": "Z2NwLXVzLWVhc3QxOjAxSE",
      "customer": {"id": 115310627314723954, "email": "jon@example.com", "first_name": "Jon", "last_name": null},
      "line_items": [{"product_id": 632910392, "variant_id": 808950810, "sku": "IPOD", "title": "IPod", "quantity": 1, "price": "1500"}],
      "created_at": "2024-03-05T10:20:00-05:00", "processed_at": "2024-03-05T10:20:01-05:00"
    }"##;

    const CART: &str = r#"{
      "id": "eeafa272cebfd4b22385bc4b645e762c", "token": "eeafa272cebfd4b22385bc4b645e762c",
      "line_items": [{"id": 704912205188288575, "properties": {}, "quantity": 3, "variant_id": 704912205188288575,
        "key": "704912205188288575:33f11f7a1ec7d93b", "discounted_price": "19.99", "gift_card": false,
        "line_price": "59.97", "price": "19.99", "product_id": 788032119674292922, "sku": "", "title": "Example T-Shirt"}],
      "note": null, "updated_at": "2024-03-05T15:00:00.000Z", "created_at": "2024-03-05T15:00:00.000Z"
    }"#;

    const CUSTOMER: &str = r#"{
      "id": 706405506930370084, "email": "bob@example.com", "created_at": "2024-03-05T10:00:00-05:00",
      "first_name": "Bob", "last_name": "Norman", "phone": null, "state": "disabled",
      "email_marketing_consent": {"state": "subscribed", "opt_in_level": "single_opt_in", "consent_updated_at": null},
      "sms_marketing_consent": null
    }"#;

    #[test]
    fn checkout_fixture() {
        let Ok(Event::Checkout(c)) = parse(Topic::CheckoutsUpdate, CHECKOUT.as_bytes()) else {
            panic!("checkout should parse");
        };
        assert_eq!(c.id, "35227326660789");
        assert_eq!(c.token.as_deref(), Some("0c8e5b0d3a2f4b8e9c1d7a6f5e4d3c2b"));
        assert_eq!(c.cart_token.as_deref(), Some("Z2NwLXVzLWVhc3QxOjAxSE"));
        assert_eq!(
            c.identity,
            Identity {
                customer_id: Some("6206".into()),
                email: Some("jane@example.com".into()),
                phone: Some("+15550100003".into()),
                billing_phone: Some("+1 555 010 0001".into()),
                shipping_phone: Some("555-010-0002".into()),
                first_name: Some("Jane".into()),
                last_name: Some("Doe".into()),
            }
        );
        assert_eq!(c.total_price_minor, Some(4318));
        assert_eq!(c.subtotal_price_minor, Some(3998));
        assert_eq!(c.currency.as_deref(), Some("USD"));
        assert_eq!(item_count(&c.line_items), 3);
        assert_eq!(c.line_items[0].price_minor, Some(1999));
        assert_eq!(c.line_items[0].product_id.as_deref(), Some("7513594"));
        assert_eq!(c.line_items[1].sku, None);
        assert_eq!(c.completed_at, None);
        assert_eq!(c.created_at, Some(1_709_651_553_000));
        assert!(c.abandoned_checkout_url.is_some());
    }

    #[test]
    fn order_fixture_uses_contact_email_and_zero_decimal_currency() {
        let Ok(Event::Order(o)) = parse(Topic::OrdersPaid, ORDER.as_bytes()) else {
            panic!("order should parse");
        };
        assert_eq!(o.id, "820982911946154508");
        assert_eq!(o.name.as_deref(), Some("#1001"));
        assert_eq!(o.order_number, Some(1001));
        assert_eq!(o.identity.email.as_deref(), Some("jon@example.com"));
        assert_eq!(
            o.identity.customer_id.as_deref(),
            Some("115310627314723954")
        );
        assert_eq!(o.identity.last_name, None);
        assert_eq!(o.total_price_minor, Some(1500));
        assert_eq!(o.financial_status.as_deref(), Some("paid"));
        assert_eq!(
            o.checkout_token.as_deref(),
            Some("0c8e5b0d3a2f4b8e9c1d7a6f5e4d3c2b")
        );
    }

    #[test]
    fn cart_and_customer_fixtures() {
        let Ok(Event::Cart(c)) = parse(Topic::CartsCreate, CART.as_bytes()) else {
            panic!("cart should parse");
        };
        assert_eq!(c.id, "eeafa272cebfd4b22385bc4b645e762c");
        assert_eq!(item_count(&c.line_items), 3);
        assert_eq!(c.line_items[0].price_minor, Some(1999));
        let Ok(Event::Customer(c)) = parse(Topic::CustomersCreate, CUSTOMER.as_bytes()) else {
            panic!("customer should parse");
        };
        assert_eq!(
            c.identity.customer_id.as_deref(),
            Some("706405506930370084")
        );
        assert_eq!(c.identity.email.as_deref(), Some("bob@example.com"));
        assert_eq!(c.identity.phone, None);
        assert_eq!(c.email_marketing.as_deref(), Some("subscribed"));
        assert_eq!(c.sms_marketing, None);
    }

    #[test]
    fn bad_payloads_name_the_problem() {
        assert!(matches!(
            parse(Topic::OrdersCreate, b"not json"),
            Err(ParseError::Json(_))
        ));
        assert_eq!(
            parse(Topic::OrdersCreate, br##"{"name":"#1"}"##),
            Err(ParseError::MissingField("id"))
        );
        assert!(matches!(
            parse(Topic::CheckoutsCreate, br#"{"id":1,"total_price":"12.3x"}"#),
            Err(ParseError::Money {
                field: "total_price",
                ..
            })
        ));
        // Money as a JSON number would have gone through f64: refused.
        assert!(matches!(
            parse(Topic::CheckoutsCreate, br#"{"id":1,"total_price":12.3}"#),
            Err(ParseError::Json(_))
        ));
        assert_eq!(
            parse(Topic::CheckoutsCreate, br#"{"id":1,"created_at":"monday"}"#),
            Err(ParseError::Timestamp("created_at"))
        );
    }

    #[test]
    fn topics_and_dedupe() {
        for t in Topic::ALL {
            assert_eq!(Topic::parse(t.as_str()), Ok(t));
        }
        assert_eq!(
            Topic::parse("orders/delete"),
            Err(ParseError::UnknownTopic("orders/delete".into()))
        );
        let t = Topic::OrdersPaid;
        assert_eq!(
            dedupe_key(t, Some("e1"), Some("w1")).as_deref(),
            Ok("orders/paid|event:e1")
        );
        assert_eq!(
            dedupe_key(t, Some(" "), Some("w1")).as_deref(),
            Ok("orders/paid|webhook:w1")
        );
        assert_eq!(
            dedupe_key(t, None, None),
            Err(ParseError::MissingDeliveryId)
        );
    }

    #[test]
    fn verify_accepts_old_and_new_secret() {
        let body = CHECKOUT.as_bytes();
        let h = sign(b"old", body);
        assert_eq!(verify(&[b"new", b"old"], Some(&h), body), Ok(()));
        assert_eq!(
            verify(&[b"new"], Some(&h), body),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(verify(&[b"new"], None, body), Err(VerifyError::MissingHmac));
        assert_eq!(
            verify(&[b"new"], Some("AAAA"), body),
            Err(VerifyError::MalformedHmac)
        );
        // Re-serialised JSON is different bytes: refused, 401, nothing stored.
        let reser =
            serde_json::to_vec(&serde_json::from_str::<serde_json::Value>(CHECKOUT).expect("json"))
                .expect("json");
        assert_eq!(
            verify(&[b"old"], Some(&h), &reser),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn known_vector() {
        // HMAC-SHA256("key", "The quick brown fox jumps over the lazy dog"), base64.
        assert_eq!(
            sign(b"key", b"The quick brown fox jumps over the lazy dog"),
            "97yD9DBThCSxMpjmqm+xQ+9NWaFJRhdZl0edvC0aPNg="
        );
    }

    proptest! {
        #[test]
        fn round_trip_and_flips(
            key in proptest::collection::vec(any::<u8>(), 1..64),
            body in proptest::collection::vec(any::<u8>(), 1..512),
            which in 0usize..3,
            pos in any::<proptest::sample::Index>(),
            bit in 0u8..8,
        ) {
            let h = sign(&key, &body);
            prop_assert_eq!(verify(&[&key], Some(&h), &body), Ok(()));
            let (mut key2, mut body2) = (key.clone(), body.clone());
            let mut tag = STANDARD.decode(&h).expect("own output");
            match which {
                0 => { let i = pos.index(body2.len()); body2[i] ^= 1 << bit; }
                1 => { let i = pos.index(tag.len()); tag[i] ^= 1 << bit; }
                _ => { let i = pos.index(key2.len()); key2[i] ^= 1 << bit; }
            }
            prop_assert_eq!(
                verify(&[&key2], Some(&STANDARD.encode(&tag)), &body2),
                Err(VerifyError::Mismatch)
            );
        }
    }
}
