//! "Did you mean …?" for misspelt keys, values and names.

/// The candidate closest to `word`, if any is close enough to be a plausible typo.
pub fn nearest<'a, I>(word: &str, candidates: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    let lower = word.to_ascii_lowercase();
    let mut best: Option<(usize, &'a str)> = None;
    for cand in candidates {
        // Optimal string alignment: a swapped pair of letters counts as one edit.
        let d = strsim::osa_distance(&lower, &cand.to_ascii_lowercase());
        // Allow roughly one edit in three characters, and always at least one.
        let allowed = (cand.chars().count().max(word.chars().count()) / 3).max(1);
        // And the part that differs must be mostly alike: names that share a long ending
        // (`NOPE_STANDARD`, `STRESS_STANDARD`) are not typos of each other.
        let (a, b) = differing(&lower, &cand.to_ascii_lowercase());
        let core = (a.chars().count().max(b.chars().count()) / 2).max(1);
        if d <= allowed && strsim::osa_distance(&a, &b) <= core && best.is_none_or(|(bd, _)| d < bd)
        {
            best = Some((d, cand));
        }
    }
    best.map(|(_, c)| c)
}

/// What is left of `a` and `b` once their common beginning and ending are taken off.
fn differing(a: &str, b: &str) -> (String, String) {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let prefix = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let (a, b) = (&a[prefix..], &b[prefix..]);
    let suffix = a
        .iter()
        .rev()
        .zip(b.iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    (
        a[..a.len() - suffix].iter().collect(),
        b[..b.len() - suffix].iter().collect(),
    )
}

/// A hint naming the nearest candidate, or listing them all when none is near.
pub fn did_you_mean<'a, I>(word: &str, candidates: I) -> String
where
    I: IntoIterator<Item = &'a str> + Clone,
{
    match nearest(word, candidates.clone()) {
        Some(c) => format!("did you mean `{c}`?"),
        None => {
            let mut all: Vec<String> = Vec::new();
            for c in candidates {
                let quoted = format!("`{c}`");
                if !all.contains(&quoted) {
                    all.push(quoted);
                }
            }
            format!("expected one of {}", all.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_close_typos_and_ignores_distant_words() {
        let keys = ["iterations", "concurrency", "rate"];
        assert_eq!(nearest("concurency", keys), Some("concurrency"));
        assert_eq!(nearest("Iteration", keys), Some("iterations"));
        assert_eq!(nearest("banana", keys), None);
        assert_eq!(nearest("frist", ["first", "second"]), Some("first"));
        let names = [
            "STRESS_STANDARD",
            "RELIABILITY_STANDARD",
            "PERFORMANCE_STANDARD",
        ];
        assert_eq!(nearest("NOPE_STANDARD", names), None);
        assert_eq!(
            nearest("RELIABILTY_STANDARD", names),
            Some("RELIABILITY_STANDARD")
        );
        assert_eq!(
            nearest("PERFROMANCE_STANDARD", names),
            Some("PERFORMANCE_STANDARD")
        );
        assert_eq!(nearest("stres_standard", names), Some("STRESS_STANDARD"));
    }

    #[test]
    fn hint_lists_all_when_nothing_is_close() {
        assert_eq!(
            did_you_mean("htp", ["http", "websocket"]),
            "did you mean `http`?"
        );
        assert_eq!(
            did_you_mean("zzzz", ["http", "websocket"]),
            "expected one of `http`, `websocket`"
        );
    }
}
