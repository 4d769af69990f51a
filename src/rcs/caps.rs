//! RCS capability discovery by SIP OPTIONS (GSMA RCC.07 §2.6.1.1, TS 24.229 §5.1.1.2,
//! RFC 3840): an RCS client says what it can do with feature tags in the Contact of its
//! REGISTER, of the OPTIONS it sends and of its 200 OK to an OPTIONS; the other side reads
//! them to decide whether to offer chat, file transfer or fall back to SMS. A 480 or 404 for
//! the OPTIONS (the core's answer when the target is not registered or does not exist) is what
//! tells a client to fall back.
//!
//! The tags are written as Android's `FeatureTags` and rcsjta write them: ICSIs and IARIs
//! percent-encoded inside a quoted `+g.3gpp.icsi-ref` / `+g.3gpp.iari-ref`, several values of
//! one tag in one comma-separated parameter (RFC 3840 §9: a feature parameter appears once).

use crate::sip::{NameAddr, SipError};

/// OMA CPM session (1-1 chat over MSRP), percent-encoded as in Contact.
pub const ICSI_CPM_SESSION: &str = "urn%3Aurn-7%3A3gpp-service.ims.icsi.oma.cpm.session";
/// OMA CPM standalone messaging, pager mode (SIP MESSAGE).
pub const ICSI_CPM_MSG: &str = "urn%3Aurn-7%3A3gpp-service.ims.icsi.oma.cpm.msg";
/// OMA CPM standalone messaging, large message mode (an MSRP session per message).
pub const ICSI_CPM_LARGEMSG: &str = "urn%3Aurn-7%3A3gpp-service.ims.icsi.oma.cpm.largemsg";
/// RCS file transfer over HTTP.
pub const IARI_FTHTTP: &str = "urn%3Aurn-7%3A3gpp-application.ims.iari.rcs.fthttp";
/// RCS file transfer over MSRP (RFC 5547; rcsjta's `FeatureTags.FEATURE_RCSE_FT`).
pub const IARI_FT: &str = "urn%3Aurn-7%3A3gpp-application.ims.iari.rcse.ft";
/// RCS geolocation push.
pub const IARI_GEOPUSH: &str = "urn%3Aurn-7%3A3gpp-application.ims.iari.rcs.geopush";
/// OMA SIMPLE IM: IMDNs in SIP MESSAGE outside the session (RCC.07 §3.2.3).
pub const OMA_SIP_IM: &str = "+g.oma.sip-im";

/// The feature tags the rcslab UE registers with and answers OPTIONS with, as the Contact
/// parameters they become (each starts with `;`): what it really handles — 1-1 chat sessions
/// (cpm.session), pager-mode messages (cpm.msg), IMDNs in SIP MESSAGE (`+g.oma.sip-im`) and
/// file transfer via HTTP (the `rcs.fthttp` IARI, RCC.07 §2.4.4: a sender checks it before
/// sending a file-info message) and over MSRP (RFC 5547, the `rcse.ft` IARI rcsjta checks).
/// Large-message mode and geolocation are not built, so not advertised.
pub const RCSLAB_UE_TAGS: &str = concat!(
    ";+g.3gpp.icsi-ref=\"",
    "urn%3Aurn-7%3A3gpp-service.ims.icsi.oma.cpm.session,",
    "urn%3Aurn-7%3A3gpp-service.ims.icsi.oma.cpm.msg\"",
    ";+g.3gpp.iari-ref=\"urn%3Aurn-7%3A3gpp-application.ims.iari.rcs.fthttp,",
    "urn%3Aurn-7%3A3gpp-application.ims.iari.rcse.ft\"",
    ";+g.oma.sip-im"
);

/// Contact parameters that are not capabilities (RFC 3261 §20.10 `expires` and `q`; RFC 5626
/// `+sip.instance` and `reg-id`; RFC 5627 GRUUs): left out of the list [`feature_tags`] gives.
const NOT_CAPABILITIES: &[&str] = &[
    "expires",
    "q",
    "+sip.instance",
    "reg-id",
    "pub-gruu",
    "temp-gruu",
    "tag",
];

