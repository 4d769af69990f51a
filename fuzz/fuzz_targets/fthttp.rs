//! File Transfer via HTTP (src/fthttp/): the file-info and file-resume-info documents (what
//! parses prints as something that parses back the same), Content-Range and Range, and the
//! streaming multipart/form-data parser. For the parser the first line of the input is the
//! boundary and the first byte the chunk size; it must never panic nor buffer more than a
//! chunk and a delimiter.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rcslab::fthttp::multipart::{MultipartLimits, MultipartParser};
use rcslab::fthttp::{ByteRange, ContentRange, FileInfo, ResumeInfo};

fuzz_target!(|data: &[u8]| {
    if let Ok(f) = FileInfo::parse(data) {
        let again = FileInfo::parse(f.to_xml().as_bytes())
            .unwrap_or_else(|e| panic!("our own file-info does not parse: {e}"));
        assert_eq!(again, f, "file-info round trip");
    }
    if let Ok(r) = ResumeInfo::parse(data) {
        let again = ResumeInfo::parse(r.to_xml().as_bytes())
            .unwrap_or_else(|e| panic!("our own resume info does not parse: {e}"));
        assert_eq!(again, r, "resume-info round trip");
    }
    let text = String::from_utf8_lossy(data);
    if let Ok(c) = ContentRange::parse(&text) {
        assert_eq!(ContentRange::parse(&c.to_string()), Ok(c));
    }
    if let Ok(r) = ByteRange::parse(&text) {
        for len in [0, 1, 100, u64::MAX] {
            if let Some((a, b)) = r.resolve(len) {
                assert!(a <= b && b < len);
            }
        }
    }
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let (boundary, body) = match rest.iter().position(|&b| b == b'\n') {
        Some(i) => (String::from_utf8_lossy(&rest[..i]).to_string(), &rest[i + 1..]),
        None => return,
    };
    if boundary.is_empty() {
        return;
    }
    let chunk = usize::from(n).max(1);
    let mut p = MultipartParser::new(&boundary, MultipartLimits::default());
    for c in body.chunks(chunk) {
        if p.push(c).is_err() {
            return;
        }
        loop {
            match p.next_event() {
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(_) => return,
            }
        }
        assert!(p.buffered() <= chunk + boundary.len() + 8 + 8192 + 4);
    }
    let _ = p.finish();
});
