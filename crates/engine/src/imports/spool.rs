//! An uploaded contacts file, written to a temporary file as it streams in,
//! so that a 200 MiB upload never sits in memory. On the way through, the
//! spool hashes the bytes (the digest keys every row, which is what makes a
//! re-upload idempotent), counts the CSV records with the same parser the
//! import uses (so progress has a denominator before the first row is
//! imported), enforces the size limit, and refuses what is not CSV text
//! (a spreadsheet workbook, UTF-16) from its first bytes.

use super::driver::hex;
use bos_core::identity::import::{HeaderError, HeaderMap};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};

/// How much of the start of a file is checked for being text.
const SNIFF: usize = 64 * 1024;

/// Why an upload is refused. Every variant says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error(
        "The file is larger than the {limit_mib} MiB this server accepts for an import: split it into smaller files \
         (each with the header row) or ask your administrator to raise BOS_IMPORT_LIMIT_MB."
    )]
    TooLarge { limit_mib: u64 },
    #[error("The file is empty: a contacts file starts with a header row such as email,phone,first_name,last_name.")]
    Empty,
    #[error("The file has a header row but no contacts under it.")]
    NoRows,
    #[error("The file is not CSV text: {0} Save it as \"CSV UTF-8\" (in Excel: File → Save As → CSV UTF-8) and upload that.")]
    NotText(&'static str),
    #[error("The file has no header row: the first line names the columns, e.g. email,phone,first_name,last_name.")]
    NoHeader,
    /// No identifier column: the message lists the accepted headers.
    #[error("{0}")]
    Columns(String),
    #[error("The file could not be read as CSV: {0}. Check that it is a CSV file saved as UTF-8.")]
    Csv(String),
    /// The upload stopped before its end (the connection dropped).
    #[error("The upload did not arrive completely ({0}). Try again.")]
    Cut(String),
    #[error("the upload could not be stored: {0}")]
    Io(#[from] std::io::Error),
}

/// A file being received.
pub struct Spooler {
    path: PathBuf,
    out: Option<std::io::BufWriter<std::fs::File>>,
    hash: Sha256,
    csv: csv_core::Reader,
    /// Scratch for the parser's field bytes and ends: only records are
    /// counted, fields are thrown away.
    scratch: Vec<u8>,
    ends: Vec<usize>,
    records: u64,
    bytes: u64,
    limit: u64,
    /// The first bytes, until they have been checked.
    head: Vec<u8>,
    sniffed: bool,
}

/// A received file, complete and checked.
#[derive(Debug)]
pub struct Spooled {
    pub path: PathBuf,
    pub bytes: u64,
    pub digest: String,
    /// Data rows (records after the header).
    pub rows: u64,
    /// Headers that name nothing known (their columns will be ignored).
    pub ignored_columns: Vec<String>,
}

impl Spooled {
    /// Deletes the temporary file.
    pub fn remove(&self) {
        if let Err(e) = std::fs::remove_file(&self.path) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(path = %self.path.display(), error = %e, "could not remove an import spool file");
            }
        }
    }
}