/// The feature tags of one Contact header value, one per parameter, each written as the
/// Contact carried it (`name` or `name=value`, quotes and percent-encoding kept), in order.
pub fn feature_tags(contact: &str) -> Result<Vec<String>, SipError> {
    let na = NameAddr::parse(contact)?;
    Ok(na
        .params
        .iter()
        .filter(|(k, _)| !NOT_CAPABILITIES.iter().any(|n| n.eq_ignore_ascii_case(k)))
        .map(|(k, v)| match v {
            Some(v) => format!("{k}={v}"),
            None => k.to_string(),
        })
        .collect())
}

/// Does this list of feature tags (from [`feature_tags`]) carry the ICSI or IARI `ref`
/// (percent-encoded, e.g. [`ICSI_CPM_SESSION`])? A value list in one parameter counts.
pub fn has_ref(tags: &[String], r: &str) -> bool {
    tags.iter().any(|t| {
        let Some((name, value)) = t.split_once('=') else {
            return false;
        };
        (name.eq_ignore_ascii_case("+g.3gpp.icsi-ref")
            || name.eq_ignore_ascii_case("+g.3gpp.iari-ref"))
            && value.trim_matches('"').split(',').any(|v| v.trim() == r)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ues_tags_come_back_byte_exact_one_per_parameter() {
        let contact =
            format!("<sip:bob@127.0.0.1:40000;transport=tcp>{RCSLAB_UE_TAGS};expires=600");
        let tags = feature_tags(&contact).unwrap();
        assert_eq!(
            tags,
            [
                "+g.3gpp.icsi-ref=\"urn%3Aurn-7%3A3gpp-service.ims.icsi.oma.cpm.session,urn%3Aurn-7%3A3gpp-service.ims.icsi.oma.cpm.msg\"",
                "+g.3gpp.iari-ref=\"urn%3Aurn-7%3A3gpp-application.ims.iari.rcs.fthttp,urn%3Aurn-7%3A3gpp-application.ims.iari.rcse.ft\"",
                "+g.oma.sip-im",
            ]
        );
        assert_eq!(
            tags.iter().map(|t| format!(";{t}")).collect::<String>(),
            RCSLAB_UE_TAGS
        );
        assert!(has_ref(&tags, ICSI_CPM_SESSION));
        assert!(has_ref(&tags, ICSI_CPM_MSG));
        assert!(!has_ref(&tags, ICSI_CPM_LARGEMSG));
        assert!(has_ref(&tags, IARI_FTHTTP));
        assert!(has_ref(&tags, IARI_FT));
    }

    #[test]
    fn an_android_contact_lists_each_tag_and_leaves_out_instance_and_expires() {
        // As an Android RCS client registers (separate parameters, one per FeatureTags entry).
        let contact =
            "<sip:+15550001@10.0.0.7:5060;transport=tcp>;+sip.instance=\"<urn:gsma:imei:35-1>\";\
            +g.3gpp.icsi-ref=\"urn%3Aurn-7%3A3gpp-service.ims.icsi.oma.cpm.session\";\
            +g.3gpp.iari-ref=\"urn%3Aurn-7%3A3gpp-application.ims.iari.rcs.fthttp\";\
            +g.3gpp.iari-ref=\"urn%3Aurn-7%3A3gpp-application.ims.iari.rcs.geopush\";\
            +g.gsma.rcs.botversion=\"#=1,#=2\";video;expires=3600";
        let tags = feature_tags(contact).unwrap();
        assert_eq!(
            tags,
            [
                "+g.3gpp.icsi-ref=\"urn%3Aurn-7%3A3gpp-service.ims.icsi.oma.cpm.session\"",
                "+g.3gpp.iari-ref=\"urn%3Aurn-7%3A3gpp-application.ims.iari.rcs.fthttp\"",
                "+g.3gpp.iari-ref=\"urn%3Aurn-7%3A3gpp-application.ims.iari.rcs.geopush\"",
                "+g.gsma.rcs.botversion=\"#=1,#=2\"",
                "video",
            ]
        );
        assert!(has_ref(&tags, IARI_GEOPUSH));
        assert!(has_ref(&tags, IARI_FTHTTP));
        assert!(!has_ref(&tags, ICSI_CPM_MSG));
    }

    #[test]
    fn a_contact_without_tags_has_none_and_garbage_is_an_error() {
        assert!(feature_tags("<sip:a@h>;expires=5").unwrap().is_empty());
        assert!(feature_tags("\"x\" <sip:a@h").is_err());
    }
}
