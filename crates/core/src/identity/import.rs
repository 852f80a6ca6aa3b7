//! Mapping a contacts file onto identities, as pure functions:
//! which column means what (by header name, forgiving about case, spaces,
//! dashes and common aliases), and what one row yields — its normalized
//! identifiers and profile traits, or a rejection that says why, with the
//! line number a person can find in the file.
//!
//! Nothing here reads files or touches storage: the binary parses the CSV
//! and the store resolves the rows through the same rules as streaming
//! events. Invalid values are never guessed at (a wrong guess glues two
//! people together); a row keeps its valid identifiers and reports the
//! invalid ones as warnings, and is rejected only when none is left.

use super::kind::{Identifier, IdentifierKind};
use super::normalize::normalize;
use super::rules::IdentityRules;
use serde::{Deserialize, Serialize};
use std::fmt;

/// What a column of the file holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    Identifier(IdentifierKind),
    FirstName,
    LastName,
    /// A whole name ("Ada Lovelace"), used when first and last are not given.
    FullName,
    Company,
}

/// Accepted header names per field. Matching ignores case, spaces, dashes,
/// underscores and dots, so `E-mail`, `Email Address` and `email_address`
/// are all the e-mail column.
const ALIASES: &[(Field, &[&str])] = &[
    (
        Field::Identifier(IdentifierKind::Email),
        &["email", "e-mail", "email_address", "e-mail address", "mail"],
    ),
    (
        Field::Identifier(IdentifierKind::Phone),
        &[
            "phone",
            "phone_number",
            "mobile",
            "mobile_phone",
            "mobile_number",
            "cell",
            "cell_phone",
            "telephone",
        ],
    ),
    (
        Field::FirstName,
        &["first_name", "firstname", "given_name", "first"],
    ),
    (
        Field::LastName,
        &["last_name", "lastname", "surname", "family_name", "last"],
    ),
    (Field::FullName, &["name", "full_name", "contact_name"]),
    (
        Field::Company,
        &["company", "company_name", "organization", "organisation"],
    ),
    (
        Field::Identifier(IdentifierKind::ShopifyCustomerId),
        &["shopify_customer_id", "shopify_id", "shopify_customer"],
    ),
    (
        Field::Identifier(IdentifierKind::InstagramId),
        &["instagram_id", "igsid"],
    ),
    (
        Field::Identifier(IdentifierKind::FacebookPsid),
        &["facebook_psid", "psid"],
    ),
    (
        Field::Identifier(IdentifierKind::SegmentUserId),
        &["segment_user_id", "user_id"],
    ),
    (
        Field::Identifier(IdentifierKind::AnonymousId),
        &["anonymous_id"],
    ),
];

/// The comparable form of a header: lowercase, without a byte-order mark,
/// spaces, dashes, underscores or dots.
fn squash(h: &str) -> String {
    h.chars()
        .filter(|c| !matches!(c, '\u{feff}' | ' ' | '-' | '_' | '.' | '\t'))
        .flat_map(char::to_lowercase)
        .collect()
}

/// The accepted identifier headers, for error messages.
pub fn accepted_identifier_headers() -> String {
    ALIASES
        .iter()
        .filter(|(f, _)| matches!(f, Field::Identifier(_)))
        .map(|(_, names)| names.join("/"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("the file has no header row")]
    Empty,
    #[error(
        "no identifier column among the headers ({found}): name at least one column {accepted} \
         (case, spaces and dashes do not matter)"
    )]
    NoIdentifier { found: String, accepted: String },
}

/// The columns of a file, mapped by header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HeaderMap {
    /// `columns[i]` is what column `i` holds, or `None` when it is ignored.
    pub columns: Vec<Option<Field>>,
    /// Headers that name nothing known; their columns are ignored.
    pub unknown: Vec<String>,
}

