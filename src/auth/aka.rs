//! IMS AKA (3GPP TS 33.102 §6.3) on Milenage (TS 35.206): authentication vectors for the HSS,
//! the USIM side for the simulated UE, and SQN re-synchronisation with AUTS (§6.3.5).
//!
//! SQN scheme (TS 33.102 Annex C.3.2 style): SQN = SEQ || IND with a 5-bit IND that this HSS
//! keeps at 0, so each new vector adds 32. The USIM accepts an SQN greater than the highest it
//! has accepted (SQN_MS) by at most `DELTA` (Annex C.2.1), otherwise it reports a sync failure.

use milenage::Milenage;

/// Largest forward jump of SQN the USIM accepts (TS 33.102 Annex C.2.1, Δ = 2^28).
pub const DELTA: u64 = 1 << 28;
const SQN_MASK: u64 = (1 << 48) - 1;

/// Errors of the AKA functions.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AkaError {
    /// MAC-S in AUTS does not verify: K/OPc differ between USIM and HSS, or AUTS was altered.
    #[error("AUTS MAC-S mismatch")]
    MacSMismatch,
}

/// One authentication vector (TS 33.102 §6.3.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AkaVector {
    /// Random challenge.
    pub rand: [u8; 16],
    /// (SQN ⊕ AK) || AMF || MAC-A.
    pub autn: [u8; 16],
    /// Expected response (f2).
    pub xres: [u8; 8],
    /// Cipher key (f3).
    pub ck: [u8; 16],
    /// Integrity key (f4).
    pub ik: [u8; 16],
}

/// What the USIM answers to a challenge (TS 33.102 §6.3.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UeAkaOutcome {
    /// Network authenticated; here is RES and the keys; `sqn` is now SQN_MS.
    Ok {
        /// Response (f2).
        res: [u8; 8],
        /// Cipher key.
        ck: [u8; 16],
        /// Integrity key.
        ik: [u8; 16],
        /// The SQN that was accepted.
        sqn: u64,
    },
    /// MAC-A wrong: the network is not who it claims (or K/OPc differ).
    MacFailure,
    /// SQN not fresh: AUTS for re-synchronisation.
    SyncFailure {
        /// (SQN_MS ⊕ AK*) || MAC-S.
        auts: [u8; 14],
    },
}

fn sqn_bytes(sqn: u64) -> [u8; 6] {
    let b = (sqn & SQN_MASK).to_be_bytes();
    [b[2], b[3], b[4], b[5], b[6], b[7]]
}

fn sqn_value(b: &[u8; 6]) -> u64 {
    let mut v = [0u8; 8];
    v[2..].copy_from_slice(b);
    u64::from_be_bytes(v)
}

fn xor6(a: &[u8; 6], b: &[u8; 6]) -> [u8; 6] {
    let mut o = [0u8; 6];
    for i in 0..6 {
        o[i] = a[i] ^ b[i];
    }
    o
}

/// OPc = AES_K(OP) ⊕ OP (TS 35.206 §4.1).
pub fn opc_from_op(k: &[u8; 16], op: &[u8; 16]) -> [u8; 16] {
    *Milenage::new_with_op(*k, *op).opc()
}

/// The HSS side: a vector for `sqn` (TS 33.102 §6.3.2, figure 7).
pub fn generate_vector(
    k: &[u8; 16],
    opc: &[u8; 16],
    amf: &[u8; 2],
    sqn: u64,
    rand: &[u8; 16],
) -> AkaVector {
    let mut m = Milenage::new_with_opc(*k, *opc);
    let sqn_b = sqn_bytes(sqn);
    let mac_a = m.f1(rand, &sqn_b, amf);
    let (xres, ck, ik, ak) = m.f2345(rand);
    let mut autn = [0u8; 16];
    autn[..6].copy_from_slice(&xor6(&sqn_b, &ak));
    autn[6..8].copy_from_slice(amf);
    autn[8..].copy_from_slice(&mac_a);
    AkaVector {
        rand: *rand,
        autn,
        xres,
        ck,
        ik,
    }
}

