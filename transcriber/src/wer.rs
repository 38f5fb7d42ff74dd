//! Word error rate, for tests and for comparing the live path with `webcall transcribe`.

/// Lower-case words with punctuation stripped ("Fox," and "fox" are the same word).
pub fn words(text: &str) -> Vec<String> {
    text.split_whitespace()
        .map(|w| {
            w.chars()
                .filter(|c| c.is_alphanumeric() || *c == '\'')
                .flat_map(char::to_lowercase)
                .collect::<String>()
        })
        .filter(|w| !w.is_empty())
        .collect()
}

/// (substitutions + deletions + insertions) / reference words, by word-level edit distance.
/// An empty reference gives 0 for an empty hypothesis and 1 otherwise.
pub fn wer(reference: &str, hypothesis: &str) -> f64 {
    let (r, h) = (words(reference), words(hypothesis));
    if r.is_empty() {
        return if h.is_empty() { 0.0 } else { 1.0 };
    }
    let mut prev: Vec<usize> = (0..=h.len()).collect();
    for (i, rw) in r.iter().enumerate() {
        let mut cur = vec![i + 1; h.len() + 1];
        for (j, hw) in h.iter().enumerate() {
            let sub = prev[j] + usize::from(rw != hw);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[h.len()] as f64 / r.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wer_counts_substitutions_deletions_and_insertions() {
        assert_eq!(wer("the quick brown fox", "The quick, brown fox."), 0.0);
        assert_eq!(wer("the quick brown fox", "the quack brown fox"), 0.25);
        assert_eq!(wer("the quick brown fox", "the brown fox"), 0.25);
        assert_eq!(wer("the quick brown fox", "the very quick brown fox"), 0.25);
        assert_eq!(wer("", ""), 0.0);
    }
}
