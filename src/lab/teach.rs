//! What `rcslab lab run` prints for a class: every ladder line numbered, with its time from
//! the first message (`+12.3 ms`), the lab's marker for it (`~` floating, `?` optional, `!`
//! barrier; see [`crate::lab::scenario::diff`]), the paper's figure step when the lab gives
//! them (`figure_steps`), and under it the nodes' notes on the decisions that followed (which
//! iFC matched, which S-CSCF the HSS named, why a 401).
//!
//! ```text
//!    #        time  fig     ladder
//!    1     +0.0 ms  [ 1]    UE alice -> P-CSCF SIP INVITE
//!    2     +1.0 ms  [ 1]    P-CSCF -> S-CSCF SIP INVITE
//!                           [S-CSCF] originating sip:alice@ims.lab: iFC priority 10 matched
//!   17     +9.2 ms        ~ UE alice -> P-CSCF SIP ACK
//! ```

use std::time::Duration;

use crate::lab::scenario::align;

/// The expected ladder and its annotations for one view.
#[derive(Debug, Clone, Copy, Default)]
pub struct Expected<'a> {
    /// The expected lines, markers included (empty: nothing to compare).
    pub lines: &'a [String],
    /// The figure step of each expected line (0: not in the figure); empty when none.
    pub figure_steps: &'a [u32],
}

/// The numbered ladder of one view: `lines` (time, line) as the run produced them, `notes`
/// (time, `[NODE] text`) placed under the last line at or before their time.
pub fn numbered(
    expected: Expected<'_>,
    lines: &[(Duration, String)],
    notes: &[(Duration, String)],
) -> String {
    let got: Vec<String> = lines.iter().map(|(_, l)| l.clone()).collect();
    let at = if expected.lines.is_empty() {
        vec![None; got.len()]
    } else {
        align(expected.lines, &got)
    };
    let figure = !expected.figure_steps.is_empty();
    let t0 = lines.first().map(|(t, _)| *t).unwrap_or_default();
    let mut out = format!(
        "{:>4}  {:>10}  {}  ladder\n",
        "#",
        "time",
        if figure { "fig   " } else { "" }
    );
    let indent = " ".repeat(4 + 2 + 10 + 2 + if figure { 6 } else { 0 } + 2);
    let mut notes = notes.iter().peekable();
    // Notes from before the first message (a step's set-up) come first.
    while let Some((_, n)) = notes.next_if(|(t, _)| *t < t0) {
        out.push_str(&format!("{indent}{n}\n"));
    }
    for (k, ((t, line), x)) in lines.iter().zip(&at).enumerate() {
        let want = x.and_then(|x| expected.lines.get(x));
        let mark = match want {
            Some(w) if w.starts_with("~ ") => '~',
            Some(w) if w.starts_with("! ") => '!',
            Some(w) if w.starts_with("? ") => '?',
            _ => ' ',
        };
        let fig = match x.and_then(|x| expected.figure_steps.get(x)) {
            _ if !figure => String::new(),
            Some(0) | None => "      ".to_string(),
            Some(s) => format!("[{s:>2}]  "),
        };
        let ms = t.saturating_sub(t0).as_secs_f64() * 1000.0;
        out.push_str(&format!(
            "{:>4}  {:>10}  {fig}{mark} {line}\n",
            k + 1,
            format!("+{ms:.1} ms")
        ));
        let next = lines.get(k + 1).map(|(t, _)| *t);
        while let Some((_, n)) = notes.next_if(|(nt, _)| next.is_none_or(|nx| *nt < nx)) {
            out.push_str(&format!("{indent}{n}\n"));
        }
    }
    let has = |c: &str| expected.lines.iter().any(|l| l.starts_with(c));
    if has("~ ") {
        out.push_str(
            "~ floating: a line in a parallel lane, allowed later than listed and in any order \
             with other ~ lines (an ACK racing the MSRP binding, a 200 on its way back while \
             the next request goes out)\n",
        );
    }
    if has("? ") {
        out.push_str(
            "? optional: a floating line that may also not come at all (a race the network \
             recovers from, such as a request answered 480 and sent again)\n",
        );
    }
    if has("! ") {
        out.push_str("! barrier: comes only after every ~ line listed above it\n");
    }
    if figure {
        let steps: std::collections::BTreeSet<u32> = expected
            .figure_steps
            .iter()
            .copied()
            .filter(|s| *s > 0)
            .collect();
        out.push_str(&format!(
            "[n]: the step of the paper's figure ({} steps; a step may take several lines, \
             lines without one are what the standards add)\n",
            steps.len()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn lines_are_numbered_timed_marked_and_notes_sit_under_their_line() {
        let expected: Vec<String> = [
            "a -> b SIP INVITE",
            "~ a -> b SIP ACK",
            "! b -> a SIP MESSAGE",
        ]
        .map(String::from)
        .to_vec();
        let lines = vec![
            (ms(100), "a -> b SIP INVITE".to_string()),
            (ms(112), "a -> b SIP ACK".to_string()),
            (ms(150), "b -> a SIP MESSAGE".to_string()),
        ];
        let notes = vec![
            (ms(90), "[UE a] set-up".to_string()),
            (ms(105), "[b] iFC 1 matched; via O-IM".to_string()),
        ];
        let out = numbered(
            Expected {
                lines: &expected,
                figure_steps: &[1, 0, 2],
            },
            &lines,
            &notes,
        );
        let l: Vec<&str> = out.lines().collect();
        assert!(l[0].contains("time") && l[0].contains("fig"), "{out}");
        assert!(l[1].trim_start().starts_with("[UE a] set-up"), "{out}");
        assert_eq!(l[2], "   1     +0.0 ms  [ 1]    a -> b SIP INVITE", "{out}");
        assert!(l[3].trim_start() == "[b] iFC 1 matched; via O-IM", "{out}");
        assert_eq!(l[4], "   2    +12.0 ms        ~ a -> b SIP ACK", "{out}");
        assert_eq!(
            l[5], "   3    +50.0 ms  [ 2]  ! b -> a SIP MESSAGE",
            "{out}"
        );
        assert!(out.contains("~ floating") && out.contains("! barrier"));
        assert!(out.contains("(2 steps;"), "{out}");
    }

    #[test]
    fn an_optional_line_that_came_is_marked_and_explained() {
        let expected: Vec<String> = ["a -> b SIP INVITE", "? b -> a SIP 480", "b -> a SIP 200"]
            .map(String::from)
            .to_vec();
        let lines = vec![
            (ms(0), "a -> b SIP INVITE".to_string()),
            (ms(1), "b -> a SIP 480".to_string()),
            (ms(2), "b -> a SIP 200".to_string()),
        ];
        let out = numbered(
            Expected {
                lines: &expected,
                figure_steps: &[],
            },
            &lines,
            &[],
        );
        assert_eq!(
            out.lines().nth(2),
            Some("   2     +1.0 ms  ? b -> a SIP 480"),
            "{out}"
        );
        assert!(out.contains("? optional"), "{out}");
    }

    #[test]
    fn without_an_expected_ladder_lines_are_only_numbered() {
        let lines = vec![(ms(5), "x".to_string()), (ms(6), "y".to_string())];
        let out = numbered(Expected::default(), &lines, &[]);
        assert_eq!(out.lines().nth(2), Some("   2     +1.0 ms    y"), "{out}");
        assert!(!out.contains("floating"));
    }
}
