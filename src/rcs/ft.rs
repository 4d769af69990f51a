//! What an RCS MSRP file transfer puts on the SIP side (RFC 5547 with GSMA RCC.07's tags, as
//! rcsjta's `OriginatingMsrpFileSharingSession` sends it): an INVITE whose body is one
//! `application/sdp` offering MSRP media `a=sendonly` with the file's `a=file-selector`,
//! `a=file-transfer-id` and `a=file-disposition`; the answer `a=recvonly` with the same
//! selector. The feature tags: the CPM file-transfer ICSI
//! (`urn:urn-7:3gpp-service.ims.icsi.oma.cpm.filetransfer`, OMA CPM / RCC.07) in
//! Accept-Contact, Contact and P-Preferred-Service, and `+g.oma.sip-im` in Contact, the tag
//! rcsjta's `InstantMessagingService.FT_FEATURE_TAGS` carries and its dispatcher looks for
//! (with `file-selector` in the SDP) to recognise a file transfer.
//!
//! A codec layer: the UE and the messaging servers both read and write these bodies.

use crate::msrp::file_sdp::{FileSdpError, FileTransferSdp};
use crate::msrp::sdp::MsrpSdp;
use crate::msrp::MsrpError;
use crate::sip::Request;

/// The CPM file-transfer ICSI, plain (P-Preferred-Service).
pub const ICSI_FT: &str = "urn:urn-7:3gpp-service.ims.icsi.oma.cpm.filetransfer";
/// The file-transfer feature tags of a Contact (after the URI): the CPM file-transfer ICSI
/// and `+g.oma.sip-im` (rcsjta).
pub const FT_CONTACT_TAGS: &str =
    "+g.3gpp.icsi-ref=\"urn%3Aurn-7%3A3gpp-service.ims.icsi.oma.cpm.filetransfer\";+g.oma.sip-im";
/// Accept-Contact of a file-transfer INVITE (the network's iFC send it to O-IM and T-IM).
pub const ACCEPT_FT: &str =
    "*;+g.3gpp.icsi-ref=\"urn%3Aurn-7%3A3gpp-service.ims.icsi.oma.cpm.filetransfer\"";

/// Why the body of a file-transfer INVITE or answer does not read.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum FileOfferError {
    /// Not `application/sdp` (the type as given).
    #[error("file transfer body of type '{0}'")]
    ContentType(String),
    /// The MSRP media does not read.
    #[error(transparent)]
    Sdp(#[from] MsrpError),
    /// The RFC 5547 attributes do not read.
    #[error(transparent)]
    File(#[from] FileSdpError),
    /// An SDP without `a=file-selector`: a chat, not a file.
    #[error("no a=file-selector")]
    NotAFile,
}

/// The MSRP media and the file of an RFC 5547 offer or answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileOffer {
    /// The MSRP media (path, accept-types, setup).
    pub media: MsrpSdp,
    /// The file's attributes.
    pub file: FileTransferSdp,
}

impl FileOffer {
    /// Reads an offer or answer body.
    pub fn parse(content_type: Option<&str>, body: &[u8]) -> Result<FileOffer, FileOfferError> {
        let ct = content_type.unwrap_or("").trim();
        if !ct.eq_ignore_ascii_case("application/sdp") {
            return Err(FileOfferError::ContentType(ct.to_string()));
        }
        let text = String::from_utf8_lossy(body);
        let file = FileTransferSdp::parse(&text)?.ok_or(FileOfferError::NotAFile)?;
        let media = MsrpSdp::parse(&text)?;
        Ok(FileOffer { media, file })
    }

    /// The SDP body: the MSRP media description with the file's attributes (and its
    /// direction in place of `a=sendrecv`).
    pub fn to_sdp(&self) -> String {
        let mut s = self.media.to_sdp();
        if let Some(cut) = s.strip_suffix("a=sendrecv\r\n") {
            s = cut.to_string();
        }
        s.push_str(&self.file.to_lines());
        s
    }

    /// The same file, with the MSRP media of another hop (a relay's own `a=path`, address
    /// and `a=setup`); accept-types kept.
    pub fn relayed(&self, host: &str, port: u16, path: &str, setup: &str) -> FileOffer {
        let mut media = self.media.clone();
        media.host = host.to_string();
        media.port = port;
        media.path = vec![path.to_string()];
        media.setup = Some(setup.to_string());
        FileOffer {
            media,
            file: self.file.clone(),
        }
    }
}

/// True for an INVITE that offers an RFC 5547 file transfer (an SDP with `a=file-selector`).
pub fn is_file_invite(req: &Request) -> bool {
    req.method == crate::sip::Method::Invite
        && FileOffer::parse(req.headers.get("Content-Type"), &req.body).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msrp::file_sdp::{FileDirection, FileHash, FileSelector};

    #[test]
    fn an_offer_writes_and_reads_back_and_a_chat_is_not_a_file() {
        let offer = FileOffer {
            media: MsrpSdp {
                host: "127.0.0.1".into(),
                port: 9,
                path: vec!["msrp://127.0.0.1:9/a1;tcp".into()],
                accept_types: vec!["image/jpeg".into()],
                accept_wrapped_types: vec![],
                setup: Some("active".into()),
                session_id: 7,
            },
            file: FileTransferSdp {
                selector: FileSelector {
                    name: Some("photo.jpg".into()),
                    content_type: Some("image/jpeg".into()),
                    size: Some(1234),
                    hash: Some(FileHash {
                        algorithm: "sha-1".into(),
                        value: vec![0xab; 20],
                    }),
                },
                transfer_id: "t1".into(),
                disposition: Some("render".into()),
                date: None,
                range: None,
                direction: Some(FileDirection::Send),
            },
        };
        let sdp = offer.to_sdp();
        assert!(sdp.contains("m=message 9 TCP/MSRP *\r\n"), "{sdp}");
        assert!(
            sdp.contains("a=sendonly\r\n") && !sdp.contains("a=sendrecv"),
            "{sdp}"
        );
        assert_eq!(
            FileOffer::parse(Some("application/sdp"), sdp.as_bytes()).unwrap(),
            offer
        );
        let r = offer.relayed("10.0.0.1", 2855, "msrp://10.0.0.1:2855/x;tcp", "passive");
        assert_eq!(r.file, offer.file);
        assert_eq!(r.media.path, ["msrp://10.0.0.1:2855/x;tcp"]);
        let chat = MsrpSdp::rcs_chat("127.0.0.1", 9, "msrp://127.0.0.1:9/c;tcp", "active");
        assert_eq!(
            FileOffer::parse(Some("application/sdp"), chat.to_sdp().as_bytes()),
            Err(FileOfferError::NotAFile)
        );
        assert!(FileOffer::parse(Some("text/plain"), b"x").is_err());
    }
}
