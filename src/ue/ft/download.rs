//! The download (GSMA RCC.07 §3.5.4.8.5, rcsjta's HttpDownloadManager): `GET` the
//! file-info's URL (Digest as the recipient), the body streamed into a part file in the
//! target directory and hashed as it comes; a cut connection resumes with `Range: bytes=N-`
//! (RFC 9110 §14; a server that answers 200 instead of 206 is read from the start again).
//! The file must end at the file-info's size, no byte more. Then it takes its name: the
//! sender's, made safe ([`safe_file_name`]), with `-1`, `-2`… before the extension when the
//! name is taken (the name is reserved with an exclusive create, so nothing is overwritten).

use std::path::{Path, PathBuf};

use http_body_util::BodyExt;
use hyper::header::{HeaderName, CONTENT_RANGE, RANGE};
use hyper::Method;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncWriteExt, BufWriter};

use super::http::{empty, refused, Http, HttpUrl, IDLE_WAIT};
use super::{backoff, FtError, SavedFile, MAX_RESUMES};
use crate::fthttp::{ContentRange, FileInfo};

/// The longest name a saved file gets (bytes).
const MAX_NAME: usize = 200;
/// The write buffer of a download.
const WRITE_BUF: usize = 256 * 1024;
/// How many `-N` suffixes are tried for a name that is taken.
const MAX_SUFFIX: u32 = 9999;

