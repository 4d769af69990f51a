//! File transfer via HTTP at the client (GSMA RCC.07 §3.2.5 and §3.5.4.8, as rcsjta's
//! HttpUploadManager and HttpDownloadManager do it), against the lab's content server CS:
//!
//! - **upload** ([`FtClient::upload`]): an empty POST (the server answers 401 with a Digest
//!   challenge, or 204 without authentication), then a `multipart/form-data` POST with `tid`,
//!   `Thumbnail` (a JPEG of at most 50 KiB made from an image, [`thumb`]) and `File`, streamed
//!   from disk in bounded reads; the answer is the file-info document the sender then puts
//!   in a chat message (`application/vnd.gsma.rcs-ft-http+xml`). A connection cut on the way
//!   resumes: `GET ?tid=…&get_upload_info` says what arrived, a PUT with `Content-Range`
//!   sends the rest.
//! - **download** ([`FtClient::download`]): `GET` the file-info's URL with Digest as the
//!   recipient, streamed to a part file beside the target and hashed (SHA-256) as it comes;
//!   a cut resumes with `Range`; the size must be the file-info's; the file gets its sender's
//!   name, made safe ([`safe_file_name`]), never over an existing file (`photo-1.jpg`).
//!
//! Every wait is bounded (`http`: a connection within 5 s, no request idle for 30 s) and so
//! is every retry (3 resumes).

mod download;
mod http;
mod thumb;
mod upload;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::fthttp::FileInfo;
use crate::trace::Trace;

pub(crate) use download::place;
pub use download::safe_file_name;

/// Resumes (of an upload or a download) after the first attempt, at most.
const MAX_RESUMES: u32 = 3;
/// The default largest file a client downloads (the content server's cap, RCC.07's "up to
/// 100 MB").
pub const DEFAULT_MAX_DOWNLOAD: u64 = 100 * 1024 * 1024;

/// Why a transfer failed.
#[derive(Debug, thiserror::Error)]
pub enum FtError {
    /// A URL we cannot use.
    #[error("{0}")]
    Url(String),
    /// The local file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// Which.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The received file cannot be written.
    #[error("cannot save into {path}: {source}")]
    Save {
        /// Where.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The connection failed or was cut.
    #[error("{what}: {source}")]
    Io {
        /// What was under way.
        what: String,
        /// Why.
        source: std::io::Error,
    },
    /// Nothing moved for too long.
    #[error("{what}: nothing moved for {secs} s")]
    Stalled {
        /// What was under way.
        what: String,
        /// The limit.
        secs: u64,
    },
    /// The content server refused (its status and JSON error).
    #[error("the content server answered {status} {error}: {detail}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// Its `error`.
        error: String,
        /// Its `detail`.
        detail: String,
    },
    /// An answer that does not make sense (a file-info that does not read, a range not
    /// asked for).
    #[error("{0}")]
    Protocol(String),
    /// Larger than the client takes.
    #[error("the file is {size} bytes; this client takes files of up to {max} bytes")]
    TooLarge {
        /// The file-info's size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// The download is not the size the file-info says.
    #[error("the download has {got} bytes where the file-info says {want}")]
    SizeMismatch {
        /// Bytes received.
        got: u64,
        /// Bytes announced.
        want: u64,
    },
}

impl FtError {
    /// The transfer was cut (or the server is still winding up a cut one): worth resuming.
    fn is_cut(&self) -> bool {
        match self {
            FtError::Io { .. } | FtError::Stalled { .. } => true,
            FtError::Refused { status, .. } => matches!(status, 408 | 409),
            _ => false,
        }
    }
}

/// A file received and saved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedFile {
    /// Where it is.
    pub path: PathBuf,
    /// Its size, bytes.
    pub size: u64,
    /// Its SHA-256, lowercase hex.
    pub sha256: String,
}

/// A user's file-transfer client: their credentials at the content server.
#[derive(Debug)]
pub struct FtClient {
    http: http::Http,
}

impl FtClient {
    /// A client authenticating as `impi` with `password` (HTTP Digest, RCC.07
    /// §3.5.4.8.2); its connections are named `name` (`UE alice`) in `trace`'s ladders.
    pub fn new(impi: &str, password: &str, trace: Trace, name: &str) -> FtClient {
        FtClient {
            http: http::Http::new(impi, password, trace, name),
        }
    }

