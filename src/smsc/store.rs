//! The service centre's sled trees: `smsc.messages` (message id, big-endian -> the
//! [`StoredSm`] as JSON: every message accepted and not yet delivered, expired or failed)
//! and `smsc.users` (a public identity -> its [`UserInfo`]: the tel URI and SMS-over-IP
//! capability the third-party REGISTER told). A message is on disk, flushed, before its
//! sender hears it was accepted (the 202 and RP-ACK to a phone, submit_sm_resp to an
//! application); it leaves the tree once its outcome is final and reported.

use serde::{Deserialize, Serialize};

use crate::store::{GroupCommit, StoreError};

/// Who submitted a message, so its report goes back the same way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Origin {
    /// A phone, over SIP (SMS-SUBMIT in RP-DATA): its public identity and the SUBMIT's TP-MR.
    Phone { impu: String, tp_mr: u8 },
    /// An application bound over SMPP, by system_id.
    Esme { system_id: String },
}

/// One message the centre holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredSm {
    pub id: u64,
    pub origin: Origin,
    /// TP-OA of the DELIVER: the sender's number (`+15550001`), a short code, or an
    /// alphanumeric name.
    pub from: String,
    /// Its type of address (TS 23.040 §9.1.2.5).
    pub from_toa: u8,
    /// The recipient's number (`+15550002`) or short code (`4000`).
    pub to: String,
    pub pid: u8,
    pub dcs: u8,
    /// TP-UDHI.
    pub udhi: bool,
    /// TP-UDL and TP-UD as the SUBMIT carried them (or as the centre wrote them for an
    /// application's text).
    pub ud: Vec<u8>,
    /// A report is wanted (TP-SRR, SMPP registered_delivery).
    pub report: bool,
    /// When the centre accepted it (TP-SCTS), Unix seconds.
    pub received: u64,
    /// When it expires, Unix seconds.
    pub expires: u64,
    /// Delivery attempts so far.
    pub attempts: u32,
    /// This is a report on a message (an SMS-STATUS-REPORT to a phone, a delivery receipt
    /// to an application), not a message of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_of: Option<ReportOf>,
    /// The report is wanted only when the message fails (SMPP registered_delivery 2).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub failure_only: bool,
    /// The id its sender was given, when that is another part's (a long text the centre cut
    /// into parts: one id, one receipt, on the last part).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given_id: Option<u64>,
}

/// What a report says about the message it reports on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportOf {
    /// TP-ST (TS 23.040 §9.2.3.15).
    pub status: u8,
    /// The TP-MR the phone gave its SUBMIT.
    pub tp_mr: u8,
    /// The message's recipient.
    pub recipient: String,
    /// When the centre accepted the message, Unix seconds.
    pub received: u64,
    /// The message's id (an application's message_id).
    pub message_id: u64,
}

/// What the centre knows of a registered user.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    /// The user's tel URI number (`+15550001`), from P-Associated-URI.
    pub number: Option<String>,
    /// Its contact said `+g.3gpp.smsip` (TS 24.341 §5.3.1.1).
    pub smsip: bool,
    /// Registered now (the last third-party REGISTER had a non-zero Expires).
    pub registered: bool,
}

/// The centre's persistent state.
#[derive(Clone)]
pub struct SmscStore {
    messages: sled::Tree,
    users: sled::Tree,
    db: sled::Db,
    commit: GroupCommit,
}

fn corrupt(e: serde_json::Error) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

impl SmscStore {
    /// Opens the trees in `db`.
    pub fn open(db: &sled::Db, commit: GroupCommit) -> Result<SmscStore, sled::Error> {
        Ok(SmscStore {
            messages: db.open_tree("smsc.messages")?,
            users: db.open_tree("smsc.users")?,
            db: db.clone(),
            commit,
        })
    }

    /// A fresh message id (sled's monotonic id generator: never reused, even after a crash).
    pub fn next_id(&self) -> Result<u64, StoreError> {
        Ok(self.db.generate_id()?.saturating_add(1))
    }

    /// Every message kept (at start-up), oldest first.
    pub fn messages(&self) -> Vec<StoredSm> {
        self.messages
            .iter()
            .filter_map(Result::ok)
            .filter_map(|(_, v)| serde_json::from_slice(&v).ok())
            .collect()
    }

    /// Writes `m` (not yet on disk: [`SmscStore::durable`]).
    pub fn put(&self, m: &StoredSm) -> Result<(), StoreError> {
        let v = serde_json::to_vec(m).map_err(corrupt)?;
        self.messages.insert(m.id.to_be_bytes(), v)?;
        Ok(())
    }

    /// Forgets message `id` (its outcome is final).
    pub fn remove(&self, id: u64) -> Result<(), StoreError> {
        self.messages.remove(id.to_be_bytes())?;
        Ok(())
    }

    /// Every user kept (at start-up).
    pub fn users(&self) -> Vec<(String, UserInfo)> {
        self.users
            .iter()
            .filter_map(Result::ok)
            .filter_map(|(k, v)| {
                Some((
                    String::from_utf8(k.to_vec()).ok()?,
                    serde_json::from_slice(&v).ok()?,
                ))
            })
            .collect()
    }

    /// Writes what is known of `impu`.
    pub fn put_user(&self, impu: &str, u: &UserInfo) -> Result<(), StoreError> {
        let v = serde_json::to_vec(u).map_err(corrupt)?;
        self.users.insert(impu.as_bytes(), v)?;
        Ok(())
    }

    /// Returns once every write made before the call is on disk.
    pub async fn durable(&self) -> Result<(), StoreError> {
        self.commit.durable().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sm(id: u64) -> StoredSm {
        StoredSm {
            id,
            origin: Origin::Phone {
                impu: "sip:alice@ims.lab".into(),
                tp_mr: 7,
            },
            from: "+15550001".into(),
            from_toa: 0x91,
            to: "+15550002".into(),
            pid: 0,
            dcs: 0,
            udhi: false,
            ud: vec![2, 0xe8, 0x34],
            report: true,
            received: 1,
            expires: 2,
            attempts: 0,
            report_of: None,
            failure_only: false,
            given_id: None,
        }
    }

    #[tokio::test]
    async fn messages_and_users_survive_a_reopen_and_ids_only_grow() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let st = SmscStore::open(&db, GroupCommit::new(&db)).unwrap();
        let a = st.next_id().unwrap();
        let b = st.next_id().unwrap();
        assert!(b > a && a > 0);
        st.put(&sm(a)).unwrap();
        st.put(&sm(b)).unwrap();
        st.remove(a).unwrap();
        let u = UserInfo {
            number: Some("+15550001".into()),
            smsip: true,
            registered: true,
        };
        st.put_user("sip:alice@ims.lab", &u).unwrap();
        st.durable().await.unwrap();
        drop(st);
        drop(db);
        let db = sled::open(dir.path()).unwrap();
        let st = SmscStore::open(&db, GroupCommit::new(&db)).unwrap();
        assert_eq!(st.messages(), vec![sm(b)]);
        assert_eq!(st.users(), vec![("sip:alice@ims.lab".to_string(), u)]);
        assert!(st.next_id().unwrap() > b);
    }
}