/// A file name from a file-info document made safe to create in a directory: no path
/// separators, no `..`, no control characters, not empty, at most 200 bytes (the
/// extension kept).
pub fn safe_file_name(name: &str) -> String {
    let mut s: String = name
        .trim()
        .chars()
        .map(|c| {
            if c == '/' || c == '\\' || c == '\0' || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    while s.contains("..") {
        s = s.replace("..", "_");
    }
    let s = s.trim().to_string();
    let s = if s.is_empty() || s == "." {
        "file".to_string()
    } else {
        s
    };
    if s.len() <= MAX_NAME {
        return s;
    }
    let (stem, ext) = split_ext(&s);
    let keep = MAX_NAME.saturating_sub(ext.len()).max(1);
    let mut end = keep.min(stem.len());
    while !stem.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{ext}", &stem[..end])
}

/// `photo.jpg` → (`photo`, `.jpg`); no extension for a leading dot only.
fn split_ext(name: &str) -> (&str, &str) {
    match name.rfind('.') {
        Some(i) if i > 0 && name.len() - i <= 16 => (&name[..i], &name[i..]),
        _ => (name, ""),
    }
}

/// Downloads what `info` describes into `dir`.
pub(super) async fn download(
    http: &Http,
    info: &FileInfo,
    dir: &Path,
    max: u64,
) -> Result<SavedFile, FtError> {
    let want = info.file.size;
    if want > max {
        return Err(FtError::TooLarge { size: want, max });
    }
    let url = HttpUrl::parse(&info.file.url)?;
    let name = safe_file_name(&info.file.name);
    let part = dir.join(format!(".{name}.{:08x}.part", rand::random::<u32>()));
    let save_err = |p: &Path, source| FtError::Save {
        path: p.display().to_string(),
        source,
    };
    let f = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&part)
        .await
        .map_err(|e| save_err(&part, e))?;
    let mut sink = Sink {
        w: Some(BufWriter::with_capacity(WRITE_BUF, f)),
        hash: Sha256::new(),
        got: 0,
        want,
        path: part.clone(),
    };
    let result = fetch(http, &url, &mut sink).await;
    let done = match result {
        Ok(()) if sink.got != want => Err(FtError::SizeMismatch {
            got: sink.got,
            want,
        }),
        Ok(()) => sink.finish().await,
        Err(e) => Err(e),
    };
    let placed = match done {
        Ok(()) => place(dir, &name, &part).await,
        Err(e) => Err(e),
    };
    match placed {
        Ok(path) => Ok(SavedFile {
            path,
            size: sink.got,
            sha256: hex::encode(sink.hash.finalize()),
        }),
        Err(e) => {
            let _ = tokio::fs::remove_file(&part).await;
            Err(e)
        }
    }
}

/// Fetches what `info` describes, hashing and counting it without keeping it (a load
/// generator's download, as `curl -o /dev/null | sha256sum`): its size and SHA-256.
pub(super) async fn download_discard(
    http: &Http,
    info: &FileInfo,
    max: u64,
) -> Result<(u64, String), FtError> {
    let want = info.file.size;
    if want > max {
        return Err(FtError::TooLarge { size: want, max });
    }
    let url = HttpUrl::parse(&info.file.url)?;
    let mut sink = Sink {
        w: None,
        hash: Sha256::new(),
        got: 0,
        want,
        path: PathBuf::from("(discarded)"),
    };
    fetch(http, &url, &mut sink).await?;
    if sink.got != want {
        return Err(FtError::SizeMismatch {
            got: sink.got,
            want,
        });
    }
    Ok((sink.got, hex::encode(sink.hash.finalize())))
}

/// The part file being written (or nothing, for [`download_discard`]), hashed and counted.
struct Sink {
    w: Option<BufWriter<tokio::fs::File>>,
    hash: Sha256,
    got: u64,
    want: u64,
    path: PathBuf,
}

impl Sink {
    fn save_err(&self, source: std::io::Error) -> FtError {
        FtError::Save {
            path: self.path.display().to_string(),
            source,
        }
    }

    async fn write(&mut self, d: &[u8]) -> Result<(), FtError> {
        if self.got + d.len() as u64 > self.want {
            return Err(FtError::Protocol(format!(
                "the content server sends more than the file-info's {} bytes",
                self.want
            )));
        }
        if let Some(w) = self.w.as_mut() {
            if let Err(e) = w.write_all(d).await {
                return Err(self.save_err(e));
            }
        }
        self.hash.update(d);
        self.got += d.len() as u64;
        Ok(())
    }

    /// Back to nothing (the server sent the whole file where a range was asked).
    async fn restart(&mut self) -> Result<(), FtError> {
        if let Some(w) = self.w.as_mut() {
            use tokio::io::AsyncSeekExt;
            let r = async {
                w.flush().await?;
                w.get_ref().set_len(0).await?;
                w.seek(std::io::SeekFrom::Start(0)).await.map(|_| ())
            }
            .await;
            if let Err(e) = r {
                return Err(self.save_err(e));
            }
        }
        self.hash = Sha256::new();
        self.got = 0;
        Ok(())
    }

    async fn finish(&mut self) -> Result<(), FtError> {
        let Some(w) = self.w.as_mut() else {
            return Ok(());
        };
        let r = async {
            w.flush().await?;
            w.get_ref().sync_all().await
        }
        .await;
        r.map_err(|e| self.save_err(e))
    }
}

/// GETs `url` into `sink`, resuming with `Range` after a cut.
async fn fetch(http: &Http, url: &HttpUrl, sink: &mut Sink) -> Result<(), FtError> {
    let mut resumes = 0;
    loop {
        let headers: Vec<(HeaderName, String)> = if sink.got > 0 {
            vec![(RANGE, format!("bytes={}-", sink.got))]
        } else {
            Vec::new()
        };
        let attempt = async {
            let resp = http
                .send_authed(&Method::GET, url, &headers, || Ok(empty()))
                .await?;
            match resp.status().as_u16() {
                200 if sink.got > 0 => sink.restart().await?,
                200 => {}
                206 => {
                    let cr = resp
                        .headers()
                        .get(CONTENT_RANGE)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| ContentRange::parse(v).ok());
                    if cr.map(|c| c.first) != Some(sink.got) {
                        return Err(FtError::Protocol(format!(
                            "asked for bytes from {}, the answer's Content-Range is {cr:?}",
                            sink.got
                        )));
                    }
                }
                // All of it was there already.
                416 if sink.got == sink.want => return Ok(()),
                _ => return Err(refused(resp).await),
            }
            let mut body = resp.into_body();
            loop {
                let frame = tokio::time::timeout(IDLE_WAIT, body.frame())
                    .await
                    .map_err(|_| FtError::Stalled {
                        what: format!("downloading {}", url.path),
                        secs: IDLE_WAIT.as_secs(),
                    })?;
                let Some(frame) = frame else {
                    return Ok(());
                };
                let frame = frame.map_err(|e| FtError::Io {
                    what: format!("downloading {}", url.path),
                    source: std::io::Error::other(e),
                })?;
                if let Ok(d) = frame.into_data() {
                    sink.write(&d).await?;
                }
            }
        };
        match attempt.await {
            // A body that ended early without an error is a cut too.
            Ok(()) if sink.got < sink.want && resumes < MAX_RESUMES => {}
            Ok(()) => return Ok(()),
            Err(e) if e.is_cut() && resumes < MAX_RESUMES => {
                tracing::info!(url = %url.path, got = sink.got, error = %e, "download cut: resuming");
            }
            Err(e) => return Err(e),
        }
        resumes += 1;
        tokio::time::sleep(backoff(resumes)).await;
    }
}

