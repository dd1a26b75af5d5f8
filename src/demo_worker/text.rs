//! Real work on text: `text_processing` (statistics), and the word scanning that
//! `content_analysis` shares (`content.rs`).
//!
//! A word is a run of letters, digits and inner apostrophes; words are compared lower-cased.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::Value;

use super::{params::Params, protocol::TaskError};

/// The longest `text` accepted, in bytes (1 MiB).
pub(super) const MAX_TEXT_BYTES: usize = 1 << 20;
/// How many words `top_words` (and `content_analysis`'s `keywords`) list.
pub(super) const TOP: usize = 5;

/// Statistics of a text: the result of `text_processing`.
#[derive(Debug, Serialize, PartialEq)]
pub(super) struct TextStats {
    /// Unicode scalar values.
    pub(super) chars: usize,
    /// Words.
    pub(super) words: usize,
    /// Lines.
    pub(super) lines: usize,
    /// Sentences: runs of words ended by `.`, `!` or `?` (or the end of the text).
    pub(super) sentences: usize,
    /// Mean word length in characters, to two decimals.
    pub(super) average_word_length: f64,
    /// The most frequent words, most frequent first, ties in alphabetical order.
    pub(super) top_words: Vec<WordCount>,
}

/// A word and how often it occurs.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub(super) struct WordCount {
    /// The word, lower-cased.
    pub(super) word: String,
    /// Its occurrences.
    pub(super) count: usize,
}

/// Runs `text_processing` on `data.text`.
pub(super) fn process(params: &Params<'_>) -> Result<Value, TaskError> {
    let text = params.text_or("text", "", MAX_TEXT_BYTES)?;
    to_value(&stats(text))
}

/// Serialises a result; it cannot fail for these plain structs, but is not unwrapped.
pub(super) fn to_value<T: Serialize>(result: &T) -> Result<Value, TaskError> {
    serde_json::to_value(result)
        .map_err(|error| TaskError::invalid(format!("could not encode the result: {error}")))
}

/// Computes the statistics of `text`.
pub(super) fn stats(text: &str) -> TextStats {
    let (words, word_chars) =
        words(text).fold((0, 0), |(n, chars), word| (n + 1, chars + word.chars().count()));
    TextStats {
        chars: text.chars().count(),
        words,
        lines: text.lines().count(),
        sentences: sentences(text),
        average_word_length: round(ratio(word_chars, words), 100.0),
        top_words: top(lower_words(text), TOP),
    }
}

/// The words of `text`, as they are written.
pub(super) fn words(text: &str) -> impl Iterator<Item = &str> {
    let is_apostrophe = |c: char| c == '\'' || c == '\u{2019}';
    text.split(move |c: char| !(c.is_alphanumeric() || is_apostrophe(c)))
        .map(move |word| word.trim_matches(is_apostrophe))
        .filter(|word| !word.is_empty())
}

/// The words of `text`, lower-cased, with typographic apostrophes made plain.
pub(super) fn lower_words(text: &str) -> impl Iterator<Item = String> {
    words(text).map(|word| word.to_lowercase().replace('\u{2019}', "'"))
}

/// Counts sentences: a terminator (`.`, `!`, `?`) ends one when words came before it and it is
/// followed by the end, a space or a closing quote, so `3.14` and `example.com` do not.
fn sentences(text: &str) -> usize {
    let mut count = 0;
    let mut open = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_alphanumeric() {
            open = true;
        } else if open && matches!(c, '.' | '!' | '?') {
            let ends =
                chars.peek().is_none_or(|next| next.is_whitespace() || matches!(next, '"' | '\'' | ')'));
            if ends {
                count += 1;
                open = false;
            }
        }
    }
    count + usize::from(open)
}

/// The `n` most frequent words, most frequent first, ties alphabetically.
pub(super) fn top(words: impl Iterator<Item = String>, n: usize) -> Vec<WordCount> {
    let mut counts: HashMap<String, usize> = HashMap::new();
    for word in words {
        *counts.entry(word).or_default() += 1;
    }
    let mut ranked: Vec<WordCount> =
        counts.into_iter().map(|(word, count)| WordCount { word, count }).collect();
    ranked.sort_unstable_by(|a, b| b.count.cmp(&a.count).then_with(|| a.word.cmp(&b.word)));
    ranked.truncate(n);
    ranked
}

/// `part / whole`, or 0 for an empty whole.
fn ratio(part: usize, whole: usize) -> f64 {
    if whole == 0 { 0.0 } else { part as f64 / whole as f64 }
}

/// Rounds `x` to the precision `1 / scale`.
pub(super) fn round(x: f64, scale: f64) -> f64 {
    (x * scale).round() / scale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_of_a_known_text() {
        let stats = stats("The cat sat. The cat ran!\nDid the dog see it? Pi is 3.14");
        assert_eq!(stats.chars, 56);
        // "3.14" is two words, "3" and "14", but it does not end a sentence.
        assert_eq!(stats.words, 15);
        assert_eq!(stats.lines, 2);
        assert_eq!(stats.sentences, 4);
        // Ten words of 3 letters, four of 2 and one of 1: 39 letters over 15 words.
        assert_eq!(stats.average_word_length, 2.6);
        let top: Vec<(&str, usize)> = stats.top_words.iter().map(|w| (w.word.as_str(), w.count)).collect();
        assert_eq!(top, [("the", 3), ("cat", 2), ("14", 1), ("3", 1), ("did", 1)]);
    }

    #[test]
    fn empty_text_has_zero_statistics() {
        let stats = stats("");
        assert_eq!((stats.words, stats.lines, stats.sentences), (0, 0, 0));
        assert_eq!(stats.average_word_length, 0.0);
        assert!(stats.top_words.is_empty());
    }
}