/// The USIM side (TS 33.102 §6.3.3): verify MAC-A, check SQN freshness, answer RES or AUTS.
pub fn ue_authenticate(
    k: &[u8; 16],
    opc: &[u8; 16],
    rand: &[u8; 16],
    autn: &[u8; 16],
    sqn_ms: u64,
) -> UeAkaOutcome {
    let mut m = Milenage::new_with_opc(*k, *opc);
    let (res, ck, ik, ak) = m.f2345(rand);
    let mut conc = [0u8; 6];
    conc.copy_from_slice(&autn[..6]);
    let sqn_b = xor6(&conc, &ak);
    let amf = [autn[6], autn[7]];
    let mac = m.f1(rand, &sqn_b, &amf);
    if mac[..] != autn[8..] {
        return UeAkaOutcome::MacFailure;
    }
    let sqn = sqn_value(&sqn_b);
    if sqn <= sqn_ms || sqn - sqn_ms > DELTA {
        // §6.3.5: AUTS = (SQN_MS ⊕ AK*) || MAC-S, MAC-S = f1*(K, SQN_MS || RAND || AMF*), AMF* = 0.
        let ms = sqn_bytes(sqn_ms);
        let ak_star = m.f5star(rand);
        let mac_s = m.f1star(rand, &ms, &[0, 0]);
        let mut auts = [0u8; 14];
        auts[..6].copy_from_slice(&xor6(&ms, &ak_star));
        auts[6..].copy_from_slice(&mac_s);
        return UeAkaOutcome::SyncFailure { auts };
    }
    UeAkaOutcome::Ok { res, ck, ik, sqn }
}

/// The HSS side of re-synchronisation (TS 33.102 §6.3.5): verifies MAC-S and returns SQN_MS.
pub fn verify_auts(
    k: &[u8; 16],
    opc: &[u8; 16],
    rand: &[u8; 16],
    auts: &[u8; 14],
) -> Result<u64, AkaError> {
    let mut m = Milenage::new_with_opc(*k, *opc);
    let ak_star = m.f5star(rand);
    let mut conc = [0u8; 6];
    conc.copy_from_slice(&auts[..6]);
    let ms = xor6(&conc, &ak_star);
    let mac_s = m.f1star(rand, &ms, &[0, 0]);
    if mac_s[..] != auts[6..] {
        return Err(AkaError::MacSMismatch);
    }
    Ok(sqn_value(&ms))
}

/// The SQN after `sqn` (SEQ + 1 with IND 0).
pub fn next_sqn(sqn: u64) -> u64 {
    ((sqn & !31) + 32) & SQN_MASK
}

