//! Authentication codecs: IMS AKA with Milenage (TS 33.102, TS 35.206) and HTTP Digest as SIP
//! uses it, including AKAv1-MD5 (RFC 2617, RFC 3310). Pure functions, no I/O.

pub mod aka;
pub mod digest;
