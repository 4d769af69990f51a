//! The FT-over-HTTP documents (GSMA RCC.07 §3.5.4.8.3, `application/vnd.gsma.rcs-ft-http+xml`,
//! namespace `urn:gsma:params:xml:ns:rcs:rcs:fthttp`).
//!
//! The file-info document the content server answers a successful upload with, and that the
//! sender then puts in a chat message for the recipient to download from:
//!
//! ```xml
//! <?xml version="1.0" encoding="UTF-8"?>
//! <file xmlns="urn:gsma:params:xml:ns:rcs:rcs:fthttp">
//!   <file-info type="thumbnail">
//!     <file-size>7427</file-size>
//!     <content-type>image/jpeg</content-type>
//!     <data url="http://127.0.0.1:8083/files/3f…/thumbnail" until="2026-12-08T10:00:00Z"/>
//!   </file-info>
//!   <file-info type="file" file-disposition="render">
//!     <file-size>183524</file-size>
//!     <file-name>photo.jpg</file-name>
//!     <content-type>image/jpeg</content-type>
//!     <data url="http://127.0.0.1:8083/files/3f…" until="2026-12-08T10:00:00Z"/>
//!   </file-info>
//! </file>
//! ```
//!
//! The resume document (`GET ?tid=…&get_upload_info`): the byte range the server holds, both
//! ends inclusive as in `Content-Range` (so `end="-1"` when nothing arrived yet: the client
//! goes on from `end + 1`), and where to PUT the rest:
//!
//! ```xml
//! <file-resume-info xmlns="urn:gsma:params:xml:ns:rcs:rcs:fthttp">
//!   <file-range start="0" end="52428799"/>
//!   <data url="http://127.0.0.1:8083/upload/tid-1"/>
//! </file-resume-info>
//! ```
//!
//! Parsing accepts the documents with or without the namespace (rcsjta reads them with
//! namespaces off) and skips elements it does not know (`e:branded-url`, `am:playing-length`).

use crate::presence::xml::{self, esc, Element, XmlError};

/// The documents' namespace.
pub const NS: &str = "urn:gsma:params:xml:ns:rcs:rcs:fthttp";
/// Their MIME type.
pub const CONTENT_TYPE: &str = "application/vnd.gsma.rcs-ft-http+xml";
/// The largest document parsed.
pub const MAX_DOCUMENT: usize = 16 * 1024;
/// The longest text of any field (file name, content type, URL, date).
pub const MAX_FIELD: usize = 2048;

/// Why a document does not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileInfoError {
    /// Larger than [`MAX_DOCUMENT`].
    #[error("the document is larger than {MAX_DOCUMENT} bytes")]
    TooLarge,
    /// Not well-formed XML.
    #[error("not well-formed XML: {0}")]
    Xml(#[from] XmlError),
    /// Well-formed, but not the document expected.
    #[error("{0}")]
    Invalid(String),
}

fn invalid(s: impl Into<String>) -> FileInfoError {
    FileInfoError::Invalid(s.into())
}

/// The thumbnail's `file-info type="thumbnail"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thumbnail {
    /// `file-size`, bytes.
    pub size: u64,
    /// `content-type`.
    pub content_type: String,
    /// `data url`.
    pub url: String,
    /// `data until`: an RFC 3339 date-time after which the server may delete it.
    pub until: String,
}

/// The file's `file-info type="file"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDesc {
    /// `file-size`, bytes.
    pub size: u64,
    /// `file-name`.
    pub name: String,
    /// `content-type`.
    pub content_type: String,
    /// `data url`.
    pub url: String,
    /// `data until`.
    pub until: String,
    /// The `file-disposition` attribute (`render` or `attachment`), if any.
    pub disposition: Option<String>,
}

/// A file-info document: the file and, optionally, its thumbnail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    /// The thumbnail, if the upload carried one.
    pub thumbnail: Option<Thumbnail>,
    /// The file.
    pub file: FileDesc,
}

/// A `file-resume-info` document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumeInfo {
    /// `file-range start`.
    pub start: u64,
    /// `file-range end`, inclusive; `start - 1` when nothing was received.
    pub end: i64,
    /// `data url`: where the rest goes (PUT with `Content-Range`).
    pub url: String,
}

