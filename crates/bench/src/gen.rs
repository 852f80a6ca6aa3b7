//! `bos-bench gen-contacts`: a deterministic generator of contact rows as a
//! shop's platforms export them, for the resolution benchmark.
//!
//! People (about one per 2.5 rows) each appear in 1–5 rows from Shopify,
//! Instagram, Facebook, web forms and Segment, sharing identifiers the way
//! real exports do: a Shopify customer id and an e-mail on every order, an
//! Instagram id with sometimes a phone, an anonymous browser id with
//! sometimes a login. On top of that, what makes resolution hard:
//! households where two shoppers (two Shopify ids) order with one family
//! e-mail; people with a work and a personal address; phones in every
//! format; e-mails in random case with stray spaces; placeholder addresses
//! (`test@test.com`) typed into forms; and a few invalid phones and e-mails
//! that normalization must reject.
//!
//! The true person of each row goes to a sidecar file (`FILE.truth`, lines
//! `row,person`), never into the CSV, so that resolvers are scored against
//! it without seeing it. Same rows and seed, same bytes.

use anyhow::{Context, Result};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// The CSV header; the identifier columns are named as their kinds.
pub const HEADER: &str = "email,phone,first_name,last_name,company,shopify_customer_id,\
instagram_id,facebook_psid,segment_user_id,anonymous_id";

/// splitmix64: tiny, fast, and good enough to draw test data from.
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }

    /// Uniform in `0..n` (the modulo bias is irrelevant for test data).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// True with probability `percent / 1000`.
    fn per_mille(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }

    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len() as u64) as usize]
    }
}

/// The splitmix64 finalizer: a bijection on u64, so distinct inputs give
/// distinct ids.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

const FIRST: &[&str] = &[
    "James",
    "Mary",
    "Robert",
    "Patricia",
    "John",
    "Jennifer",
    "Michael",
    "Linda",
    "David",
    "Elizabeth",
    "William",
    "Barbara",
    "Richard",
    "Susan",
    "Joseph",
    "Jessica",
    "Thomas",
    "Sarah",
    "Carlos",
    "Karen",
    "Daniel",
    "Lisa",
    "Matthew",
    "Nancy",
    "Anthony",
    "Sofia",
    "Mark",
    "Aisha",
    "Wei",
    "Priya",
    "Luis",
    "Emma",
    "Noah",
    "Olivia",
    "Liam",
    "Mia",
    "Ethan",
    "Chloe",
    "Omar",
    "Yuki",
];
const LAST: &[&str] = &[
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Perez",
    "Thompson",
    "White",
    "Harris",
    "Sanchez",
    "Clark",
    "Ramirez",
    "Lewis",
    "Robinson",
    "Walker",
    "Young",
    "Allen",
    "King",
    "Wright",
    "O'Brien",
    "Nguyen",
    "Patel",
    "Kim",
    "Cohen",
];
/// Companies and their mail domains; commas force CSV quoting.
const COMPANIES: &[(&str, &str)] = &[
    ("Acme, Inc.", "acme.com"),
    ("Globex, LLC", "globex.com"),
    ("Initech", "initech.com"),
    ("Umbrella Corp", "umbrella.com"),
    ("Hooli", "hooli.com"),
    ("Northwind Traders", "northwind.com"),
    ("Blue Bottle Studio", "bluebottle.studio"),
    ("Stark Industries", "stark.com"),
];
const MAIL: &[&str] = &[
    "gmail.com",
    "yahoo.com",
    "outlook.com",
    "icloud.com",
    "hotmail.com",
    "proton.me",
    "aol.com",
];
/// US area codes whose numbers are all `[2-9]XX-XXXX` in the numbering plan.
const AREAS: &[&str] = &[
    "212", "213", "214", "206", "303", "310", "312", "404", "415", "503", "512", "602", "617",
    "646", "702", "713", "718",
];
/// What people type into a form instead of their address; blocklisted by
/// the default identity rules.
const PLACEHOLDERS: &[&str] = &["test@test.com", "none@none.com", "noreply@example.com"];

