//! Real work on content: `content_analysis` (lexicon sentiment, keywords, reading time and
//! flags), over the words that `text.rs` finds.

use serde::Serialize;
use serde_json::Value;

use super::{
    params::Params,
    protocol::TaskError,
    text::{MAX_TEXT_BYTES, TOP, WordCount, lower_words, round, to_value, top, words},
};

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

/// Runs `content_analysis` on `data.text`.
pub(super) fn analyse(params: &Params<'_>) -> Result<Value, TaskError> {
    let text = params.text_or("text", "", MAX_TEXT_BYTES)?;
    to_value(&analysis(text))
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