impl ResumeInfo {
    /// What a server that holds the first `received` bytes answers.
    pub fn received(received: u64, url: &str) -> ResumeInfo {
        ResumeInfo {
            start: 0,
            end: i64::try_from(received).unwrap_or(i64::MAX) - 1,
            url: url.to_string(),
        }
    }

    /// The first byte the client still has to send.
    pub fn next_byte(&self) -> u64 {
        u64::try_from(self.end.saturating_add(1)).unwrap_or(0)
    }
}

fn data_xml(out: &mut String, url: &str, until: Option<&str>) {
    out.push_str(&format!("    <data url=\"{}\"", esc(url)));
    if let Some(u) = until {
        out.push_str(&format!(" until=\"{}\"", esc(u)));
    }
    out.push_str("/>\n");
}

impl FileInfo {
    /// The document, as the content server sends it.
    pub fn to_xml(&self) -> String {
        let mut s = format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<file xmlns=\"{NS}\">\n");
        if let Some(t) = &self.thumbnail {
            s.push_str("  <file-info type=\"thumbnail\">\n");
            s.push_str(&format!("    <file-size>{}</file-size>\n", t.size));
            s.push_str(&format!(
                "    <content-type>{}</content-type>\n",
                esc(&t.content_type)
            ));
            data_xml(&mut s, &t.url, Some(&t.until));
            s.push_str("  </file-info>\n");
        }
        let f = &self.file;
        match &f.disposition {
            Some(d) => s.push_str(&format!(
                "  <file-info type=\"file\" file-disposition=\"{}\">\n",
                esc(d)
            )),
            None => s.push_str("  <file-info type=\"file\">\n"),
        }
        s.push_str(&format!("    <file-size>{}</file-size>\n", f.size));
        s.push_str(&format!("    <file-name>{}</file-name>\n", esc(&f.name)));
        s.push_str(&format!(
            "    <content-type>{}</content-type>\n",
            esc(&f.content_type)
        ));
        data_xml(&mut s, &f.url, Some(&f.until));
        s.push_str("  </file-info>\n</file>\n");
        s
    }

    /// Reads a file-info document.
    pub fn parse(body: &[u8]) -> Result<FileInfo, FileInfoError> {
        let root = root_of(body, "file")?;
        let mut thumbnail = None;
        let mut file = None;
        for info in root.children.iter().filter(|c| ours(c, "file-info")) {
            let size = child_text(info, "file-size")
                .ok_or_else(|| invalid("file-info without file-size"))?
                .trim()
                .parse::<u64>()
                .map_err(|_| invalid("file-size is not a number"))?;
            let content_type = field(info, "content-type")?.unwrap_or_default();
            let data = info
                .children
                .iter()
                .find(|c| ours(c, "data"))
                .ok_or_else(|| invalid("file-info without data"))?;
            let url = attr(data, "url")?.ok_or_else(|| invalid("data without url"))?;
            let until = attr(data, "until")?.unwrap_or_default();
            match info.attr("type") {
                Some("thumbnail") if thumbnail.is_none() => {
                    thumbnail = Some(Thumbnail {
                        size,
                        content_type,
                        url,
                        until,
                    })
                }
                Some("file") if file.is_none() => {
                    file = Some(FileDesc {
                        size,
                        name: field(info, "file-name")?.unwrap_or_default(),
                        content_type,
                        url,
                        until,
                        disposition: attr(info, "file-disposition")?,
                    })
                }
                Some("thumbnail") | Some("file") => {
                    return Err(invalid("two file-info elements of one type"))
                }
                _ => return Err(invalid("file-info type is neither file nor thumbnail")),
            }
        }
        Ok(FileInfo {
            thumbnail,
            file: file.ok_or_else(|| invalid("no file-info type=\"file\""))?,
        })
    }
}

