//! Who may use the admin API: the holder of the lab's token, from a page of the API's own
//! origin. The checks are pure (headers in, a refusal out) so each is unit-tested.
//!
//! - **Token.** A random 256-bit token is created at the first `rcslab up` and kept in
//!   `<data-dir>/admin.token` (mode 0600), so whoever can read the data directory (the
//!   `rcslab subscriber` CLI, a test harness) can use the API, and other local users and web
//!   pages cannot. Requests carry `Authorization: Bearer <token>`; without it: 401.
//! - **Host** (DNS rebinding: a page on `evil.example` whose name later resolves to
//!   127.0.0.1 talks to the API as its own origin): the Host header must be an IP literal or
//!   `localhost`, on the API's port. Otherwise 403.
//! - **Origin** (CSRF: a page POSTs a form, or a `text/plain` fetch, to the API): a request
//!   that carries `Origin` must come from `http://<its own Host>`, and `Sec-Fetch-Site:
//!   cross-site` is refused. Otherwise 403. Bodies must be `application/json` (415), which a
//!   cross-site page cannot send without a CORS preflight that the API never grants.

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;

/// The token's file in the data directory.
pub const TOKEN_FILE: &str = "admin.token";

/// Why a request is refused: HTTP status, short error, detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// 401 or 403.
    pub status: u16,
    /// Short error text (the JSON `error`).
    pub error: &'static str,
    /// What to do about it (the JSON `detail`).
    pub detail: String,
}

/// Reads `<data_dir>/admin.token`, creating it (0600, 64 hex digits) when it is missing.
pub fn load_or_create_token(data_dir: &Path) -> std::io::Result<String> {
    load_or_create_token_file(data_dir, TOKEN_FILE)
}

