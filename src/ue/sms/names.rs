//! Names of the RP-Cause values (3GPP TS 24.011 §8.2.5.4, Table 8.4 and Annex E) and of the
//! TP-Status values (TS 23.040 §9.2.3.15), as the UE prints a failure.

/// The name of RP-Cause `cause` (Table 8.4; "unknown cause" for one it does not list).
pub fn rp_cause(cause: u8) -> &'static str {
    match cause {
        1 => "unassigned (unallocated) number",
        8 => "operator determined barring",
        10 => "call barred",
        21 => "short message transfer rejected",
        22 => "memory capacity exceeded",
        27 => "destination out of order",
        28 => "unidentified subscriber",
        29 => "facility rejected",
        30 => "unknown subscriber",
        38 => "network out of order",
        41 => "temporary failure",
        42 => "congestion",
        47 => "resources unavailable, unspecified",
        50 => "requested facility not subscribed",
        69 => "requested facility not implemented",
        81 => "invalid short message transfer reference value",
        95 => "semantically incorrect message",
        96 => "invalid mandatory information",
        97 => "message type non-existent or not implemented",
        98 => "message not compatible with short message protocol state",
        99 => "information element non-existent or not implemented",
        111 => "protocol error, unspecified",
        127 => "interworking, unspecified",
        _ => "unknown cause",
    }
}

/// What TP-Status `st` says (§9.2.3.15): 0x00-0x1F the transaction completed, 0x20-0x3F the
/// centre is still trying, 0x40-0x5F a permanent error, 0x60-0x7F a temporary error after
/// which the centre no longer tries.
pub fn tp_status(st: u8) -> &'static str {
    match st {
        0x00 => "received by the SME",
        0x01 => "forwarded, delivery unconfirmed",
        0x02 => "replaced by the SC",
        0x03..=0x1f => "completed",
        0x20 | 0x60 => "congestion",
        0x21 | 0x61 => "SME busy",
        0x22 | 0x62 => "no response from SME",
        0x23 | 0x63 => "service rejected",
        0x24 | 0x44 | 0x64 => "quality of service not available",
        0x25 | 0x65 => "error in SME",
        0x26..=0x3f => "temporary error, SC still trying",
        0x40 => "remote procedure error",
        0x41 => "incompatible destination",
        0x42 => "connection rejected by SME",
        0x43 => "not obtainable",
        0x45 => "no interworking available",
        0x46 => "SM validity period expired",
        0x47 => "SM deleted by originating SME",
        0x48 => "SM deleted by SC administration",
        0x49 => "SM does not exist",
        0x4a..=0x5f => "permanent error",
        _ => "temporary error, SC not trying any more",
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn names() {
        assert_eq!(super::rp_cause(30), "unknown subscriber");
        assert_eq!(super::rp_cause(200), "unknown cause");
        assert_eq!(super::tp_status(0x46), "SM validity period expired");
        assert_eq!(
            super::tp_status(0x7f),
            "temporary error, SC not trying any more"
        );
    }
}