impl ResumeInfo {
    /// The document, as the content server sends it.
    pub fn to_xml(&self) -> String {
        let mut s = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<file-resume-info xmlns=\"{NS}\">\n  \
             <file-range start=\"{}\" end=\"{}\"/>\n",
            self.start, self.end
        );
        data_xml(&mut s, &self.url, None);
        s = s.replacen("    <data", "  <data", 1);
        s.push_str("</file-resume-info>\n");
        s
    }

    /// Reads a `file-resume-info` document.
    pub fn parse(body: &[u8]) -> Result<ResumeInfo, FileInfoError> {
        let root = root_of(body, "file-resume-info")?;
        let range = root
            .children
            .iter()
            .find(|c| ours(c, "file-range"))
            .ok_or_else(|| invalid("file-resume-info without file-range"))?;
        let start = attr(range, "start")?
            .ok_or_else(|| invalid("file-range without start"))?
            .parse::<u64>()
            .map_err(|_| invalid("file-range start is not a number"))?;
        let end = attr(range, "end")?
            .ok_or_else(|| invalid("file-range without end"))?
            .parse::<i64>()
            .map_err(|_| invalid("file-range end is not a number"))?;
        if end < i64::try_from(start).unwrap_or(i64::MAX).saturating_sub(1) {
            return Err(invalid("file-range ends before it starts"));
        }
        let data = root
            .children
            .iter()
            .find(|c| ours(c, "data"))
            .ok_or_else(|| invalid("file-resume-info without data"))?;
        Ok(ResumeInfo {
            start,
            end,
            url: attr(data, "url")?.ok_or_else(|| invalid("data without url"))?,
        })
    }
}

/// Element `local` in our namespace or in none.
fn ours(e: &Element, local: &str) -> bool {
    e.local == local && (e.ns.is_none() || e.ns.as_deref() == Some(NS))
}

fn root_of(body: &[u8], local: &str) -> Result<Element, FileInfoError> {
    if body.len() > MAX_DOCUMENT {
        return Err(FileInfoError::TooLarge);
    }
    let root = xml::parse(body)?;
    if !ours(&root, local) {
        return Err(invalid(format!("the root element is not <{local}>")));
    }
    Ok(root)
}

fn capped(s: &str, what: &str) -> Result<String, FileInfoError> {
    if s.len() > MAX_FIELD {
        return Err(invalid(format!("{what} is longer than {MAX_FIELD} bytes")));
    }
    Ok(s.trim().to_string())
}

fn child_text<'a>(e: &'a Element, local: &str) -> Option<&'a str> {
    e.children
        .iter()
        .find(|c| ours(c, local))
        .map(|c| c.text.as_str())
}

fn field(e: &Element, local: &str) -> Result<Option<String>, FileInfoError> {
    child_text(e, local).map(|t| capped(t, local)).transpose()
}

