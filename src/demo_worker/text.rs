//! Real work on text: `text_processing` (statistics) and `content_analysis` (sentiment,
//! keywords, reading time and flags).
//!
//! A word is a run of letters, digits and inner apostrophes; words are compared lower-cased.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::Value;

use super::{params::Params, protocol::TaskError};

/// The longest `text` accepted, in bytes (1 MiB).
pub(super) const MAX_TEXT_BYTES: usize = 1 << 20;
/// How many words `top_words` and `keywords` list.
const TOP: usize = 5;
/// Reading speed of the reading-time estimate, in words per minute.
const WORDS_PER_MINUTE: usize = 200;

/// Positive words of the sentiment lexicon, sorted for binary search.
const POSITIVE: &[&str] = &[
    "amazing",
    "awesome",
    "beautiful",
    "best",
    "brilliant",
    "delightful",
    "easy",
    "enjoy",
    "enjoyed",
    "excellent",
    "fantastic",
    "fast",
    "fun",
    "glad",
    "good",
    "great",
    "happy",
    "helpful",
    "like",
    "love",
    "loved",
    "nice",
    "perfect",
    "pleased",
    "recommend",
    "reliable",
    "success",
    "superb",
    "win",
    "wonderful",
];

/// Negative words of the sentiment lexicon, sorted for binary search.
const NEGATIVE: &[&str] = &[
    "angry",
    "annoying",
    "awful",
    "bad",
    "boring",
    "broken",
    "bug",
    "crash",
    "difficult",
    "disappointed",
    "disappointing",
    "error",
    "fail",
    "failed",
    "failure",
    "hate",
    "hated",
    "horrible",
    "lose",
    "poor",
    "problem",
    "sad",
    "slow",
    "terrible",
    "ugly",
    "useless",
    "worse",
    "worst",
    "wrong",
];

/// Words that flip the polarity of a sentiment word shortly after them, sorted.
const NEGATORS: &[&str] = &["don't", "isn't", "never", "no", "not", "wasn't", "won't"];

/// Words too common to be keywords, sorted for binary search.
const STOP_WORDS: &[&str] = &[
    "about", "after", "all", "also", "and", "any", "are", "because", "been", "but", "can", "could", "did",
    "does", "for", "from", "had", "has", "have", "her", "his", "how", "into", "its", "just", "more", "most",
    "not", "now", "only", "other", "our", "out", "over", "she", "should", "some", "such", "than", "that",
    "the", "their", "them", "then", "there", "these", "they", "this", "those", "too", "very", "was", "were",
    "what", "when", "which", "while", "who", "will", "with", "would", "you", "your",
];

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

/// The result of `content_analysis`.
#[derive(Debug, Serialize, PartialEq)]
pub(super) struct ContentAnalysis {
    /// Words in the text.
    pub(super) words: usize,
    /// Lexicon sentiment.
    pub(super) sentiment: Sentiment,
    /// The most frequent words that are not stop words.
    pub(super) keywords: Vec<WordCount>,
    /// Estimated reading time at 200 words per minute, rounded up.
    pub(super) reading_time_seconds: usize,
    /// What the text contains, e.g. `contains_url`, `contains_email`.
    pub(super) flags: Vec<&'static str>,
}

/// Lexicon sentiment of a text.
#[derive(Debug, Serialize, PartialEq)]
pub(super) struct Sentiment {
    /// `(positive - negative) / (positive + negative)`, in `[-1, 1]`, to three decimals.
    pub(super) score: f64,
    /// `positive`, `negative` or `neutral`.
    pub(super) label: &'static str,
    /// Positive hits (negated negative words count here).
    pub(super) positive: usize,
    /// Negative hits (negated positive words count here).
    pub(super) negative: usize,
}

/// Runs `text_processing` on `data.text`.
pub(super) fn process(params: &Params<'_>) -> Result<Value, TaskError> {
    let text = params.text_or("text", "", MAX_TEXT_BYTES)?;
    to_value(&stats(text))
}

/// Runs `content_analysis` on `data.text`.
pub(super) fn analyse(params: &Params<'_>) -> Result<Value, TaskError> {
    let text = params.text_or("text", "", MAX_TEXT_BYTES)?;
    to_value(&analysis(text))
}