struct Person {
    id: u32,
    first: &'static str,
    last: &'static str,
    company: Option<(&'static str, &'static str)>,
    email: String,
    work_email: Option<String>,
    family_email: Option<String>,
    /// Canonical digits: 10 for the US, or a UK number in E.164.
    phone: Option<Phone>,
    shopify: Option<u64>,
    instagram: Option<u64>,
    facebook: Option<u64>,
    segment: Option<String>,
    anon: Vec<String>,
}

enum Phone {
    Us(String),
    Uk(String),
}

/// Counts of what was injected, for checking the resolver's rejections.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct GenStats {
    pub rows: usize,
    pub people: usize,
    pub households: usize,
    pub invalid_phones: usize,
    pub invalid_emails: usize,
    pub placeholder_emails: usize,
}

fn person(id: u32, rng: &mut SplitMix64) -> Person {
    let first = *rng.pick(FIRST);
    let last = *rng.pick(LAST);
    let local = |s: &str| s.to_ascii_lowercase().replace('\'', "");
    let company = rng.per_mille(250).then(|| *rng.pick(COMPANIES));
    let email = match rng.below(3) {
        0 => format!("{}.{}{id}@{}", local(first), local(last), rng.pick(MAIL)),
        1 => format!(
            "{}{}{id}@{}",
            &local(first)[..1],
            local(last),
            rng.pick(MAIL)
        ),
        _ => format!("{}_{id}@{}", local(first), rng.pick(MAIL)),
    };
    let work_email = company
        .filter(|_| rng.per_mille(500))
        .map(|(_, domain)| format!("{}{id}@{domain}", local(first)));
    // Unique numbers by construction: area code by id, then a bijection of
    // the rest of the id onto the 8,000,000 local numbers 200-0000..999-9999
    // (the multiplier is prime to 8,000,000).
    let phone = rng.per_mille(750).then(|| {
        let q = (id as u64) / AREAS.len() as u64;
        let local7 = 2_000_000 + (q * 2_654_437 + 1_234_567) % 8_000_000;
        if rng.per_mille(30) {
            // London: 020 7xxx xxxx.
            Phone::Uk(format!("+44207{:07}", (id as u64 * 7_919) % 10_000_000))
        } else {
            Phone::Us(format!("{}{local7}", AREAS[id as usize % AREAS.len()]))
        }
    });
    Person {
        id,
        first,
        last,
        company,
        email,
        work_email,
        family_email: None,
        phone,
        shopify: rng
            .per_mille(550)
            .then(|| 6_000_000_000_000 + id as u64 * 7 + 1),
        instagram: rng
            .per_mille(350)
            .then(|| 17_841_400_000_000_000 + id as u64 * 3 + 1),
        facebook: rng
            .per_mille(250)
            .then(|| 2_400_000_000_000_000 + id as u64 * 5 + 2),
        segment: rng
            .per_mille(400)
            .then(|| format!("usr_{:016x}", mix(id as u64 ^ 0x5E6E_0000))),
        anon: (0..1 + rng.per_mille(200) as usize)
            .map(|_| {
                let (a, b) = (rng.next_u64(), rng.next_u64());
                format!(
                    "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
                    a >> 32,
                    (a >> 16) & 0xffff,
                    a & 0xfff,
                    (b >> 48) | 0x8000,
                    b & 0xffff_ffff_ffff
                )
            })
            .collect(),
    }
}

/// An e-mail as people type it: random case, sometimes stray spaces.
fn typed_email(e: &str, rng: &mut SplitMix64) -> String {
    let mut s = match rng.below(20) {
        0..=10 => e.to_string(),
        11..=15 => {
            // Capitalized parts: "John.Smith12@Gmail.com".
            let mut out = String::with_capacity(e.len());
            let mut up = true;
            for c in e.chars() {
                out.push(if up { c.to_ascii_uppercase() } else { c });
                up = !c.is_ascii_alphanumeric();
            }
            out
        }
        16..=17 => e.to_ascii_uppercase(),
        _ => e
            .chars()
            .map(|c| {
                if rng.below(2) == 0 {
                    c.to_ascii_uppercase()
                } else {
                    c
                }
            })
            .collect(),
    };
    if rng.per_mille(80) {
        s.insert(0, ' ');
    }
    if rng.per_mille(80) {
        s.push_str("  ");
    }
    s
}