impl Spooler {
    /// A new spool file in `dir` named after `name` (an import id).
    pub fn create(dir: &Path, name: &str, limit: u64) -> Result<Spooler, UploadError> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(format!("bos-import-{name}.csv"));
        let file = std::fs::File::create(&path)?;
        Ok(Spooler {
            path,
            out: Some(std::io::BufWriter::with_capacity(1 << 16, file)),
            hash: Sha256::new(),
            csv: csv_core::Reader::new(),
            scratch: vec![0; 1 << 16],
            ends: vec![0; 1024],
            records: 0,
            bytes: 0,
            limit,
            head: Vec::new(),
            sniffed: false,
        })
    }

    /// Takes the next piece of the upload.
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), UploadError> {
        self.bytes += chunk.len() as u64;
        if self.bytes > self.limit {
            return Err(UploadError::TooLarge {
                limit_mib: self.limit.div_ceil(1 << 20),
            });
        }
        if !self.sniffed {
            self.head
                .extend_from_slice(&chunk[..chunk.len().min(SNIFF)]);
            if self.head.len() >= SNIFF {
                self.sniff()?;
            }
        }
        self.hash.update(chunk);
        self.count(chunk);
        if let Some(out) = self.out.as_mut() {
            out.write_all(chunk)?;
        }
        Ok(())
    }

    /// Feeds the record counter. csv-core reads incrementally: a record cut
    /// between two chunks is counted once, when it ends.
    fn count(&mut self, mut input: &[u8]) {
        use csv_core::ReadRecordResult::*;
        // To csv-core, empty input means the end of the file.
        while !input.is_empty() {
            let (res, used, _, _) = self
                .csv
                .read_record(input, &mut self.scratch, &mut self.ends);
            input = &input[used..];
            match res {
                Record => self.records += 1,
                // Field bytes are not kept: the scratch space is reused.
                InputEmpty | OutputFull | OutputEndsFull => {}
                End => return,
            }
        }
    }

    /// Tells the counter the file ended: a last record without a line
    /// break is counted now.
    fn count_end(&mut self) {
        use csv_core::ReadRecordResult::*;
        loop {
            match self
                .csv
                .read_record(&[], &mut self.scratch, &mut self.ends)
                .0
            {
                Record => self.records += 1,
                OutputFull | OutputEndsFull => {}
                InputEmpty | End => return,
            }
        }
    }

    /// Refuses what is plainly not CSV text, from the first bytes.
    fn sniff(&mut self) -> Result<(), UploadError> {
        self.sniffed = true;
        let h = std::mem::take(&mut self.head);
        if h.starts_with(b"PK\x03\x04") {
            return Err(UploadError::NotText(
                "it is a zip archive, such as an Excel or Numbers workbook.",
            ));
        }
        if h.starts_with(b"\xd0\xcf\x11\xe0") {
            return Err(UploadError::NotText("it is an old Excel workbook (.xls)."));
        }
        if h.starts_with(b"\xff\xfe") || h.starts_with(b"\xfe\xff") {
            return Err(UploadError::NotText(
                "it is saved as UTF-16 (\"Unicode text\").",
            ));
        }
        if h.contains(&0) {
            return Err(UploadError::NotText("it contains binary data."));
        }
        match std::str::from_utf8(&h) {
            Ok(_) => Ok(()),
            // A character cut at the end of the sample is fine.
            Err(e) if e.error_len().is_none() => Ok(()),
            Err(_) => Err(UploadError::NotText(
                "it is not UTF-8 (probably a legacy encoding such as Windows-1252).",
            )),
        }
    }

    /// The upload is complete: checks it and hands back the spooled file.
    /// On error the temporary file is deleted.
    pub fn finish(mut self) -> Result<Spooled, UploadError> {
        let r = self.finish_inner();
        if r.is_err() {
            let _ = std::fs::remove_file(&self.path);
        }
        r
    }

    fn finish_inner(&mut self) -> Result<Spooled, UploadError> {
        if !self.sniffed {
            self.sniff()?;
        }
        self.count_end();
        if let Some(mut out) = self.out.take() {
            out.flush()?;
            out.into_inner()
                .map_err(|e| UploadError::Io(e.into_error()))?
                .sync_all()?;
        }
        if self.bytes == 0 {
            return Err(UploadError::Empty);
        }
        let ignored_columns = check_header(&self.path)?;
        if self.records <= 1 {
            return Err(UploadError::NoRows);
        }
        Ok(Spooled {
            path: self.path.clone(),
            bytes: self.bytes,
            digest: hex(&std::mem::take(&mut self.hash).finalize()),
            rows: self.records - 1,
            ignored_columns,
        })
    }

    /// Gives up on the upload and deletes what was received.
    pub fn abandon(mut self) {
        self.out = None;
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Maps the header row the way the import will; returns the ignored columns.
fn check_header(path: &Path) -> Result<Vec<String>, UploadError> {
    let mut r = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_path(path)
        .map_err(|e| UploadError::Csv(e.to_string()))?;
    let headers: Vec<String> = r
        .byte_headers()
        .map_err(|e| UploadError::Csv(e.to_string()))?
        .iter()
        .map(|h| String::from_utf8_lossy(h).into_owned())
        .collect();
    match HeaderMap::new(&headers) {
        Ok(m) => Ok(m.unknown),
        Err(HeaderError::Empty) => Err(UploadError::NoHeader),
        Err(e) => Err(UploadError::Columns(format!(
            "{}.",
            capitalize(&e.to_string())
        ))),
    }
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spool(parts: &[&[u8]]) -> Result<Spooled, UploadError> {
        let dir = std::env::temp_dir().join(format!("bos-spool-test-{}", uuid::Uuid::new_v4()));
        let mut s = Spooler::create(&dir, "t", 1 << 20)?;
        for p in parts {
            s.push(p)?;
        }
        let r = s.finish();
        if let Ok(sp) = &r {
            assert_eq!(std::fs::read(&sp.path).unwrap(), parts.concat());
            sp.remove();
        }
        let _ = std::fs::remove_dir_all(&dir);
        r
    }

    #[test]
    fn counts_records_across_chunks_like_the_import() {
        let file = b"email,name\r\na@x.io,\"Ann\nSmith\"\n\nb@x.io,Bob\nc@x.io,\"C, \"\"Q\"\"\"";
        for cut in 0..file.len() {
            let s = spool(&[&file[..cut], &file[cut..]]).unwrap();
            // The quoted line break is inside one record; the blank line is no record.
            assert_eq!(s.rows, 3, "cut at {cut}");
            assert_eq!(s.bytes, file.len() as u64);
        }
        let s = spool(&[b"email\na@x.io\n"]).unwrap();
        assert_eq!(s.rows, 1);
        assert_eq!(s.digest, hex(&Sha256::digest(b"email\na@x.io\n")));
        assert!(s.ignored_columns.is_empty());
    }

    #[test]
    fn refuses_what_is_not_a_contacts_csv() {
        assert!(matches!(spool(&[]), Err(UploadError::Empty)));
        assert!(matches!(spool(&[b"email\n"]), Err(UploadError::NoRows)));
        assert!(matches!(
            spool(&[b"PK\x03\x04rest"]),
            Err(UploadError::NotText(_))
        ));
        assert!(matches!(
            spool(&[b"\xff\xfee\x00m\x00"]),
            Err(UploadError::NotText(_))
        ));
        assert!(matches!(
            spool(&[b"email\n\xe9t\xe9\n"]),
            Err(UploadError::NotText(_))
        ));
        match spool(&[b"name,company\nAnn,Acme\n"]) {
            Err(UploadError::Columns(m)) => {
                assert!(m.contains("email") && m.contains("phone"), "{m}")
            }
            other => panic!("{other:?}"),
        }
        let dir = std::env::temp_dir().join(format!("bos-spool-test-{}", uuid::Uuid::new_v4()));
        let mut s = Spooler::create(&dir, "big", 10).unwrap();
        s.push(b"email\n").unwrap();
        assert!(matches!(
            s.push(b"a@b.co\n"),
            Err(UploadError::TooLarge { limit_mib: 1 })
        ));
        s.abandon();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