/// Serialises a result; it cannot fail for these plain structs, but is not unwrapped.
fn to_value<T: Serialize>(result: &T) -> Result<Value, TaskError> {
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

/// Analyses the content of `text`.
pub(super) fn analysis(text: &str) -> ContentAnalysis {
    let words = words(text).count();
    ContentAnalysis {
        words,
        sentiment: sentiment(text),
        keywords: top(lower_words(text).filter(|word| is_keyword(word)), TOP),
        reading_time_seconds: (words * 60).div_ceil(WORDS_PER_MINUTE),
        flags: flags(text),
    }
}

/// The words of `text`, as they are written.
fn words(text: &str) -> impl Iterator<Item = &str> {
    let is_apostrophe = |c: char| c == '\'' || c == '\u{2019}';
    text.split(move |c: char| !(c.is_alphanumeric() || is_apostrophe(c)))
        .map(move |word| word.trim_matches(is_apostrophe))
        .filter(|word| !word.is_empty())
}

/// The words of `text`, lower-cased, with typographic apostrophes made plain.
fn lower_words(text: &str) -> impl Iterator<Item = String> {
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
fn top(words: impl Iterator<Item = String>, n: usize) -> Vec<WordCount> {
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

/// Whether a lower-cased word may be a keyword.
fn is_keyword(word: &str) -> bool {
    word.chars().count() >= 3
        && !word.chars().all(char::is_numeric)
        && STOP_WORDS.binary_search(&word).is_err()
}

/// Scores `text` against the lexicon; a negator flips the next sentiment word within 3 words.
fn sentiment(text: &str) -> Sentiment {
    const NEGATION_REACH: u8 = 3;
    let (mut positive, mut negative, mut negation) = (0, 0, 0u8);
    for word in lower_words(text) {
        let word = word.as_str();
        let polarity = if POSITIVE.binary_search(&word).is_ok() {
            1
        } else if NEGATIVE.binary_search(&word).is_ok() {
            -1
        } else {
            0
        };
        let negated = negation > 0;
        negation = negation.saturating_sub(1);
        if NEGATORS.binary_search(&word).is_ok() || word.ends_with("n't") {
            negation = NEGATION_REACH;
        }
        match (polarity, negated) {
            (1, false) | (-1, true) => positive += 1,
            (1, true) | (-1, false) => negative += 1,
            _ => continue,
        }
        negation = 0;
    }
    let total = positive + negative;
    let score =
        if total == 0 { 0.0 } else { round((positive as f64 - negative as f64) / total as f64, 1000.0) };
    let label = match score {
        s if s > 0.1 => "positive",
        s if s < -0.1 => "negative",
        _ => "neutral",
    };
    Sentiment { score, label, positive, negative }
}

/// What `text` contains, as a list of flag names.
fn flags(text: &str) -> Vec<&'static str> {
    let tokens =
        || text.split_whitespace().map(|token| token.trim_matches(|c: char| "<>()[]{},;:\"'".contains(c)));
    let checks: [(&'static str, bool); 6] = [
        ("contains_url", tokens().any(is_url)),
        ("contains_email", tokens().any(is_email)),
        ("contains_number", text.chars().any(|c| c.is_ascii_digit())),
        ("contains_question", text.contains('?')),
        ("contains_exclamation", text.contains('!')),
        (
            "contains_shouting",
            words(text).any(|word| {
                word.chars().filter(|c| c.is_alphabetic()).count() >= 4
                    && !word.chars().any(char::is_lowercase)
            }),
        ),
    ];
    checks.into_iter().filter_map(|(flag, present)| present.then_some(flag)).collect()
}

/// Whether a token looks like a URL.
fn is_url(token: &str) -> bool {
    let lower = token.to_ascii_lowercase();
    ["http://", "https://", "www."]
        .iter()
        .any(|prefix| lower.starts_with(prefix) && lower.len() > prefix.len())
}

/// Whether a token looks like an e-mail address: `local@domain.tld`.
fn is_email(token: &str) -> bool {
    let token = token.trim_end_matches('.');
    let Some((local, domain)) = token.split_once('@') else {
        return false;
    };
    let valid_domain = domain
        .split('.')
        .all(|part| !part.is_empty() && part.chars().all(|c| c.is_alphanumeric() || c == '-'));
    !local.is_empty() && !domain.contains('@') && domain.contains('.') && valid_domain
}

/// `part / whole`, or 0 for an empty whole.
fn ratio(part: usize, whole: usize) -> f64 {
    if whole == 0 { 0.0 } else { part as f64 / whole as f64 }
}

/// Rounds `x` to the precision `1 / scale`.
fn round(x: f64, scale: f64) -> f64 {
    (x * scale).round() / scale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexicons_are_sorted() {
        for list in [POSITIVE, NEGATIVE, NEGATORS, STOP_WORDS] {
            assert!(list.is_sorted(), "{list:?}");
        }
    }

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

    #[test]
    fn sentiment_counts_lexicon_words_and_negation() {
        let happy = sentiment("I love this, it is great and fast.");
        assert_eq!((happy.positive, happy.negative, happy.label), (3, 0, "positive"));
        let sad = sentiment("This is not good. It is slow and broken.");
        assert_eq!((sad.positive, sad.negative, sad.label), (0, 3, "negative"));
        assert_eq!(sad.score, -1.0);
        assert_eq!(sentiment("A table.").label, "neutral");
    }

    #[test]
    fn analysis_finds_keywords_and_flags() {
        let text = "Rust rust RUST! Write to bob@example.com or see https://rust-lang.org today?";
        let analysis = analysis(text);
        assert_eq!(analysis.keywords[0].word, "rust");
        // Three times in the prose, once in the URL.
        assert_eq!(analysis.keywords[0].count, 4);
        assert!(!analysis.keywords.iter().any(|k| k.word == "the"));
        assert_eq!(
            analysis.flags,
            [
                "contains_url",
                "contains_email",
                "contains_question",
                "contains_exclamation",
                "contains_shouting"
            ]
        );
        // 15 words at 200 a minute: 4.5 s, rounded up.
        assert_eq!(analysis.words, 15);
        assert_eq!(analysis.reading_time_seconds, 5);
    }
}
