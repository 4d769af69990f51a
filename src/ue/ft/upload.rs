//! The upload (GSMA RCC.07 §3.5.4.8.3, rcsjta's HttpUploadManager): an empty POST first
//! (401 and its Digest challenge, or 204), then the `multipart/form-data` POST (`tid`,
//! `Thumbnail`, `File`) with a Content-Length, the file streamed from disk in
//! [`READ_CHUNK`]s; and the resume (§3.5.4.8.4) when the connection is cut: `GET
//! ?tid=…&get_upload_info` (what the server holds) and a PUT of the rest with
//! `Content-Range`, or the POST again when the server kept nothing.

use std::path::Path;

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::header::{HeaderName, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE};
use hyper::Method;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::http::{empty, read_small, refused, Body, Http, HttpUrl, Progress};
use super::thumb::{self, Thumbnail};
use super::{backoff, content_type_of, FtError, MAX_RESUMES};
use crate::fthttp::{FileInfo, ResumeInfo};

/// One read of the file being sent.
const READ_CHUNK: usize = 64 * 1024;

/// What is being uploaded.
struct Upload<'a> {
    http: &'a Http,
    cs: HttpUrl,
    path: &'a Path,
    size: u64,
    name: String,
    content_type: &'static str,
    tid: String,
    thumb: Option<Thumbnail>,
}

/// Uploads `path` to `content_server`; the file-info the server answers with.
pub(super) async fn upload(
    http: &Http,
    content_server: &str,
    path: &Path,
) -> Result<FileInfo, FtError> {
    let cs = HttpUrl::parse(content_server)?;
    let read_err = |source| FtError::Read {
        path: path.display().to_string(),
        source,
    };
    let meta = tokio::fs::metadata(path).await.map_err(read_err)?;
    if !meta.is_file() {
        return Err(read_err(std::io::Error::other("not a regular file")));
    }
    let content_type = content_type_of(path);
    let thumb = if thumb::is_image(content_type) {
        thumb::for_upload(path.to_path_buf()).await
    } else {
        None
    };
    let up = Upload {
        http,
        cs,
        path,
        size: meta.len(),
        name: upload_name(path),
        content_type,
        tid: new_tid(),
        thumb,
    };
    up.first_post().await?;
    let mut result = up.post().await;
    let mut resumes = 0;
    loop {
        match result {
            Ok(info) => return up.check(info),
            Err(e) if e.is_cut() && resumes < MAX_RESUMES => {
                resumes += 1;
                tracing::info!(tid = %up.tid, error = %e, "upload cut: resuming");
                tokio::time::sleep(backoff(resumes)).await;
            }
            Err(e) => return Err(e),
        }
        result = match up.upload_info().await {
            Ok(Some(r)) => up.put_rest(&r).await,
            Ok(None) => up.post().await,
            Err(e) => Err(e),
        };
    }
}

/// A transaction id as rcsjta makes them (a random UUID).
fn new_tid() -> String {
    let h = format!("{:032x}", rand::random::<u128>());
    format!(
        "{}-{}-4{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[13..16],
        &h[16..20],
        &h[20..32]
    )
}