/// A valid phone in one of the ways people write it.
fn typed_phone(p: &Phone, rng: &mut SplitMix64) -> String {
    match p {
        Phone::Us(d) => {
            let (a, e, l) = (&d[..3], &d[3..6], &d[6..]);
            match rng.below(100) {
                0..=24 => format!("({a}) {e}-{l}"),
                25..=44 => format!("+1 {a}-{e}-{l}"),
                45..=64 => d.clone(),
                65..=79 => format!("{a}-{e}-{l}"),
                80..=87 => format!("{a}.{e}.{l}"),
                88..=94 => format!("+1{d}"),
                _ => format!("1 ({a}) {e}-{l}"),
            }
        }
        Phone::Uk(e164) => {
            let n = &e164[3..];
            if rng.below(2) == 0 {
                format!("+44 {} {} {}", &n[..2], &n[2..6], &n[6..])
            } else {
                e164.clone()
            }
        }
    }
}

/// Values normalization must reject (too short, not digits, no domain…).
fn bad_phone(rng: &mut SplitMix64) -> String {
    rng.pick(&[
        "555-0101",
        "n/a",
        "000-000-0000",
        "12345",
        "call me",
        "+1 (011) 555-0101",
    ])
    .to_string()
}

fn bad_email(p: &Person, rng: &mut SplitMix64) -> String {
    let local = p.email.split('@').next().unwrap_or("x");
    match rng.below(4) {
        0 => format!("{local}@"),
        1 => format!("{local} at gmail.com"),
        2 => format!("{local}@gmail"),
        _ => format!("{local}@@gmail.com"),
    }
}

struct Writer<'a> {
    rng: &'a mut SplitMix64,
    stats: &'a mut GenStats,
}

impl Writer<'_> {
    fn email(&mut self, p: &Person, e: &str) -> String {
        if self.rng.per_mille(5) {
            self.stats.invalid_emails += 1;
            bad_email(p, self.rng)
        } else {
            typed_email(e, self.rng)
        }
    }

    fn phone(&mut self, p: &Phone) -> String {
        if self.rng.per_mille(10) {
            self.stats.invalid_phones += 1;
            bad_phone(self.rng)
        } else {
            typed_phone(p, self.rng)
        }
    }

    /// One CSV line (without newline) for a row of `p` from some platform.
    fn row(&mut self, p: &Person) -> String {
        #[derive(Clone, Copy)]
        enum Src {
            Shopify,
            Instagram,
            Facebook,
            WebForm,
            Segment,
        }
        let mut sources: Vec<(Src, u64)> = vec![(Src::WebForm, 25), (Src::Segment, 20)];
        if p.shopify.is_some() {
            sources.push((Src::Shopify, 30));
        }
        if p.instagram.is_some() {
            sources.push((Src::Instagram, 15));
        }
        if p.facebook.is_some() {
            sources.push((Src::Facebook, 10));
        }
        let mut x = self.rng.below(sources.iter().map(|s| s.1).sum());
        let src = sources
            .iter()
            .find(|s| {
                if x < s.1 {
                    true
                } else {
                    x -= s.1;
                    false
                }
            })
            .map(|s| s.0)
            .unwrap_or(Src::WebForm);

        // email, phone, first, last, company, shopify, instagram, facebook, segment, anonymous
        let mut c: [String; 10] = Default::default();
        let names = |c: &mut [String; 10]| {
            c[2] = p.first.to_string();
            c[3] = p.last.to_string();
        };
        // The address a person gives outside Shopify: mostly their own,
        // sometimes their work one, and in a household sometimes the family
        // one (which is what makes a shared address ambiguous evidence).
        let some_email = |w: &mut Self| -> String {
            match (&p.work_email, &p.family_email) {
                (_, Some(family)) if w.rng.per_mille(300) => family.clone(),
                (Some(work), _) if w.rng.per_mille(300) => work.clone(),
                _ => p.email.clone(),
            }
        };
        match src {
            Src::Shopify => {
                let id = p.shopify.expect("has a Shopify id");
                c[5] = if self.rng.per_mille(100) {
                    format!("gid://shopify/Customer/{id}")
                } else {
                    id.to_string()
                };
                let e = match &p.family_email {
                    Some(f) => f.clone(),
                    None => some_email(self),
                };
                c[0] = self.email(p, &e);
                if let Some(ph) = p.phone.as_ref().filter(|_| self.rng.per_mille(600)) {
                    c[1] = self.phone(ph);
                }
                names(&mut c);
                if let Some((name, _)) = p.company {
                    c[4] = name.to_string();
                }
            }
            Src::Instagram => {
                c[6] = p.instagram.expect("has an Instagram id").to_string();
                if let Some(ph) = p.phone.as_ref().filter(|_| self.rng.per_mille(500)) {
                    c[1] = self.phone(ph);
                }
                if self.rng.per_mille(500) {
                    c[2] = p.first.to_string();
                }
            }
            Src::Facebook => {
                c[7] = p.facebook.expect("has a Facebook PSID").to_string();
                if self.rng.per_mille(400) {
                    let e = some_email(self);
                    c[0] = self.email(p, &e);
                }
                if self.rng.per_mille(500) {
                    names(&mut c);
                }
            }
            Src::WebForm => {
                let (with_email, with_phone) = match (self.rng.below(100), &p.phone) {
                    (0..=44, _) | (_, None) => (true, false),
                    (45..=64, Some(_)) => (false, true),
                    _ => (true, true),
                };
                if with_email {
                    c[0] = if self.rng.per_mille(2) {
                        self.stats.placeholder_emails += 1;
                        let placeholder = *self.rng.pick(PLACEHOLDERS);
                        typed_email(placeholder, self.rng)
                    } else {
                        let e = some_email(self);
                        self.email(p, &e)
                    };
                }
                if let Some(ph) = p.phone.as_ref().filter(|_| with_phone) {
                    c[1] = self.phone(ph);
                }
                names(&mut c);
            }
            Src::Segment => {
                c[9] = self.rng.pick(&p.anon).clone();
                if let Some(s) = p.segment.as_ref().filter(|_| self.rng.per_mille(700)) {
                    c[8] = s.clone();
                }
                if self.rng.per_mille(600) {
                    c[0] = self.email(p, &p.email);
                }
            }
        }
        let mut line = String::with_capacity(128);
        for (i, f) in c.iter().enumerate() {
            if i > 0 {
                line.push(',');
            }
            csv_field(&mut line, f);
        }
        line
    }
}

