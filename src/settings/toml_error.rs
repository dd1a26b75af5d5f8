//! A configuration file's TOML error, told without its values: the parser's own text quotes
//! the line at fault, and that line may hold a secret (`url = "redis://:PASSWORD@…"`).

/// The error's message, its line and column, and the key of that line (or a table's header),
/// never a value.
pub(super) fn describe(text: &str, e: &toml::de::Error) -> String {
    let message = &without_value(e.message().trim_end());
    let Some(start) = e.span().map(|span| span.start.min(text.len())).filter(|&s| text.is_char_boundary(s))
    else {
        return message.to_string();
    };
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let line_text = text[line_start..].lines().next().unwrap_or("");
    let line = text[..start].matches('\n').count() + 1;
    let column = text[line_start..start].chars().count() + 1;
    match line_text.split_once('=') {
        Some((key, _)) => format!("{message} (line {line}, column {column}, key `{}`)", key.trim()),
        // A table's header names no value; any other line may be inside one.
        None if line_text.trim_start().starts_with('[') => {
            format!("{message} (line {line}, column {column}: `{}`)", line_text.trim())
        }
        None => format!("{message} (line {line}, column {column})"),
    }
}

/// A serde message with the string it quotes taken out: `invalid type: string "…", expected
/// u32` becomes `invalid type: a string, expected u32`.
fn without_value(message: &str) -> String {
    for kind in ["invalid type", "invalid value"] {
        let quoted = format!("{kind}: string \"");
        if let Some(rest) = message.strip_prefix(&quoted)
            && let Some((_, tail)) = rest.rsplit_once("\", expected")
        {
            return format!("{kind}: a string, expected{tail}");
        }
    }
    message.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(text: &str) -> String {
        #[derive(serde::Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct File {
            name: Option<String>,
            count: Option<u32>,
        }
        let e = toml::from_str::<File>(text).expect_err("a bad file");
        describe(text, &e)
    }

    #[test]
    fn the_key_and_place_are_told_and_the_value_is_not() {
        let told = error_of("name = \"é\"\ncount = \"Pl4nted-secret\"\n");
        assert!(told.contains("line 2") && told.contains("key `count`"), "{told}");
        assert!(!told.contains("Pl4nted"), "{told}");
        let told = error_of("password = \"Pl4nted-secret\"\n");
        assert!(told.contains("password") && !told.contains("Pl4nted"), "{told}");
        // A line that continues a multi-line value is placed, not quoted.
        let told = error_of("name = \"\"\"\nPl4nted-secret\ncount = 1\n");
        assert!(!told.contains("Pl4nted"), "{told}");
    }
}
