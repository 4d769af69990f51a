//! The GSM 7-bit default alphabet and its extension table (3GPP TS 23.038 §6.2.1 and
//! §6.2.1.1), and the packing of septets into octets (TS 23.038 §6.1.2.1.1) with the fill
//! bits a user data header needs (TS 23.040 §9.2.3.24).
//!
//! Pure: text to septets and back, septets to octets and back.

/// The default alphabet: septet value → character.
const BASIC: [char; 128] = [
    '@', '£', '$', '¥', 'è', 'é', 'ù', 'ì', 'ò', 'Ç', '\n', 'Ø', 'ø', '\r', 'Å', 'å', //
    'Δ', '_', 'Φ', 'Γ', 'Λ', 'Ω', 'Π', 'Ψ', 'Σ', 'Θ', 'Ξ', '\u{1b}', 'Æ', 'æ', 'ß', 'É', //
    ' ', '!', '"', '#', '¤', '%', '&', '\'', '(', ')', '*', '+', ',', '-', '.', '/', //
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', ':', ';', '<', '=', '>', '?', //
    '¡', 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K', 'L', 'M', 'N', 'O', //
    'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y', 'Z', 'Ä', 'Ö', 'Ñ', 'Ü', '§', //
    '¿', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o', //
    'p', 'q', 'r', 's', 't', 'u', 'v', 'w', 'x', 'y', 'z', 'ä', 'ö', 'ñ', 'ü', 'à', //
];

/// The escape to the extension table.
pub const ESC: u8 = 0x1b;

/// The extension table (after [`ESC`]): septet value, character.
const EXTENSION: [(u8, char); 10] = [
    (0x0a, '\u{0c}'),
    (0x14, '^'),
    (0x28, '{'),
    (0x29, '}'),
    (0x2f, '\\'),
    (0x3c, '['),
    (0x3d, '~'),
    (0x3e, ']'),
    (0x40, '|'),
    (0x65, '€'),
];

/// The septets of `c` (one, or [`ESC`] and one), or None if the alphabet lacks it.
pub fn septets_of(c: char) -> Option<([u8; 2], usize)> {
    if c != '\u{1b}' {
        if let Some(i) = BASIC.iter().position(|&b| b == c) {
            return Some(([i as u8, 0], 1));
        }
    }
    EXTENSION
        .iter()
        .find(|(_, e)| *e == c)
        .map(|(v, _)| ([ESC, *v], 2))
}

/// Whether all of `text` is in the default alphabet (with its extension table).
pub fn fits(text: &str) -> bool {
    text.chars().all(|c| septets_of(c).is_some())
}

/// How many septets `c` takes (2 for the extension table), None if it is not in the alphabet.
pub fn septet_len(c: char) -> Option<usize> {
    septets_of(c).map(|(_, n)| n)
}

/// `text` as septets, or None if a character is not in the alphabet.
pub fn encode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len());
    for c in text.chars() {
        let (s, n) = septets_of(c)?;
        out.extend_from_slice(&s[..n]);
    }
    Some(out)
}

/// Septets back to text. An escape to an unknown extension value reads as the basic
/// character of that value (TS 23.038 §6.2.1.1: "display the character from the main
/// table"); an escape at the very end is dropped.
pub fn decode(septets: &[u8]) -> String {
    let mut out = String::with_capacity(septets.len());
    let mut i = 0;
    while i < septets.len() {
        let s = septets[i] & 0x7f;
        if s == ESC {
            if let Some(&next) = septets.get(i + 1) {
                let next = next & 0x7f;
                match EXTENSION.iter().find(|(v, _)| *v == next) {
                    Some((_, c)) => out.push(*c),
                    None => out.push(BASIC[next as usize]),
                }
            }
            i += 2;
            continue;
        }
        out.push(BASIC[s as usize]);
        i += 1;
    }
    out
}

/// Packs `septets` into octets, the first septet starting `fill` bits into the first octet
/// (0..=6; the bits before it are zero: the fill after a user data header).
pub fn pack(septets: &[u8], fill: usize) -> Vec<u8> {
    let bits = fill + septets.len() * 7;
    let mut out = vec![0u8; bits.div_ceil(8)];
    for (i, s) in septets.iter().enumerate() {
        let at = fill + i * 7;
        let (byte, shift) = (at / 8, at % 8);
        let v = u16::from(s & 0x7f) << shift;
        out[byte] |= v as u8;
        if shift > 1 {
            out[byte + 1] |= (v >> 8) as u8;
        }
    }
    out
}

/// Unpacks `count` septets from `octets`, the first starting `fill` bits in; None if the
/// octets hold fewer.
pub fn unpack(octets: &[u8], fill: usize, count: usize) -> Option<Vec<u8>> {
    if fill + count * 7 > octets.len() * 8 {
        return None;
    }
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let at = fill + i * 7;
        let (byte, shift) = (at / 8, at % 8);
        let lo = u16::from(octets[byte]);
        let hi = u16::from(*octets.get(byte + 1).unwrap_or(&0));
        out.push((((hi << 8) | lo) >> shift) as u8 & 0x7f);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// TS 23.038 §6.1.2.1.1's packing, and the classic "hellohello" of the SMS literature
    /// (E8 32 9B FD 46 97 D9 EC 37).
    #[test]
    fn packing_matches_the_known_examples() {
        let s = encode("hellohello").unwrap();
        assert_eq!(
            pack(&s, 0),
            [0xe8, 0x32, 0x9b, 0xfd, 0x46, 0x97, 0xd9, 0xec, 0x37]
        );
        assert_eq!(unpack(&pack(&s, 0), 0, 10).unwrap(), s);
        // "Hi" = 0x48 0x69: C8 34.
        assert_eq!(pack(&encode("Hi").unwrap(), 0), [0xc8, 0x34]);
        // Eight septets fill seven octets exactly.
        let eight = encode("12345678").unwrap();
        assert_eq!(pack(&eight, 0).len(), 7);
        assert_eq!(unpack(&pack(&eight, 0), 0, 8).unwrap(), eight);
    }

    #[test]
    fn fill_bits_shift_the_text_and_come_back() {
        let s = encode("Concatenated text €").unwrap();
        for fill in 0..7 {
            let p = pack(&s, fill);
            assert_eq!(p[0] & ((1u8 << fill) - 1), 0, "fill bits are zero");
            assert_eq!(unpack(&p, fill, s.len()).unwrap(), s, "fill {fill}");
        }
        assert!(unpack(&[0x00], 0, 2).is_none());
    }

    #[test]
    fn the_alphabet_with_its_extension_table() {
        let text = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./09:;<=>?¡AZÄÖÑÜ§¿azäöñüà";
        let s = encode(text).unwrap();
        assert_eq!(s.len(), text.chars().count());
        assert_eq!(decode(&s), text);
        let ext = "^{}\\[~]|€\u{0c}";
        let s = encode(ext).unwrap();
        assert_eq!(s.len(), 20, "each takes two septets");
        assert_eq!(decode(&s), ext);
        assert_eq!(septet_len('€'), Some(2));
        assert_eq!(septet_len('a'), Some(1));
        assert!(!fits("안녕"));
        assert!(!fits("`"), "the backtick is not in the default alphabet");
        assert!(encode("\u{1b}").is_none(), "a raw escape is not text");
        // An escape to nothing known reads as the basic character; a trailing one is dropped.
        assert_eq!(decode(&[ESC, 0x41, ESC]), "A");
    }
}
