//! Comparing a lab's ladder with its expected one: fixed lines in order, `~` floating lines
//! in lanes of their own, `?` optional ones, `!` barriers that wait for them (see [`diff`]).

/// Compares a ladder with the expected one; returns a readable diff when they differ.
///
/// Markers let an expected ladder say what concurrency allows: a line starting `~ ` is
/// *floating* — it runs in a parallel lane (an ACK racing the MSRP binding, an MSRP 200 on
/// its way back while HTTP goes on) and may appear anywhere after the fixed line listed
/// above it, later than listed and in any order with other floating lines (each lane is
/// its own); a line starting `? ` is *optional* — floating, and it may also not appear at
/// all (the lines of a race the network recovers from: an AS's INVITE that beat the
/// REGISTER's 200 to the P-CSCF, got 480 and is sent again); a line starting `! ` is a
/// *barrier* — every floating line listed before it must have appeared by then, and an
/// optional one that has not will not. All other lines match exactly and in order.
pub fn diff(expected: &[String], got: &[String]) -> Option<String> {
    if expected.iter().any(|l| has_marker(l)) {
        return lane_diff(expected, got);
    }
    plain_diff(expected, got)
}

/// Does `line` of an expected ladder start with a marker (`~ `, `? `, `! `)?
fn has_marker(line: &str) -> bool {
    ["~ ", "? ", "! "].iter().any(|m| line.starts_with(m))
}

fn lane_diff(expected: &[String], got: &[String]) -> Option<String> {
    lane_walk(expected, got).1
}

/// Which line of `expected` each line of `got` matched (its index in `expected`, markers
/// included), by the rules of [`diff`]; `None` for a line that matched nothing (from the
/// first difference on). `lab run` prints each line's marker (`~`, `?`, `!`) and figure
/// step.
pub fn align(expected: &[String], got: &[String]) -> Vec<Option<usize>> {
    if expected.iter().any(|l| has_marker(l)) {
        return lane_walk(expected, got).0;
    }
    let mut out = Vec::with_capacity(got.len());
    let mut same = true;
    for (i, g) in got.iter().enumerate() {
        same = same && expected.get(i) == Some(g);
        out.push(same.then_some(i));
    }
    out
}