/// Moves the finished part file to `dir/name`, or `dir/stem-N.ext` when that is taken.
pub(crate) async fn place(dir: &Path, name: &str, part: &Path) -> Result<PathBuf, FtError> {
    let (stem, ext) = split_ext(name);
    for n in 0..=MAX_SUFFIX {
        let candidate = if n == 0 {
            dir.join(name)
        } else {
            dir.join(format!("{stem}-{n}{ext}"))
        };
        // Reserved by an exclusive create, then the part file takes its place.
        match tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&candidate)
            .await
        {
            Ok(_) => {
                return match tokio::fs::rename(part, &candidate).await {
                    Ok(()) => Ok(candidate),
                    Err(source) => {
                        let _ = tokio::fs::remove_file(&candidate).await;
                        Err(FtError::Save {
                            path: candidate.display().to_string(),
                            source,
                        })
                    }
                };
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(source) => {
                return Err(FtError::Save {
                    path: candidate.display().to_string(),
                    source,
                })
            }
        }
    }
    Err(FtError::Save {
        path: dir.join(name).display().to_string(),
        source: std::io::Error::other(format!("{MAX_SUFFIX} files of that name already")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fthttp::FileDesc;
    use crate::trace::Trace;
    use tokio::io::AsyncReadExt;

    #[test]
    fn names_lose_paths_dots_and_controls() {
        assert_eq!(safe_file_name("photo.jpg"), "photo.jpg");
        assert_eq!(safe_file_name("../../etc/passwd"), "____etc_passwd");
        assert_eq!(safe_file_name("a\\b/c"), "a_b_c");
        assert_eq!(safe_file_name(".."), "_");
        assert_eq!(safe_file_name("..."), "_.");
        assert_eq!(safe_file_name(" "), "file");
        assert_eq!(safe_file_name("."), "file");
        assert_eq!(safe_file_name("new\nline"), "new_line");
        let long = format!("{}.jpg", "é".repeat(300));
        let s = safe_file_name(&long);
        assert!(s.len() <= MAX_NAME && s.ends_with(".jpg"), "{s}");
        assert!(!s.contains('/') && !s.contains(".."));
    }

    /// A server that cuts the first answer halfway, then serves the rest as a 206.
    async fn cutting_server(
        data: Vec<u8>,
    ) -> (std::net::SocketAddr, tokio::task::JoinHandle<Vec<String>>) {
        use tokio::io::AsyncWriteExt;
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let h = tokio::spawn(async move {
            let mut heads = Vec::new();
            for round in 0..2 {
                let (mut s, _) = l.accept().await.unwrap();
                let mut buf = vec![0u8; 4096];
                let n = s.read(&mut buf).await.unwrap();
                let head = String::from_utf8_lossy(&buf[..n]).to_string();
                heads.push(head.clone());
                if round == 0 {
                    let r = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", data.len());
                    s.write_all(r.as_bytes()).await.unwrap();
                    s.write_all(&data[..data.len() / 2]).await.unwrap();
                    // Dropped: the connection is cut mid-body.
                } else {
                    let from: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("range: bytes="))
                        .and_then(|r| r.trim_end_matches('-').parse().ok())
                        .unwrap();
                    let r = format!(
                        "HTTP/1.1 206 Partial Content\r\ncontent-length: {}\r\ncontent-range: bytes {from}-{}/{}\r\n\r\n",
                        data.len() - from,
                        data.len() - 1,
                        data.len()
                    );
                    s.write_all(r.as_bytes()).await.unwrap();
                    s.write_all(&data[from..]).await.unwrap();
                }
            }
            heads
        });
        (addr, h)
    }

    #[tokio::test]
    async fn a_cut_download_resumes_with_range_and_never_overwrites() {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 253) as u8).collect();
        let (addr, server) = cutting_server(data.clone()).await;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("photo.jpg"), b"already here").unwrap();
        let info = FileInfo {
            thumbnail: None,
            file: FileDesc {
                size: data.len() as u64,
                name: "photo.jpg".into(),
                content_type: "image/jpeg".into(),
                url: format!("http://{addr}/files/ab"),
                until: String::new(),
                disposition: None,
            },
        };
        let http = Http::new("bob@ims.lab", "bob-secret", Trace::disabled(), "UE bob");
        // Too large for the limit: refused before any request.
        let e = download(&http, &info, dir.path(), 10).await.unwrap_err();
        assert!(matches!(e, FtError::TooLarge { .. }), "{e}");
        let saved = download(&http, &info, dir.path(), u64::MAX).await.unwrap();
        let heads = server.await.unwrap();
        assert!(
            heads[0].starts_with("GET /files/ab HTTP/1.1\r\n"),
            "{}",
            heads[0]
        );
        assert!(!heads[0].contains("range:"), "{}", heads[0]);
        let want_range = format!("range: bytes={}-", data.len() / 2);
        assert!(heads[1].contains(&want_range), "{}", heads[1]);
        assert_eq!(saved.path, dir.path().join("photo-1.jpg"));
        assert_eq!(std::fs::read(&saved.path).unwrap(), data);
        assert_eq!(saved.sha256, hex::encode(Sha256::digest(&data)));
        assert_eq!(
            std::fs::read(dir.path().join("photo.jpg")).unwrap(),
            b"already here"
        );
        // No part file is left behind.
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().to_string())
            .filter(|n| n.ends_with(".part"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }
}