/// Reads `<data_dir>/<file>`, creating it (0600, 64 hex digits) when it is missing: the admin
/// token, and T-IM's history token ([`crate::im::history_api`]).
pub fn load_or_create_token_file(data_dir: &Path, file: &str) -> std::io::Result<String> {
    let path = data_dir.join(file);
    match std::fs::read_to_string(&path) {
        Ok(t) if valid_token(t.trim()) => return Ok(t.trim().to_string()),
        Ok(_) => {
            return Err(std::io::Error::other(format!(
                "{} does not hold a token (64 hex digits); remove it to have a new one made",
                path.display()
            )))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let token = hex::encode(rand::random::<[u8; 32]>());
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    match opts.open(&path) {
        Ok(mut f) => {
            f.write_all(token.as_bytes())?;
            f.write_all(b"\n")?;
            f.sync_all()?;
            Ok(token)
        }
        // Another process made it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            load_or_create_token_file(data_dir, file)
        }
        Err(e) => Err(e),
    }
}

/// Reads the token of a data directory (for clients); None when there is none.
pub fn read_token(data_dir: &Path) -> Option<String> {
    read_token_file(data_dir, TOKEN_FILE)
}

/// Reads the token kept in `<data_dir>/<file>`; None when there is none (or it is no token).
pub fn read_token_file(data_dir: &Path, file: &str) -> Option<String> {
    let t = std::fs::read_to_string(data_dir.join(file)).ok()?;
    valid_token(t.trim()).then(|| t.trim().to_string())
}

fn valid_token(t: &str) -> bool {
    t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Equal in time that does not depend on where the first difference is.
pub(crate) fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// The request headers the checks read.
#[derive(Debug, Default, Clone, Copy)]
pub struct Presented<'a> {
    /// `Host`.
    pub host: Option<&'a str>,
    /// `Origin`.
    pub origin: Option<&'a str>,
    /// `Sec-Fetch-Site`.
    pub fetch_site: Option<&'a str>,
    /// `Authorization`.
    pub authorization: Option<&'a str>,
}

/// True when `host` (a Host header value) names this API without a DNS name that could be
/// rebound: an IP literal or `localhost`, with the API's port.
pub fn host_allowed(host: &str, bound: SocketAddr) -> bool {
    let host = host.trim();
    let (name, port) = if let Some(rest) = host.strip_prefix('[') {
        match rest.split_once(']') {
            Some((ip, p)) => (ip, p.strip_prefix(':')),
            None => return false,
        }
    } else {
        match host.rsplit_once(':') {
            Some((n, p)) => (n, Some(p)),
            None => (host, None),
        }
    };
    let port_ok = match port {
        Some(p) => p.parse::<u16>().ok() == Some(bound.port()),
        None => bound.port() == 80,
    };
    let name_ok =
        name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok();
    port_ok && name_ok
}

/// Checks a request against the token and the API's bound address. `needs_token`: false for
/// `/health` (which tells nothing but that a lab runs).
pub fn check(
    p: Presented<'_>,
    bound: SocketAddr,
    token: &str,
    needs_token: bool,
) -> Result<(), Refusal> {
    let refuse = |status, error, detail: String| {
        Err(Refusal {
            status,
            error,
            detail,
        })
    };
    let Some(host) = p.host.filter(|h| host_allowed(h, bound)) else {
        return refuse(
            403,
            "host not allowed",
            format!(
                "the admin API answers requests for an IP address or localhost on port {}, not '{}'",
                bound.port(),
                p.host.unwrap_or("")
            ),
        );
    };
    if p.fetch_site
        .is_some_and(|s| s.trim().eq_ignore_ascii_case("cross-site"))
    {
        return refuse(
            403,
            "cross-site request refused",
            "Sec-Fetch-Site: cross-site".into(),
        );
    }
    if let Some(origin) = p.origin {
        let own = format!("http://{}", host.trim());
        if !origin.trim().eq_ignore_ascii_case(&own) {
            return refuse(
                403,
                "cross-site request refused",
                format!("Origin '{}' is not this API ({own})", origin.trim()),
            );
        }
    }
    if !needs_token {
        return Ok(());
    }
    let presented = p.authorization.map(str::trim).and_then(|a| {
        a.get(..7)
            .filter(|s| s.eq_ignore_ascii_case("bearer "))
            .map(|_| a[7..].trim())
    });
    match presented {
        Some(t) if same(t.as_bytes(), token.as_bytes()) => Ok(()),
        Some(_) => refuse(
            401,
            "bad token",
            "the token does not match this lab's".into(),
        ),
        None => refuse(
            401,
            "token needed",
            format!(
                "send Authorization: Bearer <the token in the lab's data directory, {TOKEN_FILE}>"
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

    fn bound() -> SocketAddr {
        "127.0.0.1:8079".parse().unwrap()
    }

    fn with(host: &str, auth: Option<&str>) -> Presented<'static> {
        Presented {
            host: Some(Box::leak(host.to_string().into_boxed_str())),
            authorization: auth.map(|a| &*Box::leak(a.to_string().into_boxed_str())),
            ..Default::default()
        }
    }

    #[test]
    fn token_is_needed_and_compared_whole() {
        let bearer = format!("Bearer {TOKEN}");
        assert_eq!(
            check(with("127.0.0.1:8079", Some(&bearer)), bound(), TOKEN, true),
            Ok(())
        );
        assert_eq!(
            check(
                with("127.0.0.1:8079", Some(&bearer.to_lowercase())),
                bound(),
                TOKEN,
                true
            ),
            Ok(()),
            "the scheme is case-insensitive (RFC 7235), the token is hex"
        );
        let no = check(with("127.0.0.1:8079", None), bound(), TOKEN, true).unwrap_err();
        assert_eq!((no.status, no.error), (401, "token needed"));
        let short = format!("Bearer {}", &TOKEN[..63]);
        assert_eq!(
            check(with("127.0.0.1:8079", Some(&short)), bound(), TOKEN, true)
                .unwrap_err()
                .status,
            401
        );
        assert_eq!(
            check(
                with("127.0.0.1:8079", Some("Basic YWRtaW46YWRtaW4=")),
                bound(),
                TOKEN,
                true
            )
            .unwrap_err()
            .status,
            401
        );
        assert_eq!(
            check(with("localhost:8079", None), bound(), TOKEN, false),
            Ok(())
        );
    }

    #[test]
    fn only_ip_literals_and_localhost_on_our_port_are_hosts() {
        for ok in [
            "127.0.0.1:8079",
            "localhost:8079",
            "LOCALHOST:8079",
            "[::1]:8079",
            "10.0.0.5:8079",
        ] {
            assert!(host_allowed(ok, bound()), "{ok}");
        }
        for bad in [
            "evil.example:8079",
            "evil.example",
            "127.0.0.1:80",
            "127.0.0.1",
            "127.0.0.1.nip.io:8079",
            "[::1",
            "",
        ] {
            assert!(!host_allowed(bad, bound()), "{bad}");
        }
        let r = check(
            with("evil.example:8079", Some(&format!("Bearer {TOKEN}"))),
            bound(),
            TOKEN,
            true,
        )
        .unwrap_err();
        assert_eq!((r.status, r.error), (403, "host not allowed"));
        let none = Presented::default();
        assert_eq!(check(none, bound(), TOKEN, false).unwrap_err().status, 403);
    }

    #[test]
    fn cross_site_origins_are_refused_even_with_the_token() {
        let bearer = format!("Bearer {TOKEN}");
        let mut p = with("127.0.0.1:8079", Some(&bearer));
        p.origin = Some("http://127.0.0.1:8079");
        assert_eq!(check(p, bound(), TOKEN, true), Ok(()));
        p.origin = Some("http://evil.example");
        assert_eq!(
            check(p, bound(), TOKEN, true).unwrap_err().error,
            "cross-site request refused"
        );
        p.origin = Some("null");
        assert_eq!(check(p, bound(), TOKEN, true).unwrap_err().status, 403);
        p.origin = None;
        p.fetch_site = Some("cross-site");
        assert_eq!(check(p, bound(), TOKEN, true).unwrap_err().status, 403);
        p.fetch_site = Some("same-origin");
        assert_eq!(check(p, bound(), TOKEN, true), Ok(()));
    }

    #[test]
    fn the_token_file_is_made_once_private_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_token(dir.path()), None);
        let t = load_or_create_token(dir.path()).unwrap();
        assert!(valid_token(&t));
        assert_eq!(
            load_or_create_token(dir.path()).unwrap(),
            t,
            "kept across runs"
        );
        assert_eq!(read_token(dir.path()).as_deref(), Some(t.as_str()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(TOKEN_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(dir.path().join(TOKEN_FILE), "guess").unwrap();
        assert!(load_or_create_token(dir.path()).is_err());
    }
}
