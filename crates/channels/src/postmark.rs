//! Postmark inbound webhooks: the JSON payload. Postmark
//! signs nothing; authentication is basic-auth in the webhook URL, checked by
//! the web layer before this parser runs.

use serde::Deserialize;

use crate::address::{bare_id, id_list, plus_token, split_mailbox};
use crate::{EmailAttachment, InboundEmail, ParseError};

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Payload {
    #[serde(rename = "MessageID")]
    message_id: Option<String>,
    from: Option<String>,
    from_name: Option<String>,
    from_full: Option<Mailbox>,
    to: Option<String>,
    #[serde(default)]
    to_full: Vec<Mailbox>,
    original_recipient: Option<String>,
    subject: Option<String>,
    text_body: Option<String>,
    stripped_text_reply: Option<String>,
    mailbox_hash: Option<String>,
    #[serde(default)]
    headers: Vec<Header>,
    html_body: Option<String>,
    #[serde(default)]
    attachments: Vec<PostmarkAttachment>,
}

/// An attachment; its base64 `Content` is not read.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PostmarkAttachment {
    name: Option<String>,
    content_type: Option<String>,
    content_length: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Mailbox {
    email: Option<String>,
    name: Option<String>,
    mailbox_hash: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Header {
    name: String,
    value: String,
}

fn non_empty(s: Option<&str>) -> Option<&str> {
    s.map(str::trim).filter(|s| !s.is_empty())
}

/// Parses Postmark's inbound JSON.
pub fn parse(body: &[u8]) -> Result<InboundEmail, ParseError> {
    let p: Payload = serde_json::from_slice(body).map_err(|e| ParseError::Malformed {
        format: "Postmark inbound JSON",
        reason: e.to_string(),
    })?;
    let provider_message_id = non_empty(p.message_id.as_deref())
        .ok_or(ParseError::Missing("MessageID"))?
        .to_string();

    let full = p.from_full.as_ref();
    let (parsed_name, parsed_from) = split_mailbox(non_empty(p.from.as_deref()).unwrap_or(""));
    let from = non_empty(full.and_then(|f| f.email.as_deref()))
        .map(str::to_ascii_lowercase)
        .unwrap_or(parsed_from);
    if from.is_empty() {
        return Err(ParseError::Missing("From"));
    }
    let from_name = non_empty(full.and_then(|f| f.name.as_deref()))
        .or(non_empty(p.from_name.as_deref()))
        .map(str::to_string)
        .or(parsed_name);

    // OriginalRecipient is the address Postmark received it for (the
    // plus-address we handed out), To may list several people.
    let to = non_empty(p.original_recipient.as_deref())
        .or(non_empty(
            p.to_full.first().and_then(|m| m.email.as_deref()),
        ))
        .map(str::to_ascii_lowercase)
        .unwrap_or_else(|| split_mailbox(p.to.as_deref().unwrap_or("")).1);

    let header = |name: &str| {
        p.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str())
    };
    let mailbox_hash = non_empty(p.mailbox_hash.as_deref())
        .or(non_empty(
            p.to_full.first().and_then(|m| m.mailbox_hash.as_deref()),
        ))
        .map(str::to_string)
        .or_else(|| plus_token(&to));
    let text = non_empty(p.stripped_text_reply.as_deref())
        .map(str::to_string)
        .or(p.text_body.clone())
        .unwrap_or_default();

    Ok(InboundEmail {
        provider_message_id,
        message_id: header("Message-ID").and_then(bare_id),
        from,
        from_name,
        to,
        subject: p.subject.unwrap_or_default(),
        text,
        in_reply_to: header("In-Reply-To").and_then(bare_id),
        references: header("References").map(id_list).unwrap_or_default(),
        mailbox_hash,
        html: non_empty(p.html_body.as_deref()).map(str::to_string),
        attachments: p
            .attachments
            .iter()
            .map(|a| EmailAttachment {
                name: a.name.clone().unwrap_or_default(),
                content_type: a
                    .content_type
                    .clone()
                    .unwrap_or_else(|| "application/octet-stream".into()),
                size: a.content_length,
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // The fields Postmark documents for its inbound webhook.
    const SAMPLE: &str = r#"{
      "FromName": "Jane Doe",
      "MessageStream": "inbound",
      "From": "jane@example.com",
      "FromFull": {"Email": "Jane@Example.com", "Name": "Jane Doe", "MailboxHash": ""},
      "To": "\"Shop\" <reply+conv42@in.shop.example>",
      "ToFull": [{"Email": "reply+conv42@in.shop.example", "Name": "Shop", "MailboxHash": "conv42"}],
      "Cc": "",
      "OriginalRecipient": "reply+conv42@in.shop.example",
      "Subject": "Re: Your order",
      "MessageID": "73e6d360-66eb-11e1-8e72-a8904824019b",
      "ReplyTo": "",
      "MailboxHash": "conv42",
      "Date": "Fri, 1 Aug 2014 16:45:32 -04:00",
      "TextBody": "Yes please!\n\nOn Mon, Shop wrote:\n> Your order",
      "HtmlBody": "<p>Yes please!</p>",
      "StrippedTextReply": "Yes please!",
      "Tag": "",
      "Headers": [
        {"Name": "X-Spam-Status", "Value": "No"},
        {"Name": "Message-ID", "Value": "<CAF=abc@mail.gmail.com>"},
        {"Name": "In-Reply-To", "Value": "<m1@bos.local>"},
        {"Name": "References", "Value": "<m0@bos.local>\n <m1@bos.local>"}
      ],
      "Attachments": [{"Name": "invoice.pdf", "Content": "JVBERi0=", "ContentType": "application/pdf", "ContentLength": 5}]
    }"#;

    #[test]
    fn parses_sample() {
        let m = parse(SAMPLE.as_bytes()).unwrap();
        assert_eq!(
            m.provider_message_id,
            "73e6d360-66eb-11e1-8e72-a8904824019b"
        );
        assert_eq!(m.message_id.as_deref(), Some("CAF=abc@mail.gmail.com"));
        assert_eq!(m.from, "jane@example.com");
        assert_eq!(m.from_name.as_deref(), Some("Jane Doe"));
        assert_eq!(m.to, "reply+conv42@in.shop.example");
        assert_eq!(m.subject, "Re: Your order");
        assert_eq!(m.text, "Yes please!");
        assert_eq!(m.in_reply_to.as_deref(), Some("m1@bos.local"));
        assert_eq!(m.references, vec!["m0@bos.local", "m1@bos.local"]);
        assert_eq!(m.mailbox_hash.as_deref(), Some("conv42"));
        assert_eq!(m.html.as_deref(), Some("<p>Yes please!</p>"));
        assert_eq!(
            m.attachments,
            vec![EmailAttachment {
                name: "invoice.pdf".into(),
                content_type: "application/pdf".into(),
                size: Some(5),
            }]
        );
    }

    #[test]
    fn falls_back_without_optional_fields() {
        let m = parse(
            br#"{"MessageID":"x1","From":"Bob <BOB@x.org>","To":"shop@in.example","TextBody":"hi"}"#,
        )
        .unwrap();
        assert_eq!(m.from, "bob@x.org");
        assert_eq!(m.from_name.as_deref(), Some("Bob"));
        assert_eq!(m.to, "shop@in.example");
        assert_eq!(m.text, "hi");
        assert_eq!(m.message_id, None);
        assert!(m.references.is_empty());
        assert_eq!(m.mailbox_hash, None);
    }

    #[test]
    fn errors() {
        assert!(matches!(
            parse(b"not json"),
            Err(ParseError::Malformed { .. })
        ));
        assert_eq!(
            parse(br#"{"From":"a@b"}"#),
            Err(ParseError::Missing("MessageID"))
        );
        assert_eq!(
            parse(br#"{"MessageID":"x"}"#),
            Err(ParseError::Missing("From"))
        );
        assert!(matches!(
            parse(br#"{"MessageID":5}"#),
            Err(ParseError::Malformed { .. })
        ));
    }

    proptest! {
        #[test]
        fn never_panics(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse(&body);
        }

        #[test]
        fn never_panics_on_jsonish(from in ".{0,30}", hdr in ".{0,30}", to in ".{0,30}") {
            let body = serde_json::json!({"MessageID": "x", "From": from, "To": to,
                "Headers": [{"Name": "References", "Value": hdr}, {"Name": "Message-ID", "Value": hdr}]});
            let _ = parse(body.to_string().as_bytes());
        }
    }
}