/// The name the `File` part gives: the file's own, without what would break the header.
fn upload_name(path: &Path) -> String {
    let n = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "file".into());
    let n: String = n
        .chars()
        .map(|c| {
            if c == '"' || c == '\\' || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    if n.is_empty() {
        "file".into()
    } else {
        n
    }
}

impl Upload<'_> {
    /// RCC.07's empty POST: it brings the Digest challenge (401), or says none is needed (204).
    async fn first_post(&self) -> Result<(), FtError> {
        let resp = self
            .http
            .send(
                &Method::POST,
                &self.cs,
                &[(CONTENT_LENGTH, "0".into())],
                empty(),
                &Progress::new(),
            )
            .await?;
        match resp.status().as_u16() {
            401 if self.http.learn(&resp) => Ok(()),
            200 | 204 => Ok(()),
            _ => Err(refused(resp).await),
        }
    }

    /// The multipart POST; a 401 (a stale nonce) is answered once more.
    async fn post(&self) -> Result<FileInfo, FtError> {
        let boundary = format!("rcslab-{:024x}", rand::random::<u128>() >> 32);
        let (head, tail) = self.parts(&boundary);
        let total = head.len() as u64 + self.size + tail.len() as u64;
        let headers: Vec<(HeaderName, String)> = vec![
            (
                CONTENT_TYPE,
                format!("multipart/form-data; boundary={boundary}"),
            ),
            (CONTENT_LENGTH, total.to_string()),
        ];
        let progress = Progress::new();
        let mut tries = 0;
        loop {
            let file = self.open(0).await?;
            let body = stream(
                Some(head.clone()),
                file,
                self.size,
                Some(tail.clone()),
                progress.clone(),
            );
            let resp = self
                .http
                .send(&Method::POST, &self.cs, &headers, body, &progress)
                .await?;
            match resp.status().as_u16() {
                200 => return file_info(read_small(resp).await?),
                401 if tries == 0 && self.http.learn(&resp) => tries += 1,
                _ => return Err(refused(resp).await),
            }
        }
    }

    /// The multipart text around the file's bytes: `tid`, `Thumbnail`, the `File` part's
    /// head; and the closing delimiter.
    fn parts(&self, b: &str) -> (Bytes, Bytes) {
        let mut head = format!(
            "--{b}\r\nContent-Disposition: form-data; name=\"tid\"\r\nContent-Type: text/plain\r\n\r\n{}\r\n",
            self.tid
        )
        .into_bytes();
        if let Some(t) = &self.thumb {
            head.extend_from_slice(
                format!(
                    "--{b}\r\nContent-Disposition: form-data; name=\"Thumbnail\"; filename=\"thumbnail.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n"
                )
                .as_bytes(),
            );
            head.extend_from_slice(&t.jpeg);
            head.extend_from_slice(b"\r\n");
        }
        head.extend_from_slice(
            format!(
                "--{b}\r\nContent-Disposition: form-data; name=\"File\"; filename=\"{}\"\r\nContent-Type: {}\r\n\r\n",
                self.name, self.content_type
            )
            .as_bytes(),
        );
        (Bytes::from(head), Bytes::from(format!("\r\n--{b}--\r\n")))
    }

    async fn open(&self, from: u64) -> Result<tokio::fs::File, FtError> {
        let read_err = |source| FtError::Read {
            path: self.path.display().to_string(),
            source,
        };
        let mut f = tokio::fs::File::open(self.path).await.map_err(read_err)?;
        if from > 0 {
            f.seek(std::io::SeekFrom::Start(from))
                .await
                .map_err(read_err)?;
        }
        Ok(f)
    }

    /// What the server holds of our upload (`None`: nothing, or it does not know the tid).
    async fn upload_info(&self) -> Result<Option<ResumeInfo>, FtError> {
        let base = self.cs.path.split('?').next().unwrap_or("/");
        let url = self
            .cs
            .with_path(&format!("{base}?tid={}&get_upload_info", self.tid));
        let resp = self
            .http
            .send_authed(&Method::GET, &url, &[], || Ok(empty()))
            .await?;
        match resp.status().as_u16() {
            200 => {
                let body = read_small(resp).await?;
                ResumeInfo::parse(&body)
                    .map(Some)
                    .map_err(|e| FtError::Protocol(format!("the resume info does not read: {e}")))
            }
            404 => Ok(None),
            _ => Err(refused(resp).await),
        }
    }

    /// The rest of a cut upload, from where the server's resume info says.
    async fn put_rest(&self, r: &ResumeInfo) -> Result<FileInfo, FtError> {
        if self.size == 0 {
            return self.post().await;
        }
        // A server that has it all but did not finish gets the last byte again.
        let from = r.next_byte().min(self.size - 1);
        let url = HttpUrl::parse(&r.url)?;
        let count = self.size - from;
        let headers = vec![
            (
                CONTENT_RANGE,
                format!("bytes {from}-{}/{}", self.size - 1, self.size),
            ),
            (CONTENT_LENGTH, count.to_string()),
        ];
        tracing::info!(tid = %self.tid, from, "resuming the upload with PUT");
        let progress = Progress::new();
        let file = self.open(from).await?;
        let body = stream(None, file, count, None, progress.clone());
        let resp = self
            .http
            .send(&Method::PUT, &url, &headers, body, &progress)
            .await?;
        match resp.status().as_u16() {
            200 => file_info(read_small(resp).await?),
            204 => Err(FtError::Protocol(
                "the content server wants more of a file sent to its end".into(),
            )),
            _ => Err(refused(resp).await),
        }
    }

    /// The server's file-info describes what we sent.
    fn check(&self, info: FileInfo) -> Result<FileInfo, FtError> {
        if info.file.size != self.size {
            return Err(FtError::Protocol(format!(
                "the content server says the file has {} bytes; we sent {}",
                info.file.size, self.size
            )));
        }
        Ok(info)
    }
}