/// A fresh RAND.
pub fn random_rand() -> [u8; 16] {
    rand::random()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h<const N: usize>(s: &str) -> [u8; N] {
        let v = hex::decode(s).expect("hex");
        v.try_into().expect("length")
    }

    /// (K, RAND, SQN, AMF, OP, OPc, f1, f1*, f2, f3, f4, f5, f5*) from 3GPP TS 35.208 §4.3.
    const SETS: &[[&str; 13]] = &[
        [
            "465b5ce8b199b49faa5f0a2ee238a6bc",
            "23553cbe9637a89d218ae64dae47bf35",
            "ff9bb4d0b607",
            "b9b9",
            "cdc202d5123e20f62b6d676ac72cb318",
            "cd63cb71954a9f4e48a5994e37a02baf",
            "4a9ffac354dfafb3",
            "01cfaf9ec4e871e9",
            "a54211d5e3ba50bf",
            "b40ba9a3c58b2a05bbf0d987b21bf8cb",
            "f769bcd751044604127672711c6d3441",
            "aa689c648370",
            "451e8beca43b",
        ],
        [
            "0396eb317b6d1c36f19c1c84cd6ffd16",
            "c00d603103dcee52c4478119494202e8",
            "fd8eef40df7d",
            "af17",
            "ff53bade17df5d4e793073ce9d7579fa",
            "53c15671c60a4b731c55b4a441c0bde2",
            "5df5b31807e258b0",
            "a8c016e51ef4a343",
            "d3a628ed988620f0",
            "58c433ff7a7082acd424220f2b67c556",
            "21a8c1f929702adb3e738488b9f5c5da",
            "c47783995f72",
            "30f1197061c1",
        ],
        [
            "fec86ba6eb707ed08905757b1bb44b8f",
            "9f7c8d021accf4db213ccff0c7f71a6a",
            "9d0277595ffc",
            "725c",
            "dbc59adcb6f9a0ef735477b7fadf8374",
            "1006020f0a478bf6b699f15c062e42b3",
            "9cabc3e99baf7281",
            "95814ba2b3044324",
            "8011c48c0c214ed2",
            "5dbdbb2954e8f3cde665b046179a5098",
            "59a92d3b476a0443487055cf88b2307b",
            "33484dc2136b",
            "deacdd848cc6",
        ],
    ];

    #[test]
    fn milenage_matches_ts_35_208_test_sets() {
        for (n, s) in SETS.iter().enumerate() {
            let (k, rand, sqn, amf, op) = (
                h::<16>(s[0]),
                h::<16>(s[1]),
                h::<6>(s[2]),
                h::<2>(s[3]),
                h::<16>(s[4]),
            );
            let opc = opc_from_op(&k, &op);
            assert_eq!(hex::encode(opc), s[5], "set {}: OPc", n + 1);
            let mut m = Milenage::new_with_opc(k, opc);
            assert_eq!(
                hex::encode(m.f1(&rand, &sqn, &amf)),
                s[6],
                "set {}: f1",
                n + 1
            );
            assert_eq!(
                hex::encode(m.f1star(&rand, &sqn, &amf)),
                s[7],
                "set {}: f1*",
                n + 1
            );
            let (res, ck, ik, ak) = m.f2345(&rand);
            assert_eq!(hex::encode(res), s[8], "set {}: f2", n + 1);
            assert_eq!(hex::encode(ck), s[9], "set {}: f3", n + 1);
            assert_eq!(hex::encode(ik), s[10], "set {}: f4", n + 1);
            assert_eq!(hex::encode(ak), s[11], "set {}: f5", n + 1);
            assert_eq!(hex::encode(m.f5star(&rand)), s[12], "set {}: f5*", n + 1);
            // And through our vector function.
            let v = generate_vector(&k, &opc, &amf, sqn_value(&sqn), &rand);
            assert_eq!(hex::encode(v.xres), s[8]);
            assert_eq!(hex::encode(&v.autn[8..]), s[6]);
        }
    }

    #[test]
    fn ue_and_hss_agree_and_resynchronise() {
        let k = h::<16>(SETS[0][0]);
        let opc = h::<16>(SETS[0][5]);
        let amf = [0x80, 0];
        let rand = random_rand();
        let v = generate_vector(&k, &opc, &amf, 64, &rand);
        match ue_authenticate(&k, &opc, &v.rand, &v.autn, 32) {
            UeAkaOutcome::Ok { res, ck, ik, sqn } => {
                assert_eq!((res, ck, ik, sqn), (v.xres, v.ck, v.ik, 64));
            }
            o => panic!("{o:?}"),
        }
        let mut bad = v.autn;
        bad[15] ^= 1;
        assert_eq!(
            ue_authenticate(&k, &opc, &v.rand, &bad, 32),
            UeAkaOutcome::MacFailure
        );
        // The USIM has seen SQN 5000: 64 is stale.
        let UeAkaOutcome::SyncFailure { auts } = ue_authenticate(&k, &opc, &v.rand, &v.autn, 5000)
        else {
            panic!("sync failure expected")
        };
        assert_eq!(verify_auts(&k, &opc, &v.rand, &auts), Ok(5000));
        let mut t = auts;
        t[13] ^= 1;
        assert_eq!(
            verify_auts(&k, &opc, &v.rand, &t),
            Err(AkaError::MacSMismatch)
        );
        let next = generate_vector(&k, &opc, &amf, next_sqn(5000), &rand);
        assert!(matches!(
            ue_authenticate(&k, &opc, &next.rand, &next.autn, 5000),
            UeAkaOutcome::Ok { .. }
        ));
        assert_eq!(next_sqn(32), 64);
        // A jump beyond Δ is refused too.
        let far = generate_vector(&k, &opc, &amf, 32 + DELTA + 32, &rand);
        assert!(matches!(
            ue_authenticate(&k, &opc, &far.rand, &far.autn, 32),
            UeAkaOutcome::SyncFailure { .. }
        ));
    }
}