/// Appends `f` as a CSV field, quoted when it holds a comma, quote or newline.
pub fn csv_field(out: &mut String, f: &str) {
    if f.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&f.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(f);
    }
}

/// Rows per person: 1–5, weighted 30/25/20/15/10 % (mean 2.5).
fn rows_per_person(rng: &mut SplitMix64) -> usize {
    match rng.below(100) {
        0..=29 => 1,
        30..=54 => 2,
        55..=74 => 3,
        75..=89 => 4,
        _ => 5,
    }
}

/// Generates `rows` CSV lines (no header) and the true person of each.
pub fn generate(rows: usize, seed: u64) -> (Vec<String>, Vec<u32>, GenStats) {
    let mut rng = SplitMix64::new(seed);
    let mut stats = GenStats::default();
    let mut lines: Vec<(u32, String)> = Vec::with_capacity(rows);
    let mut next_id = 0u32;
    while lines.len() < rows {
        // 3% of people come as a household of two: two shoppers (two
        // Shopify ids) who order with one family address.
        let mut group = vec![person(next_id, &mut rng)];
        next_id += 1;
        if rng.per_mille(30) {
            group.push(person(next_id, &mut rng));
            next_id += 1;
            let family = format!(
                "the{}s{}@{}",
                group[0].last.to_ascii_lowercase().replace('\'', ""),
                group[0].id,
                rng.pick(MAIL)
            );
            for p in &mut group {
                p.family_email = Some(family.clone());
                p.shopify = Some(6_000_000_000_000 + p.id as u64 * 7 + 1);
            }
            stats.households += 1;
        }
        for p in &group {
            stats.people += 1;
            let k = rows_per_person(&mut rng);
            let mut w = Writer {
                rng: &mut rng,
                stats: &mut stats,
            };
            for _ in 0..k {
                if lines.len() == rows {
                    break;
                }
                lines.push((p.id, w.row(p)));
            }
        }
    }
    // Exports are not grouped by person: shuffle (Fisher–Yates).
    for i in (1..lines.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        lines.swap(i, j);
    }
    stats.rows = lines.len();
    let (truth, lines) = lines.into_iter().unzip();
    (lines, truth, stats)
}