impl HeaderMap {
    /// Maps header names to fields. Unknown headers are listed, not an
    /// error; a file without any identifier column is.
    pub fn new<S: AsRef<str>>(headers: &[S]) -> Result<HeaderMap, HeaderError> {
        if headers.iter().all(|h| h.as_ref().trim().is_empty()) {
            return Err(HeaderError::Empty);
        }
        let mut columns = Vec::with_capacity(headers.len());
        let mut unknown = Vec::new();
        for h in headers {
            let s = squash(h.as_ref());
            let field = ALIASES
                .iter()
                .find(|(_, names)| names.iter().any(|n| squash(n) == s))
                .map(|(f, _)| f.clone());
            if field.is_none() {
                unknown.push(h.as_ref().trim().to_string());
            }
            columns.push(field);
        }
        if !columns
            .iter()
            .any(|c| matches!(c, Some(Field::Identifier(_))))
        {
            return Err(HeaderError::NoIdentifier {
                found: headers
                    .iter()
                    .map(|h| h.as_ref().trim())
                    .collect::<Vec<_>>()
                    .join(", "),
                accepted: accepted_identifier_headers(),
            });
        }
        Ok(HeaderMap { columns, unknown })
    }

    /// The identifier kinds the file carries, in column order.
    pub fn identifier_kinds(&self) -> Vec<&IdentifierKind> {
        self.columns
            .iter()
            .filter_map(|c| match c {
                Some(Field::Identifier(k)) => Some(k),
                _ => None,
            })
            .collect()
    }

    /// Maps one data row. `line` is the row's line number in the file (for
    /// messages); `region` comes from the organization's rules, which also
    /// say which values are blocklisted.
    pub fn map_row<S: AsRef<str>>(
        &self,
        line: u64,
        fields: &[S],
        rules: &IdentityRules,
    ) -> Result<MappedRow, Rejection> {
        let reject = |reason: String| Rejection { line, reason };
        if fields.len() > self.columns.len() {
            // More cells than headers almost always means a comma inside an
            // unquoted value: every later cell would be in the wrong column.
            return Err(reject(format!(
                "{} cells, but the header has {} (a comma inside an unquoted value?)",
                fields.len(),
                self.columns.len()
            )));
        }
        let mut row = MappedRow {
            line,
            identifiers: Vec::new(),
            first_name: String::new(),
            last_name: String::new(),
            company: String::new(),
            warnings: Vec::new(),
        };
        let mut full_name = String::new();
        let mut invalid: Vec<String> = Vec::new();
        let mut blocked: Vec<String> = Vec::new();
        // Missing trailing cells are empty: some tools drop trailing commas.
        for (cell, col) in fields.iter().zip(&self.columns) {
            let v = cell.as_ref().trim();
            let Some(col) = col else { continue };
            if v.is_empty() {
                continue;
            }
            match col {
                Field::Identifier(kind) => match normalize(kind, v, &rules.default_region) {
                    Ok(id) if rules.blocked(&id) => blocked.push(format!(
                        "{kind} '{}' is on the organization's blocklist",
                        id.value
                    )),
                    Ok(id) => {
                        if !row.identifiers.contains(&id) {
                            row.identifiers.push(id);
                        }
                    }
                    Err(e) => invalid.push(e.0),
                },
                Field::FirstName => {
                    set_trait(&mut row.first_name, v, "first name", &mut row.warnings)
                }
                Field::LastName => set_trait(&mut row.last_name, v, "last name", &mut row.warnings),
                Field::FullName => set_trait(&mut full_name, v, "name", &mut row.warnings),
                Field::Company => set_trait(&mut row.company, v, "company", &mut row.warnings),
            }
        }
        if row.first_name.is_empty() && row.last_name.is_empty() && !full_name.is_empty() {
            let (first, last) = full_name.split_once(' ').unwrap_or((&full_name, ""));
            row.first_name = first.trim().to_string();
            row.last_name = last.trim().to_string();
        }
        let problems: Vec<String> = invalid.into_iter().chain(blocked).collect();
        if row.identifiers.is_empty() {
            return Err(reject(if problems.is_empty() {
                "no identifier: every identifier cell is empty".to_string()
            } else {
                format!("{}; no other identifier", problems.join("; "))
            }));
        }
        row.warnings.extend(problems);
        Ok(row)
    }
}

/// Longest name or company kept; longer text is a broken row, not a name.
const MAX_TRAIT_CHARS: usize = 200;

fn set_trait(slot: &mut String, v: &str, what: &str, warnings: &mut Vec<String>) {
    if v.chars().any(char::is_control) {
        warnings.push(format!("{what} contains control characters; ignored"));
    } else if v.chars().count() > MAX_TRAIT_CHARS {
        warnings.push(format!(
            "{what} is longer than {MAX_TRAIT_CHARS} characters; ignored"
        ));
    } else if slot.is_empty() {
        *slot = v.to_string();
    }
}