/// The lane matcher behind [`diff`] and [`align`]: each got line's expected index, and the
/// first difference.
fn lane_walk(expected: &[String], got: &[String]) -> (Vec<Option<usize>>, Option<String>) {
    // fixed: (text, is_barrier, floats listed before it, index in expected);
    // floats: (text, fixed lines before it, index in expected, optional).
    let mut fixed: Vec<(String, bool, usize, usize)> = Vec::new();
    let mut floats: Vec<(String, usize, usize, bool)> = Vec::new();
    for (x, l) in expected.iter().enumerate() {
        if let Some(f) = l.strip_prefix("~ ") {
            floats.push((f.to_string(), fixed.len(), x, false));
        } else if let Some(f) = l.strip_prefix("? ") {
            floats.push((f.to_string(), fixed.len(), x, true));
        } else if let Some(b) = l.strip_prefix("! ") {
            fixed.push((b.to_string(), true, floats.len(), x));
        } else {
            fixed.push((l.clone(), false, floats.len(), x));
        }
    }
    let mut at: Vec<Option<usize>> = vec![None; got.len()];
    let mut seen = vec![false; floats.len()];
    let mut i = 0usize;
    for (n, g) in got.iter().enumerate() {
        // The earliest listed floating line of that text whose fixed line has passed; one
        // that must come before one that may.
        let open = |k: &usize| !seen[*k] && floats[*k].1 <= i && *g == floats[*k].0;
        // The next fixed line itself, when it is not a barrier, comes first: of two lanes
        // that send the same line (an LIR for each of two recipients), the fixed lane's
        // takes its place and the floating lane's the next one (same text, same count).
        let fixed_here = fixed
            .get(i)
            .is_some_and(|(text, barrier, _, _)| !barrier && g == text);
        let float = if fixed_here {
            None
        } else {
            (0..floats.len())
                .filter(open)
                .find(|&k| !floats[k].3)
                .or_else(|| (0..floats.len()).find(open))
        };
        if let Some(k) = float {
            seen[k] = true;
            at[n] = Some(floats[k].2);
            continue;
        }
        match fixed.get(i) {
            Some((text, barrier, before, x)) if g == text => {
                if let Some(k) = (0..*before).find(|&k| *barrier && !seen[k] && !floats[k].3) {
                    let d = format!(
                        "line {}: '{g}' came before '{}' (listed earlier, floating)\n",
                        n + 1,
                        floats[k].0
                    );
                    return (at, Some(d));
                }
                if *barrier {
                    // Optional lines listed before a barrier that did not come never will.
                    (0..*before).for_each(|k| seen[k] = true);
                }
                at[n] = Some(*x);
                i += 1;
            }
            _ => {
                let want_fixed = fixed.get(i).map(|f| f.0.as_str()).unwrap_or("(nothing)");
                let want_float = (0..floats.len())
                    .find(|&k| !seen[k] && floats[k].1 <= i)
                    .map(|k| floats[k].0.as_str())
                    .unwrap_or("(nothing)");
                let d = format!(
                    "line {}: got '{g}'\n  expected: '{want_fixed}' (or floating '{want_float}')\n{}",
                    n + 1,
                    got.iter()
                        .enumerate()
                        .map(|(k, l)| format!("{:>4} {l}\n", k + 1))
                        .collect::<String>()
                );
                return (at, Some(d));
            }
        }
    }
    let j = (0..floats.len())
        .find(|&k| !seen[k] && !floats[k].3)
        .unwrap_or(floats.len());
    if i < fixed.len() || j < floats.len() {
        let missing = fixed
            .get(i)
            .map(|f| f.0.clone())
            .or_else(|| floats.get(j).map(|f| f.0.clone()))
            .unwrap_or_default();
        return (
            at,
            Some(format!("ladder ended early: missing '{missing}'\n")),
        );
    }
    (at, None)
}