    /// Uploads `path` to the content server at `content_server` (`http://HOST:PORT`), with a
    /// thumbnail when it is a JPEG or PNG image; the file-info document to send.
    pub async fn upload(&self, content_server: &str, path: &Path) -> Result<FileInfo, FtError> {
        upload::upload(&self.http, content_server, path).await
    }

    /// Downloads the file `info` describes into `dir` (at most `max` bytes).
    pub async fn download(
        &self,
        info: &FileInfo,
        dir: &Path,
        max: u64,
    ) -> Result<SavedFile, FtError> {
        download::download(&self.http, info, dir, max).await
    }

    /// Fetches the file `info` describes (at most `max` bytes) and hashes it without saving
    /// it, as a load generator does (`rcslab bench ft`): its size and SHA-256 (hex).
    pub async fn download_discard(
        &self,
        info: &FileInfo,
        max: u64,
    ) -> Result<(u64, String), FtError> {
        download::download_discard(&self.http, info, max).await
    }

    /// `GET url` at the content server with our Digest credentials (`range`: a `Range`
    /// header value passed on): the answer's head, its body left to the caller to stream
    /// (the WebRSF gateway hands it on to its web user).
    pub async fn get(
        &self,
        url: &str,
        range: Option<&str>,
    ) -> Result<hyper::Response<hyper::body::Incoming>, FtError> {
        let url = http::HttpUrl::parse(url)?;
        let headers: Vec<(hyper::header::HeaderName, String)> = range
            .map(|r| vec![(hyper::header::RANGE, r.to_string())])
            .unwrap_or_default();
        self.http
            .send_authed(&hyper::Method::GET, &url, &headers, || Ok(http::empty()))
            .await
    }
}

/// The MIME type of a file by its extension (what the upload's `File` part says).
pub fn content_type_of(path: &Path) -> &'static str {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    match ext.as_str() {
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "txt" => "text/plain",
        "vcf" => "text/vcard",
        "pdf" => "application/pdf",
        "mp4" => "video/mp4",
        "3gp" => "video/3gpp",
        "mp3" => "audio/mpeg",
        "amr" => "audio/amr",
        "zip" => "application/zip",
        _ => "application/octet-stream",
    }
}

/// A file extension for content type `ct` ([`content_type_of`] read backwards; `bin` for
/// what it does not know), so a file written for upload is announced with its type.
pub fn extension_of(ct: &str) -> &'static str {
    let ct = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match ct.as_str() {
        "image/jpeg" => "jpg",
        "image/png" => "png",
        "image/gif" => "gif",
        "image/webp" => "webp",
        "text/plain" => "txt",
        "text/vcard" => "vcf",
        "application/pdf" => "pdf",
        "video/mp4" => "mp4",
        "video/3gpp" => "3gp",
        "audio/mpeg" => "mp3",
        "audio/amr" => "amr",
        "application/zip" => "zip",
        _ => "bin",
    }
}

/// A pause before retry `n` (1, 2, 3: 200, 400, 600 ms).
fn backoff(n: u32) -> Duration {
    Duration::from_millis(200 * u64::from(n.min(5)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_extension_for_each_known_content_type_reads_back_as_it() {
        for ct in [
            "image/jpeg",
            "image/png",
            "image/gif",
            "image/webp",
            "text/plain",
            "text/vcard",
            "application/pdf",
            "video/mp4",
            "video/3gpp",
            "audio/mpeg",
            "audio/amr",
            "application/zip",
        ] {
            let name = format!("media.{}", extension_of(ct));
            assert_eq!(content_type_of(Path::new(&name)), ct);
        }
        assert_eq!(extension_of("Image/PNG; q=1"), "png");
        assert_eq!(extension_of("application/x-whatever"), "bin");
    }

    #[test]
    fn content_types_by_extension() {
        assert_eq!(content_type_of(Path::new("a/Photo.JPG")), "image/jpeg");
        assert_eq!(content_type_of(Path::new("x.png")), "image/png");
        assert_eq!(
            content_type_of(Path::new("notes")),
            "application/octet-stream"
        );
        assert!(FtError::Refused {
            status: 409,
            error: "conflict".into(),
            detail: String::new()
        }
        .is_cut());
        assert!(!FtError::Refused {
            status: 403,
            error: "forbidden".into(),
            detail: String::new()
        }
        .is_cut());
    }
}
