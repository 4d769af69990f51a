//! File Transfer via HTTP (GSMA RCC.07 §3.5.4.8, the protocol rcsjta's HttpUploadManager and
//! HttpDownloadManager speak), as pure codecs below the content server node
//! ([`crate::content`]) and the clients that talk to it:
//!
//! - [`file_info`]: the `application/vnd.gsma.rcs-ft-http+xml` documents, the file-info the
//!   server answers an upload with (and the sender puts in a chat message) and the
//!   `file-resume-info` a client asks for before it resumes an upload;
//! - [`range`]: `Content-Range` (a resumed upload's PUT, a partial download's 206) and
//!   `Range` (RFC 9110 §14);
//! - [`multipart`]: a streaming `multipart/form-data` parser (RFC 7578 over RFC 2046 §5.1)
//!   that holds at most one input chunk and a boundary's length, so a 100 MB upload streams
//!   through it to disk.
//!
//! No I/O and no clock: bytes and numbers in, typed values or typed errors out; never a panic.

pub mod file_info;
pub mod multipart;
pub mod range;

pub use file_info::{FileDesc, FileInfo, FileInfoError, ResumeInfo, Thumbnail};
pub use multipart::{MultipartError, MultipartParser, PartEvent, PartHead};
pub use range::{ByteRange, ContentRange, RangeError};