/// `FILE.truth` beside `FILE`.
pub fn truth_path(csv: &Path) -> PathBuf {
    let mut s = csv.as_os_str().to_owned();
    s.push(".truth");
    PathBuf::from(s)
}

/// `bos-bench gen-contacts`: writes the CSV and its truth file.
pub fn run(rows: usize, seed: u64, out: &Path) -> Result<()> {
    let (lines, truth, stats) = generate(rows, seed);
    let mut csv = BufWriter::new(
        std::fs::File::create(out).with_context(|| format!("creating {}", out.display()))?,
    );
    writeln!(csv, "{HEADER}")?;
    for l in &lines {
        writeln!(csv, "{l}")?;
    }
    csv.flush()?;
    let tp = truth_path(out);
    let mut t = BufWriter::new(
        std::fs::File::create(&tp).with_context(|| format!("creating {}", tp.display()))?,
    );
    writeln!(t, "row,person")?;
    for (row, person) in truth.iter().enumerate() {
        writeln!(t, "{row},{person}")?;
    }
    t.flush()?;
    println!(
        "{} rows of {} people ({} households sharing a family e-mail) → {} and {}\n\
         injected: {} invalid phones, {} invalid e-mails, {} placeholder e-mails",
        stats.rows,
        stats.people,
        stats.households,
        out.display(),
        tp.display(),
        stats.invalid_phones,
        stats.invalid_emails,
        stats.placeholder_emails
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bos_core::identity::{normalize, IdentifierKind};

    #[test]
    fn deterministic_and_seeded() {
        let a = generate(500, 7);
        let b = generate(500, 7);
        assert_eq!(a.0, b.0);
        assert_eq!(a.1, b.1);
        assert_ne!(a.0, generate(500, 8).0);
        assert_eq!(a.0.len(), 500);
    }

    #[test]
    fn exactly_the_injected_values_are_rejected() {
        let (lines, truth, stats) = generate(20_000, 42);
        let header: Vec<&str> = HEADER.split(',').collect();
        let (mut bad_phones, mut bad_emails) = (0, 0);
        for l in &lines {
            // Only the company column is ever quoted, and it holds no
            // identifier: split the rest by hand.
            let mut fields: Vec<String> = Vec::new();
            let mut cur = String::new();
            let mut quoted = false;
            for ch in l.chars() {
                match ch {
                    '"' => quoted = !quoted,
                    ',' if !quoted => fields.push(std::mem::take(&mut cur)),
                    c => cur.push(c),
                }
            }
            fields.push(cur);
            assert_eq!(fields.len(), header.len(), "{l}");
            for (name, v) in header.iter().zip(&fields) {
                let Ok(kind) = IdentifierKind::parse(name) else {
                    continue;
                };
                if v.is_empty() || matches!(kind, IdentifierKind::Custom(_)) {
                    continue;
                }
                match (normalize(&kind, v, "US"), kind) {
                    (Ok(_), _) => {}
                    (Err(_), IdentifierKind::Phone) => bad_phones += 1,
                    (Err(_), IdentifierKind::Email) => bad_emails += 1,
                    (Err(e), k) => panic!("{k} {v:?} rejected: {e}"),
                }
            }
        }
        assert_eq!(bad_phones, stats.invalid_phones);
        assert_eq!(bad_emails, stats.invalid_emails);
        assert!(stats.invalid_phones > 0 && stats.invalid_emails > 0 && stats.households > 0);
        // 1–5 rows per person, about 2.5 on average.
        let mut per: std::collections::HashMap<u32, usize> = Default::default();
        for p in &truth {
            *per.entry(*p).or_default() += 1;
        }
        assert!(per.values().all(|&n| (1..=5).contains(&n)));
        let mean = truth.len() as f64 / per.len() as f64;
        assert!((2.2..2.8).contains(&mean), "{mean}");
    }
}