fn file_info(body: Bytes) -> Result<FileInfo, FtError> {
    FileInfo::parse(&body)
        .map_err(|e| FtError::Protocol(format!("the upload's answer is no file-info: {e}")))
}

/// A body of `head`, `len` bytes of `file` read as they are sent, and `tail`; each chunk
/// taken touches `progress`. A file shorter than `len` ends the body with an error (the
/// request is then incomplete, never padded).
fn stream(
    head: Option<Bytes>,
    file: tokio::fs::File,
    len: u64,
    tail: Option<Bytes>,
    progress: Progress,
) -> Body {
    enum At {
        Head,
        File,
        Tail,
        Done,
    }
    struct St {
        at: At,
        head: Option<Bytes>,
        file: tokio::fs::File,
        left: u64,
        tail: Option<Bytes>,
        progress: Progress,
    }
    let st = St {
        at: At::Head,
        head,
        file,
        left: len,
        tail,
        progress,
    };
    let s = futures_util::stream::unfold(st, |mut st| async move {
        loop {
            match st.at {
                At::Head => {
                    st.at = At::File;
                    if let Some(h) = st.head.take() {
                        st.progress.touch();
                        return Some((Ok(h), st));
                    }
                }
                At::File if st.left == 0 => st.at = At::Tail,
                At::File => {
                    let n = st.left.min(READ_CHUNK as u64) as usize;
                    let mut buf = vec![0u8; n];
                    return match st.file.read(&mut buf).await {
                        Ok(0) => {
                            st.at = At::Done;
                            Some((
                                Err(std::io::Error::new(
                                    std::io::ErrorKind::UnexpectedEof,
                                    "the file became shorter while it was sent",
                                )),
                                st,
                            ))
                        }
                        Ok(k) => {
                            buf.truncate(k);
                            st.left -= k as u64;
                            st.progress.touch();
                            Some((Ok(Bytes::from(buf)), st))
                        }
                        Err(e) => {
                            st.at = At::Done;
                            Some((Err(e), st))
                        }
                    };
                }
                At::Tail => {
                    st.at = At::Done;
                    if let Some(t) = st.tail.take() {
                        st.progress.touch();
                        return Some((Ok(t), st));
                    }
                }
                At::Done => return None,
            }
        }
    });
    StreamBody::new(s.map(|r| r.map(Frame::data))).boxed_unsync()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tids_are_uuids_and_names_fit_the_header() {
        let t = new_tid();
        assert_eq!(t.len(), 36, "{t}");
        assert_eq!(t.matches('-').count(), 4);
        assert_ne!(new_tid(), t);
        assert_eq!(upload_name(Path::new("/tmp/a\"b.jpg")), "a_b.jpg");
        assert_eq!(upload_name(Path::new("/")), "file");
    }

    #[tokio::test]
    async fn the_body_streams_head_file_and_tail_and_fails_on_a_short_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.bin");
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&p, &data).unwrap();
        let f = tokio::fs::File::open(&p).await.unwrap();
        let body = stream(
            Some(Bytes::from_static(b"HEAD")),
            f,
            data.len() as u64,
            Some(Bytes::from_static(b"TAIL")),
            Progress::new(),
        );
        let all = body.collect().await.unwrap().to_bytes();
        assert_eq!(all.len(), 8 + data.len());
        assert_eq!(&all[..4], b"HEAD");
        assert_eq!(&all[4..4 + data.len()], &data[..]);
        assert_eq!(&all[4 + data.len()..], b"TAIL");
        let f = tokio::fs::File::open(&p).await.unwrap();
        let short = stream(None, f, data.len() as u64 + 10, None, Progress::new());
        assert!(short.collect().await.is_err());
    }
}
