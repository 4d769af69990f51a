//! SMPP 3.4 command_status values (SMPP v3.4 Issue 1.2, §5.1.3), with the SMPP 5.0 names of the
//! TLV errors that 3.4 calls "optional parameter" errors.

macro_rules! command_statuses {
    ($($(#[$doc:meta])* $variant:ident = $value:literal, $name:literal;)*) => {
        /// A command_status (SMPP 3.4 §5.1.3 table 5-2). Codes that 3.4 does not name (vendor
        /// codes 0x400–0x4FF, reserved ranges) are kept as [`CommandStatus::Other`].
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum CommandStatus {
            $($(#[$doc])* $variant,)*
            /// A code that SMPP 3.4 does not name.
            Other(u32),
        }

        impl CommandStatus {
            /// The 32-bit value on the wire.
            pub fn code(self) -> u32 {
                match self {
                    $(Self::$variant => $value,)*
                    Self::Other(v) => v,
                }
            }

            /// The status for a wire value; unnamed values become [`CommandStatus::Other`].
            pub fn from_code(code: u32) -> Self {
                match code {
                    $($value => Self::$variant,)*
                    v => Self::Other(v),
                }
            }

            /// The spec name (`ESME_RINVMSGLEN`), or `None` for an unnamed code.
            pub fn name(self) -> Option<&'static str> {
                match self {
                    $(Self::$variant => Some($name),)*
                    Self::Other(_) => None,
                }
            }
        }
    };
}

command_statuses! {
    /// No error.
    Ok = 0x0000_0000, "ESME_ROK";
    /// Message length is invalid (sm_length).
    InvMsgLen = 0x0000_0001, "ESME_RINVMSGLEN";
    /// Command length is invalid.
    InvCmdLen = 0x0000_0002, "ESME_RINVCMDLEN";
    /// Invalid command ID.
    InvCmdId = 0x0000_0003, "ESME_RINVCMDID";
    /// Incorrect bind status for given command.
    InvBndSts = 0x0000_0004, "ESME_RINVBNDSTS";
    /// ESME already in bound state.
    AlyBnd = 0x0000_0005, "ESME_RALYBND";
    /// Invalid priority flag.
    InvPrtFlg = 0x0000_0006, "ESME_RINVPRTFLG";
    /// Invalid registered delivery flag.
    InvRegDlvFlg = 0x0000_0007, "ESME_RINVREGDLVFLG";
    /// System error.
    SysErr = 0x0000_0008, "ESME_RSYSERR";
    /// Invalid source address.
    InvSrcAdr = 0x0000_000A, "ESME_RINVSRCADR";
    /// Invalid destination address.
    InvDstAdr = 0x0000_000B, "ESME_RINVDSTADR";
    /// Message ID is invalid.
    InvMsgId = 0x0000_000C, "ESME_RINVMSGID";
    /// Bind failed.
    BindFail = 0x0000_000D, "ESME_RBINDFAIL";
    /// Invalid password.
    InvPaswd = 0x0000_000E, "ESME_RINVPASWD";
    /// Invalid system ID.
    InvSysId = 0x0000_000F, "ESME_RINVSYSID";
    /// cancel_sm failed.
    CancelFail = 0x0000_0011, "ESME_RCANCELFAIL";
    /// replace_sm failed.
    ReplaceFail = 0x0000_0013, "ESME_RREPLACEFAIL";
    /// Message queue full.
    MsgQFul = 0x0000_0014, "ESME_RMSGQFUL";
    /// Invalid service type.
    InvSerTyp = 0x0000_0015, "ESME_RINVSERTYP";
    /// Invalid number of destinations.
    InvNumDests = 0x0000_0033, "ESME_RINVNUMDESTS";
    /// Invalid distribution list name.
    InvDlName = 0x0000_0034, "ESME_RINVDLNAME";
    /// Destination flag is invalid (submit_multi).
    InvDestFlag = 0x0000_0040, "ESME_RINVDESTFLAG";
    /// Invalid submit with replace request.
    InvSubRep = 0x0000_0042, "ESME_RINVSUBREP";
    /// Invalid esm_class field data.
    InvEsmClass = 0x0000_0043, "ESME_RINVESMCLASS";
    /// Cannot submit to distribution list.
    CntSubDl = 0x0000_0044, "ESME_RCNTSUBDL";
    /// submit_sm or submit_multi failed.
    SubmitFail = 0x0000_0045, "ESME_RSUBMITFAIL";
    /// Invalid source address TON.
    InvSrcTon = 0x0000_0048, "ESME_RINVSRCTON";
    /// Invalid source address NPI.
    InvSrcNpi = 0x0000_0049, "ESME_RINVSRCNPI";
    /// Invalid destination address TON.
    InvDstTon = 0x0000_0050, "ESME_RINVDSTTON";
    /// Invalid destination address NPI.
    InvDstNpi = 0x0000_0051, "ESME_RINVDSTNPI";
    /// Invalid system_type field.
    InvSysTyp = 0x0000_0053, "ESME_RINVSYSTYP";
    /// Invalid replace_if_present flag.
    InvRepFlag = 0x0000_0054, "ESME_RINVREPFLAG";
    /// Invalid number of messages.
    InvNumMsgs = 0x0000_0055, "ESME_RINVNUMMSGS";
    /// Throttling error (ESME has exceeded allowed message limits).
    Throttled = 0x0000_0058, "ESME_RTHROTTLED";
    /// Invalid scheduled delivery time.
    InvSched = 0x0000_0061, "ESME_RINVSCHED";
    /// Invalid message validity period (expiry time).
    InvExpiry = 0x0000_0062, "ESME_RINVEXPIRY";
    /// Predefined message invalid or not found.
    InvDftMsgId = 0x0000_0063, "ESME_RINVDFTMSGID";
    /// ESME receiver temporary app error code.
    RxTAppn = 0x0000_0064, "ESME_RX_T_APPN";
    /// ESME receiver permanent app error code.
    RxPAppn = 0x0000_0065, "ESME_RX_P_APPN";
    /// ESME receiver reject message error code.
    RxRAppn = 0x0000_0066, "ESME_RX_R_APPN";
    /// query_sm request failed.
    QueryFail = 0x0000_0067, "ESME_RQUERYFAIL";
    /// Error in the optional part of the PDU body (SMPP 5.0: ESME_RINVTLVSTREAM).
    InvOptParStream = 0x0000_00C0, "ESME_RINVOPTPARSTREAM";
    /// Optional parameter not allowed (SMPP 5.0: ESME_RTLVNOTALLWD).
    OptParNotAllwd = 0x0000_00C1, "ESME_ROPTPARNOTALLWD";
    /// Invalid parameter length (SMPP 5.0: ESME_RINVTLVLEN).
    InvParLen = 0x0000_00C2, "ESME_RINVPARLEN";
    /// Expected optional parameter missing (SMPP 5.0: ESME_RMISSINGTLV).
    MissingOptParam = 0x0000_00C3, "ESME_RMISSINGOPTPARAM";
    /// Invalid optional parameter value (SMPP 5.0: ESME_RINVTLVVAL).
    InvOptParamVal = 0x0000_00C4, "ESME_RINVOPTPARAMVAL";
    /// Delivery failure (used for data_sm_resp).
    DeliveryFailure = 0x0000_00FE, "ESME_RDELIVERYFAILURE";
    /// Unknown error.
    UnknownErr = 0x0000_00FF, "ESME_RUNKNOWNERR";
}

impl CommandStatus {
    /// SMPP 5.0 name of 0xC0 (3.4: ESME_RINVOPTPARSTREAM).
    pub const RINVTLVSTREAM: Self = Self::InvOptParStream;
    /// SMPP 5.0 name of 0xC1 (3.4: ESME_ROPTPARNOTALLWD).
    pub const RTLVNOTALLWD: Self = Self::OptParNotAllwd;
    /// SMPP 5.0 name of 0xC2 (3.4: ESME_RINVPARLEN).
    pub const RINVTLVLEN: Self = Self::InvParLen;
    /// SMPP 5.0 name of 0xC3 (3.4: ESME_RMISSINGOPTPARAM).
    pub const RMISSINGTLV: Self = Self::MissingOptParam;
    /// SMPP 5.0 name of 0xC4 (3.4: ESME_RINVOPTPARAMVAL).
    pub const RINVTLVVAL: Self = Self::InvOptParamVal;

    /// True for ESME_ROK.
    pub fn is_ok(self) -> bool {
        self == Self::Ok
    }
}

impl std::fmt::Display for CommandStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.name() {
            Some(n) => write!(f, "{n} (0x{:08X})", self.code()),
            None => write!(f, "0x{:08X}", self.code()),
        }
    }
}