fn attr(e: &Element, name: &str) -> Result<Option<String>, FileInfoError> {
    e.attr(name).map(|v| capped(v, name)).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> FileInfo {
        FileInfo {
            thumbnail: Some(Thumbnail {
                size: 7427,
                content_type: "image/jpeg".into(),
                url: "http://127.0.0.1:8083/files/ab/thumbnail".into(),
                until: "2026-12-08T10:00:00Z".into(),
            }),
            file: FileDesc {
                size: 183_524,
                name: "holiday & \"friends\".jpg".into(),
                content_type: "image/jpeg".into(),
                url: "http://127.0.0.1:8083/files/ab?x=1&y=2".into(),
                until: "2026-12-08T10:00:00Z".into(),
                disposition: Some("render".into()),
            },
        }
    }

    #[test]
    fn file_info_prints_rcc07_shape_and_reads_back() {
        let f = sample();
        let x = f.to_xml();
        assert!(
            x.contains("<file xmlns=\"urn:gsma:params:xml:ns:rcs:rcs:fthttp\">"),
            "{x}"
        );
        assert!(x.contains("<file-info type=\"thumbnail\">\n    <file-size>7427</file-size>"));
        assert!(x.contains("<file-info type=\"file\" file-disposition=\"render\">"));
        assert!(x.contains("<file-name>holiday &amp; &quot;friends&quot;.jpg</file-name>"));
        assert!(x.contains("url=\"http://127.0.0.1:8083/files/ab?x=1&amp;y=2\""));
        assert!(x.contains("until=\"2026-12-08T10:00:00Z\"/>"));
        // The thumbnail comes first, as RCC.07's example has it.
        assert!(x.find("thumbnail").unwrap() < x.find("type=\"file\"").unwrap());
        assert_eq!(FileInfo::parse(x.as_bytes()).unwrap(), f);
        let mut no_thumb = f.clone();
        no_thumb.thumbnail = None;
        no_thumb.file.disposition = None;
        assert_eq!(
            FileInfo::parse(no_thumb.to_xml().as_bytes()).unwrap(),
            no_thumb
        );
    }

    #[test]
    fn a_client_document_without_namespace_and_with_extensions_reads() {
        let doc = br#"<?xml version="1.0"?>
<file xmlns:e="urn:gsma:params:xml:ns:rcs:rcs:up:fthttpext">
 <file-info type="file">
  <file-size> 12 </file-size><file-name>a.txt</file-name>
  <content-type>text/plain</content-type>
  <data url="https://cs.example/dl/1" until="2030-01-01T00:00:00.000+02:00"/>
  <e:branded-url>https://x</e:branded-url>
 </file-info>
</file>"#;
        let f = FileInfo::parse(doc).unwrap();
        assert_eq!(f.file.size, 12);
        assert_eq!(f.file.url, "https://cs.example/dl/1");
        assert!(f.thumbnail.is_none());
    }

    #[test]
    fn bad_file_info_documents_are_errors() {
        for bad in [
            &b"<file/>"[..],
            b"<nope xmlns=\"urn:gsma:params:xml:ns:rcs:rcs:fthttp\"/>",
            b"<file><file-info type=\"file\"><file-size>x</file-size><data url=\"u\"/></file-info></file>",
            b"<file><file-info type=\"file\"><file-size>1</file-size></file-info></file>",
            b"<file><file-info type=\"other\"><file-size>1</file-size><data url=\"u\"/></file-info></file>",
            b"<file><file-info",
            b"\xff\xfe",
        ] {
            assert!(FileInfo::parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        let huge = vec![b' '; MAX_DOCUMENT + 1];
        assert_eq!(FileInfo::parse(&huge), Err(FileInfoError::TooLarge));
        let long = format!(
            "<file><file-info type=\"file\"><file-size>1</file-size><file-name>{}</file-name><data url=\"u\"/></file-info></file>",
            "n".repeat(MAX_FIELD + 1)
        );
        assert!(FileInfo::parse(long.as_bytes()).is_err());
    }

    #[test]
    fn resume_info_both_ways_and_nothing_received() {
        let r = ResumeInfo::received(52_428_800, "http://h/upload/t1");
        assert_eq!((r.start, r.end, r.next_byte()), (0, 52_428_799, 52_428_800));
        let x = r.to_xml();
        assert!(
            x.contains("<file-range start=\"0\" end=\"52428799\"/>"),
            "{x}"
        );
        assert!(x.contains("  <data url=\"http://h/upload/t1\"/>\n</file-resume-info>"));
        assert_eq!(ResumeInfo::parse(x.as_bytes()).unwrap(), r);
        let none = ResumeInfo::received(0, "u");
        assert_eq!((none.end, none.next_byte()), (-1, 0));
        assert_eq!(ResumeInfo::parse(none.to_xml().as_bytes()).unwrap(), none);
        let rcsjta = br#"<file-resume-info><file-range start="0" end="99"/><data url="https://x/y"/></file-resume-info>"#;
        assert_eq!(ResumeInfo::parse(rcsjta).unwrap().next_byte(), 100);
        for bad in [
            &br#"<file-resume-info><data url="u"/></file-resume-info>"#[..],
            br#"<file-resume-info><file-range start="5" end="1"/><data url="u"/></file-resume-info>"#,
            br#"<file-resume-info><file-range start="0" end="x"/><data url="u"/></file-resume-info>"#,
            br#"<file-resume-info><file-range start="0" end="1"/></file-resume-info>"#,
        ] {
            assert!(ResumeInfo::parse(bad).is_err());
        }
    }
}