/// One row's contribution: normalized identifiers (at least one, none
/// blocklisted, no duplicates) and traits (trimmed; empty when not given).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MappedRow {
    pub line: u64,
    pub identifiers: Vec<Identifier>,
    pub first_name: String,
    pub last_name: String,
    pub company: String,
    /// Values left out of an otherwise good row (an invalid phone next to a
    /// valid e-mail), as "phone '12' is not a phone number …".
    pub warnings: Vec<String>,
}

/// A row that cannot be imported, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    pub line: u64,
    pub reason: String,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use IdentifierKind::*;

    fn rules() -> IdentityRules {
        IdentityRules::default()
    }

    #[test]
    fn headers_map_by_name_and_alias() {
        let h = HeaderMap::new(&[
            "E-Mail",
            " Phone Number ",
            "FirstName",
            "surname",
            "Organization",
            "IGSID",
            "psid",
            "user_id",
            "Anonymous-ID",
            "Shopify Customer ID",
            "favourite colour",
        ])
        .unwrap();
        assert_eq!(
            h.columns,
            vec![
                Some(Field::Identifier(Email)),
                Some(Field::Identifier(Phone)),
                Some(Field::FirstName),
                Some(Field::LastName),
                Some(Field::Company),
                Some(Field::Identifier(InstagramId)),
                Some(Field::Identifier(FacebookPsid)),
                Some(Field::Identifier(SegmentUserId)),
                Some(Field::Identifier(AnonymousId)),
                Some(Field::Identifier(ShopifyCustomerId)),
                None,
            ]
        );
        assert_eq!(h.unknown, vec!["favourite colour".to_string()]);
        for alias in ["email_address", "EMAIL", "\u{feff}email", "e-mail address"] {
            assert_eq!(
                HeaderMap::new(&[alias]).unwrap().columns,
                vec![Some(Field::Identifier(Email))],
                "{alias}"
            );
        }
        for alias in ["mobile", "Cell", "phone_number", "phone"] {
            assert_eq!(
                HeaderMap::new(&[alias]).unwrap().identifier_kinds(),
                vec![&Phone]
            );
        }
    }

    #[test]
    fn no_identifier_column_is_an_error_naming_the_accepted_headers() {
        let e = HeaderMap::new(&["first_name", "city"]).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("first_name, city"), "{msg}");
        assert!(msg.contains("email/e-mail"), "{msg}");
        assert!(msg.contains("phone/phone_number/mobile"), "{msg}");
        assert!(msg.contains("igsid"), "{msg}");
        assert_eq!(HeaderMap::new(&[""]).unwrap_err(), HeaderError::Empty);
        assert_eq!(HeaderMap::new::<&str>(&[]).unwrap_err(), HeaderError::Empty);
    }

    #[test]
    fn a_row_yields_normalized_identifiers_and_traits() {
        let h = HeaderMap::new(&["email", "phone", "first_name", "last_name", "company"]).unwrap();
        let r = h
            .map_row(
                2,
                &[
                    " Ada@Example.COM ",
                    "(415) 555-2671",
                    " Ada ",
                    "Lovelace",
                    "Analytical",
                ],
                &rules(),
            )
            .unwrap();
        assert_eq!(
            r.identifiers,
            vec![
                Identifier::new(Email, "ada@example.com"),
                Identifier::new(Phone, "+14155552671")
            ]
        );
        assert_eq!(
            (
                r.first_name.as_str(),
                r.last_name.as_str(),
                r.company.as_str()
            ),
            ("Ada", "Lovelace", "Analytical")
        );
        assert!(r.warnings.is_empty());
        // The organization's region applies to numbers without a country code.
        let gb = IdentityRules {
            default_region: "GB".into(),
            ..rules()
        };
        let r = h.map_row(3, &["", "020 7946 0958"], &gb).unwrap();
        assert_eq!(r.identifiers, vec![Identifier::new(Phone, "+442079460958")]);
    }

    #[test]
    fn an_invalid_identifier_is_a_warning_when_another_is_valid() {
        let h = HeaderMap::new(&["email", "phone"]).unwrap();
        let r = h.map_row(17, &["ada@example.com", "12"], &rules()).unwrap();
        assert_eq!(r.identifiers.len(), 1);
        assert_eq!(r.warnings.len(), 1);
        assert!(
            r.warnings[0].starts_with("phone '12' is not"),
            "{:?}",
            r.warnings
        );

        let e = h.map_row(17, &["", "12"], &rules()).unwrap_err();
        assert_eq!(e.line, 17);
        let s = e.to_string();
        assert!(
            s.starts_with("line 17: phone '12' is not a phone number")
                && s.ends_with("; no other identifier"),
            "{s}"
        );
        let e = h.map_row(9, &["", " "], &rules()).unwrap_err();
        assert!(e.reason.contains("every identifier cell is empty"), "{e}");
        let e = h.map_row(9, &["test@test.com", ""], &rules()).unwrap_err();
        assert!(e.reason.contains("blocklist"), "{e}");
    }

    #[test]
    fn malformed_rows_and_full_names() {
        let h = HeaderMap::new(&["email", "name"]).unwrap();
        let e = h
            .map_row(4, &["a@x.com", "Ada", "extra"], &rules())
            .unwrap_err();
        assert!(e.reason.contains("3 cells, but the header has 2"), "{e}");
        // Missing trailing cells are empty.
        let r = h.map_row(5, &["a@x.com"], &rules()).unwrap();
        assert_eq!(r.first_name, "");
        let r = h
            .map_row(6, &["a@x.com", "Ada King Lovelace"], &rules())
            .unwrap();
        assert_eq!(
            (r.first_name.as_str(), r.last_name.as_str()),
            ("Ada", "King Lovelace")
        );
        let long = "x".repeat(MAX_TRAIT_CHARS + 1);
        let r = h.map_row(7, &["a@x.com", long.as_str()], &rules()).unwrap();
        assert_eq!(r.first_name, "");
        assert_eq!(r.warnings.len(), 1);
    }

    #[test]
    fn duplicate_identifier_columns_collapse() {
        let h = HeaderMap::new(&["email", "email_address", "phone", "mobile"]).unwrap();
        let r = h
            .map_row(
                2,
                &["a@x.com", "A@X.com", "+14155552671", "+14155552672"],
                &rules(),
            )
            .unwrap();
        assert_eq!(r.identifiers.len(), 3);
    }

    proptest! {
        #[test]
        fn header_matching_ignores_case_spaces_and_dashes(
            canonical in prop::sample::select(vec!["email", "phone_number", "first_name", "family_name", "igsid", "user_id"]),
            upper in prop::collection::vec(any::<bool>(), 16),
            sep in prop::sample::select(vec!["", " ", "-", "_", " - "]),
        ) {
            let varied: String = canonical
                .replace('_', sep)
                .chars()
                .zip(upper.iter().cycle())
                .map(|(c, u)| if *u { c.to_ascii_uppercase() } else { c })
                .collect();
            let a = HeaderMap::new(&[canonical, "email"]).unwrap();
            let b = HeaderMap::new(&[varied.as_str(), "email"]).unwrap();
            prop_assert_eq!(a.columns, b.columns);
        }

        #[test]
        fn any_row_maps_or_is_rejected_without_panicking(
            cells in prop::collection::vec("[ -~\u{e9}\u{feff}\t\n]{0,20}", 0..8),
            line in 2u64..1_000_000,
        ) {
            let h = HeaderMap::new(&["email", "phone", "first_name", "company", "igsid", "name"]).unwrap();
            match h.map_row(line, &cells, &rules()) {
                Ok(r) => {
                    prop_assert!(!r.identifiers.is_empty());
                    for id in &r.identifiers {
                        // Identifiers come out normalized and usable for matching.
                        prop_assert_eq!(&normalize(&id.kind, &id.value, "US").unwrap(), id);
                        prop_assert!(!rules().blocked(id));
                    }
                }
                Err(e) => {
                    prop_assert_eq!(e.line, line);
                    prop_assert!(!e.reason.is_empty());
                }
            }
        }

        #[test]
        fn valid_emails_survive_any_invalid_neighbour(
            user in "[a-z]{1,10}",
            junk in "[a-z ]{0,10}",
        ) {
            let h = HeaderMap::new(&["email", "phone", "igsid"]).unwrap();
            let email = format!("{user}@example.org");
            let r = h.map_row(2, &[email.as_str(), junk.as_str(), junk.as_str()], &rules()).unwrap();
            prop_assert_eq!(&r.identifiers[0], &Identifier::new(Email, email.clone()));
        }
    }
}
