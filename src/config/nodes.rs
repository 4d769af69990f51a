//! `[nodes]`: where each node listens (SIP, Diameter, the HSS admin API, MSRP, HTTP).

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// `[nodes]`: where each node listens.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Nodes {
    /// P-CSCF SIP (UDP and TCP).
    pub pcscf: SocketAddr,
    /// P-CSCF SIP over WebSocket (RFC 7118: `ws://` on path `/`, subprotocol `sip`), for
    /// browser clients such as JsSIP. Unset: [`Nodes::pcscf_ws_or_default`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pcscf_ws: Option<SocketAddr>,
    /// I-CSCF SIP.
    pub icscf: SocketAddr,
    /// S-CSCF SIP.
    pub scscf: SocketAddr,
    /// HSS Diameter.
    pub hss: SocketAddr,
    /// HSS provisioning REST API.
    pub admin: SocketAddr,
    /// O-IM application server (originating instant messaging).
    #[serde(default = "default_oim")]
    pub oim: SocketAddr,
    /// T-IM application server (terminating instant messaging).
    #[serde(default = "default_tim")]
    pub tim: SocketAddr,
    /// O-IM's MSRP listener.
    #[serde(default = "default_oim_msrp")]
    pub oim_msrp: SocketAddr,
    /// T-IM's MSRP listener.
    #[serde(default = "default_tim_msrp")]
    pub tim_msrp: SocketAddr,
    /// The presence server PS (TS 24.141, RFC 3856), reached by iFC as `ps.<domain>`.
    #[serde(default = "default_ps")]
    pub ps: SocketAddr,
    /// The group-chat conference focus CONF (OMA SIMPLE IM, GSMA RCC.07, RFC 4579), reached by
    /// iFC as `conf.<domain>`: SIP, UDP and TCP.
    #[serde(default = "default_conf")]
    pub conf: SocketAddr,
    /// CONF's MSRP listener (TCP), where members' group-chat sessions connect.
    #[serde(default = "default_conf_msrp")]
    pub conf_msrp: SocketAddr,
    /// The IP-SM-GW (TS 24.341): the SMS service centre's SIP side, reached by iFC as
    /// `ipsmgw.<domain>` for MESSAGEs carrying `application/vnd.3gpp.sms`.
    #[serde(default = "default_ipsmgw")]
    pub ipsmgw: SocketAddr,
    /// The SMS service centre's SMPP 3.4 listener (TCP), where applications bind.
    #[serde(default = "default_smsc")]
    pub smsc: SocketAddr,
    /// The unified-messaging gateway UMS: its business REST API (HTTP).
    #[serde(default = "default_ums")]
    pub ums: SocketAddr,
    /// The WebRSF gateway's HTTP listener.
    #[serde(default = "default_webrsf")]
    pub webrsf: SocketAddr,
    /// The FT content server CS (GSMA RCC.07 File Transfer via HTTP): HTTP. Unset:
    /// [`Nodes::content_or_default`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<SocketAddr>,
    /// The RTCWeb gateway's web listener (seed 001): its page at `/`, the patent's WebSocket
    /// protocol at `/ws`. Unset: [`Nodes::rtcweb_or_default`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtcweb: Option<SocketAddr>,
    /// The RTCWeb gateway's SIP endpoint (UDP and TCP): how it is an IMS subscriber. Unset:
    /// [`Nodes::rtcweb_sip_or_default`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtcweb_sip: Option<SocketAddr>,
    /// T-IM's history endpoint (HTTP, token in T-IM's `history.token`), which the WebRSF
    /// gateway reads `GET History` from ([`crate::im::history_api`]). Unset: `rcslab up` binds
    /// a free port on T-IM's address (only its own gateway uses it), and `rcslab run tim` /
    /// `rcslab run webrsf` use [`Nodes::tim_http_or_default`] (port 8081 on T-IM's address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tim_http: Option<SocketAddr>,
}

impl Nodes {
    /// The P-CSCF's WebSocket address: `pcscf_ws`, else port 5066 beside a P-CSCF on port
    /// 5060 (the default lab), else a free port on the P-CSCF's address (a lab file that moves
    /// the P-CSCF and says nothing of WebSocket must not collide with another lab's 5066).
    pub fn pcscf_ws_or_default(&self) -> SocketAddr {
        self.pcscf_ws.unwrap_or_else(|| {
            let port = if self.pcscf.port() == 5060 { 5066 } else { 0 };
            SocketAddr::new(self.pcscf.ip(), port)
        })
    }

    /// The RTCWeb gateway's web address: `rtcweb`, else port 8082 beside a WebRSF on port
    /// 8080 (the default lab), else a free port on WebRSF's address (a lab file that moves
    /// WebRSF and says nothing of RTCWeb must not collide with another lab's 8082).
    pub fn rtcweb_or_default(&self) -> SocketAddr {
        self.rtcweb.unwrap_or_else(|| {
            let port = if self.webrsf.port() == 8080 { 8082 } else { 0 };
            SocketAddr::new(self.webrsf.ip(), port)
        })
    }

    /// The content server's address: `content`, else port 8083 beside a WebRSF on port 8080
    /// (the default lab), else a free port on WebRSF's address (a lab file that moves WebRSF
    /// and says nothing of the content server must not collide with another lab's 8083).
    pub fn content_or_default(&self) -> SocketAddr {
        self.content.unwrap_or_else(|| {
            let port = if self.webrsf.port() == 8080 { 8083 } else { 0 };
            SocketAddr::new(self.webrsf.ip(), port)
        })
    }

    /// The RTCWeb gateway's SIP address: `rtcweb_sip`, else port 5095 beside a P-CSCF on port
    /// 5060, else a free port on the P-CSCF's address.
    pub fn rtcweb_sip_or_default(&self) -> SocketAddr {
        self.rtcweb_sip.unwrap_or_else(|| {
            let port = if self.pcscf.port() == 5060 { 5095 } else { 0 };
            SocketAddr::new(self.pcscf.ip(), port)
        })
    }

    /// T-IM's history endpoint as separate processes find it: `tim_http`, or port 8081 on
    /// T-IM's address.
    pub fn tim_http_or_default(&self) -> SocketAddr {
        self.tim_http
            .unwrap_or_else(|| SocketAddr::new(self.tim.ip(), 8081))
    }
}

fn default_webrsf() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

fn default_oim_msrp() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 2855))
}
fn default_tim_msrp() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 2856))
}

fn default_oim() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 5090))
}
fn default_tim() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 5091))
}
fn default_ps() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 5094))
}
fn default_conf() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 5096))
}
fn default_ipsmgw() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 5097))
}
fn default_ums() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8084))
}
fn default_smsc() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 2775))
}
fn default_conf_msrp() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 2857))
}