fn plain_diff(expected: &[String], got: &[String]) -> Option<String> {
    if expected == got {
        return None;
    }
    let mut out = String::new();
    for i in 0..expected.len().max(got.len()) {
        let e = expected.get(i).map(String::as_str).unwrap_or("(nothing)");
        let g = got.get(i).map(String::as_str).unwrap_or("(nothing)");
        let mark = if e == g { " " } else { "!" };
        out.push_str(&format!(
            "{mark} {:>3}  expected: {e}\n           got:      {g}\n",
            i + 1
        ));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::{align, diff};

    fn v(lines: &[&str]) -> Vec<String> {
        lines.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn fixed_lines_match_in_order() {
        assert!(diff(&v(&["a", "b"]), &v(&["a", "b"])).is_none());
        assert!(diff(&v(&["a", "b"]), &v(&["b", "a"])).is_some());
        assert!(diff(&v(&["a", "b"]), &v(&["a"])).is_some());
    }

    #[test]
    fn floating_lines_are_separate_lanes_held_back_by_barriers() {
        let want = v(&["a", "~ x", "~ y", "b", "c", "~ z", "! d", "e"]);
        // As listed.
        assert!(diff(&want, &v(&["a", "x", "y", "b", "c", "z", "d", "e"])).is_none());
        // Late, and in any order among themselves (each runs in its own lane).
        assert!(diff(&want, &v(&["a", "b", "z", "c", "y", "x", "d", "e"])).is_some());
        assert!(diff(&want, &v(&["a", "b", "c", "z", "y", "x", "d", "e"])).is_none());
        assert!(diff(&want, &v(&["a", "b", "y", "c", "z", "x", "d", "e"])).is_none());
        // Never before the fixed line above it.
        let e = diff(&want, &v(&["x", "a", "y", "b", "c", "z", "d", "e"])).unwrap();
        assert!(e.contains("line 1: got 'x'"), "{e}");
        // A barrier waits for every floating line listed before it.
        let e = diff(&want, &v(&["a", "b", "c", "x", "z", "d", "y", "e"])).unwrap();
        assert!(e.contains("'d' came before 'y'"), "{e}");
        // A floating line that never comes is missing.
        let e = diff(&v(&["a", "~ x", "b"]), &v(&["a", "b"])).unwrap();
        assert!(e.contains("missing 'x'"), "{e}");
    }

    #[test]
    fn a_line_both_lanes_send_is_the_fixed_lanes_when_it_is_next() {
        // Two recipients' flows side by side (lab 26): each has its LIR. The fixed lane's
        // LIR takes its place, the floating lane's the other, whichever comes first.
        let want = v(&["a", "~ q", "~ lir", "~ r", "b", "lir", "c"]);
        assert!(diff(&want, &v(&["a", "q", "lir", "b", "lir", "r", "c"])).is_none());
        assert!(diff(&want, &v(&["a", "b", "lir", "q", "lir", "r", "c"])).is_none());
        assert!(diff(&want, &v(&["a", "b", "lir", "lir", "c", "q", "r"])).is_none());
        // Still one each: a third is a difference, a missing one too.
        assert!(diff(&want, &v(&["a", "q", "lir", "b", "lir", "lir", "r", "c"])).is_some());
        assert!(diff(&want, &v(&["a", "q", "b", "lir", "r", "c"])).is_some());
    }

    #[test]
    fn optional_lines_float_and_may_not_come_at_all_but_not_past_a_barrier() {
        // The retry of lab 17: an INVITE that got 480 and came again, or not; the optional
        // twin may be listed first.
        let want = v(&["a", "? x", "~ x", "? r", "b", "! c", "d"]);
        assert!(diff(&want, &v(&["a", "x", "b", "c", "d"])).is_none());
        assert!(diff(&want, &v(&["a", "x", "r", "b", "x", "c", "d"])).is_none());
        assert!(
            diff(&want, &v(&["a", "b", "r", "c", "d"])).is_some(),
            "x is not optional"
        );
        // At most once each.
        assert!(diff(&want, &v(&["a", "x", "x", "x", "b", "c", "d"])).is_some());
        // Never before the fixed line above it, nor after the barrier below it.
        let e = diff(&want, &v(&["r", "a", "x", "b", "c", "d"])).unwrap();
        assert!(e.contains("line 1: got 'r'"), "{e}");
        let e = diff(&want, &v(&["a", "x", "b", "c", "r", "d"])).unwrap();
        assert!(e.contains("line 5: got 'r'"), "{e}");
        // A barrier does not wait for them; at the end, an optional line is not missing.
        assert!(diff(&v(&["a", "? r"]), &v(&["a"])).is_none());
        assert_eq!(
            align(&want, &v(&["a", "r", "x", "b", "x", "c", "d"])),
            [
                Some(0),
                Some(3),
                Some(2),
                Some(4),
                Some(1),
                Some(5),
                Some(6),
            ]
        );
    }

    #[test]
    fn align_gives_each_line_the_expected_line_it_matched() {
        let want = v(&["a", "~ x", "b", "! c"]);
        assert_eq!(
            align(&want, &v(&["a", "b", "x", "c"])),
            [Some(0), Some(2), Some(1), Some(3)]
        );
        // From the first difference on, nothing matches.
        assert_eq!(align(&want, &v(&["a", "q", "b"])), [Some(0), None, None]);
        // Without markers: line by line.
        assert_eq!(
            align(&v(&["a", "b", "c"]), &v(&["a", "x", "c"])),
            [Some(0), None, None]
        );
    }

    #[test]
    fn a_floating_line_with_a_fixed_twin_takes_the_fixed_one_first() {
        // Lab 09: the GET's 200 is fixed, the PUT's 200 floats after the PUT.
        let want = v(&["GET", "200", "PUT", "~ 200", "SEND"]);
        assert!(diff(&want, &v(&["GET", "200", "PUT", "SEND", "200"])).is_none());
        assert!(diff(&want, &v(&["GET", "200", "PUT", "200", "SEND"])).is_none());
        assert!(diff(&want, &v(&["200", "GET", "PUT", "200", "SEND"])).is_some());
    }
}
